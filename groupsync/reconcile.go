package groupsync

import "sort"

// Snapshot is one group as CometChat's REST API showed it at one moment: the
// truth a reconcile brings the Virgil group in line with.
type Snapshot struct {
	// GUID is the CometChat group id.
	GUID string
	// Exists is false when CometChat no longer has the group.
	Exists bool
	// Members are the uids of the group's members (any order).
	Members []string
	// At is when the snapshot was read, in Unix seconds. It stamps every
	// member the reconcile decides, so events older than the snapshot are
	// stale against it and later ones win.
	At int64
}

// Drift is how the stored state differed from a Snapshot: what a reconcile
// repaired that no event had told groupsync.
type Drift struct {
	// Missing are the members CometChat has that the state did not hold as
	// members and the reconcile adds (lost add webhooks, lost state, or groups
	// that existed before groupsync), sorted.
	Missing []string
	// Extra are the members the state held that CometChat no longer has and
	// the reconcile removes (lost removal webhooks), sorted.
	Extra []string
	// Deleted reports a group the state held as existing that CometChat no
	// longer has (a lost deletion webhook).
	Deleted bool
	// Unknown counts the participants the Virgil group held that neither
	// CometChat nor the state named, removed by the plan's OpRetain step (a
	// change applied to Virgil whose stored state was then lost). Planning
	// cannot know them; whoever runs the plan fills it in.
	Unknown int
}

// Empty reports whether nothing drifted.
func (d Drift) Empty() bool {
	return len(d.Missing) == 0 && len(d.Extra) == 0 && !d.Deleted && d.Unknown == 0
}

// Reconcile returns the state after bringing the group in line with snap,
// read for the job with stream sequence seq, the Plan of Virgil changes that
// does it, and the drift it repairs. It is pure and deterministic and does
// not modify state.
//
// A group CometChat no longer has is deleted. Otherwise every member of the
// snapshot is added (a convergent add: members who already are participants
// cost nothing) and every other user the state knows, in or out, is removed
// (removing a non-participant costs nothing either), each decided at snap.At
// like an event of that time; a group without members besides the owner is
// created too. The plan ends with an OpRetain of the members the new state
// holds, so that participants nobody told the state about (a change applied
// to Virgil whose stored state was lost) leave as well. A group the state
// holds as deleted but CometChat has again starts afresh. The plan's Stale
// lists the users a later event decided, whom the reconcile leaves alone.
func Reconcile(state GroupState, snap Snapshot, seq uint64) (GroupState, Plan, Drift) {
	base := state
	if base.Lifecycle == LifecycleDeleted && snap.Exists {
		base = GroupState{GUID: state.GUID}
	}
	// The snapshot is received when it is read: an untimed event that
	// arrives soon after and flips a member it decided is rechecked
	// (docs/convergence.md).
	ev := Event{GUID: snap.GUID, UpdatedAt: snap.At, Received: snap.At, MembersCount: -1}
	out := Plan{GUID: snap.GUID}
	var drift Drift
	if !snap.Exists {
		drift.Deleted = base.Lifecycle == LifecycleExists
		ev.Trigger, ev.Action = TriggerGroupDeleted, ActionDelete
		next, plan := Apply(base, ev, seq)
		out.Steps = plan.Steps
		return next, out, drift
	}

	want := make(map[string]bool, len(snap.Members))
	add := ev
	add.Trigger, add.Action = TriggerReconcile, ActionAdd
	for _, uid := range snap.Members {
		if uid == "" || want[uid] {
			continue
		}
		want[uid] = true
		add.Members = append(add.Members, Member{UID: uid})
	}
	sort.Slice(add.Members, func(i, j int) bool { return add.Members[i].UID < add.Members[j].UID })
	next, plan := Apply(base, add, seq)
	out.Steps = append(out.Steps, plan.Steps...)
	out.Stale = append(out.Stale, plan.Stale...)
	for _, m := range add.Members {
		if next.Members[m.UID].In && !base.Members[m.UID].In {
			drift.Missing = append(drift.Missing, m.UID)
		}
	}

	// Every user the state knows beyond CometChat's members is removed, those
	// it holds as out too: the Virgil group may hold them all the same (a
	// change applied to Virgil whose state was then lost or re-planned), and
	// removing a non-participant changes nothing.
	rm := ev
	rm.Trigger, rm.Action = TriggerReconcile, ActionRemove
	wasIn := map[string]bool{}
	for uid, m := range next.Members {
		if !want[uid] {
			rm.Members = append(rm.Members, Member{UID: uid})
			wasIn[uid] = m.In
		}
	}
	sort.Slice(rm.Members, func(i, j int) bool { return rm.Members[i].UID < rm.Members[j].UID })
	if len(rm.Members) > 0 {
		next, plan = Apply(next, rm, seq)
		out.Steps = append(out.Steps, plan.Steps...)
		out.Stale = append(out.Stale, plan.Stale...)
		for _, s := range plan.Steps {
			for _, uid := range s.UIDs {
				if wasIn[uid] {
					drift.Extra = append(drift.Extra, uid)
				}
			}
		}
	}
	if len(out.Steps) == 0 {
		// Make sure the group exists even without members besides the owner.
		out.Steps = []Step{{Op: OpAdd}}
	}
	// Virgil may hold participants the state does not know at all: only
	// the members the new state holds stay (a later event's add included;
	// a later kick already removed its member).
	out.Steps = append(out.Steps, Step{Op: OpRetain, UIDs: next.Current()})
	return next, out, drift
}
