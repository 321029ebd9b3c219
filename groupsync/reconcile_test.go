package groupsync_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/groupsync/groupsync/groupsync"
)

func TestReconcilePlans(t *testing.T) {
	created := ev(groupsync.ActionCreate, 0, "alice", "bob")
	snap := func(at int64, uids ...string) groupsync.Snapshot {
		return groupsync.Snapshot{GUID: guid, Exists: true, Members: uids, At: at}
	}
	gone := groupsync.Snapshot{GUID: guid, At: 1500}
	steps := func(s ...groupsync.Step) groupsync.Plan { return groupsync.Plan{GUID: guid, Steps: s} }
	add := func(uids ...string) groupsync.Step { return groupsync.Step{Op: groupsync.OpAdd, UIDs: uids} }
	remove := func(uids ...string) groupsync.Step { return groupsync.Step{Op: groupsync.OpRemove, UIDs: uids} }
	retain := func(uids ...string) groupsync.Step { return groupsync.Step{Op: groupsync.OpRetain, UIDs: uids} }
	// stale marks the users a later event decided, whom the reconcile leaves alone.
	stale := func(p groupsync.Plan, uids ...string) groupsync.Plan { p.Stale = uids; return p }
	tests := []struct {
		name   string
		events []groupsync.Event // applied before the reconcile, sequences 1, 2, ...
		snap   groupsync.Snapshot
		want   groupsync.Plan
		drift  groupsync.Drift
		in     []string // members in the final state
	}{
		{"UnknownGroupCreatedWithItsMembers", nil, snap(1500, "bob", "alice"),
			steps(add("alice", "bob"), retain("alice", "bob")), groupsync.Drift{Missing: []string{"alice", "bob"}}, []string{"alice", "bob"}},
		{"NoMembersStillMakesSureTheGroupExists", nil, snap(1500),
			steps(add(), retain()), groupsync.Drift{}, nil},
		{"InLineAddsConvergently", []groupsync.Event{created}, snap(1500, "alice", "bob"),
			steps(add("alice", "bob"), retain("alice", "bob")), groupsync.Drift{}, []string{"alice", "bob"}},
		{"LostKickRemoves", []groupsync.Event{created}, snap(1500, "alice"),
			steps(add("alice"), remove("bob"), retain("alice")), groupsync.Drift{Extra: []string{"bob"}}, []string{"alice"}},
		{"KnownOutUserRemovedAgain", []groupsync.Event{created, ev(groupsync.ActionRemove, 1100, "bob")}, snap(1500, "alice"),
			steps(add("alice"), remove("bob"), retain("alice")), groupsync.Drift{}, []string{"alice"}},
		{"LostAddAdds", []groupsync.Event{created}, snap(1500, "alice", "bob", "carol"),
			steps(add("alice", "bob", "carol"), retain("alice", "bob", "carol")), groupsync.Drift{Missing: []string{"carol"}}, []string{"alice", "bob", "carol"}},
		{"LostAddOfKickedMember", []groupsync.Event{created, ev(groupsync.ActionRemove, 1100, "bob")}, snap(1500, "alice", "bob"),
			steps(add("alice", "bob"), retain("alice", "bob")), groupsync.Drift{Missing: []string{"bob"}}, []string{"alice", "bob"}},
		{"KickAfterTheSnapshotWins", []groupsync.Event{created, ev(groupsync.ActionRemove, 2000, "bob")}, snap(1500, "alice", "bob"),
			stale(steps(add("alice"), retain("alice")), "bob"), groupsync.Drift{}, []string{"alice"}},
		{"AddAfterTheSnapshotWins", []groupsync.Event{created, ev(groupsync.ActionAdd, 2000, "carol")}, snap(1500, "alice", "bob"),
			stale(steps(add("alice", "bob"), retain("alice", "bob", "carol")), "carol"), groupsync.Drift{}, []string{"alice", "bob", "carol"}},
		{"DuplicateMembersCountOnce", nil, snap(1500, "bob", "bob", "", "alice"),
			steps(add("alice", "bob"), retain("alice", "bob")), groupsync.Drift{Missing: []string{"alice", "bob"}}, []string{"alice", "bob"}},
		{"GroupGoneIsDeleted", []groupsync.Event{created}, gone,
			steps(groupsync.Step{Op: groupsync.OpDelete}), groupsync.Drift{Deleted: true}, nil},
		{"UnknownGroupGoneIsDeletedWithoutDrift", nil, gone,
			steps(groupsync.Step{Op: groupsync.OpDelete}), groupsync.Drift{}, nil},
		{"DeletedGroupGoneChangesNothing", []groupsync.Event{created, ev(groupsync.ActionDelete, 1300)}, gone,
			steps(), groupsync.Drift{}, nil},
		{"DeletedGroupBackStartsAfresh", []groupsync.Event{created, ev(groupsync.ActionDelete, 1300)}, snap(1500, "carol"),
			steps(add("carol"), retain("carol")), groupsync.Drift{Missing: []string{"carol"}}, []string{"carol"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _ := applyAll(groupsync.GroupState{}, tt.events...)
			next, got, drift := groupsync.Reconcile(st, tt.snap, uint64(len(tt.events)+1))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Reconcile(%+v) plan = %+v, want %+v", tt.snap, got, tt.want)
			}
			if !reflect.DeepEqual(drift, tt.drift) {
				t.Errorf("Reconcile(%+v) drift = %+v, want %+v", tt.snap, drift, tt.drift)
			}
			if drift.Empty() != (len(tt.drift.Missing) == 0 && len(tt.drift.Extra) == 0 && !tt.drift.Deleted) {
				t.Errorf("Drift(%+v).Empty() = %v", drift, drift.Empty())
			}
			if cur := next.Current(); !slices.Equal(cur, tt.in) {
				t.Errorf("members after Reconcile(%+v) = %v, want %v", tt.snap, cur, tt.in)
			}
			if next.GUID != guid {
				t.Errorf("state GUID after Reconcile = %q, want %q", next.GUID, guid)
			}
		})
	}
}

