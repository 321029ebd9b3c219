package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/worker"
)

// TestUnauthenticatedJobChangesNothing is the attack of issue 11: a job
// published straight to NATS re-added a kicked member. Without the job key,
// with a wrong key or for another app, the job is dead-lettered as
// "unauthenticated job" and Virgil is not touched; a job signed with the
// previous key (a rotation under way) is applied.
func TestUnauthenticatedJobChangesNothing(t *testing.T) {
	previous := queue.JobKey("the-previous-worker-job-key-0123456789")
	e := newEnv(t, envOptions{queue: func(c *queue.Config) { c.PreviousJobKey = previous }})
	e.register("alice", "bob", "carol")
	counting := &countingVirgil{EncryptedGroups: e.groups}
	e.startPool(e.poolConfig(), nil, nil, counting)
	g := evt{guid: "kicked-stays-out", created: 1_718_000_000}
	T := g.created
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, T+10, "bob")))
	e.waitMembers(g.guid, "alice")
	e.waitSettled()
	before, _ := e.view(g.guid)
	calls := counting.total()

	readd := job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, T+20, "bob"))
	e.publishRaw(readd, "", readd.ID)
	wrongKey := queue.JobKey("a-key-the-attacker-made-0123456789abcdef")
	forged := job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, T+21, "bob"))
	b, _ := json.Marshal(forged)
	e.publishRaw(forged, wrongKey.Sign(b), forged.ID)
	foreign := g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, T+22, "bob")
	foreign.AppID = "another-cometchat-app"
	foreignJob := job(foreign)
	e.publishRaw(foreignJob, "sign", foreignJob.ID)
	e.waitSettled()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed, err := e.q.Failed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{readd.ID: true, forged.ID: true, foreignJob.ID: true}
	for _, f := range failed {
		if !want[f.ID] || f.Error != queue.ReasonUnauthenticated {
			t.Errorf("dead letter %s: %q, want one of the three forged jobs with %q", f.ID, f.Error, queue.ReasonUnauthenticated)
		}
		delete(want, f.ID)
	}
	if len(want) != 0 {
		t.Errorf("not dead-lettered: %v", want)
	}
	after, _ := e.view(g.guid)
	if fmt.Sprint(after) != fmt.Sprint(before) || counting.total() != calls {
		t.Errorf("forged jobs changed Virgil: %+v -> %+v, %d calls", before, after, counting.total()-calls)
	}

	// A job signed with the previous key is genuine.
	prevQ := e.openQueueWith(func(c *queue.Config) { c.JobKey, c.PreviousJobKey = previous, nil })
	if _, err := prevQ.Publish(ctx, job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, T+30, "carol"))); err != nil {
		t.Fatal(err)
	}
	e.waitMembers(g.guid, "alice", "carol")
}

// TestPoolRefusesQueueWithoutJobKey: a worker without a job key (or app id)
// does not start.
func TestPoolRefusesQueueWithoutJobKey(t *testing.T) {
	for name, mod := range map[string]func(*queue.Config){
		"NoKey":   func(c *queue.Config) { c.JobKey = nil },
		"NoAppID": func(c *queue.Config) { c.AppID = "" },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{kv: true})
			q := e.openQueueWith(mod)
			_, err := newPool(e, q)
			if !errors.Is(err, queue.ErrNoJobKey) {
				t.Fatalf("worker.New on a queue without key or app id = %v, want ErrNoJobKey", err)
			}
		})
	}
}

// openQueueWith opens another Queue on the test's streams with the test's
// config changed by mod.
func (e *env) openQueueWith(mod func(*queue.Config)) *queue.Queue {
	e.tb.Helper()
	cfg := e.qcfg
	mod(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, e.nc, cfg)
	if err != nil {
		e.tb.Fatalf("queue.Open: %v", err)
	}
	e.tb.Cleanup(func() { _ = q.Close() })
	return q
}

func newPool(e *env, q *queue.Queue) (*worker.Pool, error) {
	return worker.New(e.poolConfig(), q, e.store, e.groups)
}

// TestKVReplicasRefused: the KV store's buckets take the replica count too,
// and a count JetStream cannot give is a one-line ReplicasError.
func TestKVReplicasRefused(t *testing.T) {
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = worker.OpenKVStore(ctx, js, worker.KVConfig{Replicas: 3})
	var rerr *queue.ReplicasError
	if !errors.As(err, &rerr) || !errors.Is(err, queue.ErrInvalidConfig) || rerr.Stream != "KV_"+worker.DefaultKVJobsBucket {
		t.Fatalf("OpenKVStore(Replicas 3) on one server = %v, want a ReplicasError for KV_%s", err, worker.DefaultKVJobsBucket)
	}
}
