package groupsync_test

import (
	"slices"
	"testing"

	"github.com/groupsync/groupsync/groupsync"
)

// received returns e as the webhook receiver accepted it at recv (Unix
// seconds on groupsync's clock).
func received(e groupsync.Event, recv int64) groupsync.Event {
	e.Received = recv
	return e
}

// TestReadOfCometChatShowsEventsReceivedBeforeIt: CometChat's clock (the
// events' times) may run ahead of groupsync's (a snapshot's time) by up to
// the allowed skew. A read of CometChat's REST API shows every event
// groupsync received before the read, whatever time the event carries, so
// such an event must not outrank the read. Before, a member who joined at a
// time ahead of groupsync's clock and then left with an event without a
// time (the flip is checked with CometChat) stayed in the Virgil group: the
// reconcile's removal was stale against the join.
func TestReadOfCometChatShowsEventsReceivedBeforeIt(t *testing.T) {
	created := received(ev(groupsync.ActionCreate, 0, "alice"), 1490)
	remove := func(uids ...string) groupsync.Step { return groupsync.Step{Op: groupsync.OpRemove, UIDs: uids} }
	add := func(uids ...string) groupsync.Step { return groupsync.Step{Op: groupsync.OpAdd, UIDs: uids} }
	retain := func(uids ...string) groupsync.Step { return groupsync.Step{Op: groupsync.OpRetain, UIDs: uids} }
	tests := []struct {
		name   string
		events []groupsync.Event // applied before the read, sequences 1, 2, ...
		snap   groupsync.Snapshot
		want   []groupsync.Step
		in     []string
	}{
		// CometChat stamps the join 8 s ahead of groupsync's clock; the
		// leave that follows carries no time (or a forged one, clamped), so
		// its job reconciles the group instead (see below).
		{"JoinAheadOfTheClockThenLeaveWithoutTime", []groupsync.Event{created,
			received(ev(groupsync.ActionAdd, 1510, "bob"), 1502),
		}, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice"}, At: 1505},
			[]groupsync.Step{add("alice"), remove("bob"), retain("alice")}, []string{"alice"}},
		{"KickAheadOfTheClockThenReAddLost", []groupsync.Event{created,
			received(ev(groupsync.ActionAdd, 1495, "bob"), 1495),
			received(ev(groupsync.ActionRemove, 1510, "bob"), 1502),
		}, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice", "bob"}, At: 1505},
			[]groupsync.Step{add("alice", "bob"), retain("alice", "bob")}, []string{"alice", "bob"}},
		// The join was received in the second of the read, and applied
		// before the read's job ran (a lower sequence).
		{"EventReceivedInTheSecondOfTheRead", []groupsync.Event{created,
			received(ev(groupsync.ActionAdd, 1510, "bob"), 1505),
		}, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice"}, At: 1505},
			[]groupsync.Step{add("alice"), remove("bob"), retain("alice")}, []string{"alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := applyAll(groupsync.GroupState{}, tt.events...)
			next, plan, _ := groupsync.Reconcile(st, tt.snap, uint64(len(tt.events)+1))
			if !slices.EqualFunc(plan.Steps, tt.want, func(a, b groupsync.Step) bool {
				return a.Op == b.Op && slices.Equal(a.UIDs, b.UIDs)
			}) {
				t.Errorf("plan %+v, want %+v", plan.Steps, tt.want)
			}
			var in []string
			for uid, m := range next.Members {
				if m.In {
					in = append(in, uid)
				}
			}
			slices.Sort(in)
			if !slices.Equal(in, tt.in) {
				t.Errorf("members %v, want %v", in, tt.in)
			}
		})
	}

	// The leave of the first case is a flip the worker checks with
	// CometChat: its job runs the reconcile above.
	st, _ := applyAll(groupsync.GroupState{}, created, received(ev(groupsync.ActionAdd, 1510, "bob"), 1502))
	if _, plan := groupsync.Apply(st, received(ev(groupsync.ActionRemove, 0, "bob"), 1504), 3); !slices.Equal(plan.Recheck, []string{"bob"}) {
		t.Errorf("leave without a time after a join: recheck %v, want [bob]", plan.Recheck)
	}

	// An event received before a read but applied after it (queued behind
	// the reconcile) is already in what the read showed.
	st, _ = applyAll(groupsync.GroupState{}, created, received(ev(groupsync.ActionAdd, 1495, "bob"), 1495))
	st, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice", "bob"}, At: 1505}, 3)
	next, plan := groupsync.Apply(st, received(ev(groupsync.ActionRemove, 1510, "bob"), 1503), 4)
	if len(plan.Steps) != 0 || !next.Members["bob"].In {
		t.Errorf("a kick received before the read that showed bob in: plan %+v, bob %+v; want it stale", plan, next.Members["bob"])
	}
	// One received after the read, or in its second (the read may not show
	// it), is ordered by its time.
	for _, recv := range []int64{1505, 1506} {
		next, plan = groupsync.Apply(st, received(ev(groupsync.ActionRemove, 1510, "bob"), recv), 4)
		if len(plan.Steps) != 1 || next.Members["bob"].In {
			t.Errorf("a kick received at %d after a read at 1505: plan %+v, bob %+v; want bob removed", recv, plan, next.Members["bob"])
		}
	}
}

