// The journal: every change appended as one line and synced before it is
// answered, folded into the snapshot when it outgrows it.

package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// diskStore keeps the state and the service key in a folder: a snapshot
// (state.json) and a journal of the changes made since (journal.jsonl), one
// JSON record per line, synced before a change is answered. The journal is
// folded into a new snapshot when it outgrows the snapshot, so a change
// costs its own size, not the size of the whole state.
type diskStore struct {
	dir          string
	journal      *os.File
	journalSize  int64        // bytes in the current journal file (under the emulator's lock)
	snapshotSize atomic.Int64 // bytes of the last snapshot written
	compacting   atomic.Bool  // a folded journal is being written as the snapshot
	compactions  sync.WaitGroup
	// onCompactError receives the error of a background compaction.
	onCompactError func(error)
	// write appends to the journal; nil means (*os.File).Write. Tests
	// replace it to make writes fail.
	write func(f *os.File, b []byte) (int, error)
	// broken is set when a failed write could not be cut off the journal:
	// no later change is accepted (under the emulator's lock).
	broken error

	// written counts the bytes appended since open (under the emulator's
	// lock); synced how many of them are known to be on disk. syncMu lets one
	// fsync run at a time while the others wait and then find their bytes
	// synced: a group commit.
	written atomic.Int64
	synced  atomic.Int64
	syncMu  sync.Mutex
}

const (
	stateFile      = "state.json"
	journalFile    = "journal.jsonl"
	foldingFile    = "journal.folding.jsonl" // a journal being folded into the snapshot
	serviceKeyFile = "service-key.der"
)

// minCompactBytes is the journal size below which it is never folded into
// the snapshot (a variable for tests).
var minCompactBytes int64 = 4 << 20

func openDiskStore(dir string) (*diskStore, *state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("emulator: state folder: %w", err)
	}
	ds := &diskStore{dir: dir}
	st := newState()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, fmt.Errorf("emulator: read state: %w", err)
	default:
		if st, err = unmarshalState(b); err != nil {
			return nil, nil, err
		}
	}
	// A journal that was being folded into the snapshot comes first (the
	// snapshot may or may not hold it already), then the current journal.
	replayed := 0
	for _, name := range []string{foldingFile, journalFile} {
		n, err := replayJournal(filepath.Join(dir, name), st)
		if err != nil {
			return nil, nil, err
		}
		replayed += n
	}
	// Start every run from a snapshot that holds the whole journal.
	if replayed > 0 || len(b) == 0 || fileExistsIn(dir, foldingFile) {
		if err := ds.snapshot(st); err != nil {
			return nil, nil, err
		}
		if err := os.Remove(filepath.Join(dir, foldingFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("emulator: remove folded journal: %w", err)
		}
	} else {
		ds.snapshotSize.Store(int64(len(b)))
	}
	if ds.journal, err = os.OpenFile(filepath.Join(dir, journalFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
		return nil, nil, fmt.Errorf("emulator: open journal: %w", err)
	}
	return ds, st, nil
}

// replayJournal applies the journal at path to st and returns how many
// records it held. A last line cut short by a crash is ignored (its change
// was never answered); any other bad line is an error.
func replayJournal(path string, st *state) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("emulator: read journal: %w", err)
	}
	n := 0
	for line := 1; len(b) > 0; line++ {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return n, nil // torn last write
		}
		var r record
		if err := json.Unmarshal(b[:i], &r); err != nil {
			return n, fmt.Errorf("emulator: journal line %d: %w", line, err)
		}
		if err := st.apply(r); err != nil {
			return n, fmt.Errorf("emulator: journal line %d: %w", line, err)
		}
		b = b[i+1:]
		n++
	}
	return n, nil
}

