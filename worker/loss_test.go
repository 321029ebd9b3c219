package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/membership"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/worker"
)

// cometChat starts the fake CometChat REST API and a client of it.
func (e *env) cometChat() (*cometchattest.Fake, membership.CometChat) {
	e.tb.Helper()
	f := cometchattest.Start(e.tb)
	cc, err := cometchat.New(cometchat.Config{BaseURL: f.URL(), APIKey: f.APIKey})
	if err != nil {
		e.tb.Fatal(err)
	}
	return f, membership.CometChat{Client: cc}
}

// reconcilingConfig starts the fake CometChat REST API and returns it with
// a pool config that reconciles against it and records in the Meta bucket.
func (e *env) reconcilingConfig() (*cometchattest.Fake, worker.Config) {
	e.tb.Helper()
	fake, cc := e.cometChat()
	cfg := e.poolConfig()
	cfg.Reconciler, cfg.Meta = cc, e.meta()
	return fake, cfg
}

// meta opens the workers' Meta bucket on the env's NATS.
func (e *env) meta() *worker.Meta {
	e.tb.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := worker.OpenMeta(ctx, js, "", 1)
	if err != nil {
		e.tb.Fatalf("OpenMeta: %v", err)
	}
	return m
}

// TestStoreLossRetryDoesNotReadmitKickedMember: Redis restarts empty while
// the worker runs; a CometChat retry of an add from before the loss (carol,
// kicked since) is checked with CometChat and dropped, while a genuine add
// after the loss (dave) is applied.
func TestStoreLossRetryDoesNotReadmitKickedMember(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob", "carol", "dave")
	fake, cfg := e.reconcilingConfig()
	pool, _ := e.startPool(cfg, nil, nil, nil)

	g := evt{guid: "loss-group", created: 1_718_000_000}
	addCarol := job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 1_718_000_100, "carol"))
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")), addCarol)
	e.waitMembers(g.guid, "alice", "bob", "carol")
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, 1_718_000_200, "carol")))
	e.waitMembers(g.guid, "alice", "bob")
	e.waitSettled()
	if !pool.LossAt().IsZero() {
		t.Fatalf("LossAt() = %v before any loss", pool.LossAt())
	}

	fake.SetGroup(g.guid, "alice", "bob", "dave")
	e.redis.Restart()
	e.publishCopy(addCarol) // CometChat's retry of the add, from before the loss
	e.publish(job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 1_718_000_300, "dave")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice", "bob", "dave")
	if pool.LossAt().IsZero() {
		t.Fatal("LossAt() is zero after Redis restarted empty")
	}
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("dead-lettered %+v", failed)
	}
}

// TestStoreLossDetectedAtStart: Redis restarts empty while no worker runs;
// the next worker finds the loss through the marker recorded in JetStream,
// and without a CometChat reconciler it dead-letters the retried add
// instead of applying it, and says why it is degraded.
func TestStoreLossDetectedAtStart(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "carol")
	meta := e.meta()
	cfg := e.poolConfig()
	cfg.Meta = meta
	_, stop := e.startPool(cfg, nil, nil, nil)
	g := evt{guid: "loss-at-start", created: 1_718_000_000}
	addCarol := job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 1_718_000_100, "carol"))
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")), addCarol)
	e.waitMembers(g.guid, "alice", "carol")
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, 1_718_000_200, "carol")))
	e.waitMembers(g.guid, "alice")
	e.waitSettled()
	stop()

	e.redis.Restart()
	pool, _ := e.startPool(cfg, nil, nil, nil)
	if d := pool.Degraded(); len(d) != 1 || d[0] != worker.ReasonNoReconciler {
		t.Errorf("Degraded() = %q, want the missing reconciler", d)
	}
	e.publishCopy(addCarol)
	eventually(t, 20*time.Second, func() (bool, string) {
		failed, err := e.q.Failed(context.Background())
		return err == nil && len(failed) == 1 && strings.HasPrefix(failed[0].Error, worker.ReasonUnconfirmed),
			fmt.Sprintf("failed jobs %+v, %v", failed, err)
	})
	if pool.LossAt().IsZero() {
		t.Error("LossAt() is zero after starting on an emptied Redis")
	}
	e.waitMembers(g.guid, "alice")
}

