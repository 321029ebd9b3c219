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

// TestFailoverClasses checks how a latency run with a leader kill sorts its
// events, and the quantiles of a class.
func TestFailoverClasses(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	f := &FailoverResult{LeaderFailover: LeaderFailover{Killed: at(1000), Elected: at(8000), Current: at(12000)}}
	for _, c := range []struct {
		name          string
		sent, applied int
		want          *LatencyClass
	}{
		{"applied before the kill", 900, 990, &f.Steady},
		{"in flight at the kill", 900, 8100, &f.During},
		{"posted at the kill", 1000, 8200, &f.During},
		{"posted during the election", 7999, 8300, &f.During},
		{"posted at the election", 8000, 8010, &f.Recovery},
		{"posted while the node catches up", 11999, 12010, &f.Recovery},
		{"posted once whole", 12000, 12010, &f.Steady},
	} {
		if got := f.class(at(c.sent), at(c.applied)); got != c.want {
			t.Errorf("%s (sent %d, applied %d ms): wrong class", c.name, c.sent, c.applied)
		}
	}

	var l LatencyClass
	for i := range 100 { // answered 200 after i ms, applied 2 ms later
		l.add(at(0), at(i), at(i+2))
	}
	l.done()
	if l.Events != 100 || l.P50MS != 2 || l.MaxMS != 2 || l.PostP50MS != 52 || l.PostMaxMS != 101 || l.AnswerP99 != 99 {
		t.Errorf("class quantiles = %+v", l)
	}
}

// TestLatencyVerdict checks that a latency run fails when an event
// answered 200 was not applied, a group did not reach its final state or a
// job failed.
func TestLatencyVerdict(t *testing.T) {
	ok := LatencyResult{FinalState: true, NotAccepted: 3}
	if err := ok.Verdict(); err != nil {
		t.Errorf("Verdict() = %v for a clean run", err)
	}
	for _, r := range []LatencyResult{{FinalState: true, Unseen: 1}, {}, {FinalState: true, FailedJobs: 1}} {
		if r.Verdict() == nil {
			t.Errorf("Verdict() = nil for %+v", r)
		}
	}
}
