package groupsync

import (
	"context"
	"sort"
)

// TriggerCardCheck is not a CometChat trigger: it marks a job the worker
// makes itself when a group member's Virgil card appeared (Action
// ActionEnsure: finish a pending add) or changed (Action ActionReAdd). Such a
// job never decides membership: it acts only on users the stored state holds
// as members. The webhook receiver never accepts it from outside.
const TriggerCardCheck Trigger = "groupsync_card_check"

// ActionReAdd gives Event.Members the group's tickets again under their
// current Virgil card (their key changed). Only TriggerCardCheck jobs carry it.
const ActionReAdd Action = "readd"

// Op is one kind of change to a Virgil group.
type Op string

// The changes a Plan can ask for.
const (
	// OpCreate creates the group with Step.UIDs (converging to an add when
	// the group exists).
	OpCreate Op = "create"
	// OpAdd makes Step.UIDs participants, creating the group with them if it
	// does not exist in Virgil.
	OpAdd Op = "add"
	// OpEnsure is OpAdd for users who should already be participants (scope
	// change, owner transfer, a pending member whose card appeared): no key
	// change unless they were missing.
	OpEnsure Op = "ensure"
	// OpRemove takes Step.UIDs out of the group (new epoch for the rest). A
	// group missing in Virgil has nobody to remove.
	OpRemove Op = "remove"
	// OpDelete deletes the group.
	OpDelete Op = "delete"
	// OpReAdd gives Step.UIDs the group's tickets again under their current
	// card.
	OpReAdd Op = "readd"
	// OpRetain keeps Step.UIDs and the owner as the only participants: every
	// other participant the Virgil group holds is removed, whether or not the
	// stored state knows them (a change applied to Virgil whose state was
	// then lost). It never adds anyone. A group missing in Virgil has nobody
	// to remove.
	OpRetain Op = "retain"
)

// Step is one change of a Plan, in terms of CometChat uids.
type Step struct {
	// Op is the change.
	Op Op `json:"op"`
	// UIDs are the users it concerns, sorted (empty for OpDelete, and for an
	// OpCreate with no member besides the owner).
	UIDs []string `json:"uids,omitempty"`
}

// Plan is what one event requires of the Virgil group: only the changes the
// event describes, minus what stored state shows to be stale.
type Plan struct {
	// GUID is the CometChat group id.
	GUID string `json:"guid"`
	// Steps are the changes, to apply in order. Empty when the event changes
	// nothing.
	Steps []Step `json:"steps,omitempty"`
	// Stale lists the uids the event named but a later event had already
	// decided, so the plan leaves them alone.
	Stale []string `json:"stale,omitempty"`
	// Ignored explains why the event changes nothing at all, "" otherwise.
	Ignored string `json:"ignored,omitempty"`
	// Reconcile reports that the event cannot be trusted and the group must
	// be read from CometChat instead (ActionReconcile).
	Reconcile bool `json:"reconcile,omitempty"`
	// Repeated lists the uids whose deciding event the event repeats (same
	// content key): a CometChat retry, or a repeat that changes nothing.
	// The plan leaves them alone.
	Repeated []string `json:"repeated,omitempty"`
	// Recheck lists the uids whose membership the event flips in an order
	// that only the queue decided: one of the two events carries no time,
	// and they arrived within RetryHorizon of each other, so a CometChat
	// retry may have swapped them (a genuine re-add and a late retry of an
	// add from before a kick look alike); or the side it leaves was read
	// from CometChat within RetryHorizon before it arrived, and a read's
	// time cannot order it. The plan applies the event (a genuine repeat
	// must never be lost), except one that a read's time alone made stale
	// (CometChat's clock may run behind groupsync's), which it leaves stale
	// and lists in Stale too; a worker that can read CometChat's REST API
	// reconciles the group instead.
	Recheck []string `json:"recheck,omitempty"`
}

// Empty reports whether p asks for no Virgil change.
func (p Plan) Empty() bool { return len(p.Steps) == 0 && !p.Reconcile }

// Reasons a Plan ignores an event (Plan.Ignored).
const (
	IgnoredDeleted         = "group deleted"
	IgnoredOldIncarnation  = "event of an earlier incarnation of the group"
	IgnoredNoChange        = "no membership change"
	IgnoredAllStale        = "every member already decided by a later event"
	IgnoredRepeat          = "repeats the event that decided its members"
	IgnoredNotMembers      = "users are not members"
	IgnoredUnknownAction   = "unknown action"
	IgnoredNothingToRemove = "nobody to remove"
)

