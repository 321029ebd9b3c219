package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/worker"
	"github.com/groupsync/groupsync/worker/redistest"
)

// cuttableStore fails every call once cut, as a crashed process's store
// connection would.
type cuttableStore struct {
	worker.Store
	cut atomic.Bool
}

func (s *cuttableStore) Acquire(ctx context.Context, id string, l worker.Lease, ttl time.Duration) (worker.LeaseStatus, error) {
	if s.cut.Load() {
		return 0, errCut
	}
	return s.Store.Acquire(ctx, id, l, ttl)
}

func (s *cuttableStore) Extend(ctx context.Context, id string, l worker.Lease, ttl time.Duration) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.Extend(ctx, id, l, ttl)
}

func (s *cuttableStore) Release(ctx context.Context, id string, l worker.Lease) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.Release(ctx, id, l)
}

func (s *cuttableStore) Commit(ctx context.Context, c worker.Commit) error {
	if s.cut.Load() {
		return errCut
	}
	return s.Store.Commit(ctx, c)
}

// stallingVirgil applies a Remove of guid for real, reports it, then hangs
// until its context ends: a worker dying between Virgil and the commit.
type stallingVirgil struct {
	groupsync.EncryptedGroups
	guid    string
	applied chan struct{}
	once    sync.Once
}

func (s *stallingVirgil) Remove(ctx context.Context, guid string, uids []string) error {
	if err := s.EncryptedGroups.Remove(ctx, guid, uids); err != nil || guid != s.guid {
		return err
	}
	s.once.Do(func() { close(s.applied) })
	<-ctx.Done()
	return ctx.Err()
}

// TestWorkerKilledMidJob: a worker dies after changing Virgil and before
// committing; another worker takes the job over once the lease and the ack
// wait run out, finishes it, and the removal happens once.
func TestWorkerKilledMidJob(t *testing.T) {
	e := newEnv(t, envOptions{queue: func(c *queue.Config) { c.AckWait = 2 * time.Second }})
	e.register("alice", "bob", "carol")
	g := evt{guid: "crash-group", created: 1_718_000_000}
	cfg := e.poolConfig()
	cfg.LeaseTTL = 2 * time.Second

	// Worker B sets up the group, then stops.
	_, stopB := e.startPool(cfg, nil, nil, nil)
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob", "carol")))
	before := e.waitMembers(g.guid, "alice", "bob", "carol")
	e.waitSettled()
	stopB()

	// Worker A, on its own connections, takes the kick and dies halfway.
	ncA := e.connect()
	storeA := &cuttableStore{Store: e.store}
	stall := &stallingVirgil{EncryptedGroups: e.groups, guid: g.guid, applied: make(chan struct{})}
	cfgA := cfg
	cfgA.WorkerID = "worker-a"
	poolA, _ := e.startPool(cfgA, e.openQueue(ncA), storeA, stall)
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, g.created+10, "bob")))
	select {
	case <-stall.applied:
	case <-time.After(20 * time.Second):
		t.Fatal("worker A never applied the removal")
	}
	mid := e.waitMembers(g.guid, "alice", "carol")
	storeA.cut.Store(true)
	ncA.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_ = poolA.Stop(ctx) // cancels the stalled job; its nak and release fail
	cancel()

	// Worker C finishes the job.
	cv := &countingVirgil{EncryptedGroups: e.groups}
	cfgC := cfg
	cfgC.WorkerID = "worker-c"
	e.startPool(cfgC, nil, nil, cv)
	e.waitSettled()
	if cv.removes.Load() == 0 {
		t.Fatal("worker C never ran the kick again")
	}
	after := e.waitMembers(g.guid, "alice", "carol")
	if len(after.Epochs) != len(before.Epochs)+1 || !slices.Equal(after.Epochs, mid.Epochs) {
		t.Fatalf("epochs: before %v, after A %v, after C %v; want exactly one new epoch", before.Epochs, mid.Epochs, after.Epochs)
	}
	st, _, err := e.store.Group(context.Background(), g.guid)
	if err != nil || st.Members["bob"].In {
		t.Fatalf("stored state after takeover = %+v, %v; want bob out", st.Members, err)
	}
}

