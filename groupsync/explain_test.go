package groupsync

import (
	"testing"
	"time"
)

func TestExplainMember(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)
	yes, no := true, false
	group := GroupState{GUID: "g", Lifecycle: LifecycleExists, Members: map[string]MemberState{
		"carol": {In: false, Stamp: Stamp{At: at.Unix(), Seq: 9}},
		"dave":  {In: true, Pending: true, Stamp: Stamp{At: at.Unix(), Seq: 4}},
		"erin":  {In: true, Pending: true, PendingReason: "no valid Virgil signature", Stamp: Stamp{Seq: 5}},
		"bob":   {In: true, CardID: "c1", Stamp: Stamp{Seq: 2}},
	}}
	for _, tc := range []struct {
		name string
		f    MemberFacts
		want string
	}{
		{"kicked", MemberFacts{UID: "carol", Group: group, Last: &Change{Op: OpRemove, Trigger: TriggerMemberKicked, By: "alice", At: at, JobID: "j9"}},
			"carol is not a participant: kicked by alice at 2026-11-30T09:15:00Z, job j9; no later add"},
		{"removed without trail", MemberFacts{UID: "carol", Group: group},
			"carol is not a participant: removed at 2026-11-30T09:15:00Z; no later add"},
		{"pending", MemberFacts{UID: "dave", Group: group},
			"dave is pending: they have no Virgil card yet (added at 2026-11-30T09:15:00Z); they join when they first log in"},
		{"pending, not in Virgil", MemberFacts{UID: "dave", Group: group, InVirgil: &no},
			"dave is pending: they have no Virgil card yet (added at 2026-11-30T09:15:00Z); they join when they first log in"},
		{"refused card", MemberFacts{UID: "erin", Group: group},
			"erin is pending: their Virgil card was refused (no valid Virgil signature; added by the job at stream sequence 5); they join once they have a valid card"},
		{"participant", MemberFacts{UID: "bob", Group: group, Last: &Change{Op: OpAdd, Trigger: TriggerMemberAdded, By: "alice", JobID: "j2"}, InVirgil: &yes},
			"bob is a participant: added by alice, job j2"},
		{"participant missing in Virgil", MemberFacts{UID: "bob", Group: group, InVirgil: &no},
			"bob is a participant: added by the job at stream sequence 2; yet Virgil does not list them: look for a failed job, or run groupsync reconcile"},
		{"unknown", MemberFacts{UID: "zed", Group: group},
			"zed is not a participant: no event about them has reached groupsync"},
		{"unknown yet in Virgil", MemberFacts{UID: "zed", Group: group, InVirgil: &yes},
			"zed is not a participant: no event about them has reached groupsync; yet Virgil lists them as a participant: run groupsync reconcile"},
		{"deleted", MemberFacts{UID: "bob", Group: GroupState{Lifecycle: LifecycleDeleted, Deleted: Stamp{At: at.Unix()}, Members: group.Members}},
			"bob is not a participant: the group was deleted at 2026-11-30T09:15:00Z"},
	} {
		if got := ExplainMember(tc.f); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
