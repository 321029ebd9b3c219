package worker_test

import (
	"context"
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
	fake, cfg := e.reconcilingConfig()
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

// TestEventBehindTheClockAfterAReadIsChecked: CometChat's clock runs behind
// the worker's (within the allowed skew). A reconcile reads the group with
// bob in; bob is then kicked, and the kick's webhook carries a time a few
// seconds before the read. By time alone the kick was stale against the
// read, and bob stayed a participant until the next scheduled reconcile.
// Received within the retry horizon after the read, it is checked with
// CometChat, so bob leaves at once; the same goes for his add back, whose
// time lies behind the check's own read.
func TestEventBehindTheClockAfterAReadIsChecked(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	fake, cfg := e.reconcilingConfig()
	e.startPool(cfg, nil, nil, nil)

	const behind = 5 // seconds CometChat's clock runs behind the worker's
	g := evt{guid: "behind-group", created: time.Now().Unix() - 3600}
	fake.SetGroup(g.guid, "alice", "bob")
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")),
		job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, time.Now().Unix()-60, "bob")),
		job(groupsync.Event{Trigger: groupsync.TriggerReconcile, Action: groupsync.ActionReconcile, GUID: g.guid}))
	e.waitSettled()
	e.waitMembers(g.guid, "alice", "bob")

	fake.SetGroup(g.guid, "alice")
	before := fake.Requests()
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, time.Now().Unix()-behind, "bob")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
	if fake.Requests() == before {
		t.Error("the kick behind the read was not checked with CometChat")
	}

	fake.SetGroup(g.guid, "alice", "bob")
	e.publish(job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, time.Now().Unix()-behind, "bob")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice", "bob")
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("dead-lettered %+v", failed)
	}
}
