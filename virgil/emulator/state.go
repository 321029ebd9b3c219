package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/groupsync/groupsync/virgil"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// card is a published card as stored.
type card struct {
	Raw          *virgil.RawCard `json:"raw"` // with the "virgil" signature
	ID           string          `json:"id"`
	Identity     string          `json:"identity"`
	Previous     string          `json:"previous_card_id,omitempty"`
	Revoked      bool            `json:"revoked,omitempty"`
	SupersededBy string          `json:"superseded_by,omitempty"`
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
	cards   []*card // in publication order
	byID    map[string]*card
	entries map[pathKey]map[string]*entry // by key
}

func newState() *state {
	return &state{byID: map[string]*card{}, entries: map[pathKey]map[string]*entry{}}
}

func (s *state) addCard(c *card) {
	s.cards = append(s.cards, c)
	s.byID[c.ID] = c
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

// diskState is the JSON form of state in Dir/state.json.
type diskState struct {
	Version int      `json:"version"`
	Cards   []*card  `json:"cards"`
	Entries []*entry `json:"entries"`
}

func (s *state) marshal() ([]byte, error) {
	ds := diskState{Version: stateVersion, Cards: s.cards, Entries: []*entry{}}
	for _, m := range s.entries {
		for _, en := range m {
			ds.Entries = append(ds.Entries, en)
		}
	}
	slices.SortFunc(ds.Entries, func(a, b *entry) int {
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
	if ds.Version != stateVersion {
		return nil, fmt.Errorf("emulator: read state: version %d, want %d", ds.Version, stateVersion)
	}
	s := newState()
	for _, c := range ds.Cards {
		if c == nil || c.Raw == nil || c.ID == "" {
			return nil, errors.New("emulator: read state: incomplete card")
		}
		s.addCard(c)
	}
	for _, en := range ds.Entries {
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

// diskStore keeps the state and the service key in a folder.
type diskStore struct{ dir string }

const (
	stateFile      = "state.json"
	serviceKeyFile = "service-key.der"
)

func openDiskStore(dir string) (*diskStore, *state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("emulator: state folder: %w", err)
	}
	ds := &diskStore{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ds, newState(), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("emulator: read state: %w", err)
	}
	st, err := unmarshalState(b)
	if err != nil {
		return nil, nil, err
	}
	return ds, st, nil
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

func (d *diskStore) save(s *state) error {
	b, err := s.marshal()
	if err != nil {
		return fmt.Errorf("emulator: encode state: %w", err)
	}
	return writeFileAtomic(d.dir, stateFile, b, 0o600)
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
	if dh, err := os.Open(dir); err == nil {
		_ = dh.Sync()
		_ = dh.Close()
	}
	return nil
}

// commitLocked persists the state after a change; e.mu must be held.
func (e *Emulator) commitLocked() *Error {
	if e.store == nil {
		return nil
	}
	if err := e.store.save(e.st); err != nil {
		e.log.Error().Err(err).Msg("emulator: persisting state failed")
		return apiErr(500, CodeUnavailable, "storing the state failed")
	}
	return nil
}