// TestScheduledReconcile: two workers with a scheduled reconcile; exactly one
// runs it, and it repairs a lost webhook (carol's add), skips a group past
// E3Kit's limit, and records its outcome with the drift.
func TestScheduledReconcile(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob", "carol")
	fake, cc := e.cometChat()
	g := evt{guid: "drifted", created: 1_718_000_000}
	fake.SetGroup(g.guid, "alice", "bob", "carol") // carol's add never reached us
	big := make([]string, 150)
	for i := range big {
		big[i] = fmt.Sprintf("user%03d", i)
	}
	fake.SetGroup("too-big", big...)
	meta := e.meta()

	// The group as the lost webhook left it.
	cfg := e.poolConfig()
	cfg.Reconciler = cc
	_, stop := e.startPool(cfg, nil, nil, nil)
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
	e.waitMembers(g.guid, "alice", "bob")
	e.waitSettled()
	stop()

	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for i, reg := range regs {
		cfg := e.poolConfig()
		cfg.Reconciler, cfg.Groups, cfg.Meta, cfg.Registerer = cc, cc, meta, reg
		cfg.ReconcileInterval, cfg.ReconcilePoll, cfg.ReconcileRate = time.Hour, 50*time.Millisecond, 1000
		cfg.WorkerID = fmt.Sprintf("worker-%d", i)
		e.startPool(cfg, nil, nil, nil)
	}
	e.waitMembers(g.guid, "alice", "bob", "carol")
	var st worker.ReconcileStatus
	eventually(t, 20*time.Second, func() (bool, string) {
		var ok bool
		var err error
		st, ok, err = meta.LastReconcile(context.Background())
		return err == nil && ok && !st.FinishedAt.IsZero() && st.Reconciled == 1, fmt.Sprintf("status %+v (%v)", st, err)
	})
	if st.Groups != 2 || st.Queued != 1 || !slices.Equal(st.TooLarge, []string{"too-big"}) || st.Drift[worker.DriftMissing] != 1 || st.Error != "" {
		t.Errorf("LastReconcile() = %+v, want 2 groups, 1 queued, too-big skipped, 1 member missing", st)
	}
	// Let both workers poll a few more times: the interval is an hour, so
	// nobody runs again, and only one ran at all.
	time.Sleep(300 * time.Millisecond)
	runs, drift := 0.0, 0.0
	for _, reg := range regs {
		runs += counterSum(t, reg, "groupsync_reconcile_runs_total")
		drift += counterSum(t, reg, "groupsync_reconcile_drift_total")
	}
	if runs != 1 || drift != 1 {
		t.Errorf("runs = %v, drift = %v over both workers, want 1 and 1", runs, drift)
	}

	// A reconcile asked for by hand of a group past the limit fails at once,
	// from its member count.
	before := fake.Requests()
	e.publish(worker.ReconcileJob("too-big", "manual"))
	eventually(t, 20*time.Second, func() (bool, string) {
		failed, err := e.q.Failed(context.Background())
		return err == nil && len(failed) == 1 && strings.Contains(failed[0].Error, "150 members"),
			fmt.Sprintf("failed jobs %+v, %v", failed, err)
	})
	if n := fake.Requests() - before; n != 1 {
		t.Errorf("a too-large group took %d CometChat requests, want 1 (its member count)", n)
	}
}

