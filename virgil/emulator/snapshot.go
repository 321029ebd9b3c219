// The snapshot: the whole state as one JSON file (state.json), written
// atomically, and the service key beside it.

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

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/virgil"
)

// stateVersion is the version of the state file format.
const stateVersion = 2

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

// serviceKey loads the service key from the folder, or generates and
// stores one.
func (d *diskStore) serviceKey() (*virgil.PrivateKey, error) {
	p := filepath.Join(d.dir, serviceKeyFile)
	b, err := secretfile.Read("emulator: service key file", p)
	if errors.Is(err, secretfile.ErrNotPrivate) {
		return nil, err
	}
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