// TestRedisRestart: with persistence, done jobs stay done across a Redis
// restart; without it (data lost), replaying every job changes nothing in
// Virgil (invariant 5: the replays are checked with CometChat), and new
// events still apply.
func TestRedisRestart(t *testing.T) {
	for _, persist := range []bool{true, false} {
		name := "Empty"
		var opts []redistest.Option
		if persist {
			name = "WithData"
			opts = append(opts, redistest.WithPersistence())
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{redis: opts})
			e.register("alice", "bob", "carol", "dave")
			cv := &countingVirgil{EncryptedGroups: e.groups}
			g := evt{guid: "redis-restart", created: 1_718_000_000}
			cc := &fakeCometChat{groups: map[string][]string{g.guid: {"alice", "carol", "pending-pat"}}}
			cfg := e.poolConfig()
			cfg.Reconciler = cc
			e.startPool(cfg, nil, nil, cv)
			jobs := []groupsync.Job{
				job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")),
				job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, "carol", "pending-pat")),
				job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, g.created+30, "bob")),
			}
			e.publish(jobs...)
			before := e.waitMembers(g.guid, "alice", "carol")
			e.waitSettled()
			calls := cv.total()

			e.redis.Restart()
			// The jobs in flight at the loss arrive again: no change at all.
			for _, j := range jobs[1:] {
				e.publishCopy(j)
			}
			e.waitSettled()
			after := e.waitMembers(g.guid, "alice", "carol")
			if !slices.Equal(after.Epochs, before.Epochs) {
				t.Fatalf("epochs after replay = %v, want %v", after.Epochs, before.Epochs)
			}
			if persist && cv.total() != calls {
				t.Fatalf("replayed done jobs made %d Virgil calls, want none", cv.total()-calls)
			}
			if !persist && cv.total() == calls {
				t.Fatal("with Redis emptied the replay made no Virgil call: the restart lost nothing?")
			}
			// Replaying the whole history converges to the same members (without
			// state, the replayed creation may re-add bob until his kick replays).
			for _, j := range jobs {
				e.publishCopy(j)
			}
			e.waitSettled()
			e.waitMembers(g.guid, "alice", "carol")
			// New events apply as usual.
			cc.mu.Lock()
			cc.groups[g.guid] = []string{"carol", "dave", "pending-pat"}
			cc.mu.Unlock()
			e.publish(
				job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, g.created+40, "dave")),
				job(g.ev(groupsync.TriggerMemberLeft, groupsync.ActionRemove, g.created+50, "alice")),
			)
			e.waitMembers(g.guid, "carol", "dave")
		})
	}
}

// TestRedisOutage: jobs wait while Redis is down and apply once it is back.
func TestRedisOutage(t *testing.T) {
	e := newEnv(t, envOptions{redis: []redistest.Option{redistest.WithPersistence()}})
	e.register("alice", "bob")
	e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "redis-outage", created: 1_718_000_000}
	e.redis.Kill()
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
	// The job cannot complete without its lease.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eventually(t, 10*time.Second, func() (bool, string) {
		st, err := e.q.Stats(ctx)
		return err == nil && st.Jobs == 1, fmt.Sprintf("stats %+v, %v", st, err)
	})
	if _, ok := e.view(g.guid); ok {
		t.Fatal("the group was created without a lease")
	}
	e.redis.Restart()
	e.waitMembers(g.guid, "alice", "bob")
	e.waitSettled()
}

// TestNATSRestart: the pool survives a NATS restart and takes jobs queued
// afterwards; jobs stored before the restart are not lost.
func TestNATSRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "nats-restart", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	e.waitMembers(g.guid, "alice")
	e.nats.Restart()
	eventually(t, 10*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := e.q.Publish(ctx, job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, g.created+10, "bob")))
		return err == nil, "publish after restart: " + errString(err)
	})
	e.waitMembers(g.guid, "alice", "bob")
}

// stoppingStore runs stop once, right after the first commit succeeds: NATS
// going away between a job's completion and its ack.
type stoppingStore struct {
	worker.Store
	once sync.Once
	stop func()
}

func (s *stoppingStore) Commit(ctx context.Context, c worker.Commit) error {
	err := s.Store.Commit(ctx, c)
	if err == nil {
		s.once.Do(s.stop)
	}
	return err
}

