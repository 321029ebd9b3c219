package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/worker"
)

func TestNewValidates(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := worker.New(worker.Config{}, nil, e.store, e.groups); err == nil {
		t.Error("New without a queue succeeded")
	}
	tests := []struct {
		name string
		cfg  worker.Config
	}{
		{"HeartbeatNotShorterThanLease", worker.Config{LeaseTTL: time.Second, Heartbeat: time.Second}},
		{"NegativeConcurrency", worker.Config{Concurrency: -1}},
		{"WorkerIDWithColon", worker.Config{WorkerID: "a:b"}},
	}
	for _, tt := range tests {
		if _, err := worker.New(tt.cfg, e.q, e.store, e.groups); err == nil {
			t.Errorf("New(%s) succeeded, want an error", tt.name)
		}
	}
	// Every invalid field is reported, not only the first.
	bad := worker.Config{Concurrency: -1, Retries: -1, WorkerID: "a:b"}
	_, err := worker.New(bad, e.q, e.store, e.groups)
	for _, field := range []string{"Concurrency", "Retries", "WorkerID"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("New(%+v) = %v, want an error naming %s", bad, err, field)
		}
	}
	p, err := worker.New(worker.Config{}, e.q, e.store, e.groups)
	if err != nil {
		t.Fatalf("New(zero Config): %v", err)
	}
	cfg := p.Config()
	if cfg.Concurrency != e.q.Partitions() || cfg.LeaseTTL != worker.DefaultLeaseTTL || cfg.Heartbeat <= 0 || cfg.Heartbeat >= cfg.LeaseTTL || cfg.WorkerID == "" {
		t.Errorf("defaults = %+v", cfg)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Errorf("Stop before Run: %v", err)
	}
	if err := p.Run(context.Background()); !errors.Is(err, worker.ErrPoolStopped) {
		t.Errorf("Run after Stop = %v, want ErrPoolStopped", err)
	}
}

// TestStopLetsRunningJobsFinish: Stop with time to spare waits for the
// running job, which completes and is acknowledged.
func TestStopLetsRunningJobsFinish(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	p, stop := e.startPool(e.poolConfig(), nil, nil, nil)
	e.emu.SetFault(emulator.Fault{Delay: 300 * time.Millisecond})
	g := evt{guid: "graceful", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	eventually(t, 10*time.Second, func() (bool, string) { return p.InFlight() == 1, "no job in flight" })
	stop()
	e.emu.ClearFault()
	if v, ok := e.view(g.guid); !ok {
		t.Fatalf("group not created by the job Stop waited for: %v", v)
	}
	e.waitSettled()
}

// TestStopTimeoutHandsJobsBack: Stop whose context ends cancels the running
// job, which goes back to the queue (not to the dead letters) and is
// finished by another pool.
func TestStopTimeoutHandsJobsBack(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	p, _ := e.startPool(e.poolConfig(), nil, nil, nil)
	e.emu.SetFault(emulator.Fault{Delay: 2 * time.Second})
	g := evt{guid: "hard-stop", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	eventually(t, 10*time.Second, func() (bool, string) { return p.InFlight() == 1, "no job in flight" })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := p.Stop(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want a deadline error", err)
	}
	if p.InFlight() != 0 {
		t.Fatalf("%d jobs still in flight after Stop returned", p.InFlight())
	}
	e.emu.ClearFault()
	e.startPool(e.poolConfig(), nil, nil, nil)
	e.waitMembers(g.guid, "alice")
	if failed, _ := e.q.Failed(context.Background()); len(failed) != 0 {
		t.Fatalf("shutdown dead-lettered %+v", failed)
	}
}

// TestMetrics: an applied job shows in the pool's metrics, including the lag
// from its storing in the queue to its change in Virgil.
func TestMetrics(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	reg := prometheus.NewRegistry()
	cfg := e.poolConfig()
	cfg.Registerer = reg
	e.startPool(cfg, nil, nil, nil)
	g := evt{guid: "metrics-group", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	e.waitMembers(g.guid, "alice")
	e.waitSettled()
	// The pool counts a job after acknowledging it, so the counts may lag
	// the empty queue by a moment.
	eventually(t, 10*time.Second, func() (bool, string) {
		missing := missingMetrics(t, reg,
			"groupsync_worker_jobs_total/result=applied",
			"groupsync_worker_virgil_steps_total/op=create",
			"groupsync_worker_job_duration_seconds",
			"groupsync_worker_job_lag_seconds")
		return len(missing) == 0, fmt.Sprintf("metrics not recorded: %v", missing)
	})
}

// missingMetrics returns which of names (a metric's name, then /label=value
// for each label) reg has not recorded at least once.
func missingMetrics(tb testing.TB, reg *prometheus.Registry, names ...string) []string {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetName() + "=" + l.GetValue()
			}
			if m.GetCounter().GetValue()+float64(m.GetHistogram().GetSampleCount()) >= 1 {
				seen[name] = true
			}
		}
	}
	var missing []string
	for _, name := range names {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	return missing
}
