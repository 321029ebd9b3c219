package virgil

import (
	"strconv"
	"testing"
	"time"
)

// TestEpochNotesBounded: however many groups are written at once, the notes
// stay within maxEpochNotes, and the newest write is always kept.
func TestEpochNotesBounded(t *testing.T) {
	var n epochNotes
	at := time.Now()
	for i := range 3 * maxEpochNotes {
		path := strconv.Itoa(i)
		n.wrote(path, uint32(i), at)
		if len(n.notes) > maxEpochNotes {
			t.Fatalf("after %d writes: %d notes, want at most %d", i+1, len(n.notes), maxEpochNotes)
		}
		if note, ok := n.get(path, at); !ok || note.epoch != uint32(i) {
			t.Fatalf("write %d: newest note %+v, %v", i, note, ok)
		}
	}
}