// TestLostAckFoundDone: NATS goes down right after a job is committed and
// stays down past the ack wait, so its ack is sent again and again and
// never confirmed. Once NATS is back the job is redelivered and found done:
// acknowledged as a duplicate, with nothing applied to Virgil a second time.
func TestLostAckFoundDone(t *testing.T) {
	e := newEnv(t, envOptions{queue: func(c *queue.Config) { c.AckWait = 2 * time.Second }})
	e.register("alice", "bob")
	reg := prometheus.NewRegistry()
	cfg := e.poolConfig()
	cfg.Registerer = reg
	cv := &countingVirgil{EncryptedGroups: e.groups}
	store := &stoppingStore{Store: e.store, stop: e.nats.Shutdown}
	e.startPool(cfg, nil, store, cv)
	g := evt{guid: "lost-ack", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))

	eventually(t, 30*time.Second, func() (bool, string) {
		n := counterSum(t, reg, "groupsync_worker_ack_failures_total")
		return n == 1, fmt.Sprintf("%v acks given up, want 1", n)
	})
	if n := counterSum(t, reg, "groupsync_worker_ack_retries_total"); n < 1 {
		t.Errorf("the ack was sent again %v times while NATS was down, want at least once", n)
	}
	calls := cv.total()
	e.nats.Restart()
	e.waitSettled()
	eventually(t, 10*time.Second, func() (bool, string) {
		missing := missingMetrics(t, reg, "groupsync_worker_jobs_total/result=duplicate")
		return len(missing) == 0, "the redelivered job was not acknowledged as a duplicate"
	})
	if got := cv.total(); got != calls {
		t.Fatalf("the redelivery made %d more Virgil calls, want none", got-calls)
	}
	e.waitMembers(g.guid, "alice", "bob")
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("failed jobs: %+v", failed)
	}
}

// TestVirgilFaults: 5xx, 429 with Retry-After and slow answers for a while;
// every job still applies, exactly once in Virgil terms.
func TestVirgilFaults(t *testing.T) {
	faults := []struct {
		name  string
		fault emulator.Fault
		lasts time.Duration
	}{
		{"ServerErrors", emulator.Fault{Status: 503}, 1500 * time.Millisecond},
		{"TooManyRequests", emulator.Fault{Status: 429, RetryAfter: time.Second, Every: 2}, 3 * time.Second},
		{"Slow", emulator.Fault{Delay: 300 * time.Millisecond}, 2 * time.Second},
		{"EveryThirdFails", emulator.Fault{Status: 500, Every: 3}, 3 * time.Second},
	}
	for _, tt := range faults {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.register("alice", "bob", "carol")
			e.startPool(e.poolConfig(), nil, nil, nil)
			g := evt{guid: "faulty-" + strings.ToLower(tt.name), created: 1_718_000_000}
			f := tt.fault
			f.Until = time.Now().Add(tt.lasts)
			e.emu.SetFault(f)
			e.publish(
				job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")),
				job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, "carol")),
				job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, g.created+30, "bob")),
			)
			v := e.waitMembers(g.guid, "alice", "carol")
			e.waitSettled()
			if len(v.Epochs) != 2 {
				t.Fatalf("epochs = %v, want 2 (creation, one removal)", v.Epochs)
			}
			if s := e.emu.Stats(); s.Faults == 0 && s.Delayed == 0 {
				t.Fatalf("emulator stats %+v: the fault never hit", s)
			}
		})
	}
}

// TestDeadLetterThenRetry: a job failing on every delivery is dead-lettered
// with its reason; once the cause is gone, Retry applies it.
func TestDeadLetterThenRetry(t *testing.T) {
	e := newEnv(t, envOptions{queue: func(c *queue.Config) { c.MaxDeliver = 3 }})
	e.register("alice")
	cfg := e.poolConfig()
	cfg.Retries = 1
	e.startPool(cfg, nil, nil, nil)
	g := evt{guid: "dead-letter", created: 1_718_000_000}
	e.emu.SetFault(emulator.Fault{Status: 503})
	j := job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice"))
	e.publish(j)
	ctx := context.Background()
	var failed []queue.FailedJob
	eventually(t, 30*time.Second, func() (bool, string) {
		var err error
		failed, err = e.q.Failed(ctx)
		return err == nil && len(failed) == 1, fmt.Sprintf("failed jobs %+v, %v", failed, err)
	})
	if f := failed[0]; f.ID != j.ID || f.Attempts != 3 || !strings.Contains(f.Error, "failed 3 deliveries") || f.GUID != g.guid {
		t.Fatalf("dead letter = %+v, want job %s after 3 attempts with the reason", f, j.ID)
	}
	e.emu.ClearFault()
	if n, err := e.q.Retry(ctx, j.ID); err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v", n, err)
	}
	e.waitMembers(g.guid, "alice")
	if failed, _ := e.q.Failed(ctx); len(failed) != 0 {
		t.Fatalf("failed jobs after retry: %+v", failed)
	}
}

