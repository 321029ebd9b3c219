package groupsync_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/groupsync/groupsynctest"
)

const guid = "project-falcon"

func ev(action groupsync.Action, at int64, uids ...string) groupsync.Event {
	e := groupsync.Event{GUID: guid, Action: action, UpdatedAt: at, CreatedAt: 1000, MembersCount: -1}
	switch action {
	case groupsync.ActionCreate:
		e.Trigger, e.UpdatedAt = groupsync.TriggerGroupCreated, 0
	case groupsync.ActionAdd:
		e.Trigger = groupsync.TriggerMemberAdded
	case groupsync.ActionRemove:
		e.Trigger = groupsync.TriggerMemberKicked
	case groupsync.ActionDelete:
		e.Trigger = groupsync.TriggerGroupDeleted
	case groupsync.ActionEnsure:
		e.Trigger = groupsync.TriggerMemberScopeChanged
	case groupsync.ActionNone:
		e.Trigger = groupsync.TriggerGroupUpdated
	}
	for _, u := range uids {
		e.Members = append(e.Members, groupsync.Member{UID: u})
	}
	return e
}

func banned(at int64, uids ...string) groupsync.Event {
	e := ev(groupsync.ActionRemove, at, uids...)
	e.Trigger = groupsync.TriggerMemberBanned
	return e
}

func unbanned(at int64, uids ...string) groupsync.Event {
	e := ev(groupsync.ActionNone, at, uids...)
	e.Trigger = groupsync.TriggerMemberUnbanned
	return e
}

// snapshotRemove is the removal a reconcile that read CometChat at at
// makes.
func snapshotRemove(at int64, uids ...string) groupsync.Event {
	e := ev(groupsync.ActionRemove, at, uids...)
	e.Trigger, e.Received = groupsync.TriggerReconcile, at
	return e
}

// recv sets the time e was received.
func recv(e groupsync.Event, at int64) groupsync.Event {
	e.Received = at
	return e
}

// joinedAt is a group_member_added body without updatedAt whose members
// carry joinedAt.
func joinedAt(at int64, uids ...string) groupsync.Event {
	e := ev(groupsync.ActionAdd, 0, uids...)
	for i := range e.Members {
		e.Members[i].JoinedAt = at
	}
	return e
}

// clamped is an event whose body carried createdAt and updatedAt far in
// the future, as the webhook receiver passes it on after Job.ClampTimes.
func clamped(trig groupsync.Trigger, act groupsync.Action, uids ...string) groupsync.Event {
	e := ev(act, 0, uids...)
	e.Trigger, e.CreatedAt, e.UpdatedAt = trig, 9_000_000_000_000_000, 9_000_000_000_000_000
	j := groupsync.Job{Event: e, ReceivedAt: time.Unix(1500, 0)}
	if got := j.ClampTimes(5 * time.Minute); len(got) != 2 {
		panic(fmt.Sprintf("ClampTimes clamped %v", got))
	}
	return j.Event
}

// applyAll runs events through Apply in order, numbering them 1, 2, ... and
// returns the final state and the plans.
func applyAll(st groupsync.GroupState, events ...groupsync.Event) (groupsync.GroupState, []groupsync.Plan) {
	var plans []groupsync.Plan
	for i, e := range events {
		var p groupsync.Plan
		st, p = groupsync.Apply(st, e, uint64(i+1))
		plans = append(plans, p)
	}
	return st, plans
}