// append writes the change r to the journal, then applies it to s, and
// returns the journal file and the count of written bytes that must be
// synced (see syncTo) before the change is answered. A change that cannot be
// written leaves s and the journal as they were (a partial line is cut off
// again); if even that fails, the store refuses every later change. When the
// journal has outgrown the snapshot, it is set aside and folded into a new
// snapshot in the background (see rotate).
func (d *diskStore) append(s *state, r record) (*os.File, int64, error) {
	if d.broken != nil {
		return nil, 0, fmt.Errorf("emulator: journal unusable since an earlier failure: %w", d.broken)
	}
	if err := r.check(); err != nil {
		return nil, 0, fmt.Errorf("emulator: change: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, 0, fmt.Errorf("emulator: encode change: %w", err)
	}
	b = append(b, '\n')
	f := d.journal
	write := d.write
	if write == nil {
		write = (*os.File).Write
	}
	if _, err := write(f, b); err != nil {
		if _, terr := f.Seek(d.journalSize, io.SeekStart); terr != nil {
			d.broken = terr
		} else if terr := f.Truncate(d.journalSize); terr != nil {
			d.broken = terr
		}
		return nil, 0, fmt.Errorf("emulator: write journal: %w", err)
	}
	d.journalSize += int64(len(b))
	upTo := d.written.Add(int64(len(b)))
	if err := s.apply(r); err != nil {
		// Unreachable: r was checked above.
		return nil, 0, fmt.Errorf("emulator: apply change: %w", err)
	}
	if d.journalSize >= minCompactBytes && d.journalSize >= 2*d.snapshotSize.Load() && !d.compacting.Load() {
		if f, err := d.rotate(s); err != nil {
			// Stop folding until the next start rather than retry (and
			// report) on every change; the journal keeps every change.
			d.compacting.Store(true)
			d.compactError(err)
		} else {
			d.compactions.Add(1)
			go func() {
				defer d.compactions.Done()
				if err := f.finish(); err != nil {
					d.compactError(err)
				}
			}()
		}
	}
	return f, upTo, nil
}

func (d *diskStore) compactError(err error) {
	if d.onCompactError != nil {
		d.onCompactError(err)
	}
}

// fold is a journal being folded into a new snapshot: the state as of the
// end of that journal, and the journal's file.
type fold struct {
	d     *diskStore
	state *state
	old   *os.File
}

// rotate starts folding the journal into the snapshot: it syncs the journal,
// takes a copy of s, renames the journal aside and starts a new one. The
// emulator's lock must be held; the slow part, writing the snapshot, is
// fold.finish. The sync lock is held too, so that no sync in flight counts
// bytes of the new journal as synced by syncing the old one.
func (d *diskStore) rotate(s *state) (*fold, error) {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	w := d.written.Load()
	if err := d.journal.Sync(); err != nil {
		return nil, fmt.Errorf("emulator: sync journal: %w", err)
	}
	d.markSynced(w) // every change of the old journal is on disk
	if err := os.Rename(filepath.Join(d.dir, journalFile), filepath.Join(d.dir, foldingFile)); err != nil {
		return nil, fmt.Errorf("emulator: set the journal aside: %w", err)
	}
	nf, err := os.OpenFile(filepath.Join(d.dir, journalFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		// Keep writing to the old file (now the folding one): it is
		// replayed at the next start either way.
		return nil, fmt.Errorf("emulator: open a new journal: %w", err)
	}
	syncDir(d.dir)
	f := &fold{d: d, state: s.clone(), old: d.journal}
	d.journal, d.journalSize = nf, 0
	d.compacting.Store(true)
	return f, nil
}

// finish writes the snapshot and drops the folded journal. If it fails, the
// folded journal stays on disk (synced) and the next start replays it.
// After a failure folding stops until the next start.
func (f *fold) finish() error {
	d := f.d
	defer f.old.Close()
	if err := d.snapshot(f.state); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(d.dir, foldingFile)); err != nil {
		return fmt.Errorf("emulator: remove folded journal: %w", err)
	}
	d.compacting.Store(false)
	return nil
}

// syncDir makes renames and new files in dir durable (best effort).
func syncDir(dir string) {
	if dh, err := os.Open(dir); err == nil {
		_ = dh.Sync()
		_ = dh.Close()
	}
}

func fileExistsIn(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// syncTo returns once the first upTo written bytes are on disk, syncing the
// journal f if no other caller did it meanwhile.
func (d *diskStore) syncTo(f *os.File, upTo int64) error {
	if d.synced.Load() >= upTo {
		return nil
	}
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	if d.synced.Load() >= upTo {
		return nil
	}
	w := d.written.Load() // everything written before the sync starts
	if err := f.Sync(); err != nil {
		return fmt.Errorf("emulator: sync journal: %w", err)
	}
	d.markSynced(w)
	return nil
}

// markSynced records that the first n written bytes are on disk.
func (d *diskStore) markSynced(n int64) {
	for {
		cur := d.synced.Load()
		if cur >= n || d.synced.CompareAndSwap(cur, n) {
			return
		}
	}
}

// close waits for a fold in progress and closes the journal.
func (d *diskStore) close() error {
	d.compactions.Wait()
	if d.journal == nil {
		return nil
	}
	err := d.journal.Close()
	d.journal = nil
	return err
}

// commitLocked makes the change r: it writes r to the journal, applies it
// to the state and makes req wait, before it answers, until the change is on
// disk; e.mu must be held. Handlers describe their change as r and never
// touch the state themselves, so a change that cannot be written is answered
// 500 and leaves the state as it was. A failed sync, after the change was
// written and applied, is answered 503: the change may or may not survive a
// crash.
func (e *Emulator) commitLocked(req *request, r record) *Error {
	if e.store == nil {
		if err := e.st.apply(r); err != nil {
			e.log.Error().Err(err).Msg("emulator: applying a change failed")
			return apiErr(http.StatusInternalServerError, CodeUnavailable, "storing the state failed")
		}
		return nil
	}
	if e.store.journal == nil {
		return apiErr(http.StatusServiceUnavailable, CodeUnavailable, "the emulator is closed")
	}
	f, upTo, err := e.store.append(e.st, r)
	if err != nil {
		e.log.Error().Err(err).Msg("emulator: persisting state failed")
		return apiErr(http.StatusInternalServerError, CodeUnavailable, "storing the state failed")
	}
	ds := e.store
	req.durable = func() *Error {
		if err := ds.syncTo(f, upTo); err != nil {
			e.log.Error().Err(err).Msg("emulator: persisting state failed")
			return apiErr(http.StatusServiceUnavailable, CodeUnavailable, "storing the state failed")
		}
		return nil
	}
	return nil
}