func TestReconcileThenLateEvents(t *testing.T) {
	st, _ := applyAll(groupsync.GroupState{}, ev(groupsync.ActionCreate, 0, "alice", "bob"))
	st, _, _ = groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"alice"}, At: 1500}, 2)
	// A retry of an add from before the snapshot is stale against it.
	_, p := groupsync.Apply(st, ev(groupsync.ActionAdd, 1400, "bob"), 3)
	if len(p.Steps) != 0 || !slices.Equal(p.Stale, []string{"bob"}) {
		t.Errorf("Apply(add bob at 1400) after reconcile at 1500 = %+v, want bob stale", p)
	}
	// An add after the snapshot is applied.
	_, p = groupsync.Apply(st, ev(groupsync.ActionAdd, 1600, "bob"), 4)
	if want := []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"bob"}}}; !reflect.DeepEqual(p.Steps, want) {
		t.Errorf("Apply(add bob at 1600) after reconcile at 1500 = %+v, want %+v", p.Steps, want)
	}
}

func TestReconcileKeepsPendingAndCards(t *testing.T) {
	st, _ := applyAll(groupsync.GroupState{}, ev(groupsync.ActionAdd, 1100, "bob", "carol"))
	st.MarkCard("bob", "card-1")
	st.MarkPending("carol", true)
	next, _, _ := groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"bob", "carol"}, At: 1500}, 5)
	if m := next.Members["bob"]; m.CardID != "card-1" || m.Pending {
		t.Errorf("bob after Reconcile = %+v, want card-1 kept", m)
	}
	if got := next.PendingMembers(); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("PendingMembers() after Reconcile = %v, want [carol]", got)
	}
}

func TestReconcileDoesNotModifyItsInput(t *testing.T) {
	st, _ := applyAll(groupsync.GroupState{}, ev(groupsync.ActionCreate, 0, "alice", "bob"))
	before := st.Clone()
	groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, Exists: true, Members: []string{"carol"}, At: 1500}, 9)
	groupsync.Reconcile(st, groupsync.Snapshot{GUID: guid, At: 1500}, 9)
	if !reflect.DeepEqual(st, before) {
		t.Fatalf("Reconcile modified its input state: %+v, was %+v", st, before)
	}
}