// Groups is the planner's port to Virgil groups, in terms of CometChat
// uids and guids. Every method is convergent: repeating a call, or resuming
// one that stopped halfway, leaves the group as one call would. Calls for one
// group must not run concurrently; different groups are independent.
type Groups interface {
	// Create creates the group with the owner and uids as participants; an
	// existing group converges to Add(uids). Users without a Virgil card are
	// left out and returned in Added.Pending.
	Create(ctx context.Context, guid string, uids []string) (Added, error)
	// Add makes uids participants, creating the group when it does not exist.
	// Users without a Virgil card are left out and returned in Added.Pending.
	Add(ctx context.Context, guid string, uids []string) (Added, error)
	// Remove takes uids out of the group: a new epoch for the others, then
	// their access to every epoch revoked. A missing group succeeds.
	Remove(ctx context.Context, guid string, uids []string) error
	// Delete deletes the group. A missing group succeeds.
	Delete(ctx context.Context, guid string) error
	// Retain removes every participant but the owner and uids (as Remove
	// does) and returns how many it removed. A missing group succeeds.
	Retain(ctx context.Context, guid string, uids []string) (removed int, err error)
}

// Added is the outcome of Groups.Create and Groups.Add.
type Added struct {
	// Pending are the uids without a Virgil card, left out.
	Pending []string
	// Refused gives, for uids of Pending whose cards were refused (no valid
	// Virgil signature), the reason.
	Refused map[string]string
	// CardIDs maps each uid given access to the id of the card its tickets
	// were made for.
	CardIDs map[string]string
}

// Cards is the port to Virgil cards, for members whose card appeared or
// changed.
type Cards interface {
	// CardIDs returns the current Virgil card id of each uid that has a card;
	// uids without one are absent from the map.
	CardIDs(ctx context.Context, uids []string) (map[string]string, error)
	// ReAdd gives uids, current members, the group's tickets again under
	// their current cards.
	ReAdd(ctx context.Context, guid string, uids []string) error
}

// EncryptedGroups are the end-to-end encrypted groups groupsync keeps in
// step with CometChat's: their membership (Groups) and the cards their
// members' tickets are made for (Cards). The worker changes them;
// worker.VirgilGroups implements it on Virgil E3Kit groups.
type EncryptedGroups interface {
	Groups
	Cards
}

// Apply returns the state after event ev, carried by the job with stream
// sequence seq, and the Plan of Virgil changes the event requires. It is pure
// and deterministic and does not modify state.
//
// Each member an event names is decided by the last event about them
// (Stamp.After: the body's time, then seq): an add older than a kick of the
// same user is stale, and so is a kick older than a later add. A deleted
// group stays deleted against late events of the same incarnation. Plans
// only ever contain users the event names, so an empty state (lost, or a
// group never seen) applies the event as it stands.
func Apply(state GroupState, ev Event, seq uint64) (GroupState, Plan) {
	st := state.Clone()
	if st.GUID == "" {
		st.GUID = ev.GUID
	}
	if st.Members == nil {
		st.Members = make(map[string]MemberState)
	}
	plan := Plan{GUID: ev.GUID}

	if ev.Trigger == TriggerCardCheck {
		return st, planCardCheck(st, ev, plan)
	}

	// A guid reused after a deletion starts a new incarnation; events of an
	// earlier one are stale.
	if ev.CreatedAt != 0 {
		switch {
		case st.Incarnation != 0 && ev.CreatedAt < st.Incarnation:
			plan.Ignored = IgnoredOldIncarnation
			return st, plan
		case st.Incarnation != 0 && ev.CreatedAt > st.Incarnation:
			// The guid was reused. If the deletion of the earlier group has not
			// arrived yet, delete that group first so none of its members or
			// tickets carry over.
			if st.Lifecycle != LifecycleDeleted {
				plan.Steps = append(plan.Steps, Step{Op: OpDelete})
			}
			st = GroupState{GUID: st.GUID, Members: make(map[string]MemberState)}
		}
		st.Incarnation = ev.CreatedAt
	}
	if st.Lifecycle == LifecycleDeleted {
		plan.Ignored = IgnoredDeleted
		return st, plan
	}

	switch ev.Action {
	case ActionCreate:
		st.Lifecycle = LifecycleExists
		var in []string
		in, plan = decide(&st, ev, seq, true, plan)
		if len(in) == 0 && len(plan.Repeated) > 0 && state.Lifecycle == LifecycleExists {
			plan.Ignored = IgnoredRepeat
			break
		}
		plan.Steps = append(plan.Steps, Step{Op: OpCreate, UIDs: in})
	case ActionAdd, ActionEnsure:
		st.Lifecycle = LifecycleExists
		var in []string
		in, plan = decide(&st, ev, seq, true, plan)
		op := OpAdd
		if ev.Action == ActionEnsure {
			op = OpEnsure
		}
		switch {
		case len(in) > 0:
			plan.Steps = append(plan.Steps, Step{Op: op, UIDs: in})
		case len(plan.Stale) > 0:
			plan.Ignored = IgnoredAllStale
		case len(plan.Repeated) > 0:
			plan.Ignored = IgnoredRepeat
		default:
			plan.Ignored = IgnoredNoChange
		}
	case ActionRemove:
		var out []string
		out, plan = decide(&st, ev, seq, false, plan)
		switch {
		case len(out) > 0:
			plan.Steps = append(plan.Steps, Step{Op: OpRemove, UIDs: out})
		case len(plan.Stale) > 0:
			plan.Ignored = IgnoredAllStale
		case len(plan.Repeated) > 0:
			plan.Ignored = IgnoredRepeat
		default:
			plan.Ignored = IgnoredNothingToRemove
		}
	case ActionDelete:
		stamp := Stamp{At: eventTime(ev, Member{}), Seq: seq}
		st.Lifecycle = LifecycleDeleted
		st.Deleted = stamp
		for uid, m := range st.Members {
			if m.In {
				st.Members[uid] = MemberState{In: false, Stamp: stamp}
			}
		}
		plan.Steps = append(plan.Steps, Step{Op: OpDelete})
	case ActionNone:
		plan.Ignored = IgnoredNoChange
	case ActionReconcile:
		plan.Reconcile = true
	default:
		plan.Ignored = IgnoredUnknownAction
	}
	return st, plan
}

