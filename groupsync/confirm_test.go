package groupsync_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/groupsync/groupsync/groupsync"
)

func TestConfirmPlans(t *testing.T) {
	truth := func(uids ...string) groupsync.Snapshot {
		return groupsync.Snapshot{GUID: guid, Exists: true, Members: uids, At: 1500}
	}
	step := func(op groupsync.Op, uids ...string) groupsync.Step { return groupsync.Step{Op: op, UIDs: uids} }
	tests := []struct {
		name    string
		event   groupsync.Event // applied to an empty state (the state was lost)
		snap    groupsync.Snapshot
		want    []groupsync.Step
		dropped []string
		in      []string
	}{
		{"RetriedAddOfKickedMemberDropped", ev(groupsync.ActionAdd, 1100, "carol"), truth("alice"),
			[]groupsync.Step{step(groupsync.OpRemove, "carol")}, []string{"carol"}, nil},
		{"AddOfMemberKept", ev(groupsync.ActionAdd, 1100, "carol"), truth("alice", "carol"),
			[]groupsync.Step{step(groupsync.OpAdd, "carol")}, nil, []string{"carol"}},
		{"AddPartlyConfirmed", ev(groupsync.ActionAdd, 1100, "bob", "carol"), truth("bob"),
			[]groupsync.Step{step(groupsync.OpAdd, "bob"), step(groupsync.OpRemove, "carol")}, []string{"carol"}, []string{"bob"}},
		{"RetriedKickOfReaddedMemberDropped", ev(groupsync.ActionRemove, 1100, "carol"), truth("carol"),
			[]groupsync.Step{step(groupsync.OpEnsure, "carol")}, []string{"carol"}, []string{"carol"}},
		{"KickOfNonMemberKept", ev(groupsync.ActionRemove, 1100, "carol"), truth("alice"),
			[]groupsync.Step{step(groupsync.OpRemove, "carol")}, nil, nil},
		{"CreateKeptWithConfirmedMembers", ev(groupsync.ActionCreate, 0, "alice", "bob"), truth("alice"),
			[]groupsync.Step{step(groupsync.OpCreate, "alice"), step(groupsync.OpRemove, "bob")}, []string{"bob"}, []string{"alice"}},
		{"CreateOfDeletedGroupDropped", ev(groupsync.ActionCreate, 0, "alice"), groupsync.Snapshot{GUID: guid, At: 1500},
			[]groupsync.Step{step(groupsync.OpRemove, "alice")}, []string{"alice"}, nil},
		{"ScopeChangeOfNonMemberDropped", ev(groupsync.ActionEnsure, 1100, "dave"), truth("alice"),
			[]groupsync.Step{step(groupsync.OpRemove, "dave")}, []string{"dave"}, nil},
		{"DeleteKept", ev(groupsync.ActionDelete, 1100), groupsync.Snapshot{GUID: guid, At: 1500},
			[]groupsync.Step{{Op: groupsync.OpDelete}}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, plan := groupsync.Apply(groupsync.GroupState{}, tt.event, 7)
			st, got, dropped := groupsync.Confirm(next, plan, tt.snap, 7)
			if !reflect.DeepEqual(got.Steps, tt.want) {
				t.Errorf("Confirm(%+v, %+v) steps = %+v, want %+v", plan, tt.snap, got.Steps, tt.want)
			}
			if !slices.Equal(dropped, tt.dropped) {
				t.Errorf("Confirm(%+v, %+v) dropped = %v, want %v", plan, tt.snap, dropped, tt.dropped)
			}
			if cur := st.Current(); !slices.Equal(cur, tt.in) {
				t.Errorf("members after Confirm = %v, want %v", cur, tt.in)
			}
		})
	}
}