// TestScheduledReconcileDeletesUnlistedGroups: "gone" is deleted in
// CometChat and its deletion webhook never comes, so CometChat no longer
// lists it while the store holds it as existing. A run whose listing fails
// midway queues nothing for it and deletes nothing; the next run, with a
// complete listing, visits it, CometChat answers that it has no such group,
// and the Virgil group is deleted (its members can no longer load it). A
// group past E3Kit's limit is listed, so it is not taken for a deleted one.
func TestScheduledReconcileDeletesUnlistedGroups(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	fake, cc := e.cometChat()
	gone := evt{guid: "gone", created: 1_718_000_000}
	kept := evt{guid: "kept", created: 1_718_000_000}
	large := evt{guid: "large", created: 1_718_000_000}
	fake.SetGroup(gone.guid, "alice", "bob")
	fake.SetGroup(kept.guid, "alice", "bob")
	fake.SetGroup(large.guid, "alice")
	meta := e.meta()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := e.poolConfig()
	cfg.Reconciler = cc
	_, stop := e.startPool(cfg, nil, nil, nil)
	for _, g := range []evt{gone, kept, large} {
		e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
		e.waitMembers(g.guid, "alice", "bob")
	}
	e.waitSettled()
	stop()
	if err := e.canRead(ctx, "alice", gone.guid); err != nil {
		t.Fatalf("alice cannot read %s before its deletion: %v", gone.guid, err)
	}
	fake.DeleteGroup(gone.guid) // its webhook is lost
	big := make([]string, 150)
	for i := range big {
		big[i] = fmt.Sprintf("user%03d", i)
	}
	fake.SetGroup(large.guid, big...)

	// A listing that fails after its first page: the groups it did not
	// reach are not taken for deleted ones.
	reg := prometheus.NewRegistry()
	cfg = e.poolConfig()
	cfg.Reconciler, cfg.Groups, cfg.Meta, cfg.Registerer = cc, brokenLister{kept.guid}, meta, reg
	cfg.ReconcileInterval, cfg.ReconcilePoll, cfg.ReconcileRate = time.Hour, 50*time.Millisecond, 1000
	_, stop = e.startPool(cfg, nil, nil, nil)
	var st worker.ReconcileStatus
	eventually(t, 20*time.Second, func() (bool, string) {
		var ok bool
		var err error
		st, ok, err = meta.LastReconcile(ctx)
		return err == nil && ok && st.Error != "" && st.Reconciled == 1, fmt.Sprintf("status %+v (%v)", st, err)
	})
	e.waitSettled()
	stop()
	if st.Queued != 1 || st.Unlisted != 0 || st.UnlistedSkipped == "" || st.Drift[worker.DriftDeleted] != 0 {
		t.Errorf("after a failed listing LastReconcile() = %+v, want 1 queued, none unlisted, the step skipped", st)
	}
	e.waitMembers(gone.guid, "alice", "bob")
	if err := e.canRead(ctx, "alice", gone.guid); err != nil {
		t.Errorf("alice cannot read %s after a failed listing: %v", gone.guid, err)
	}
	if n := counterSum(t, reg, "groupsync_reconcile_drift_total", "kind="+worker.DriftDeleted); n != 0 {
		t.Errorf("group_deleted drift after a failed listing = %v, want 0", n)
	}

	// A complete listing: kept and large are listed, gone is not. The
	// failed run is due at once, the next one only after the checks.
	const interval = 3 * time.Second
	time.Sleep(time.Until(st.StartedAt.Add(interval)))
	reg = prometheus.NewRegistry()
	cfg = e.poolConfig()
	cfg.Reconciler, cfg.Groups, cfg.Meta, cfg.Registerer = cc, cc, meta, reg
	cfg.ReconcileInterval, cfg.ReconcilePoll, cfg.ReconcileRate = interval, 50*time.Millisecond, 1000
	_, stop = e.startPool(cfg, nil, nil, nil)
	e.waitDeleted(gone.guid)
	eventually(t, 20*time.Second, func() (bool, string) {
		var ok bool
		var err error
		st, ok, err = meta.LastReconcile(ctx)
		return err == nil && ok && !st.FinishedAt.IsZero() && st.Reconciled == 2, fmt.Sprintf("status %+v (%v)", st, err)
	})
	stop()
	if st.Groups != 2 || st.Queued != 2 || st.Unlisted != 1 || st.UnlistedLeft != 0 || st.UnlistedSkipped != "" ||
		!slices.Equal(st.TooLarge, []string{large.guid}) || st.Drift[worker.DriftDeleted] != 1 || st.Error != "" {
		t.Errorf("LastReconcile() = %+v, want 2 listed, 2 queued (1 unlisted), large skipped, 1 group deleted", st)
	}
	if n := counterSum(t, reg, "groupsync_reconcile_drift_total", "kind="+worker.DriftDeleted); n != 1 {
		t.Errorf("group_deleted drift = %v, want 1", n)
	}
	for _, uid := range []string{"alice", "bob"} {
		if err := e.canRead(ctx, uid, gone.guid); err == nil {
			t.Errorf("%s can still load %s after its deletion", uid, gone.guid)
		}
		if err := e.canRead(ctx, uid, kept.guid); err != nil {
			t.Errorf("%s cannot read %s: %v", uid, kept.guid, err)
		}
	}
	e.waitMembers(kept.guid, "alice", "bob")
	e.waitMembers(large.guid, "alice", "bob")
}