// TestFlipSoonAfterAReadIsRechecked: a read of CometChat outranks the events
// received before it, and so forgets their times: its own is on groupsync's
// clock, behind them when CometChat's runs ahead. A retry of an event from
// before the read, received after it, then carries a time later than the
// read's though the read showed it superseded. bob joined at 1510 and was
// kicked at 1512 (CometChat's clock, 7 s ahead), both received before the
// read at 1505 that no longer lists him; CometChat retries the join (our
// 200 was lost) at 1510. By time alone the retry outranked the read and
// re-admitted bob, where the kick's own time had made it stale. A flip
// received within RetryHorizon of a read is checked with CometChat.
func TestFlipSoonAfterAReadIsRechecked(t *testing.T) {
	created := received(ev(groupsync.ActionCreate, 0, "alice"), 1490)
	join := received(ev(groupsync.ActionAdd, 1510, "bob"), 1500)
	st, _ := applyAll(groupsync.GroupState{}, created, join, received(ev(groupsync.ActionRemove, 1512, "bob"), 1502))
	st, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice"}, At: 1505}, 4)
	next, plan := groupsync.Apply(st, received(join, 1510), 5)
	if !slices.Equal(plan.Recheck, []string{"bob"}) {
		t.Fatalf("retry of bob's join after the read: recheck %v, want [bob] (plan %+v)", plan.Recheck, plan)
	}
	// The worker reconciles instead: bob stays out.
	if !next.Members["bob"].In {
		t.Errorf("the plan applies the flip (the worker replaces it): bob %+v", next.Members["bob"])
	}
	next, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice"}, At: 1511}, 5)
	if next.Members["bob"].In {
		t.Errorf("bob in after the recheck's reconcile: %+v", next.Members["bob"])
	}

	// Past the horizon the flip happened after the read and is ordered by
	// its time.
	_, plan = groupsync.Apply(st, received(ev(groupsync.ActionAdd, 1700, "bob"), 1505+groupsync.RetryHorizon+1), 5)
	if len(plan.Recheck) != 0 || len(plan.Steps) != 1 {
		t.Errorf("join long after the read: plan %+v, want an add without a recheck", plan)
	}
	// An event that confirms the read's side is no flip.
	_, plan = groupsync.Apply(st, received(ev(groupsync.ActionRemove, 1520, "bob"), 1510), 5)
	if len(plan.Recheck) != 0 {
		t.Errorf("kick after a read that removed bob: recheck %v, want none", plan.Recheck)
	}
}