func TestConfirmStampsDroppedMembersAtTheSnapshot(t *testing.T) {
	next, plan := groupsync.Apply(groupsync.GroupState{}, ev(groupsync.ActionAdd, 1100, "carol"), 7)
	st, _, _ := groupsync.Confirm(next, plan, groupsync.Snapshot{GUID: guid, Exists: true, At: 1500}, 7)
	// Another retry from before the snapshot stays out ...
	if _, p := groupsync.Apply(st, ev(groupsync.ActionAdd, 1200, "carol"), 8); len(p.Steps) != 0 {
		t.Errorf("Apply(add carol at 1200) after Confirm at 1500 = %+v, want stale", p)
	}
	// ... a genuine add after it is applied.
	if _, p := groupsync.Apply(st, ev(groupsync.ActionAdd, 1600, "carol"), 9); len(p.Steps) != 1 {
		t.Errorf("Apply(add carol at 1600) after Confirm at 1500 = %+v, want an add", p)
	}
	if !reflect.DeepEqual(next, func() groupsync.GroupState {
		n, _ := groupsync.Apply(groupsync.GroupState{}, ev(groupsync.ActionAdd, 1100, "carol"), 7)
		return n
	}()) {
		t.Error("Confirm modified its input state")
	}
}

// TestConfirmDecisionsAreReads: Confirm reads CometChat, and a member whose
// change it drops is decided by that read, on groupsync's clock, which
// CometChat's (the events' times) may run ahead of by up to the allowed
// skew. The guarded job (sequence 7, applied to the lost state) is
// confirmed by a read at 1505; the later jobs follow in stream order, and a
// plan that asks for a recheck is replaced by a reconcile against
// CometChat's members at the event's arrival, as the worker does. Every
// case must end with CometChat's members.
func TestConfirmDecisionsAreReads(t *testing.T) {
	const read = 1505
	tests := []struct {
		name    string
		job     groupsync.Event   // the guarded job
		shown   []string          // members the read shows
		later   []groupsync.Event // jobs after it, sequences 8, 9, ...
		truth   []string          // CometChat's members after the later jobs
		recheck []int             // the later jobs whose plan asks for a recheck
	}{
		// A retry of an old kick; bob was kicked again at a time ahead of
		// groupsync's clock and re-added before the read, and the re-add's
		// webhook never came (answered 503 through the outage until
		// CometChat gave up). Compared by time, the second kick outranked
		// the read that showed bob in, and bob left the Virgil group.
		{"KickAheadOfTheClockReceivedBeforeTheRead",
			received(ev(groupsync.ActionRemove, 1400, "bob"), 1490), []string{"alice", "bob"},
			[]groupsync.Event{received(ev(groupsync.ActionRemove, 1510, "bob"), 1502)},
			[]string{"alice", "bob"}, nil},
		// The same the other way: a join ahead of the clock, then a leave
		// whose webhook was lost; the join re-admitted bob against the read.
		{"JoinAheadOfTheClockReceivedBeforeTheRead",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 1510, "bob"), 1502)},
			[]string{"alice"}, nil},
		// An add without a time received before the read is shown by it;
		// ordered by the queue alone it re-admitted bob.
		{"UntimedAddReceivedBeforeTheRead",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 0, "bob"), 1502)},
			[]string{"alice"}, nil},
		// An add without a time received soon after the read may be a late
		// retry of an add from before it (its first delivery failed) or a
		// genuine re-add: checked with CometChat either way. Without the
		// read's receipt on the stamp it was not, and the late retry
		// re-admitted bob.
		{"LateRetryOfAnUntimedAddAfterTheReadIsRechecked",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 0, "bob"), read+20)},
			[]string{"alice"}, []int{0}},
		{"GenuineUntimedReAddAfterTheReadIsRechecked",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 0, "bob"), read+20)},
			[]string{"alice", "bob"}, []int{0}},
		{"UntimedAddLongAfterTheReadIsApplied",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 0, "bob"), read+groupsync.RetryHorizon+1)},
			[]string{"alice", "bob"}, nil},
		// A kick received soon after the read may have happened before it
		// (its time cannot tell, see below): checked with CometChat. One
		// received past the retry horizon happened after the read and
		// outranks it.
		{"TimedKickSoonAfterTheReadIsRechecked",
			received(ev(groupsync.ActionRemove, 1400, "bob"), 1490), []string{"alice", "bob"},
			[]groupsync.Event{received(ev(groupsync.ActionRemove, 1600, "bob"), 1600)},
			[]string{"alice"}, []int{0}},
		{"TimedKickLongAfterTheReadApplied",
			received(ev(groupsync.ActionRemove, 1400, "bob"), 1490), []string{"alice", "bob"},
			[]groupsync.Event{received(ev(groupsync.ActionRemove, 1700, "bob"), read+groupsync.RetryHorizon+1)},
			[]string{"alice"}, nil},
		// bob joined at a time ahead of the clock and was kicked, both
		// before the read; CometChat retries the join (our 200 was lost)
		// after the read, with its time ahead of the read's. The kick,
		// received before the read, is stale against it, so only the
		// recheck keeps the retry from re-admitting bob: a read that
		// outranked the kick by receipt must not let its time be forgotten
		// unchecked.
		{"RetryOfTheDroppedAddAheadOfTheClock",
			received(ev(groupsync.ActionAdd, 1510, "bob"), 1500), []string{"alice"},
			[]groupsync.Event{
				received(ev(groupsync.ActionRemove, 1512, "bob"), 1502),
				received(ev(groupsync.ActionAdd, 1510, "bob"), 1510),
			},
			[]string{"alice"}, []int{1}},
		// A kick retried after the read (the read showed bob in: he was
		// re-added after it, at a time ahead of the clock) is rechecked.
		{"RetryOfTheDroppedKickAheadOfTheClock",
			received(ev(groupsync.ActionRemove, 1510, "bob"), 1500), []string{"alice", "bob"},
			[]groupsync.Event{
				received(ev(groupsync.ActionAdd, 1512, "bob"), 1502),
				received(ev(groupsync.ActionRemove, 1510, "bob"), 1510),
			},
			[]string{"alice", "bob"}, []int{1}},
		// A CometChat retry of the dropped add with its own, earlier time
		// is stale against the read. Received within the retry horizon
		// after the read, it cannot be told from an add made after the
		// read on a clock behind groupsync's: checked with CometChat,
		// which keeps bob out. Received before the read, it is shown by
		// it.
		{"RetryOfTheDroppedAddAfterTheReadIsRechecked",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 1400, "bob"), 1520)},
			[]string{"alice"}, []int{0}},
		{"RetryOfTheDroppedAddBeforeTheReadIsStale",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 1400, "bob"), 1500)},
			[]string{"alice"}, nil},
		// bob is re-added just after the read, on a clock 5 s behind
		// groupsync's: by time the add was stale against the read, and
		// bob stayed out until the next reconcile.
		{"AddBehindTheClockAfterTheReadIsRechecked",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(ev(groupsync.ActionAdd, 1502, "bob"), 1508)},
			[]string{"alice", "bob"}, []int{0}},
		// A later incarnation of the group starts afresh.
		{"LaterIncarnationStartsAfresh",
			received(ev(groupsync.ActionAdd, 1400, "bob"), 1490), []string{"alice"},
			[]groupsync.Event{received(groupsync.Event{GUID: guid, Trigger: groupsync.TriggerMemberAdded, Action: groupsync.ActionAdd,
				CreatedAt: 1501, UpdatedAt: 1502, MembersCount: -1, Members: []groupsync.Member{{UID: "bob"}}}, 1503)},
			[]string{"bob"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, plan := groupsync.Apply(groupsync.GroupState{}, tt.job, 7)
			snap := groupsync.Snapshot{GUID: guid, Exists: true, Members: tt.shown, At: read}
			st, _, _ := groupsync.Confirm(next, plan, snap, 7)
			var rechecked []int
			for i, e := range tt.later {
				seq := uint64(8 + i)
				next, p := groupsync.Apply(st, e, seq)
				if len(p.Recheck) > 0 {
					rechecked = append(rechecked, i)
					next, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: tt.truth, At: e.Received + 1}, seq)
				}
				st = next
			}
			// The lost state knows only bob.
			if in, want := st.Members["bob"].In, slices.Contains(tt.truth, "bob"); in != want {
				t.Errorf("bob in = %v, want %v (CometChat's members %v)", in, want, tt.truth)
			}
			if !slices.Equal(rechecked, tt.recheck) {
				t.Errorf("later jobs rechecked %v, want %v", rechecked, tt.recheck)
			}
		})
	}
}
