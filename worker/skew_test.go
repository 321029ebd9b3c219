package worker_test

import (
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
)

// TestFlipCheckedWithCometChatAfterEventAheadOfClock: CometChat's clock runs
// ahead of the worker's (within the allowed skew), so bob's join carries a
// time later than the worker's own. His leave carries no time, so the flip
// is checked with CometChat's REST API. The read no longer lists him and was
// made after the join was received, so bob must leave the Virgil group.
// Before, the read, stamped on the worker's clock, was older than the join
// and the removal was dropped as stale: bob stayed a participant, and once
// the store lost its data no later reconcile knew to remove him.
func TestFlipCheckedWithCometChatAfterEventAheadOfClock(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	fake, cc := e.cometChat()
	cfg := e.poolConfig()
	cfg.Reconciler, cfg.Meta = cc, e.meta()
	e.startPool(cfg, nil, nil, nil)

	now := time.Now().Unix()
	g := evt{guid: "skewed-group", created: now - 3600}
	fake.SetGroup(g.guid, "alice", "bob")
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")),
		job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, now+30, "bob")))
	e.waitMembers(g.guid, "alice", "bob")
	e.waitSettled()

	fake.SetGroup(g.guid, "alice")
	e.publish(job(g.ev(groupsync.TriggerMemberLeft, groupsync.ActionRemove, 0, "bob")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
}
