package worker_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/worker"
	"github.com/groupsync/groupsync/worker/redistest"
)

// storeFactories are the Store implementations the conformance suite runs
// against; each call returns a fresh, empty store.
var storeFactories = map[string]func(tb testing.TB) worker.Store{
	"Redis": func(tb testing.TB) worker.Store {
		return worker.NewRedisStore(mustRedis(tb, redistest.Start(tb)), "")
	},
	"KV": func(tb testing.TB) worker.Store {
		return mustKVStore(tb, natstest.Run(tb).URL())
	},
}

func mustRedis(tb testing.TB, s *redistest.Server) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: 1})
	tb.Cleanup(func() { c.Close() })
	return c
}

func mustKVStore(tb testing.TB, url string) *worker.KVStore {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatalf("connect to NATS: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := worker.OpenKVStore(ctx, js, worker.KVConfig{})
	if err != nil {
		tb.Fatalf("OpenKVStore: %v", err)
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestStoreConformance runs the Store contract against every implementation.
func TestStoreConformance(t *testing.T) {
	for name, open := range storeFactories {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Run("LeaseLifecycle", func(t *testing.T) { testLeaseLifecycle(t, s) })
			t.Run("LeaseExpires", func(t *testing.T) { testLeaseExpires(t, s) })
			t.Run("StaleWorkerCannotComplete", func(t *testing.T) { testStaleWorkerCannotComplete(t, s) })
			t.Run("CommitConflict", func(t *testing.T) { testCommitConflict(t, s) })
			t.Run("UserIndex", func(t *testing.T) { testUserIndex(t, s) })
			t.Run("Checks", func(t *testing.T) { testChecks(t, s) })
			t.Run("ConcurrentAcquireOneWinner", func(t *testing.T) { testConcurrentAcquire(t, s) })
			t.Run("Groups", func(t *testing.T) { testGroups(t, s) })
		})
	}
}

func testGroups(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	want := []string{"list-a", "list-b*", "list:c"} // glob and separator characters too
	for i, guid := range want {
		l := worker.Lease{Seq: uint64(100 + i), Delivery: 1, Worker: "w"}
		job := "list-job-" + guid
		mustAcquire(t, s, job, l, time.Minute, worker.LeaseAcquired)
		st := groupsync.GroupState{GUID: guid, Lifecycle: groupsync.LifecycleExists}
		if err := s.Commit(ctx, worker.Commit{JobID: job, Lease: l, GUID: guid, State: st}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(got) {
		t.Errorf("Groups not sorted: %v", got)
	}
	for _, g := range want {
		if !slices.Contains(got, g) {
			t.Errorf("Groups = %v, missing %q", got, g)
		}
	}
	for _, g := range got {
		if st, ver, err := s.Group(ctx, g); err != nil || ver == 0 || st.GUID != g {
			t.Errorf("Groups lists %q, whose state reads %v version %d (%v)", g, st.GUID, ver, err)
		}
	}
}

func mustAcquire(t *testing.T, s worker.Store, job string, l worker.Lease, ttl time.Duration, want worker.LeaseStatus) {
	t.Helper()
	got, err := s.Acquire(testCtx(t), job, l, ttl)
	if err != nil {
		t.Fatalf("Acquire(%s, %v): %v", job, l, err)
	}
	if got != want {
		t.Fatalf("Acquire(%s, %v) = %v, want %v", job, l, got, want)
	}
}

func testLeaseLifecycle(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	a := worker.Lease{Seq: 1, Delivery: 1, Worker: "a"}
	b := worker.Lease{Seq: 1, Delivery: 2, Worker: "b"}
	mustAcquire(t, s, "job-1", a, time.Minute, worker.LeaseAcquired)
	mustAcquire(t, s, "job-1", a, time.Minute, worker.LeaseAcquired) // renew
	mustAcquire(t, s, "job-1", b, time.Minute, worker.LeaseHeld)
	if err := s.Extend(ctx, "job-1", b, time.Minute); !errors.Is(err, worker.ErrLeaseLost) {
		t.Fatalf("Extend by non-holder = %v, want ErrLeaseLost", err)
	}
	if err := s.Extend(ctx, "job-1", a, time.Minute); err != nil {
		t.Fatalf("Extend by holder: %v", err)
	}
	if err := s.Release(ctx, "job-1", b); err != nil {
		t.Fatalf("Release by non-holder: %v", err)
	}
	mustAcquire(t, s, "job-1", b, time.Minute, worker.LeaseHeld)
	if err := s.Release(ctx, "job-1", a); err != nil {
		t.Fatalf("Release: %v", err)
	}
	mustAcquire(t, s, "job-1", b, time.Minute, worker.LeaseAcquired)
	st := groupsync.GroupState{GUID: "g-life", Lifecycle: groupsync.LifecycleExists}
	if err := s.Commit(ctx, worker.Commit{JobID: "job-1", Lease: b, GUID: "g-life", State: st}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	mustAcquire(t, s, "job-1", a, time.Minute, worker.LeaseDone)
	got, v, err := s.Group(ctx, "g-life")
	if err != nil || v == 0 || !reflect.DeepEqual(got, st) {
		t.Fatalf("Group(g-life) = %+v, %d, %v; want %+v, version > 0", got, v, err, st)
	}
	if _, v, err := s.Group(ctx, "g-never"); err != nil || v != 0 {
		t.Fatalf("Group(g-never) version %d, %v; want 0, nil", v, err)
	}
}

func testLeaseExpires(t *testing.T, s worker.Store) {
	a := worker.Lease{Seq: 2, Delivery: 1, Worker: "a"}
	b := worker.Lease{Seq: 2, Delivery: 2, Worker: "b"}
	mustAcquire(t, s, "job-2", a, 150*time.Millisecond, worker.LeaseAcquired)
	testkit.EventuallyErr(t, 10*time.Second, "b takes over a's lease after its TTL", func() error {
		got, err := s.Acquire(testCtx(t), "job-2", b, time.Minute)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		if got != worker.LeaseAcquired {
			return fmt.Errorf("Acquire = %v", got)
		}
		return nil
	})
	if err := s.Extend(testCtx(t), "job-2", a, time.Minute); !errors.Is(err, worker.ErrLeaseLost) {
		t.Fatalf("Extend of an expired, taken lease = %v, want ErrLeaseLost", err)
	}
}

func testStaleWorkerCannotComplete(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	stale := worker.Lease{Seq: 3, Delivery: 1, Worker: "stale"}
	fresh := worker.Lease{Seq: 3, Delivery: 2, Worker: "fresh"}
	mustAcquire(t, s, "job-3", stale, 100*time.Millisecond, worker.LeaseAcquired)
	testkit.EventuallyErr(t, 10*time.Second, "the fresh worker takes the lease", func() error {
		if got, err := s.Acquire(ctx, "job-3", fresh, time.Minute); got != worker.LeaseAcquired {
			return fmt.Errorf("Acquire = %v, %v", got, err)
		}
		return nil
	})
	staleState := groupsync.GroupState{GUID: "g-stale", Lifecycle: groupsync.LifecycleDeleted}
	err := s.Commit(ctx, worker.Commit{JobID: "job-3", Lease: stale, GUID: "g-stale", State: staleState})
	if !errors.Is(err, worker.ErrLeaseLost) {
		t.Fatalf("Commit by stale worker = %v, want ErrLeaseLost", err)
	}
	if got, v, _ := s.Group(ctx, "g-stale"); v != 0 {
		t.Fatalf("stale Commit wrote state %+v (version %d)", got, v)
	}
	mustAcquire(t, s, "job-3", fresh, time.Minute, worker.LeaseAcquired)
	if err := s.Commit(ctx, worker.Commit{JobID: "job-3", Lease: fresh, GUID: "g-stale", State: groupsync.GroupState{GUID: "g-stale"}}); err != nil {
		t.Fatalf("Commit by lease holder: %v", err)
	}
	if err := s.Commit(ctx, worker.Commit{JobID: "job-3", Lease: fresh, GUID: "g-stale", Version: 1, State: staleState}); !errors.Is(err, worker.ErrLeaseLost) {
		t.Fatalf("second Commit of a done job = %v, want ErrLeaseLost", err)
	}
}

func testCommitConflict(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	l1 := worker.Lease{Seq: 4, Delivery: 1, Worker: "a"}
	l2 := worker.Lease{Seq: 5, Delivery: 1, Worker: "a"}
	mustAcquire(t, s, "job-4", l1, time.Minute, worker.LeaseAcquired)
	mustAcquire(t, s, "job-5", l2, time.Minute, worker.LeaseAcquired)
	_, v0, err := s.Group(ctx, "g-conflict")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, worker.Commit{JobID: "job-4", Lease: l1, GUID: "g-conflict", Version: v0, State: groupsync.GroupState{GUID: "g-conflict", Incarnation: 4}}); err != nil {
		t.Fatalf("first Commit: %v", err)
	}
	err = s.Commit(ctx, worker.Commit{JobID: "job-5", Lease: l2, GUID: "g-conflict", Version: v0, State: groupsync.GroupState{GUID: "g-conflict", Incarnation: 5}})
	if !errors.Is(err, worker.ErrConflict) {
		t.Fatalf("Commit on an outdated version = %v, want ErrConflict", err)
	}
	got, v1, _ := s.Group(ctx, "g-conflict")
	if got.Incarnation != 4 {
		t.Fatalf("state after conflicting commit = %+v, want the first one", got)
	}
	mustAcquire(t, s, "job-5", l2, time.Minute, worker.LeaseAcquired) // a conflict leaves the job running
	if err := s.Commit(ctx, worker.Commit{JobID: "job-5", Lease: l2, GUID: "g-conflict", Version: v1, State: groupsync.GroupState{GUID: "g-conflict", Incarnation: 5}}); err != nil {
		t.Fatalf("Commit on the current version: %v", err)
	}
}

func testUserIndex(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	commit := func(job, g string, members map[string]groupsync.MemberState) {
		t.Helper()
		l := worker.Lease{Seq: 9, Delivery: 1, Worker: job}
		mustAcquire(t, s, job, l, time.Minute, worker.LeaseAcquired)
		_, v, err := s.Group(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		st := groupsync.GroupState{GUID: g, Lifecycle: groupsync.LifecycleExists, Members: members}
		if err := s.Commit(ctx, worker.Commit{JobID: job, Lease: l, GUID: g, Version: v, State: st}); err != nil {
			t.Fatalf("Commit %s: %v", job, err)
		}
	}
	commit("idx-1", "g-a", map[string]groupsync.MemberState{
		"ursula": {In: true, Pending: true}, "victor": {In: true, CardID: "card-v"}, "wendy": {In: false},
	})
	commit("idx-2", "g-b", map[string]groupsync.MemberState{"ursula": {In: true, CardID: "card-u"}})
	got, err := s.UserGroups(ctx, "ursula")
	want := map[string]groupsync.IndexEntry{"g-a": {In: true, Pending: true}, "g-b": {In: true, CardID: "card-u"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("UserGroups(ursula) = %+v, %v; want %+v", got, err, want)
	}
	if got, _ := s.UserGroups(ctx, "wendy"); len(got) != 0 {
		t.Fatalf("UserGroups(wendy) = %+v, want none (not a member)", got)
	}
	if got, err := s.PendingUsers(ctx); err != nil || !slices.Equal(got, []string{"ursula"}) {
		t.Fatalf("PendingUsers() = %v, %v; want [ursula]", got, err)
	}
	// Ursula gets her card in g-a, Victor leaves.
	commit("idx-3", "g-a", map[string]groupsync.MemberState{"ursula": {In: true, CardID: "card-u"}, "victor": {In: false}})
	if got, _ := s.PendingUsers(ctx); len(got) != 0 {
		t.Fatalf("PendingUsers() = %v, want none", got)
	}
	if got, _ := s.UserGroups(ctx, "victor"); len(got) != 0 {
		t.Fatalf("UserGroups(victor) = %+v after he left, want none", got)
	}
}

func testChecks(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	now := time.Now()
	if err := s.ScheduleCheck(ctx, worker.Check{UID: "xavier", Attempt: 2}, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleCheck(ctx, worker.Check{UID: "yara"}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := s.DueChecks(ctx, now, 10)
	if err != nil || !reflect.DeepEqual(got, []worker.Check{{UID: "xavier", Attempt: 2}}) {
		t.Fatalf("DueChecks(now) = %+v, %v; want xavier attempt 2", got, err)
	}
	if got, _ := s.DueChecks(ctx, now, 10); len(got) != 0 {
		t.Fatalf("DueChecks again = %+v, want none (claimed)", got)
	}
	// Rescheduling replaces the due time.
	if err := s.ScheduleCheck(ctx, worker.Check{UID: "yara", Attempt: 1}, now.Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DueChecks(ctx, now, 10); !reflect.DeepEqual(got, []worker.Check{{UID: "yara", Attempt: 1}}) {
		t.Fatalf("DueChecks after reschedule = %+v, want yara attempt 1", got)
	}
}

func testConcurrentAcquire(t *testing.T, s worker.Store) {
	ctx := testCtx(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Acquire(ctx, "job-race", worker.Lease{Seq: 7, Delivery: uint64(i + 1), Worker: fmt.Sprint("w", i)}, time.Minute)
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			if got == worker.LeaseAcquired {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent Acquires won the lease, want exactly 1", won)
	}
}