// TestPermanentFailuresDeadLetterAtOnce: a group past E3Kit's participant
// limit is refused on the first delivery with a clear reason, and other
// groups keep working.
func TestPermanentFailuresDeadLetterAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	e.startPool(e.poolConfig(), nil, nil, nil)
	big := evt{guid: "too-big", created: 1_718_000_000}
	var many []string
	for i := range 100 {
		many = append(many, fmt.Sprintf("user-%03d", i))
	}
	j := job(big.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, many...))
	other := evt{guid: "fine-group", created: 1_718_000_000}
	e.publish(j, job(other.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
	e.waitMembers(other.guid, "alice", "bob")
	ctx := context.Background()
	eventually(t, 20*time.Second, func() (bool, string) {
		failed, err := e.q.Failed(ctx)
		return err == nil && len(failed) == 1 && failed[0].Attempts == 1 && strings.Contains(failed[0].Error, "more than 100"),
			fmt.Sprintf("failed jobs %+v, %v", failed, err)
	})
	if _, ok := e.view(big.guid); ok {
		t.Fatal("the oversized group was created")
	}
}

// TestReconcileWithoutReconcilerDeadLetters: a reconcile job needs CometChat;
// without a Reconciler it is dead-lettered as "needs reconcile"; retried
// into a pool that has one, it brings Virgil in line.
func TestReconcileWithoutReconcilerDeadLetters(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob", "carol")
	_, stop := e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "reconcile-me", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
	e.waitMembers(g.guid, "alice", "bob")
	rec := job(groupsync.Event{Trigger: groupsync.TriggerReconcile, Action: groupsync.ActionReconcile, GUID: g.guid})
	e.publish(rec)
	ctx := context.Background()
	eventually(t, 20*time.Second, func() (bool, string) {
		failed, err := e.q.Failed(ctx)
		return err == nil && len(failed) == 1 && strings.HasPrefix(failed[0].Error, worker.ReasonNeedsReconcile),
			fmt.Sprintf("failed jobs %+v, %v", failed, err)
	})
	stop()

	cfg := e.poolConfig()
	cc := &fakeCometChat{groups: map[string][]string{g.guid: {"alice", "carol"}}}
	cfg.Reconciler = cc
	e.startPool(cfg, nil, nil, nil)
	if _, err := e.q.Retry(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	e.waitMembers(g.guid, "alice", "carol")

	// A group gone from CometChat is deleted.
	cc.mu.Lock()
	delete(cc.groups, g.guid)
	cc.mu.Unlock()
	e.publish(job(groupsync.Event{Trigger: groupsync.TriggerReconcile, Action: groupsync.ActionReconcile, GUID: g.guid, By: "second-run"}))
	e.waitDeleted(g.guid)
}

// fakeCometChat answers reconcile reads: guid -> members; a missing guid is
// a deleted group.
type fakeCometChat struct {
	mu     sync.Mutex
	groups map[string][]string
}

func (f *fakeCometChat) Members(_ context.Context, guid string) ([]string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.groups[guid]
	return slices.Clone(m), ok, nil
}

// TestJobTimeoutRetries: a delivery that overruns Config.JobTimeout is
// cancelled and handed back, and a later delivery completes the job.
func TestJobTimeoutRetries(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	cfg := e.poolConfig()
	cfg.JobTimeout = 400 * time.Millisecond
	e.startPool(cfg, nil, nil, nil)
	e.emu.SetFault(emulator.Fault{Delay: time.Second, Until: time.Now().Add(2 * time.Second)})
	g := evt{guid: "timeout-group", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	e.waitMembers(g.guid, "alice")
	e.waitSettled()
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("timeouts dead-lettered %+v", failed)
	}
	if s := e.emu.Stats(); s.Delayed == 0 {
		t.Fatalf("emulator stats %+v: no request was slowed", s)
	}
}