// TestScheduledReconcileBoundsUnlistedGroups: one run visits at most
// ReconcileUnlistedMax of the groups CometChat did not list, and counts the
// rest in its status; the next runs visit them.
func TestScheduledReconcileBoundsUnlistedGroups(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	_, cc := e.cometChat()
	meta := e.meta()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := e.poolConfig()
	cfg.Reconciler = cc
	_, stop := e.startPool(cfg, nil, nil, nil)
	guids := []string{"gone-1", "gone-2", "gone-3"}
	for _, guid := range guids { // CometChat never had them: their deletion webhooks are lost
		g := evt{guid: guid, created: 1_718_000_000}
		e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
		e.waitMembers(guid, "alice")
	}
	e.waitSettled()
	stop()

	cfg = e.poolConfig()
	cfg.Reconciler, cfg.Groups, cfg.Meta = cc, cc, meta
	cfg.ReconcileInterval, cfg.ReconcilePoll, cfg.ReconcileRate = time.Hour, 50*time.Millisecond, 1000
	cfg.ReconcileUnlistedMax = 2
	_, stop = e.startPool(cfg, nil, nil, nil)
	var st worker.ReconcileStatus
	eventually(t, 20*time.Second, func() (bool, string) {
		var ok bool
		var err error
		st, ok, err = meta.LastReconcile(ctx)
		return err == nil && ok && !st.FinishedAt.IsZero() && st.Reconciled == 2, fmt.Sprintf("status %+v (%v)", st, err)
	})
	e.waitSettled()
	stop()
	if st.Groups != 0 || st.Queued != 2 || st.Unlisted != 2 || st.UnlistedLeft != 1 || st.Drift[worker.DriftDeleted] != 2 {
		t.Errorf("LastReconcile() = %+v, want 2 of 3 unlisted groups queued, 1 left", st)
	}
	left := 0
	for _, guid := range guids {
		if _, ok := e.view(guid); ok {
			left++
		}
	}
	if left != 1 {
		t.Errorf("%d of the 3 groups still exist in Virgil, want 1", left)
	}
}

// brokenLister lists one page with the group guid, then fails.
type brokenLister struct{ guid string }

func (l brokenLister) Groups(ctx context.Context, fn func([]worker.GroupCount) error) error {
	if err := fn([]worker.GroupCount{{GUID: l.guid, Members: 2}}); err != nil {
		return err
	}
	return errors.New("page 2: connection reset by peer")
}

