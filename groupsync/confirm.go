package groupsync

import (
	"slices"
	"sort"
)

// Confirm limits plan, the plan of an event, to the membership changes snap
// confirms, for events that may predate a loss of the stored state (a
// CometChat retry of an add from before the loss must not re-admit a member
// kicked since). next is the state Apply returned with plan; seq is the job's
// stream sequence. It is pure and does not modify next.
//
// An add (create, add, ensure) is kept for the members CometChat has now; a
// removal for the users CometChat does not have. A member whose add is
// dropped is recorded as out, with a removal step (the Virgil group may hold
// them from a run of the same job that the loss interrupted; removing a
// non-participant changes nothing), and one whose removal is dropped as in,
// with an ensure step, so the Virgil group holds both as CometChat does.
// Both are decided by the read, as a reconcile decides (Stamp.Snapshot, At
// and Recv snap.At): an event received before the read is stale against
// them, whatever time it carries, and one that flips them within
// RetryHorizon of the read is rechecked (docs/convergence.md). A kept change
// keeps its event's stamp. Other steps (delete, re-add) are kept. It returns
// the confirmed state and plan, and the uids whose change was dropped,
// sorted.
func Confirm(next GroupState, plan Plan, snap Snapshot, seq uint64) (GroupState, Plan, []string) {
	st := next.Clone()
	if st.Members == nil {
		st.Members = make(map[string]MemberState)
	}
	member := make(map[string]bool, len(snap.Members))
	if snap.Exists {
		for _, uid := range snap.Members {
			member[uid] = true
		}
	}
	// The read shows every event received before it; its time is on
	// groupsync's clock, which CometChat's may run ahead of.
	stamp := Stamp{At: snap.At, Seq: seq, Recv: snap.At, Snapshot: true}
	out := plan
	out.Steps = nil
	var dropped, ensure, remove []string
	for _, s := range plan.Steps {
		switch s.Op {
		case OpCreate, OpAdd, OpEnsure:
			var keep []string
			for _, uid := range s.UIDs {
				if member[uid] {
					keep = append(keep, uid)
					continue
				}
				dropped = append(dropped, uid)
				remove = append(remove, uid)
				st.Members[uid] = MemberState{In: false, Stamp: stamp}
			}
			switch {
			case len(keep) > 0, s.Op == OpCreate && snap.Exists, len(s.UIDs) == 0:
				out.Steps = append(out.Steps, Step{Op: s.Op, UIDs: keep})
			}
		case OpRemove:
			var keep []string
			for _, uid := range s.UIDs {
				if !member[uid] {
					keep = append(keep, uid)
					continue
				}
				dropped = append(dropped, uid)
				ensure = append(ensure, uid)
				st.Members[uid] = MemberState{In: true, Stamp: stamp}
			}
			if len(keep) > 0 {
				out.Steps = append(out.Steps, Step{Op: OpRemove, UIDs: keep})
			}
		default:
			out.Steps = append(out.Steps, s)
		}
	}
	if len(ensure) > 0 {
		sort.Strings(ensure)
		out.Steps = append(out.Steps, Step{Op: OpEnsure, UIDs: ensure})
	}
	if len(remove) > 0 {
		sort.Strings(remove)
		out.Steps = append(out.Steps, Step{Op: OpRemove, UIDs: slices.Compact(remove)})
	}
	sort.Strings(dropped)
	return st, out, dropped
}
