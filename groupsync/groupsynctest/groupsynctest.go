// Package groupsynctest makes random CometChat group histories and says
// what they make of each group, for the property tests of the planner and
// the worker and for the chaos harness.
//
// A history is a Life's steps in CometChat order: the group is created, users
// are added, join, are kicked, banned or leave, scopes change, and the group
// may be deleted. The histories hold what real CometChat traffic holds and
// the planner must survive: group_member_added bodies carry no time, so
// adding a user, removing them and adding them again by the same admin gives
// two identical bodies (docs/convergence.md); and, when asked, some bodies
// carry times far in the future that the webhook receiver clamps.
//
// Deliver turns a history into what the queue stores: every event arrives
// when it happened or after CometChat's retries (+10 s, +30 s), some twice.
// Expect is the model of the expected state: per member, the latest event in
// CometChat's order decides.
//
// Named seed scenarios live in testdata/ as JSON (see LoadScenarios).
package groupsynctest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/groupsync/groupsync/groupsync"
)

// ForgedTime is the future time the generator writes into bodies whose
// times must be clamped.
const ForgedTime = 9_000_000_000_000_000

// Step is one CometChat event of a history.
type Step struct {
	// Event is the event as the webhook receiver parses it from CometChat's
	// body (Received is not set; Deliver sets it).
	Event groupsync.Event `json:"event"`
	// At is when the event happened in CometChat (Unix seconds), whether or
	// not the body says so.
	At int64 `json:"at"`
	// In reports, for a membership event, whether its members are in the
	// group afterwards.
	In bool `json:"in"`
	// Moves reports that the event decides its members' membership (create,
	// add, join, kick, ban, leave, delete); scope changes and the like do not.
	Moves bool `json:"moves"`
	// Forged reports a body whose times lie far in the future.
	Forged bool `json:"forged,omitempty"`
}

// Fact returns what s did, for Expect.
func (s Step) Fact() Fact {
	return Fact{GUID: s.Event.GUID, UIDs: s.Event.UIDs(), In: s.In, At: s.At,
		Delete: s.Event.Action == groupsync.ActionDelete, Moves: s.Moves}
}

// Scenario is one group's history and what it ends with.
type Scenario struct {
	// Name names a seed scenario; "" for generated ones.
	Name string `json:"name,omitempty"`
	// GUID is the group.
	GUID string `json:"guid"`
	// Steps are the events in CometChat order.
	Steps []Step `json:"steps"`
	// Deleted reports that the group ends deleted.
	Deleted bool `json:"deleted"`
	// Members are the final members, sorted (none when deleted).
	Members []string `json:"members"`
}