// subjects returns the uids an event is about: its members, or for an
// ownership transfer without members, the new owner.
func subjects(ev Event) []Member {
	if len(ev.Members) > 0 {
		return ev.Members
	}
	if ev.Action == ActionEnsure && ev.Owner != "" {
		return []Member{{UID: ev.Owner}}
	}
	return nil
}

// eventTime is the time of ev as it concerns member m: the group's
// updatedAt, else the member's joinedAt, else (for a creation) createdAt.
func eventTime(ev Event, m Member) int64 {
	switch {
	case ev.UpdatedAt != 0:
		return ev.UpdatedAt
	case m.JoinedAt != 0:
		return m.JoinedAt
	case ev.Action == ActionCreate:
		return ev.CreatedAt
	}
	return 0
}

// RetryHorizon bounds how late a CometChat retry arrives after the first
// delivery of its event: CometChat retries at +10 s and +30 s, each attempt
// waiting for an answer; the horizon leaves room for both. Two events that
// arrived further apart than this were not swapped by retries.
const RetryHorizon = 2 * 60

// keyLen is how many hex digits of an event's content key a MemberState
// keeps: 64 bits tell one member's events apart.
const keyLen = 16

// decide records the event's verdict (in or out) on each member it names
// whose last decision is older, and returns the sorted uids it decided; it
// adds to plan the uids it found stale, repeated or to be rechecked
// (docs/convergence.md, "De-duplication").
func decide(st *GroupState, ev Event, seq uint64, in bool, plan Plan) ([]string, Plan) {
	key := IdempotencyKey(ev)[:keyLen]
	var decided []string
	for _, m := range subjects(ev) {
		if m.UID == "" {
			continue
		}
		stamp := Stamp{At: eventTime(ev, m), Seq: seq, Recv: ev.Received, Snapshot: ev.Trigger == TriggerReconcile}
		cur, known := st.Members[m.UID]
		if known && cur.Key == key && cur.In == in && cur.Stamp.eventAt() == stamp.At {
			if stamp.Seq == cur.Stamp.Seq {
				// The very job that decided the member, again (a redelivery
				// whose first run did not finish): apply it again.
				decided = append(decided, m.UID)
				continue
			}
			// Another delivery of the event that decided the member (a
			// CometChat retry): the member is already as it says. Its
			// arrival is remembered for the retry horizon.
			cur.Stamp.Recv = max(cur.Stamp.Recv, stamp.Recv)
			if stamp.At == 0 {
				cur.Stamp.UntimedRecv = max(cur.Stamp.UntimedRecv, stamp.Recv)
			}
			st.Members[m.UID] = cur
			plan.Repeated = append(plan.Repeated, m.UID)
			continue
		}
		if known && !stamp.After(cur.Stamp) {
			plan.Stale = append(plan.Stale, m.UID)
			if cur.In != in && behindRead(stamp, cur.Stamp) {
				// Stale against a read only by a time that CometChat's
				// clock, running behind groupsync's, may have put before
				// the read: left stale unless CometChat is asked.
				plan.Recheck = append(plan.Recheck, m.UID)
			}
			continue
		}
		if known && cur.In != in && swappable(stamp, cur.Stamp) {
			plan.Recheck = append(plan.Recheck, m.UID)
		}
		next := MemberState{In: in, Stamp: stamp, Key: key}
		if stamp.At == 0 {
			next.Stamp.Untimed, next.Stamp.UntimedRecv = true, stamp.Recv
		}
		if known && cur.In == in {
			if stamp.At == 0 {
				// No change of side, and no time: the member has been on
				// this side since the current decision's time at least, so
				// keep it (a late event older than that stays stale).
				next.Stamp.At = cur.Stamp.At
			}
			// An earlier event to this effect without a time may still have
			// been swapped with a later flip.
			next.Stamp.UntimedRecv = max(next.Stamp.UntimedRecv, cur.Stamp.UntimedRecv)
		}
		if in && known && cur.In {
			// Still a member: keep what we know of their card.
			next.Pending, next.CardID = cur.Pending, cur.CardID
		}
		st.Members[m.UID] = next
		decided = append(decided, m.UID)
	}
	sort.Strings(decided)
	sort.Strings(plan.Stale)
	sort.Strings(plan.Repeated)
	sort.Strings(plan.Recheck)
	return decided, plan
}