func TestApplyPlans(t *testing.T) {
	created := ev(groupsync.ActionCreate, 0, "alice")
	tests := []struct {
		name   string
		events []groupsync.Event
		want   groupsync.Plan // plan of the last event
		in     []string       // members in the final state
	}{
		{"CreateWithMembers", []groupsync.Event{created},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpCreate, UIDs: []string{"alice"}}}}, []string{"alice"}},
		{"AddToUnknownGroup", []groupsync.Event{ev(groupsync.ActionAdd, 1100, "carol", "bob")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"bob", "carol"}}}}, []string{"bob", "carol"}},
		{"KickThenLateAdd", []groupsync.Event{created, ev(groupsync.ActionRemove, 1200, "bob"), ev(groupsync.ActionAdd, 1100, "bob")},
			groupsync.Plan{GUID: guid, Stale: []string{"bob"}, Ignored: groupsync.IgnoredAllStale}, []string{"alice"}},
		{"AddThenLateKick", []groupsync.Event{created, ev(groupsync.ActionAdd, 1200, "bob"), ev(groupsync.ActionRemove, 1100, "bob")},
			groupsync.Plan{GUID: guid, Stale: []string{"bob"}, Ignored: groupsync.IgnoredAllStale}, []string{"alice", "bob"}},
		{"PartlyStaleRemove", []groupsync.Event{ev(groupsync.ActionAdd, 1200, "bob"), ev(groupsync.ActionRemove, 1100, "bob", "carol")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpRemove, UIDs: []string{"carol"}}}, Stale: []string{"bob"}}, []string{"bob"}},
		{"SameSecondUsesSequence", []groupsync.Event{ev(groupsync.ActionAdd, 1200, "bob"), ev(groupsync.ActionRemove, 1200, "bob")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpRemove, UIDs: []string{"bob"}}}}, nil},
		{"UntimedAddAfterKickUsesSequence", []groupsync.Event{ev(groupsync.ActionRemove, 1200, "bob"), ev(groupsync.ActionAdd, 0, "bob")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"bob"}}}}, []string{"bob"}},
		{"RepeatedAddIsARepeat", []groupsync.Event{ev(groupsync.ActionAdd, 1100, "bob"), ev(groupsync.ActionAdd, 1100, "bob")},
			groupsync.Plan{GUID: guid, Repeated: []string{"bob"}, Ignored: groupsync.IgnoredRepeat}, []string{"bob"}},
		{"RepeatedKickMakesNoNewEpoch", []groupsync.Event{created, ev(groupsync.ActionRemove, 1200, "alice"), ev(groupsync.ActionRemove, 1200, "alice")},
			groupsync.Plan{GUID: guid, Repeated: []string{"alice"}, Ignored: groupsync.IgnoredRepeat}, nil},
		{"RepeatedCreateChangesNothing", []groupsync.Event{created, created},
			groupsync.Plan{GUID: guid, Repeated: []string{"alice"}, Ignored: groupsync.IgnoredRepeat}, []string{"alice"}},
		{"AddKickAddAgainReAdds", []groupsync.Event{ev(groupsync.ActionAdd, 0, "carol"), ev(groupsync.ActionRemove, 1200, "carol"), ev(groupsync.ActionAdd, 0, "carol")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"carol"}}}}, []string{"carol"}},
		{"AddBanUnbanAddAgainReAdds", []groupsync.Event{ev(groupsync.ActionAdd, 0, "carol"), banned(1200, "carol"), unbanned(1300, "carol"), ev(groupsync.ActionAdd, 0, "carol")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"carol"}}}}, []string{"carol"}},
		{"RetryOfReAddIsARepeat", []groupsync.Event{ev(groupsync.ActionAdd, 0, "carol"), ev(groupsync.ActionRemove, 1200, "carol"), ev(groupsync.ActionAdd, 0, "carol"), ev(groupsync.ActionAdd, 0, "carol")},
			groupsync.Plan{GUID: guid, Repeated: []string{"carol"}, Ignored: groupsync.IgnoredRepeat}, []string{"carol"}},
		{"ReAddWithinTheRetryHorizonIsRechecked", []groupsync.Event{recv(ev(groupsync.ActionAdd, 0, "carol"), 5000), recv(ev(groupsync.ActionRemove, 1200, "carol"), 5005), recv(ev(groupsync.ActionAdd, 0, "carol"), 5030)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"carol"}}}, Recheck: []string{"carol"}}, []string{"carol"}},
		{"ReAddLongAfterTheKickIsNotRechecked", []groupsync.Event{recv(ev(groupsync.ActionAdd, 0, "carol"), 5000), recv(ev(groupsync.ActionRemove, 1200, "carol"), 5005), recv(ev(groupsync.ActionAdd, 0, "carol"), 5005+groupsync.RetryHorizon+1)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"carol"}}}}, []string{"carol"}},
		{"KickSoonAfterAnUntimedAddIsRechecked", []groupsync.Event{recv(ev(groupsync.ActionAdd, 0, "carol"), 5000), recv(ev(groupsync.ActionRemove, 1200, "carol"), 5030)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpRemove, UIDs: []string{"carol"}}}, Recheck: []string{"carol"}}, nil},
		{"RepeatRenewsTheHorizon", []groupsync.Event{recv(ev(groupsync.ActionAdd, 0, "carol"), 5000), recv(ev(groupsync.ActionAdd, 0, "carol"), 9000), recv(ev(groupsync.ActionRemove, 1200, "carol"), 9030)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpRemove, UIDs: []string{"carol"}}}, Recheck: []string{"carol"}}, nil},
		{"TimedEventsAreNeverRechecked", []groupsync.Event{recv(ev(groupsync.ActionAdd, 1100, "carol"), 5000), recv(ev(groupsync.ActionRemove, 1200, "carol"), 5001)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpRemove, UIDs: []string{"carol"}}}}, nil},
		{"UntimedAddReceivedBeforeASnapshotIsStale", []groupsync.Event{snapshotRemove(6000, "carol"), recv(ev(groupsync.ActionAdd, 0, "carol"), 5990)},
			groupsync.Plan{GUID: guid, Stale: []string{"carol"}, Ignored: groupsync.IgnoredAllStale}, nil},
		{"UntimedAddReceivedAfterASnapshotIsApplied", []groupsync.Event{snapshotRemove(6000, "carol"), recv(ev(groupsync.ActionAdd, 0, "carol"), 6000+groupsync.RetryHorizon+1)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"carol"}}}}, []string{"carol"}},
		{"RepeatWithAnotherTimeIsNoRepeat", []groupsync.Event{joinedAt(1100, "carol"), joinedAt(1300, "carol")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"carol"}}}}, []string{"carol"}},
		{"ClampedAddDoesNotOutrankLaterKick", []groupsync.Event{clamped(groupsync.TriggerMemberAdded, groupsync.ActionAdd, "mallory"), ev(groupsync.ActionRemove, 1200, "mallory")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpRemove, UIDs: []string{"mallory"}}}}, nil},
		{"ClampedCreateStartsNoIncarnation", []groupsync.Event{created, clamped(groupsync.TriggerGroupCreated, groupsync.ActionCreate, "mallory"), ev(groupsync.ActionAdd, 1200, "bob")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpAdd, UIDs: []string{"bob"}}}}, []string{"alice", "bob", "mallory"}},
		{"Delete", []groupsync.Event{created, ev(groupsync.ActionDelete, 1300)},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpDelete}}}, nil},
		{"LateAddAfterDelete", []groupsync.Event{created, ev(groupsync.ActionDelete, 1300), ev(groupsync.ActionAdd, 1200, "bob")},
			groupsync.Plan{GUID: guid, Ignored: groupsync.IgnoredDeleted}, nil},
		{"LateCreateAfterDelete", []groupsync.Event{ev(groupsync.ActionDelete, 1300), created},
			groupsync.Plan{GUID: guid, Ignored: groupsync.IgnoredDeleted}, nil},
		{"ScopeChangeEnsures", []groupsync.Event{created, ev(groupsync.ActionEnsure, 1100, "alice")},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpEnsure, UIDs: []string{"alice"}}}}, []string{"alice"}},
		{"OwnerTransferEnsuresNewOwner", []groupsync.Event{{GUID: guid, Trigger: groupsync.TriggerOwnerTransferred, Action: groupsync.ActionEnsure, Owner: "bob", UpdatedAt: 1100}},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpEnsure, UIDs: []string{"bob"}}}}, []string{"bob"}},
		{"GroupUpdatedChangesNothing", []groupsync.Event{created, ev(groupsync.ActionNone, 1100)},
			groupsync.Plan{GUID: guid, Ignored: groupsync.IgnoredNoChange}, []string{"alice"}},
		{"ReconcileAsksForReconcile", []groupsync.Event{{GUID: guid, Trigger: groupsync.TriggerReconcile, Action: groupsync.ActionReconcile}},
			groupsync.Plan{GUID: guid, Reconcile: true}, nil},
		{"CardCheckOnlyForMembers", []groupsync.Event{created, {GUID: guid, Trigger: groupsync.TriggerCardCheck, Action: groupsync.ActionEnsure, Members: []groupsync.Member{{UID: "alice"}, {UID: "mallory"}}}},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpEnsure, UIDs: []string{"alice"}}}}, []string{"alice"}},
		{"CardCheckReAdd", []groupsync.Event{created, {GUID: guid, Trigger: groupsync.TriggerCardCheck, Action: groupsync.ActionReAdd, Members: []groupsync.Member{{UID: "alice"}}}},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpReAdd, UIDs: []string{"alice"}}}}, []string{"alice"}},
		{"CardCheckOfUnknownUserIgnored", []groupsync.Event{{GUID: guid, Trigger: groupsync.TriggerCardCheck, Action: groupsync.ActionEnsure, Members: []groupsync.Member{{UID: "bob"}}}},
			groupsync.Plan{GUID: guid, Ignored: groupsync.IgnoredNotMembers}, nil},
		{"EventOfEarlierIncarnationIgnored", []groupsync.Event{{GUID: guid, Action: groupsync.ActionAdd, CreatedAt: 2000, UpdatedAt: 2100, Members: []groupsync.Member{{UID: "bob"}}}, ev(groupsync.ActionRemove, 1200, "bob")},
			groupsync.Plan{GUID: guid, Ignored: groupsync.IgnoredOldIncarnation}, []string{"bob"}},
		{"NewIncarnationDeletesTheOldGroupFirst", []groupsync.Event{created, {GUID: guid, Action: groupsync.ActionCreate, CreatedAt: 2000, Members: []groupsync.Member{{UID: "bob"}}}},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpDelete}, {Op: groupsync.OpCreate, UIDs: []string{"bob"}}}}, []string{"bob"}},
		{"NewIncarnationAfterDeletion", []groupsync.Event{created, ev(groupsync.ActionDelete, 1300), {GUID: guid, Action: groupsync.ActionCreate, CreatedAt: 2000, Members: []groupsync.Member{{UID: "bob"}}}},
			groupsync.Plan{GUID: guid, Steps: []groupsync.Step{{Op: groupsync.OpCreate, UIDs: []string{"bob"}}}}, []string{"bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, plans := applyAll(groupsync.GroupState{}, tt.events...)
			got := plans[len(plans)-1]
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Apply(%v) = %+v, want %+v", tt.events[len(tt.events)-1], got, tt.want)
			}
			if cur := st.Current(); !slices.Equal(cur, tt.in) {
				t.Errorf("members after %d events = %v, want %v", len(tt.events), cur, tt.in)
			}
		})
	}
}