// counterSum adds up the counter name over its series that carry every
// label given as "name=value".
func counterSum(tb testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]bool{}
			for _, l := range m.GetLabel() {
				have[l.GetName()+"="+l.GetValue()] = true
			}
			if !slices.ContainsFunc(labels, func(l string) bool { return !have[l] }) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestReconcileRemovesParticipantsTheStateNeverKnew: Redis loses its data
// after carol was added, and no later event names her; CometChat no longer
// lists her (her kick's webhook never came). A reconcile reads the Virgil
// group, not only the empty state, and carol leaves; the repair is counted
// as participant_unknown drift.
func TestReconcileRemovesParticipantsTheStateNeverKnew(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob", "carol")
	fake, cc := e.cometChat()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	audit, err := queue.OpenAudit(ctx, e.nc, queue.AuditConfig{})
	if err != nil {
		t.Fatalf("OpenAudit: %v", err)
	}
	cfg := e.poolConfig()
	cfg.Reconciler, cfg.Meta, cfg.Registerer, cfg.Audit = cc, e.meta(), reg, audit
	e.startPool(cfg, nil, nil, nil)

	g := evt{guid: "unknown-participant", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob", "carol")))
	e.waitMembers(g.guid, "alice", "bob", "carol")
	e.waitSettled()

	e.redis.Restart()
	fake.SetGroup(g.guid, "alice", "bob")
	e.publish(worker.ReconcileJob(g.guid, "after-loss"))
	e.waitSettled()
	e.waitMembers(g.guid, "alice", "bob")
	eventually(t, 10*time.Second, func() (bool, string) {
		n := counterSum(t, reg, "groupsync_reconcile_drift_total", "kind="+worker.DriftUnknown)
		return n == 1, fmt.Sprintf("%s drift counted %v, want 1 (carol)", worker.DriftUnknown, n)
	})
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("dead-lettered %+v", failed)
	}
	// The audit trail says a participant nobody named was removed.
	eventually(t, 10*time.Second, func() (bool, string) {
		recs, err := audit.History(ctx, g.guid, 0)
		for _, r := range recs {
			if r.Action == string(groupsync.OpRetain) && r.Unknown == 1 && r.UID == "" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no retain record with 1 unknown removed in %+v (%v)", recs, err)
	})
}

// TestLateRetryAfterConfirmIsChecked: after Redis loses its data, a retry of
// an add from before the loss (bob, kicked since) is checked with CometChat
// and dropped. CometChat then delivers a late retry of another add of bob
// without a time, from before that read (bob was re-added and kicked again;
// the add's first delivery failed), once the loss window has ended. Confirm
// decides bob by its read, so a flip received within the retry horizon of
// the read is checked with CometChat and bob stays out. Before, Confirm's
// decision carried neither the read nor its receipt, the flip was ordered by
// the queue alone, and the retry made bob a participant again.
func TestLateRetryAfterConfirmIsChecked(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	fake, cfg := e.reconcilingConfig()
	cfg.LossWindow = time.Second
	pool, _ := e.startPool(cfg, nil, nil, nil)

	g := evt{guid: "confirm-read", created: 1_718_000_000}
	addBob := job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 1_718_000_100, "bob"))
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")), addBob)
	e.waitMembers(g.guid, "alice", "bob")
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, 1_718_000_200, "bob")))
	e.waitMembers(g.guid, "alice")
	e.waitSettled()

	fake.SetGroup(g.guid, "alice")
	e.redis.Restart()
	e.publishCopy(addBob) // CometChat's retry of the add, from before the loss
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
	if pool.LossAt().IsZero() {
		t.Fatal("LossAt() is zero after Redis restarted empty")
	}
	// The loss window ends; the late retry is no longer confirmed.
	time.Sleep(time.Until(pool.LossAt().Add(cfg.LossWindow + 100*time.Millisecond)))
	before := fake.Requests()
	e.publish(job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, "bob")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
	if fake.Requests() == before {
		t.Error("the flip after the read was not checked with CometChat")
	}
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("dead-lettered %+v", failed)
	}
}
