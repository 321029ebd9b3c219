package main

import (
	"testing"
	"time"
)

// TestAppliedAt checks how latency events are matched to the emulator's
// history: a creation to the first change, each membership event to the
// first later change showing its member as expected, in order per member.
func TestAppliedAt(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	id := func(uid string) string { return "id-" + uid }
	ev := func(trigger, uid string, in bool, sentMS int) *offered {
		return &offered{e: &Event{Trigger: trigger, In: in}, uid: uid, sent: at(sentMS)}
	}
	create := &offered{e: &Event{Trigger: "group_created", In: true}, sent: at(0)}
	addB := ev("group_member_added", "b", true, 10)
	kickB := ev("group_member_kicked", "b", false, 11) // sent before addB was applied
	addC := ev("group_member_joined", "c", true, 12)
	addB2 := ev("group_member_added", "b", true, 50) // never applied
	history := []GroupChange{
		{At: at(5), Participants: []string{"id-a", "owner"}},
		{At: at(20), Participants: []string{"id-a", "id-b", "owner"}},
		{At: at(30), Participants: []string{"id-a", "id-b", "id-c", "owner"}},
		{At: at(40), Participants: []string{"id-a", "id-c", "owner"}},
	}
	got := appliedAt([]*offered{create, addB, kickB, addC, addB2}, history, id)
	want := map[*offered]time.Time{create: at(5), addB: at(20), kickB: at(40), addC: at(30), addB2: {}}
	for o, w := range want {
		if !got[o].Equal(w) {
			t.Errorf("%s %s: applied at %v, want %v", o.e.Trigger, o.uid, got[o], w)
		}
	}
	// A creation without history was never seen.
	if got := appliedAt([]*offered{create}, nil, id); !got[create].IsZero() {
		t.Errorf("creation without history: %v", got[create])
	}
}