func TestApplyDoesNotModifyItsInput(t *testing.T) {
	st, _ := applyAll(groupsync.GroupState{}, ev(groupsync.ActionCreate, 0, "alice"), ev(groupsync.ActionAdd, 1100, "bob"))
	before := st.Clone()
	groupsync.Apply(st, ev(groupsync.ActionRemove, 1200, "alice", "bob"), 9)
	if !reflect.DeepEqual(st, before) {
		t.Fatalf("Apply modified its input state: %+v, was %+v", st, before)
	}
}

func TestApplyKeepsCardOfMembers(t *testing.T) {
	st, _ := applyAll(groupsync.GroupState{}, ev(groupsync.ActionAdd, 1100, "bob", "carol"))
	st.MarkCard("bob", "card-1")
	st.MarkPending("carol", true)
	st, _ = groupsync.Apply(st, ev(groupsync.ActionEnsure, 1200, "bob", "carol"), 5)
	if m := st.Members["bob"]; m.CardID != "card-1" || m.Pending {
		t.Errorf("bob after ensure = %+v, want card-1 kept", m)
	}
	if got := st.PendingMembers(); !slices.Equal(got, []string{"carol"}) {
		t.Errorf("PendingMembers() = %v, want [carol]", got)
	}
	st, _ = groupsync.Apply(st, ev(groupsync.ActionRemove, 1300, "carol"), 6)
	if got := st.PendingMembers(); len(got) != 0 {
		t.Errorf("PendingMembers() after kick = %v, want none", got)
	}
	if idx := st.Index(); idx["carol"].In || !idx["bob"].In || idx["bob"].CardID != "card-1" {
		t.Errorf("Index() = %+v", idx)
	}
}