// Everyone returns the sorted uids any step names.
func (sc Scenario) Everyone() []string {
	seen := map[string]bool{}
	for _, s := range sc.Steps {
		for _, u := range s.Event.UIDs() {
			seen[u] = true
		}
	}
	var out []string
	for u := range seen {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// TruthAt returns the group as CometChat's REST API shows it at time t:
// whether it exists and its sorted members, after every step that happened
// at or before t.
func (sc Scenario) TruthAt(t int64) (members []string, exists bool) {
	var facts []Fact
	for _, s := range sc.Steps {
		if s.At <= t {
			facts = append(facts, s.Fact())
		}
	}
	if len(facts) == 0 {
		return nil, false
	}
	e := Expect(facts)
	return e.Members[sc.GUID], !e.Deleted[sc.GUID]
}

// Options shape Generate.
type Options struct {
	// Users are the uids the history moves (required).
	Users []string
	// Start is the creation time; 0 means 1,700,000,000 plus up to 1,000 s.
	Start int64
	// Steps is the most steps after the creation (default 12); at least
	// two are made.
	Steps int
	// DeleteOneIn deletes the group at the end of one history in this
	// many (0: never).
	DeleteOneIn int
	// ForgeOneIn gives one body in this many times far in the future (0:
	// never); such bodies are kept out of the group's creation.
	ForgeOneIn int
}

// Life is a group's membership as a history goes on; it makes the next
// step. Chaos runs drive one per group live; Generate drives one to the end.
type Life struct {
	// GUID is the group.
	GUID string
	// Created is the group's createdAt.
	Created int64
	// Admin acts in every event that names an actor.
	Admin string
	// In is who is a member now.
	In map[string]bool
}

// NewLife starts the life of group guid created at created by admin.
func NewLife(guid string, created int64, admin string) *Life {
	return &Life{GUID: guid, Created: created, Admin: admin, In: map[string]bool{}}
}

func (l *Life) event(trig groupsync.Trigger, act groupsync.Action, at int64, uids ...string) groupsync.Event {
	ev := groupsync.Event{Trigger: trig, Action: act, GUID: l.GUID, CreatedAt: l.Created, UpdatedAt: at, MembersCount: -1}
	for _, u := range uids {
		ev.Members = append(ev.Members, groupsync.Member{UID: u})
	}
	return ev
}

// Create returns the group_created step with members.
func (l *Life) Create(members ...string) Step {
	ev := l.event(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, members...)
	ev.Owner = l.Admin
	for _, u := range members {
		l.In[u] = true
	}
	return Step{Event: ev, At: l.Created, In: true, Moves: true}
}

// Move returns the step that moves u at time at: a removal (kick, ban or
// leave) when u is in, else an addition, which is a group_member_added body
// without any time (identical for every add of u) or a group_member_joined.
func (l *Life) Move(r *rand.Rand, u string, at int64) Step {
	if l.In[u] {
		delete(l.In, u)
		var ev groupsync.Event
		switch r.IntN(3) {
		case 0:
			ev = l.event(groupsync.TriggerMemberKicked, groupsync.ActionRemove, at, u)
			ev.By = l.Admin
		case 1:
			ev = l.event(groupsync.TriggerMemberBanned, groupsync.ActionRemove, at, u)
			ev.By = l.Admin
		default:
			ev = l.event(groupsync.TriggerMemberLeft, groupsync.ActionRemove, at, u)
		}
		return Step{Event: ev, At: at, In: false, Moves: true}
	}
	l.In[u] = true
	if r.IntN(3) > 0 {
		ev := l.event(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, u)
		ev.By = l.Admin
		return Step{Event: ev, At: at, In: true, Moves: true}
	}
	return Step{Event: l.event(groupsync.TriggerMemberJoined, groupsync.ActionAdd, at, u), At: at, In: true, Moves: true}
}

// Other returns a step that moves nobody: an update of the group, an unban,
// or a scope change of a member.
func (l *Life) Other(r *rand.Rand, u string, at int64) Step {
	switch k := r.IntN(3); {
	case k == 0 && l.In[u]:
		ev := l.event(groupsync.TriggerMemberScopeChanged, groupsync.ActionEnsure, at, u)
		ev.By = l.Admin
		ev.Members[0].Scope, ev.Members[0].OldScope = "moderator", "participant"
		return Step{Event: ev, At: at}
	case k == 1:
		ev := l.event(groupsync.TriggerMemberUnbanned, groupsync.ActionNone, at, u)
		ev.By = l.Admin
		return Step{Event: ev, At: at}
	}
	return Step{Event: l.event(groupsync.TriggerGroupUpdated, groupsync.ActionNone, at), At: at}
}

// Delete returns the group_deleted step.
func (l *Life) Delete(at int64) Step {
	l.In = map[string]bool{}
	return Step{Event: l.event(groupsync.TriggerGroupDeleted, groupsync.ActionDelete, at), At: at, Moves: true}
}

// Forge writes ForgedTime into every time s's body carries, and one into
// its updatedAt when it carries none.
func Forge(s Step) Step {
	s.Forged = true
	s.Event.UpdatedAt = ForgedTime
	if s.Event.CreatedAt != 0 {
		s.Event.CreatedAt = ForgedTime
	}
	return s
}

// Generate makes a random history of group guid. It favours re-adding users
// who were removed, so identical add bodies recur.
func Generate(r *rand.Rand, guid string, o Options) Scenario {
	if len(o.Users) == 0 {
		panic("groupsynctest: Generate needs users")
	}
	if o.Steps == 0 {
		o.Steps = 12
	}
	t := o.Start
	if t == 0 {
		t = int64(1_700_000_000 + r.IntN(1000))
	}
	admin := "admin-" + guid
	l := NewLife(guid, t, admin)
	sc := Scenario{GUID: guid}
	sc.Steps = append(sc.Steps, l.Create(o.Users[r.IntN(len(o.Users))]))
	var removed []string
	for range 2 + r.IntN(max(o.Steps-1, 1)) {
		t += 1 + int64(r.IntN(8))
		u := o.Users[r.IntN(len(o.Users))]
		if len(removed) > 0 && r.IntN(3) == 0 {
			u = removed[r.IntN(len(removed))] // added back: the same body again
		}
		var s Step
		if r.IntN(5) == 0 {
			s = l.Other(r, u, t)
		} else {
			s = l.Move(r, u, t)
			if !s.In {
				removed = append(removed, u)
			}
		}
		if o.ForgeOneIn > 0 && r.IntN(o.ForgeOneIn) == 0 {
			s = Forge(s)
		}
		sc.Steps = append(sc.Steps, s)
	}
	if o.DeleteOneIn > 0 && r.IntN(o.DeleteOneIn) == 0 {
		t += 1 + int64(r.IntN(8))
		sc.Steps = append(sc.Steps, l.Delete(t))
	}
	sc.Members, sc.Deleted = sc.final()
	return sc
}

// final returns the members the steps end with and whether the group ends
// deleted.
func (sc Scenario) final() ([]string, bool) {
	var facts []Fact
	for _, s := range sc.Steps {
		facts = append(facts, s.Fact())
	}
	e := Expect(facts)
	return e.Members[sc.GUID], e.Deleted[sc.GUID]
}

// Fact is what one CometChat event did to a group.
type Fact struct {
	// GUID is the group.
	GUID string
	// UIDs are the members it names.
	UIDs []string
	// In reports whether they are members afterwards.
	In bool
	// At is when it happened in CometChat.
	At int64
	// Delete reports a deletion of the group.
	Delete bool
	// Moves reports that it decides its members (see Step.Moves).
	Moves bool
}

// Expectation is what a set of facts makes of each group.
type Expectation struct {
	// Members are each group's sorted members (an empty list for a group
	// whose facts leave nobody).
	Members map[string][]string
	// Deleted reports the groups a deletion ended.
	Deleted map[string]bool
	// Decider is, per (group, uid), the index in the facts of the fact that
	// decided the member.
	Decider map[[2]string]int
}

// Expect returns what facts make of their groups: per member, the moving
// fact with the latest At decides (the later one in the list on a tie); a
// deletion ends the group (histories end with it; a group id used again is
// not modelled).
func Expect(facts []Fact) Expectation {
	e := Expectation{Members: map[string][]string{}, Deleted: map[string]bool{}, Decider: map[[2]string]int{}}
	later := func(i, j int) bool { // fact i happened after fact j
		return facts[i].At > facts[j].At || (facts[i].At == facts[j].At && i > j)
	}
	deletedAt := map[string]int{}
	for i, f := range facts {
		if _, ok := e.Members[f.GUID]; !ok {
			e.Members[f.GUID] = nil
		}
		if f.Delete {
			if d, ok := deletedAt[f.GUID]; !ok || later(i, d) {
				deletedAt[f.GUID] = i
			}
			continue
		}
		if !f.Moves {
			continue
		}
		for _, u := range f.UIDs {
			k := [2]string{f.GUID, u}
			if d, ok := e.Decider[k]; !ok || later(i, d) {
				e.Decider[k] = i
			}
		}
	}
	for k, i := range e.Decider {
		if _, gone := deletedAt[k[0]]; !gone && facts[i].In {
			e.Members[k[0]] = append(e.Members[k[0]], k[1])
		}
	}
	for g := range deletedAt {
		e.Deleted[g] = true
		e.Members[g] = nil
	}
	for g := range e.Members {
		sort.Strings(e.Members[g])
	}
	return e
}

// Delivery is one copy of an event as the queue stores it.
type Delivery struct {
	// At is when it arrived (Unix seconds): Event.Received.
	At int64
	// Tie orders deliveries of the same second.
	Tie int
	// Step is the index of the step in its scenario.
	Step int
	// Event is the event as received: clamped when forged, Received set.
	Event groupsync.Event
	// Copy reports a further copy of an event already delivered.
	Copy bool
}

// DeliverOptions shape Deliver.
type DeliverOptions struct {
	// Offset is added to every arrival time (to receive a history from the
	// past now, for instance).
	Offset int64
	// MaxSkew is the webhook receiver's allowed clock skew (default 5
	// minutes), used to clamp forged times.
	MaxSkew int64
	// InOrder delivers each event when it happened and its copies right
	// after it: nothing arrives out of order, so no order is left for
	// CometChat's REST API to decide.
	InOrder bool
}

// Deliver returns the deliveries of sc as CometChat makes them: each event
// arrives when it happened or after its first or second retry (+10 s, +30
// s), and one in five arrives again 10 or 30 s later (a delivery answered too
// slowly). Forged times are clamped as the webhook receiver does.
func Deliver(r *rand.Rand, sc Scenario, o DeliverOptions) []Delivery {
	if o.MaxSkew == 0 {
		o.MaxSkew = 300
	}
	var ds []Delivery
	for i, s := range sc.Steps {
		if o.InOrder {
			ds = append(ds, received(s, i, s.At+o.Offset, o.MaxSkew, false, 2*i))
			if r.IntN(5) == 0 {
				ds = append(ds, received(s, i, s.At+o.Offset, o.MaxSkew, true, 2*i+1))
			}
			continue
		}
		d := []int64{0, 0, 0, 10, 30}[r.IntN(5)]
		ds = append(ds, received(s, i, s.At+d+o.Offset, o.MaxSkew, false, r.Int()))
		if r.IntN(5) == 0 {
			ds = append(ds, received(s, i, s.At+d+o.Offset+[]int64{10, 30}[r.IntN(2)], o.MaxSkew, true, r.Int()))
		}
	}
	SortDeliveries(ds)
	return ds
}

func received(s Step, i int, at, maxSkew int64, copied bool, tie int) Delivery {
	ev := s.Event
	ev.Members = slices.Clone(ev.Members)
	j := groupsync.Job{Event: ev}
	j.ReceivedAt = time.Unix(at, 0)
	j.ClampTimes(time.Duration(maxSkew) * time.Second)
	j.Event.Received = at
	return Delivery{At: at, Tie: tie, Step: i, Event: j.Event, Copy: copied}
}

// SortDeliveries orders ds by arrival.
func SortDeliveries(ds []Delivery) {
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].At != ds[j].At {
			return ds[i].At < ds[j].At
		}
		return ds[i].Tie < ds[j].Tie
	})
}

// LoadScenarios reads the named seed scenarios of a JSON file (a list of
// Scenario); their Members and Deleted are computed from the steps, and a
// file that says otherwise is an error.
func LoadScenarios(path string) ([]Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("groupsynctest: %w", err)
	}
	var scs []Scenario
	if err := json.Unmarshal(b, &scs); err != nil {
		return nil, fmt.Errorf("groupsynctest: %s: %w", path, err)
	}
	for i := range scs {
		members, deleted := scs[i].final()
		if !slices.Equal(members, scs[i].Members) || deleted != scs[i].Deleted {
			return nil, fmt.Errorf("groupsynctest: %s: scenario %q says members %v deleted %v, its steps make %v %v",
				path, scs[i].Name, scs[i].Members, scs[i].Deleted, members, deleted)
		}
	}
	return scs, nil
}
