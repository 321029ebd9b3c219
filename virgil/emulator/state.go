package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/groupsync/groupsync/virgil"
)

// stateVersion is the version of the state file format.
const stateVersion = 2

// card is a published card as stored.
type card struct {
	Raw          *virgil.RawCard `json:"raw"` // with the "virgil" signature
	ID           string          `json:"id"`
	Identity     string          `json:"identity"`
	Previous     string          `json:"previous_card_id,omitempty"`
	Revoked      bool            `json:"revoked,omitempty"`
	SupersededBy string          `json:"superseded_by,omitempty"`

	order int // position in publication order
}

func (c *card) superseded() bool { return c.Revoked || c.SupersededBy != "" }

// blob is one (meta, value) copy of a Keyknox entry.
type blob struct {
	Meta  []byte `json:"meta"`
	Value []byte `json:"value"`
}

// entry is a Keyknox v2 entry.
type entry struct {
	Owner      string          `json:"owner"`
	Root       string          `json:"root"`
	Path       string          `json:"path"`
	Key        string          `json:"key"`
	Identities []string        `json:"identities"`
	Copies     map[string]blob `json:"copies"` // by identity; the owner's copy under the owner
	Hash       string          `json:"hash"`
}

// readable reports whether caller may read e.
func (e *entry) readable(caller string) bool {
	if caller == e.Owner {
		return true
	}
	_, ok := e.Copies[caller]
	return ok
}

// pathKey addresses the entries of one owner, root and path.
type pathKey struct{ owner, root, path string }

// state is everything the emulator stores.
type state struct {
	cards      []*card // in publication order
	byID       map[string]*card
	byIdentity map[string][]*card            // in publication order
	entries    map[pathKey]map[string]*entry // by key
}

func newState() *state {
	return &state{byID: map[string]*card{}, byIdentity: map[string][]*card{}, entries: map[pathKey]map[string]*entry{}}
}

func (s *state) addCard(c *card) {
	c.order = len(s.cards)
	s.cards = append(s.cards, c)
	s.byID[c.ID] = c
	s.byIdentity[c.Identity] = append(s.byIdentity[c.Identity], c)
}

// putCard adds c, or updates the stored card with the same id in place.
func (s *state) putCard(c *card) {
	if old := s.byID[c.ID]; old != nil {
		old.Raw, old.Previous, old.Revoked, old.SupersededBy = c.Raw, c.Previous, c.Revoked, c.SupersededBy
		return
	}
	s.addCard(c)
}

func (s *state) entry(owner, root, path, key string) *entry {
	return s.entries[pathKey{owner, root, path}][key]
}

func (s *state) putEntry(en *entry) {
	pk := pathKey{en.Owner, en.Root, en.Path}
	m := s.entries[pk]
	if m == nil {
		m = map[string]*entry{}
		s.entries[pk] = m
	}
	m[en.Key] = en
}

func (s *state) deleteEntry(en *entry) {
	pk := pathKey{en.Owner, en.Root, en.Path}
	delete(s.entries[pk], en.Key)
	if len(s.entries[pk]) == 0 {
		delete(s.entries, pk)
	}
}

// sortKeys orders Keyknox keys: decimal numbers by value, before any other
// key, which sort as strings.
func sortKeys(keys []string) {
	slices.SortFunc(keys, func(a, b string) int {
		na, ea := strconv.ParseUint(a, 10, 64)
		nb, eb := strconv.ParseUint(b, 10, 64)
		switch {
		case ea == nil && eb == nil:
			switch {
			case na < nb:
				return -1
			case na > nb:
				return 1
			}
			return 0
		case ea == nil:
			return -1
		case eb == nil:
			return 1
		}
		if a < b {
			return -1
		} else if a > b {
			return 1
		}
		return 0
	})
}

// diskState is the JSON form of state in Dir/state.json. Version 2 keeps
// each distinct copy of an entry once (a push gives every identity the same
// copy); version 1, which repeated it per identity, is still read.
type diskState struct {
	Version int             `json:"version"`
	Cards   []*card         `json:"cards"`
	Entries json.RawMessage `json:"entries"`
}

// diskEntry is an entry in a version 2 state file: Copies maps each
// identity to its copy in Blobs.
type diskEntry struct {
	Owner      string         `json:"owner"`
	Root       string         `json:"root"`
	Path       string         `json:"path"`
	Key        string         `json:"key"`
	Identities []string       `json:"identities"`
	Hash       string         `json:"hash"`
	Blobs      []blob         `json:"blobs"`
	Copies     map[string]int `json:"copies"`
}

// blobID identifies the bytes of a copy by where they are in memory: copies
// made by one push share them.
type blobID struct {
	meta, value *byte
	lm, lv      int
}

func idOf(b blob) blobID {
	id := blobID{lm: len(b.Meta), lv: len(b.Value)}
	if len(b.Meta) > 0 {
		id.meta = &b.Meta[0]
	}
	if len(b.Value) > 0 {
		id.value = &b.Value[0]
	}
	return id
}