// swappable reports whether CometChat's retries may have delivered a flip
// stamped a and the side it leaves, stamped b, in the wrong order while their
// stamps cannot tell: a has no time and arrived within RetryHorizon of b, or
// b's side was confirmed by an event without a time that arrived within
// RetryHorizon of a, or b is a read of CometChat made within RetryHorizon
// before a arrived. A read's time is on groupsync's clock and CometChat's may
// run ahead of it, so a flip received soon after the read may be a retry of
// an event the read already showed superseded, whatever time it carries (the
// read outranked, by receipt, the later event that had decided the member).
func swappable(a, b Stamp) bool {
	near := func(x, y int64) bool { return x != 0 && y != 0 && x-y <= RetryHorizon && y-x <= RetryHorizon }
	return (a.At == 0 && near(a.Recv, b.Recv)) || near(a.Recv, b.UntimedRecv) || (b.Snapshot && near(a.Recv, b.Recv))
}

// behindRead reports whether an event stamped a, which a read of CometChat
// stamped b outranks, may nonetheless have happened after the read: a was
// received in the second of the read or after it, within RetryHorizon, and
// is outranked only by its time. The read's time is on groupsync's clock
// and CometChat's may run behind it, so an event that happened just after
// the read can carry a time before it; a retry of an event from before the
// read (CometChat retries within the horizon) looks the same.
func behindRead(a, b Stamp) bool {
	return b.Snapshot && !a.Snapshot && a.At != 0 && b.Recv != 0 && a.Recv >= b.Recv && a.Recv-b.Recv <= RetryHorizon
}

// planCardCheck plans a TriggerCardCheck job: finish pending adds (ensure) or
// re-add members whose card changed, for users the state holds as members.
func planCardCheck(st GroupState, ev Event, plan Plan) Plan {
	if st.Lifecycle == LifecycleDeleted {
		plan.Ignored = IgnoredDeleted
		return plan
	}
	var uids []string
	for _, m := range ev.Members {
		if cur, ok := st.Members[m.UID]; ok && cur.In {
			uids = append(uids, m.UID)
		}
	}
	sort.Strings(uids)
	if len(uids) == 0 {
		plan.Ignored = IgnoredNotMembers
		return plan
	}
	switch ev.Action {
	case ActionEnsure:
		plan.Steps = []Step{{Op: OpEnsure, UIDs: uids}}
	case ActionReAdd:
		plan.Steps = []Step{{Op: OpReAdd, UIDs: uids}}
	default:
		plan.Ignored = IgnoredUnknownAction
	}
	return plan
}