// TestEventBehindAReadIsRechecked: CometChat's clock may run behind
// groupsync's, which stamps a read of CometChat. bob is kicked just after a
// read that showed him in, and the kick's webhook, received soon after the
// read, carries a time before it: compared by time it was stale, never
// checked, and bob stayed in the Virgil group until the next scheduled
// reconcile. A flip of a read's decision that only its time makes stale,
// received within RetryHorizon after the read, is checked with CometChat:
// the plan leaves it stale and lists it in Recheck, and the worker
// reconciles the group instead (modelled here by a reconcile at the
// event's arrival plus one second against CometChat's members then).
func TestEventBehindAReadIsRechecked(t *testing.T) {
	const read = 1505
	created := received(ev(groupsync.ActionCreate, 0, "alice"), 1490)
	addedBefore := received(ev(groupsync.ActionAdd, 1495, "bob"), 1495)
	kickedBefore := received(ev(groupsync.ActionRemove, 1495, "bob"), 1495)
	remove := func(uids ...string) []groupsync.Step {
		return []groupsync.Step{{Op: groupsync.OpRemove, UIDs: uids}}
	}
	add := func(uids ...string) []groupsync.Step {
		return []groupsync.Step{{Op: groupsync.OpAdd, UIDs: uids}}
	}
	bob := []string{"bob"}
	tests := []struct {
		name    string
		before  groupsync.Event // bob's event before the read
		shown   []string        // members the read shows (nil: no read)
		event   groupsync.Event // the event after the read
		steps   []groupsync.Step
		stale   []string
		recheck []string
		truth   []string // CometChat's members when the event is rechecked
		bobIn   bool     // bob's side in the end
	}{
		// CometChat's clock 5 s behind ours: the kick happened at 1507 on
		// ours, 2 s after the read.
		{"KickBehindTheClockAfterAReadThatShowedBobIn", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 1502, "bob"), 1508), nil, bob, bob, []string{"alice"}, false},
		{"AddBehindTheClockAfterAReadThatShowedBobOut", kickedBefore, []string{"alice"},
			received(ev(groupsync.ActionAdd, 1502, "bob"), 1508), nil, bob, bob, []string{"alice", "bob"}, true},
		// Received in the second of the read: the read may not show it.
		{"KickBehindTheClockInTheSecondOfTheRead", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 1502, "bob"), read), nil, bob, bob, []string{"alice"}, false},
		// A CometChat retry of a kick from before the read (its first
		// delivery failed; bob was re-added after it) looks the same: the
		// recheck keeps bob as CometChat has him.
		{"GenuineOldRetryAfterTheRead", received(ev(groupsync.ActionAdd, 1500, "bob"), 1500), []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 1490, "bob"), read+25), nil, bob, bob, []string{"alice", "bob"}, true},
		{"GenuineOldRetryOfAnAddAfterTheRead", received(ev(groupsync.ActionRemove, 1500, "bob"), 1500), []string{"alice"},
			received(ev(groupsync.ActionAdd, 1490, "bob"), read+25), nil, bob, bob, []string{"alice"}, false},
		// Received past the horizon, it happened after the read only if
		// CometChat's clock ran minutes behind: ordered by its time.
		{"KickLongAfterTheReadStaysStale", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 1502, "bob"), read+groupsync.RetryHorizon+1), nil, bob, nil, nil, true},
		// Received before the read, it is shown by it.
		{"KickReceivedBeforeTheReadStaysStale", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 1502, "bob"), read-1), nil, bob, nil, nil, true},
		// No time: received after the read it is later than the read and
		// applied, and rechecked as a flip soon after a read (as before).
		{"UntimedKickAfterTheRead", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 0, "bob"), 1508), remove("bob"), nil, bob, []string{"alice"}, false},
		{"UntimedKickBeforeTheRead", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 0, "bob"), read-1), nil, bob, nil, nil, true},
		// An event on the read's side is no flip.
		{"AddBehindTheClockOnTheReadsSide", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionAdd, 1502, "bob"), 1508), nil, bob, nil, nil, true},
		// Not against a read: an event outranks it by time, as before.
		{"KickBehindAnEventStaysStale", received(ev(groupsync.ActionAdd, 1510, "bob"), 1506), nil,
			received(ev(groupsync.ActionRemove, 1502, "bob"), 1508), nil, bob, nil, nil, true},
		// A flip later than the read by time is applied, and rechecked
		// within the horizon (TestFlipSoonAfterAReadIsRechecked), as
		// before.
		{"KickAfterTheReadByTimeIsApplied", addedBefore, []string{"alice", "bob"},
			received(ev(groupsync.ActionRemove, 1507, "bob"), 1508), remove("bob"), nil, bob, []string{"alice"}, false},
		{"AddAfterTheReadByTimeIsApplied", kickedBefore, []string{"alice"},
			received(ev(groupsync.ActionAdd, 1507, "bob"), 1508), add("bob"), nil, bob, []string{"alice", "bob"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := applyAll(groupsync.GroupState{}, created, tt.before)
			seq := uint64(3)
			if tt.shown != nil {
				st, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: tt.shown, At: read}, seq)
				seq++
			}
			next, plan := groupsync.Apply(st, tt.event, seq)
			if !slices.EqualFunc(plan.Steps, tt.steps, func(a, b groupsync.Step) bool {
				return a.Op == b.Op && slices.Equal(a.UIDs, b.UIDs)
			}) || !slices.Equal(plan.Stale, tt.stale) || !slices.Equal(plan.Recheck, tt.recheck) {
				t.Fatalf("plan %+v; want steps %+v, stale %v, recheck %v", plan, tt.steps, tt.stale, tt.recheck)
			}
			if len(plan.Recheck) > 0 {
				next, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: tt.truth, At: tt.event.Received + 1}, seq)
			}
			if got := next.Members["bob"].In; got != tt.bobIn {
				t.Errorf("bob in = %v, want %v", got, tt.bobIn)
			}
		})
	}
}

