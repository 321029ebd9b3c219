// The emulator's model: cards, Keyknox entries, and the records that change
// them. Storing it is the business of snapshot.go (the whole state as one
// file) and journal.go (the changes since, one record a line).

package emulator

import (
	"errors"
	"slices"
	"strconv"

	"github.com/groupsync/groupsync/virgil"
)

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

// check reports why r cannot be applied, nil when it can: a record is
// checked whole before any of it is applied or written.
func (r record) check() error {
	if len(r.Cards)+len(r.Patches)+len(r.Deletes) == 0 {
		return errors.New("empty record")
	}
	for _, c := range r.Cards {
		if c == nil || c.Raw == nil || c.ID == "" {
			return errors.New("incomplete card")
		}
	}
	for _, p := range r.Patches {
		if p.Owner == "" || (p.Blob == nil && len(p.SetIDs) > 0) {
			return errors.New("incomplete entry patch")
		}
	}
	return nil
}

// apply makes the change r describes: every part of it, or, when r is
// incomplete (see check), none.
func (s *state) apply(r record) error {
	if err := r.check(); err != nil {
		return err
	}
	for _, c := range r.Cards {
		s.putCard(c)
	}
	for _, p := range r.Patches {
		en := s.entry(p.Owner, p.Root, p.Path, p.Key)
		if en == nil {
			en = &entry{Owner: p.Owner, Root: p.Root, Path: p.Path, Key: p.Key, Copies: map[string]blob{}}
			s.putEntry(en)
		}
		en.Identities, en.Hash = slices.Clone(p.Identities), p.Hash
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
