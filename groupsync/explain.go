package groupsync

import (
	"fmt"
	"strings"
	"time"
)

// Change is the last change applied to Virgil about one member, as the
// audit trail records it.
type Change struct {
	// Op is the change applied.
	Op Op
	// Trigger is the event's trigger.
	Trigger Trigger
	// By is the actor, "" when the event names none.
	By string
	// At is the event's time, zero when unknown.
	At time.Time
	// JobID is the job that applied it.
	JobID string
}

// MemberFacts is what groupsync knows about one user of a group, for
// ExplainMember.
type MemberFacts struct {
	// UID is the user.
	UID string
	// Group is the group's stored state.
	Group GroupState
	// Last is the last change about the user in the audit trail, nil when
	// none is recorded.
	Last *Change
	// InVirgil reports whether Virgil lists the user as a participant; nil
	// when Virgil was not read.
	InVirgil *bool
}

// ExplainMember says in one plain sentence, with its evidence, why the user
// is or is not a participant of the group.
func ExplainMember(f MemberFacts) string {
	m, known := f.Group.Members[f.UID]
	var b strings.Builder
	switch {
	case f.Group.Lifecycle == LifecycleDeleted:
		fmt.Fprintf(&b, "%s is not a participant: the group was deleted%s", f.UID, stampText(f.Group.Deleted))
	case !known:
		fmt.Fprintf(&b, "%s is not a participant: no event about them has reached groupsync", f.UID)
	case !m.In:
		fmt.Fprintf(&b, "%s is not a participant: %s; no later add", f.UID, decided(f.Last, OpRemove, "removed", m.Stamp))
	case m.Pending && m.PendingReason != "":
		fmt.Fprintf(&b, "%s is pending: their Virgil card was refused (%s; %s); they join once they have a valid card", f.UID, m.PendingReason, decided(f.Last, "", "added", m.Stamp))
	case m.Pending:
		fmt.Fprintf(&b, "%s is pending: they have no Virgil card yet (%s); they join when they first log in", f.UID, decided(f.Last, "", "added", m.Stamp))
	default:
		fmt.Fprintf(&b, "%s is a participant: %s", f.UID, decided(f.Last, "", "added", m.Stamp))
	}
	if f.InVirgil != nil {
		wantIn := known && m.In && !m.Pending && f.Group.Lifecycle != LifecycleDeleted
		switch {
		case *f.InVirgil && !wantIn:
			b.WriteString("; yet Virgil lists them as a participant: run groupsync reconcile")
		case !*f.InVirgil && wantIn:
			b.WriteString("; yet Virgil does not list them: look for a failed job, or run groupsync reconcile")
		}
	}
	return b.String()
}

// decided describes the event that decided a member: the audit trail's
// change when it has one of the right kind, else the stored stamp.
func decided(c *Change, want Op, verb string, s Stamp) string {
	if c != nil && (want == "" || c.Op == want) {
		out := verbOf(c)
		if c.By != "" {
			out += " by " + c.By
		}
		if !c.At.IsZero() {
			out += " at " + c.At.UTC().Format(time.RFC3339)
		}
		return out + ", job " + c.JobID
	}
	return verb + stampText(s)
}

func verbOf(c *Change) string {
	switch c.Trigger {
	case TriggerMemberKicked, TriggerMemberRemoved:
		return "kicked"
	case TriggerMemberBanned:
		return "banned"
	case TriggerMemberLeft:
		return "left"
	case TriggerMemberJoined:
		return "joined"
	case TriggerGroupCreated:
		return "added at the group's creation"
	case TriggerReconcile:
		return "set by a reconcile with CometChat"
	case TriggerCardCheck:
		return "given the group's key after a card check"
	}
	if c.Op == OpRemove {
		return "removed"
	}
	return "added"
}

func stampText(s Stamp) string {
	switch {
	case s.At != 0:
		return " at " + time.Unix(s.At, 0).UTC().Format(time.RFC3339)
	case s.Seq != 0:
		return fmt.Sprintf(" by the job at stream sequence %d", s.Seq)
	}
	return ""
}