// TestRecheckOfAnEventBehindAReadEnds: a recheck is itself a read, which
// renews the window in which events behind it are rechecked. It must not
// make the event, or another received before it, rechecked again and
// again: such an event was received before the new read, which shows it.
// Each of CometChat's deliveries of an old kick (first and two retries,
// bob re-added since) costs at most one read, and every redelivery of a
// delivery already rechecked is stale without one.
func TestRecheckOfAnEventBehindAReadEnds(t *testing.T) {
	created := received(ev(groupsync.ActionCreate, 0, "alice"), 1490)
	st, _ := applyAll(groupsync.GroupState{}, created, received(ev(groupsync.ActionAdd, 1500, "bob"), 1500))
	truth := groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice", "bob"}, At: 1505}
	st, _, _ = groupsync.Reconcile(st, truth, 3)
	seq := uint64(4)
	kick := ev(groupsync.ActionRemove, 1490, "bob")
	var delivered []groupsync.Event
	reads := 0
	for _, recv := range []int64{1506, 1516, 1536} {
		d := received(kick, recv)
		// Redeliveries of the earlier deliveries, planned after the
		// recheck of the last one, are stale against its read.
		for _, old := range delivered {
			if _, p := groupsync.Apply(st, old, seq); len(p.Recheck) != 0 || len(p.Steps) != 0 {
				t.Fatalf("delivery received at %d planned again after a read at %d: plan %+v, want stale", old.Received, recv-1, p)
			}
		}
		_, p := groupsync.Apply(st, d, seq)
		if !slices.Equal(p.Recheck, []string{"bob"}) {
			t.Fatalf("delivery received at %d: recheck %v, want [bob]", recv, p.Recheck)
		}
		reads++
		truth.At = recv + 1
		st, p, _ = groupsync.Reconcile(st, truth, seq)
		if len(p.Recheck) != 0 {
			t.Fatalf("the recheck's reconcile asks for a recheck: %+v", p)
		}
		seq++
		delivered = append(delivered, d)
	}
	if reads != 3 || !st.Members["bob"].In {
		t.Errorf("reads %d, bob %+v; want 3 reads and bob in", reads, st.Members["bob"])
	}
}

// TestStampAfterIsAntisymmetric: of two different stamps, at most one is
// After the other, whatever their times, receipts, sequences and kinds
// (events and reads of CometChat, with or without a time). Before, an
// untimed event received in the second of a read, stored before the read's
// job, and the read were each After the other.
func TestStampAfterIsAntisymmetric(t *testing.T) {
	var stamps []groupsync.Stamp
	for _, at := range []int64{0, 999, 1000, 1001} {
		for _, recv := range []int64{0, 999, 1000, 1001} {
			for _, seq := range []uint64{0, 10, 20} {
				for _, snap := range []bool{false, true} {
					if snap && at == 0 {
						continue // a read always has its time
					}
					stamps = append(stamps, groupsync.Stamp{At: at, Recv: recv, Seq: seq, Snapshot: snap})
				}
			}
		}
	}
	for _, a := range stamps {
		if a.After(a) {
			t.Errorf("%+v is After itself", a)
		}
		for _, b := range stamps {
			if a != b && a.After(b) && b.After(a) {
				t.Errorf("%+v and %+v are each After the other", a, b)
			}
		}
	}
}