func TestStampAfter(t *testing.T) {
	tests := []struct {
		a, b groupsync.Stamp
		want bool
	}{
		{groupsync.Stamp{At: 2, Seq: 1}, groupsync.Stamp{At: 1, Seq: 9}, true},
		{groupsync.Stamp{At: 1, Seq: 9}, groupsync.Stamp{At: 2, Seq: 1}, false},
		{groupsync.Stamp{At: 2, Seq: 5}, groupsync.Stamp{At: 2, Seq: 4}, true},
		{groupsync.Stamp{At: 0, Seq: 5}, groupsync.Stamp{At: 9, Seq: 4}, true},
		{groupsync.Stamp{At: 3, Seq: 5}, groupsync.Stamp{At: 3, Seq: 5}, false},
		{groupsync.Stamp{At: 1, Seq: 1}, groupsync.Stamp{}, true},
	}
	for _, tt := range tests {
		if got := tt.a.After(tt.b); got != tt.want {
			t.Errorf("%+v.After(%+v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := fmt.Errorf("virgil: too many participants")
	err := fmt.Errorf("worker: add: %w", groupsync.Permanent(base))
	if !groupsync.IsPermanent(err) {
		t.Errorf("IsPermanent(%v) = false, want true", err)
	}
	if groupsync.IsPermanent(base) {
		t.Errorf("IsPermanent(%v) = true for an unmarked error", base)
	}
	if groupsync.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if p := groupsync.Permanent(err); p != err {
		t.Errorf("Permanent(permanent) wrapped again: %v", p)
	}
}

// fakeVirgil applies plans the way the Virgil owner does: create converges
// to add, add creates a missing group, remove and delete of a missing group
// succeed.
type fakeVirgil struct {
	exists bool
	in     map[string]bool
}

func (f *fakeVirgil) apply(p groupsync.Plan) {
	if f.in == nil {
		f.in = map[string]bool{}
	}
	for _, s := range p.Steps {
		switch s.Op {
		case groupsync.OpCreate, groupsync.OpAdd, groupsync.OpEnsure:
			f.exists = true
			for _, u := range s.UIDs {
				f.in[u] = true
			}
		case groupsync.OpRemove:
			for _, u := range s.UIDs {
				delete(f.in, u)
			}
		case groupsync.OpDelete:
			f.exists, f.in = false, map[string]bool{}
		}
	}
}

func (f *fakeVirgil) members() []string {
	var out []string
	for u := range f.in {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// replay applies deliveries in order, as the worker does: each through
// Apply, except that a plan asking for a recheck is replaced by a reconcile
// against CometChat's state at the delivery's arrival (what the worker does
// with a CometChat reader). It returns the states and fake Virgil groups.
func replay(scs map[string]groupsynctest.Scenario, ds []groupsynctest.Delivery) (map[string]groupsync.GroupState, map[string]*fakeVirgil) {
	states := map[string]groupsync.GroupState{}
	virgil := map[string]*fakeVirgil{}
	for i, d := range ds {
		g := d.Event.GUID
		seq := uint64(i + 1)
		st, p := groupsync.Apply(states[g], d.Event, seq)
		if len(p.Recheck) > 0 {
			members, exists := scs[g].TruthAt(d.At)
			st, p, _ = groupsync.Reconcile(states[g], groupsync.Snapshot{GUID: g, Exists: exists, Members: members, At: d.At}, seq)
		}
		states[g] = st
		if virgil[g] == nil {
			virgil[g] = &fakeVirgil{}
		}
		virgil[g].apply(p)
	}
	return states, virgil
}

// checkConverged fails unless every group ends as its scenario does, in
// Virgil and in the state.
func checkConverged(t *testing.T, what string, scs map[string]groupsynctest.Scenario, states map[string]groupsync.GroupState, virgil map[string]*fakeVirgil) {
	t.Helper()
	for g, sc := range scs {
		v := virgil[g]
		if sc.Deleted {
			if v.exists || len(v.in) > 0 {
				t.Fatalf("%s: group %s deleted in CometChat, Virgil holds %v", what, g, v.members())
			}
			continue
		}
		if got := v.members(); !v.exists || !slices.Equal(got, sc.Members) {
			t.Fatalf("%s: group %s: Virgil members %v (exists %v), CometChat members %v", what, g, got, v.exists, sc.Members)
		}
		if got := states[g].Current(); !slices.Equal(got, sc.Members) {
			t.Fatalf("%s: group %s: state members %v, CometChat members %v", what, g, got, sc.Members)
		}
	}
}

// TestApplyConvergesUnderReorderingAndDuplicates is the property test of
// invariant 2 for the planner: random group lives over several groups, with
// identical repeated adds and forged (clamped) times, delivered with
// CometChat's retry delays (reordering within 30 s) and duplicates, always
// end with Virgil holding CometChat's final members.
func TestApplyConvergesUnderReorderingAndDuplicates(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	for seed := uint64(0); seed < 2000; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		scs := map[string]groupsynctest.Scenario{}
		var all []groupsynctest.Delivery
		for _, g := range []string{"g-one", "g-two", "g-three"} {
			sc := groupsynctest.Generate(r, g, groupsynctest.Options{Users: users, Steps: 16, DeleteOneIn: 4, ForgeOneIn: 12})
			scs[g] = sc
			all = append(all, groupsynctest.Deliver(r, sc, groupsynctest.DeliverOptions{})...)
		}
		groupsynctest.SortDeliveries(all)
		states, virgil := replay(scs, all)
		checkConverged(t, fmt.Sprintf("seed %d", seed), scs, states, virgil)
	}
}

// TestApplySeedScenarios runs the named seed scenarios of groupsynctest's
// testdata through many random deliveries.
func TestApplySeedScenarios(t *testing.T) {
	scs, err := groupsynctest.LoadScenarios("groupsynctest/testdata/scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			for seed := uint64(0); seed < 200; seed++ {
				r := rand.New(rand.NewPCG(seed, 5))
				ds := groupsynctest.Deliver(r, sc, groupsynctest.DeliverOptions{})
				states, virgil := replay(map[string]groupsynctest.Scenario{sc.GUID: sc}, ds)
				checkConverged(t, fmt.Sprintf("seed %d", seed), map[string]groupsynctest.Scenario{sc.GUID: sc}, states, virgil)
			}
		})
	}
}

// TestApplyWithLostStateOnlyAppliesWhatEventsSay is invariant 5 for the
// planner: from any stored state (random, empty, stale), a plan only adds
// users the event adds and only removes users the event removes.
func TestApplyWithLostStateOnlyAppliesWhatEventsSay(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave"}
	r := rand.New(rand.NewPCG(1, 2))
	actions := []groupsync.Action{groupsync.ActionCreate, groupsync.ActionAdd, groupsync.ActionEnsure, groupsync.ActionRemove, groupsync.ActionDelete, groupsync.ActionNone}
	for i := 0; i < 5000; i++ {
		st := groupsync.GroupState{GUID: guid, Members: map[string]groupsync.MemberState{}}
		switch r.IntN(3) {
		case 0:
			st.Lifecycle = groupsync.LifecycleExists
		case 1:
			st.Lifecycle = groupsync.LifecycleUnknown
		}
		for _, u := range users {
			if r.IntN(2) == 0 {
				st.Members[u] = groupsync.MemberState{In: r.IntN(2) == 0, Stamp: groupsync.Stamp{At: int64(1000 + r.IntN(20)), Seq: uint64(r.IntN(20))}}
			}
		}
		var named []string
		e := ev(actions[r.IntN(len(actions))], int64(1000+r.IntN(20)))
		for _, u := range users {
			if r.IntN(2) == 0 {
				e.Members = append(e.Members, groupsync.Member{UID: u})
				named = append(named, u)
			}
		}
		_, p := groupsync.Apply(st, e, uint64(r.IntN(30)))
		for _, s := range p.Steps {
			for _, u := range s.UIDs {
				if !slices.Contains(named, u) {
					t.Fatalf("Apply(%+v, %+v) = %+v: step %s names %s, whom the event does not name", st, e, p, s.Op, u)
				}
			}
			switch s.Op {
			case groupsync.OpRemove:
				if e.Action != groupsync.ActionRemove {
					t.Fatalf("Apply(%+v, %+v) = %+v: removes on a %s event", st, e, p, e.Action)
				}
			case groupsync.OpAdd, groupsync.OpEnsure, groupsync.OpCreate:
				if e.Action != groupsync.ActionAdd && e.Action != groupsync.ActionEnsure && e.Action != groupsync.ActionCreate {
					t.Fatalf("Apply(%+v, %+v) = %+v: adds on a %s event", st, e, p, e.Action)
				}
			case groupsync.OpDelete:
				if e.Action != groupsync.ActionDelete {
					t.Fatalf("Apply(%+v, %+v) = %+v: deletes on a %s event", st, e, p, e.Action)
				}
			}
		}
	}
}

// TestApplyConvergesAfterStateLoss: losing the state between two in-order
// parts of a group's life still ends with CometChat's members.
func TestApplyConvergesAfterStateLoss(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave"}
	for seed := uint64(0); seed < 500; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		sc := groupsynctest.Generate(r, "g-lost", groupsynctest.Options{Users: users, Steps: 16, DeleteOneIn: 4, ForgeOneIn: 12})
		ds := groupsynctest.Deliver(r, sc, groupsynctest.DeliverOptions{})
		// In CometChat order, each event once.
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].Step < ds[j].Step })
		cut := r.IntN(len(sc.Steps) + 1)
		var st groupsync.GroupState
		v := &fakeVirgil{}
		seq := uint64(0)
		for _, d := range ds {
			if d.Copy {
				continue
			}
			if d.Step == cut {
				st = groupsync.GroupState{}
			}
			seq++
			var p groupsync.Plan
			st, p = groupsync.Apply(st, d.Event, seq)
			v.apply(p)
		}
		if sc.Deleted {
			if v.exists {
				t.Fatalf("seed %d: deleted group exists with %v", seed, v.members())
			}
			continue
		}
		if got := v.members(); !slices.Equal(got, sc.Members) {
			t.Fatalf("seed %d (state lost before event %d): Virgil members %v, want %v", seed, cut, got, sc.Members)
		}
	}
}

