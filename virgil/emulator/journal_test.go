package emulator

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/virgil"
)

// journalModel drives a diskStore the way the handlers do: change the
// state, then append the change.
type journalModel struct {
	t   *testing.T
	dir string
	ds  *diskStore
	st  *state
}

func openModel(t *testing.T, dir string) *journalModel {
	t.Helper()
	ds, st, err := openDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ds.onCompactError = func(err error) { t.Errorf("fold: %v", err) }
	t.Cleanup(func() { _ = ds.close() })
	return &journalModel{t: t, dir: dir, ds: ds, st: st}
}

func (m *journalModel) commit(r record) {
	m.t.Helper()
	f, upTo, err := m.ds.append(m.st, r)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := m.ds.syncTo(f, upTo); err != nil {
		m.t.Fatal(err)
	}
	if m.ds.synced.Load() < upTo {
		m.t.Fatalf("synced %d < written %d", m.ds.synced.Load(), upTo)
	}
}

func (m *journalModel) bytes() []byte {
	m.t.Helper()
	b, err := m.st.marshal()
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

// step makes one random change, as a handler would: it describes the
// change as a record and leaves applying it to commit.
func (m *journalModel) step(rng *rand.Rand, i int) {
	id := fmt.Sprintf("user-%d", rng.IntN(6))
	path := fmt.Sprintf("path-%d", rng.IntN(3))
	key := fmt.Sprint(rng.IntN(4))
	switch rng.IntN(5) {
	case 0: // publish a card, replacing the identity's current one
		c := &card{Raw: &virgil.RawCard{ContentSnapshot: []byte(fmt.Sprintf(`{"n":%d}`, i))}, ID: fmt.Sprintf("card-%d", i), Identity: id}
		change := record{Cards: []*card{c}}
		if cs := m.st.byIdentity[id]; len(cs) > 0 && !cs[len(cs)-1].superseded() {
			prev := *cs[len(cs)-1]
			prev.SupersededBy, c.Previous = c.ID, prev.ID
			change.Cards = append(change.Cards, &prev)
		}
		m.commit(change)
	case 1: // revoke a card
		if cs := m.st.byIdentity[id]; len(cs) > 0 {
			c := *cs[rng.IntN(len(cs))]
			c.Revoked = true
			m.commit(record{Cards: []*card{&c}})
		}
	case 2, 3: // push
		ids := []string{id}
		if en := m.st.entry("owner", "group-sessions", path, key); en != nil && !contains(en.Identities, id) {
			ids = append(slices.Clone(en.Identities), id)
		} else if en != nil {
			ids = slices.Clone(en.Identities)
		}
		b := blob{Meta: []byte(fmt.Sprint("meta", i)), Value: bytes.Repeat([]byte{byte(i)}, 1+rng.IntN(64))}
		ref := entryRef{Owner: "owner", Root: "group-sessions", Path: path, Key: key}
		m.commit(record{Patches: []entryPatch{{entryRef: ref, Identities: ids, Hash: fmt.Sprint("hash-", i), Blob: &b, SetIDs: []string{"owner", id}}}})
	case 4: // reset: revoke one identity or delete a path
		var change record
		for k, en := range m.st.entries[pathKey{"owner", "group-sessions", path}] {
			if rng.IntN(2) == 0 {
				p := patchOf(en, nil, nil, []string{id})
				p.Identities = remove(en.Identities, id)
				change.Patches = append(change.Patches, p)
			} else if k == key {
				change.Deletes = append(change.Deletes, refOf(en))
			}
		}
		if len(change.Patches)+len(change.Deletes) > 0 {
			m.commit(change)
		}
	}
}

// TestJournalSurvivesCrashes makes random changes and "crashes" (reopens the
// folder without closing) at random points, with and without folding the
// journal into the snapshot: every reopened state equals the state before
// the crash.
func TestJournalSurvivesCrashes(t *testing.T) {
	for _, compactAt := range []int64{4 << 20, 1, 2048} {
		t.Run(fmt.Sprint("compact-at-", compactAt), func(t *testing.T) {
			old := minCompactBytes
			minCompactBytes = compactAt
			t.Cleanup(func() { minCompactBytes = old })
			rng := rand.New(rand.NewPCG(uint64(compactAt), 7))
			dir := t.TempDir()
			m := openModel(t, dir)
			for i := range 600 {
				m.step(rng, i)
				if rng.IntN(60) == 0 {
					// A crash while a journal is folded: set aside but not
					// yet in the snapshot, or in the snapshot but not yet
					// removed (then it replays over a snapshot that already
					// holds it).
					m.ds.compactions.Wait()
					f, err := m.ds.rotate(m.st)
					if err != nil {
						t.Fatal(err)
					}
					if rng.IntN(2) == 0 {
						if err := m.ds.snapshot(f.state); err != nil {
							t.Fatal(err)
						}
					}
					want := m.bytes()
					m = openModel(t, dir)
					if fileExistsIn(dir, foldingFile) {
						t.Fatal("the folded journal is still there after a start")
					}
					if got := m.bytes(); !bytes.Equal(got, want) {
						t.Fatalf("step %d: journal replayed over its own snapshot differs:\n got %.300s\nwant %.300s", i, got, want)
					}
				}
				if rng.IntN(40) == 0 {
					want := m.bytes()
					m.ds.compactions.Wait()
					m = openModel(t, dir) // no close: as after SIGKILL
					if got := m.bytes(); !bytes.Equal(got, want) {
						t.Fatalf("step %d: state after reopening differs:\n got %.300s\nwant %.300s", i, got, want)
					}
				}
			}
			want := m.bytes()
			if err := m.ds.close(); err != nil {
				t.Fatal(err)
			}
			if got := openModel(t, dir).bytes(); !bytes.Equal(got, want) {
				t.Fatal("state after a clean close and reopen differs")
			}
		})
	}
}

// TestJournalCompacts checks that the journal is folded into the snapshot
// once it outgrows it, so it does not grow without bound.
func TestJournalCompacts(t *testing.T) {
	old := minCompactBytes
	minCompactBytes = 1024
	t.Cleanup(func() { minCompactBytes = old })
	dir := t.TempDir()
	m := openModel(t, dir)
	rng := rand.New(rand.NewPCG(1, 2))
	maxJournal := int64(0)
	for i := range 2000 {
		m.step(rng, i)
		m.ds.compactions.Wait()
		maxJournal = max(maxJournal, m.ds.journalSize)
	}
	fi, err := os.Stat(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != m.ds.journalSize {
		t.Errorf("journal file %d bytes, store counts %d", fi.Size(), m.ds.journalSize)
	}
	// Never more than twice the snapshot (plus one change) once past the
	// minimum.
	if limit := 2*m.ds.snapshotSize.Load() + 64<<10; maxJournal > limit {
		t.Errorf("journal reached %d bytes with a %d-byte snapshot", maxJournal, m.ds.snapshotSize.Load())
	}
}

// TestJournalTornAndCorrupt: a last line cut short by a crash is dropped; a
// bad line before the end is an error, not a silently emptier emulator.
func TestJournalTornAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	m := openModel(t, dir)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 50 {
		m.step(rng, i)
	}
	want := m.bytes()
	jp := filepath.Join(dir, journalFile)
	f, err := os.OpenFile(jp, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"patches":[{"owner":"owner","root":"group-sess`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if got := openModel(t, dir).bytes(); !bytes.Equal(got, want) {
		t.Fatal("a torn last line changed the state")
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, journalFile), []byte("{\"cards\":[\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = openDiskStore(bad)
	if err == nil || !strings.Contains(err.Error(), "journal line 1") {
		t.Fatalf("corrupt journal: %v", err)
	}
}

// TestStateVersions reads a version 1 state file (a copy per identity) and
// writes version 2, which keeps each distinct copy of an entry once.
func TestStateVersions(t *testing.T) {
	dir := t.TempDir()
	v1 := `{"version":1,"cards":[],"entries":[{"owner":"o","root":"group-sessions","path":"p","key":"0",` +
		`"identities":["o","a","b"],"hash":"h","copies":{"o":{"meta":"bQ==","value":"dg=="},"a":{"meta":"bQ==","value":"dg=="},"b":{"meta":"bQ==","value":"dg=="}}}]}`
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	m := openModel(t, dir)
	en := m.st.entry("o", "group-sessions", "p", "0")
	if en == nil || len(en.Copies) != 3 || string(en.Copies["b"].Value) != "v" || en.Hash != "h" {
		t.Fatalf("version 1 entry: %+v", en)
	}
	b := m.bytes()
	if !strings.Contains(string(b), `"version":2`) || strings.Count(string(b), `"dg=="`) != 1 {
		t.Errorf("version 2 keeps the shared copy more than once: %s", b)
	}
	if got := openModel(t, dir).bytes(); !bytes.Equal(got, b) {
		t.Error("version 2 does not read back as written")
	}
}
