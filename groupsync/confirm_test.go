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