func (s *state) marshal() ([]byte, error) {
	var all []*entry
	for _, m := range s.entries {
		for _, en := range m {
			all = append(all, en)
		}
	}
	slices.SortFunc(all, func(a, b *entry) int {
		for _, c := range [][2]string{{a.Owner, b.Owner}, {a.Root, b.Root}, {a.Path, b.Path}, {a.Key, b.Key}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	entries := make([]diskEntry, 0, len(all))
	for _, en := range all {
		de := diskEntry{Owner: en.Owner, Root: en.Root, Path: en.Path, Key: en.Key, Identities: en.Identities,
			Hash: en.Hash, Blobs: []blob{}, Copies: make(map[string]int, len(en.Copies))}
		ids := make([]string, 0, len(en.Copies))
		for id := range en.Copies {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		index := map[blobID]int{}
		for _, id := range ids {
			b := en.Copies[id]
			i, ok := index[idOf(b)]
			if !ok {
				i = len(de.Blobs)
				index[idOf(b)] = i
				de.Blobs = append(de.Blobs, b)
			}
			de.Copies[id] = i
		}
		entries = append(entries, de)
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	ds := diskState{Version: stateVersion, Cards: s.cards, Entries: raw}
	if ds.Cards == nil {
		ds.Cards = []*card{}
	}
	return json.Marshal(ds)
}

func unmarshalState(b []byte) (*state, error) {
	var ds diskState
	if err := json.Unmarshal(b, &ds); err != nil {
		return nil, fmt.Errorf("emulator: read state: %w", err)
	}
	s := newState()
	for _, c := range ds.Cards {
		if c == nil || c.Raw == nil || c.ID == "" {
			return nil, errors.New("emulator: read state: incomplete card")
		}
		s.addCard(c)
	}
	var entries []*entry
	switch ds.Version {
	case 1:
		if err := json.Unmarshal(ds.Entries, &entries); err != nil {
			return nil, fmt.Errorf("emulator: read state: entries: %w", err)
		}
		for _, en := range entries { // share equal copies, as pushes do
			if en == nil {
				continue
			}
			seen := map[string]blob{}
			for id, b := range en.Copies {
				k := strconv.Itoa(len(b.Meta)) + ":" + string(b.Meta) + string(b.Value)
				if first, ok := seen[k]; ok {
					en.Copies[id] = first
				} else {
					seen[k] = b
				}
			}
		}
	case stateVersion:
		var des []diskEntry
		if err := json.Unmarshal(ds.Entries, &des); err != nil {
			return nil, fmt.Errorf("emulator: read state: entries: %w", err)
		}
		for _, de := range des {
			en := &entry{Owner: de.Owner, Root: de.Root, Path: de.Path, Key: de.Key, Identities: de.Identities,
				Hash: de.Hash, Copies: make(map[string]blob, len(de.Copies))}
			for id, i := range de.Copies {
				if i < 0 || i >= len(de.Blobs) {
					return nil, fmt.Errorf("emulator: read state: entry %s/%s: copy %d of %d", de.Path, de.Key, i, len(de.Blobs))
				}
				en.Copies[id] = de.Blobs[i]
			}
			entries = append(entries, en)
		}
	default:
		return nil, fmt.Errorf("emulator: read state: version %d, want 1 or %d", ds.Version, stateVersion)
	}
	for _, en := range entries {
		if en == nil || en.Owner == "" {
			return nil, errors.New("emulator: read state: incomplete entry")
		}
		if en.Copies == nil {
			en.Copies = map[string]blob{}
		}
		s.putEntry(en)
	}
	return s, nil
}

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

// record is one journal line: the cards one change stored or updated, the
// entries it changed (as patches, so a push to a large entry costs the size
// of the push) and the entries it deleted. A change is one line, so it is
// replayed whole or not at all. Every part sets values rather than
// computing them, so replaying the journal over a snapshot that already
// holds it (a crash between folding and truncating) ends in the same state.
type record struct {
	Cards   []*card      `json:"cards,omitempty"`
	Patches []entryPatch `json:"patches,omitempty"`
	Deletes []entryRef   `json:"deletes,omitempty"`
}

// entryPatch changes one entry, creating it when missing: its identities
// and hash are set, Blob becomes the copy of every identity in SetIDs, and
// the copies of Unset are removed.
type entryPatch struct {
	entryRef
	Identities []string `json:"identities"`
	Hash       string   `json:"hash"`
	Blob       *blob    `json:"blob,omitempty"`
	SetIDs     []string `json:"set,omitempty"`
	Unset      []string `json:"unset,omitempty"`
}

// patchOf returns a patch that sets en's identities and hash, gives b to
// setIDs and removes the copies of unset.
func patchOf(en *entry, b *blob, setIDs, unset []string) entryPatch {
	return entryPatch{entryRef: refOf(en), Identities: slices.Clone(en.Identities), Hash: en.Hash, Blob: b, SetIDs: setIDs, Unset: unset}
}

// entryRef names a Keyknox entry.
type entryRef struct {
	Owner string `json:"owner"`
	Root  string `json:"root"`
	Path  string `json:"path"`
	Key   string `json:"key"`
}

func refOf(en *entry) entryRef {
	return entryRef{Owner: en.Owner, Root: en.Root, Path: en.Path, Key: en.Key}
}

// apply replays one journal record.
func (s *state) apply(r record) error {
	if len(r.Cards)+len(r.Patches)+len(r.Deletes) == 0 {
		return errors.New("empty record")
	}
	for _, c := range r.Cards {
		if c == nil || c.Raw == nil || c.ID == "" {
			return errors.New("incomplete card")
		}
		s.putCard(c)
	}
	for _, p := range r.Patches {
		if p.Owner == "" || (p.Blob == nil && len(p.SetIDs) > 0) {
			return errors.New("incomplete entry patch")
		}
		en := s.entry(p.Owner, p.Root, p.Path, p.Key)
		if en == nil {
			en = &entry{Owner: p.Owner, Root: p.Root, Path: p.Path, Key: p.Key, Copies: map[string]blob{}}
			s.putEntry(en)
		}
		en.Identities, en.Hash = p.Identities, p.Hash
		for _, id := range p.SetIDs {
			en.Copies[id] = *p.Blob
		}
		for _, id := range p.Unset {
			delete(en.Copies, id)
		}
	}
	for _, d := range r.Deletes {
		if en := s.entry(d.Owner, d.Root, d.Path, d.Key); en != nil {
			s.deleteEntry(en)
		}
	}
	return nil
}

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

// append writes a change to the journal and returns the journal file and
// the count of written bytes that must be synced (see syncTo) before the
// change is answered; when the journal has outgrown the snapshot, it is set
// aside and folded into a new snapshot in the background (see rotate).
func (d *diskStore) append(s *state, r record) (*os.File, int64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, 0, fmt.Errorf("emulator: encode change: %w", err)
	}
	b = append(b, '\n')
	f := d.journal
	if _, err := f.Write(b); err != nil {
		return nil, 0, fmt.Errorf("emulator: write journal: %w", err)
	}
	d.journalSize += int64(len(b))
	upTo := d.written.Add(int64(len(b)))
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

// clone returns a copy of s that later changes to s do not touch (copies'
// bytes are shared: they are never changed in place).
func (s *state) clone() *state {
	c := newState()
	for _, cd := range s.cards {
		cp := *cd
		c.addCard(&cp)
	}
	for _, m := range s.entries {
		for _, en := range m {
			cp := *en
			cp.Identities = slices.Clone(en.Identities)
			cp.Copies = make(map[string]blob, len(en.Copies))
			for id, b := range en.Copies {
				cp.Copies[id] = b
			}
			c.putEntry(&cp)
		}
	}
	return c
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

// snapshot writes s as the snapshot.
func (d *diskStore) snapshot(s *state) error {
	b, err := s.marshal()
	if err != nil {
		return fmt.Errorf("emulator: encode state: %w", err)
	}
	if err := writeFileAtomic(d.dir, stateFile, b, 0o600); err != nil {
		return err
	}
	d.snapshotSize.Store(int64(len(b)))
	return nil
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

// serviceKey loads the service key from the folder, or generates and
// stores one.
func (d *diskStore) serviceKey() (*virgil.PrivateKey, error) {
	p := filepath.Join(d.dir, serviceKeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		k, err := virgil.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("emulator: service key %s: %w", p, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("emulator: read service key: %w", err)
	}
	k, err := virgil.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("emulator: generate service key: %w", err)
	}
	if err := writeFileAtomic(d.dir, serviceKeyFile, k.MarshalPKCS8(), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// writeFileAtomic writes dir/name through a synced temporary file and a
// rename, so a crash leaves the old or the new content, never a mix.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return fmt.Errorf("emulator: write %s: %w", name, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("emulator: write %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("emulator: write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("emulator: write %s: %w", name, err)
	}
	syncDir(dir)
	return nil
}

// commitLocked writes the change r made to the state to the journal and
// makes req wait, before it answers, until the change is on disk; e.mu must
// be held.
func (e *Emulator) commitLocked(req *request, r record) *Error {
	if e.store == nil {
		return nil
	}
	if e.store.journal == nil {
		return apiErr(http.StatusServiceUnavailable, CodeUnavailable, "the emulator is closed")
	}
	f, upTo, err := e.store.append(e.st, r)
	if err == nil {
		ds := e.store
		req.durable = func() *Error {
			if err := ds.syncTo(f, upTo); err != nil {
				e.log.Error().Err(err).Msg("emulator: persisting state failed")
				return apiErr(http.StatusServiceUnavailable, CodeUnavailable, "storing the state failed")
			}
			return nil
		}
	}
	if err != nil {
		e.log.Error().Err(err).Msg("emulator: persisting state failed")
		return apiErr(500, CodeUnavailable, "storing the state failed")
	}
	return nil
}
