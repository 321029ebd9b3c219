package virgil

import (
	"sync"
	"time"
)

// maxEpochNotes bounds the epochs an Owner remembers; past it, notes older
// than epochNoteTTL are dropped, and all of them when that leaves more than
// half, so a write scans the notes at most once per maxEpochNotes/2 writes.
const (
	maxEpochNotes = 4096
	epochNoteTTL  = time.Minute
)

// epochNote is the newest epoch of a group as the Owner last read or wrote
// it, and when.
type epochNote struct {
	epoch  uint32
	exists bool
	at     time.Time
}

// epochNotes remembers, per group path, the newest epoch the Owner read or
// wrote, so a caller that just changed a group can learn its epoch without
// reading the group again.
type epochNotes struct {
	mu    sync.Mutex
	notes map[string]epochNote
}

// read records the state a read found.
func (n *epochNotes) read(path string, epoch uint32, exists bool, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.putLocked(path, epochNote{epoch: epoch, exists: exists, at: at})
}

// wrote records a pushed epoch: the newest stays the highest pushed since
// the group last existed (Add pushes older epochs after the newest).
func (n *epochNotes) wrote(path string, epoch uint32, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.notes[path]; ok && old.exists && old.epoch > epoch {
		epoch = old.epoch
	}
	n.putLocked(path, epochNote{epoch: epoch, exists: true, at: at})
}

func (n *epochNotes) putLocked(path string, note epochNote) {
	if n.notes == nil {
		n.notes = make(map[string]epochNote)
	}
	if len(n.notes) >= maxEpochNotes {
		for p, old := range n.notes {
			if note.at.Sub(old.at) > epochNoteTTL {
				delete(n.notes, p)
			}
		}
		if len(n.notes) >= maxEpochNotes/2 {
			// Busy with many groups at once: start afresh rather than scan
			// again at every write. A forgotten note only costs its caller
			// one read of the group (KnownEpoch's ok is false).
			clear(n.notes)
		}
	}
	n.notes[path] = note
}

func (n *epochNotes) get(path string, since time.Time) (epochNote, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	note, ok := n.notes[path]
	if !ok || note.at.Before(since) {
		return epochNote{}, false
	}
	return note, true
}

// KnownEpoch returns the group's newest epoch as this Owner last read or
// wrote it, when that happened at or after since (by the Owner's clock);
// ok is false otherwise, and the caller reads the group with State. A
// caller holding the group's lease since `since` knows the answer is
// current: no other writer changed the group meanwhile.
func (o *Owner) KnownEpoch(groupID string, since time.Time) (epoch uint32, exists, ok bool) {
	path, err := SessionPath(groupID)
	if err != nil {
		return 0, false, false
	}
	note, ok := o.seen.get(path, since)
	return note.epoch, note.exists, ok
}