func ExampleApply() {
	var st groupsync.GroupState
	created := groupsync.Event{Trigger: groupsync.TriggerGroupCreated, Action: groupsync.ActionCreate, GUID: "falcon", CreatedAt: 1000,
		Members: []groupsync.Member{{UID: "alice"}}}
	kicked := groupsync.Event{Trigger: groupsync.TriggerMemberKicked, Action: groupsync.ActionRemove, GUID: "falcon", CreatedAt: 1000, UpdatedAt: 1200,
		Members: []groupsync.Member{{UID: "bob"}}}
	// The add happened before the kick but arrives after it (a retry).
	added := groupsync.Event{Trigger: groupsync.TriggerMemberJoined, Action: groupsync.ActionAdd, GUID: "falcon", CreatedAt: 1000, UpdatedAt: 1100,
		Members: []groupsync.Member{{UID: "bob"}}}
	for i, e := range []groupsync.Event{created, kicked, added} {
		var p groupsync.Plan
		st, p = groupsync.Apply(st, e, uint64(i+1))
		fmt.Printf("%s: steps %v stale %v\n", e.Trigger, p.Steps, p.Stale)
	}
	fmt.Println("members:", st.Current())
	// Output:
	// group_created: steps [{create [alice]}] stale []
	// group_member_kicked: steps [{remove [bob]}] stale []
	// group_member_joined: steps [] stale [bob]
	// members: [alice]
}
