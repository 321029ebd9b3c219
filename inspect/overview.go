package inspect

import (
	"context"
	"fmt"
	"time"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/worker"
)

// Overview is the state of the whole system at one moment.
type Overview struct {
	// At is when it was read.
	At time.Time `json:"at"`
	// Partitions is the backlog of each partition, in order.
	Partitions []queue.PartitionStats `json:"partitions"`
	// Waiting is the number of jobs in the job stream (waiting or running).
	Waiting uint64 `json:"waiting"`
	// Oldest is when the oldest job in the stream was stored, zero when
	// none waits; OldestAge is its age at At.
	Oldest    time.Time     `json:"oldest,omitzero"`
	OldestAge time.Duration `json:"oldest_age"`
	// Failed is the number of dead letters.
	Failed uint64 `json:"failed"`
	// Activity sums the workers' last minute; nil when the workers'
	// roster is not configured (WorkersNote says so).
	Activity *Activity `json:"activity"`
	// Workers are the worker pools heard from within the roster's TTL,
	// sorted by id; nil when the roster is not configured.
	Workers []WorkerSeen `json:"workers"`
	// WorkersNote says why Workers and Activity are missing, "" when they
	// were read.
	WorkersNote string `json:"workers_note,omitempty"`
	// Reconcile is the last scheduled reconcile, nil when none ran or its
	// status was not read (ReconcileNote says which).
	Reconcile *worker.ReconcileStatus `json:"reconcile"`
	// ReconcileNote says why Reconcile is nil: "none has run yet" or
	// "not configured".
	ReconcileNote string `json:"reconcile_note,omitempty"`
}

// Activity is what the live workers did over their last minute, summed.
type Activity struct {
	// Applied, Retried and Failed count job deliveries applied, handed back
	// to be retried and dead-lettered over the last minute by the live
	// workers (per minute).
	Applied int `json:"applied_per_minute"`
	Retried int `json:"retried_per_minute"`
	Failed  int `json:"failed_per_minute"`
	// LagP50 and LagP99 are the median and 99th percentile lag (from a
	// job's storing in the queue to its change in Virgil) of the jobs
	// applied, across the workers; zero without jobs.
	LagP50 time.Duration `json:"lag_p50"`
	LagP99 time.Duration `json:"lag_p99"`
}

// WorkerSeen is one worker pool as its last heartbeat shows it.
type WorkerSeen struct {
	worker.Heartbeat
	// Live reports a worker that wrote a heartbeat within StaleAfter and
	// did not say it stopped.
	Live bool `json:"live"`
}

// Overview reads the queue's backlog, the dead letters, the workers'
// heartbeats and the last scheduled reconcile. Errors of the queue are
// returned (they match queue.ErrUnavailable when NATS cannot be reached);
// so are those of the roster and the reconcile status when configured.
func (in *Inspector) Overview(ctx context.Context) (Overview, error) {
	st, err := in.cfg.Queue.Stats(ctx)
	if err != nil {
		return Overview{}, fmt.Errorf("inspect: overview: %w", err)
	}
	now := in.cfg.Now()
	ov := Overview{
		At: now.UTC(), Partitions: st.Partitions, Waiting: st.Jobs, Oldest: st.Oldest, Failed: st.DeadLetters,
	}
	if !st.Oldest.IsZero() {
		ov.OldestAge = max(now.Sub(st.Oldest), 0)
	}
	if in.cfg.Workers == nil {
		ov.WorkersNote = NotConfigured
	} else {
		hbs, err := in.cfg.Workers.Heartbeats(ctx)
		if err != nil {
			return Overview{}, fmt.Errorf("inspect: overview: %w", err)
		}
		ov.Workers, ov.Activity = in.workers(hbs, now)
	}
	if in.cfg.Reconcile == nil {
		ov.ReconcileNote = NotConfigured
	} else {
		rs, ok, err := in.cfg.Reconcile.LastReconcile(ctx)
		if err != nil {
			return Overview{}, fmt.Errorf("inspect: overview: %w", err)
		}
		if ok {
			ov.Reconcile = &rs
		} else {
			ov.ReconcileNote = "none has run yet"
		}
	}
	return ov, nil
}

// workers marks the live heartbeats and sums their activity. A worker that
// stopped within the last minute still counts: its jobs were done then.
func (in *Inspector) workers(hbs []worker.Heartbeat, now time.Time) ([]WorkerSeen, *Activity) {
	seen := make([]WorkerSeen, 0, len(hbs))
	act := &Activity{}
	var lag worker.LagHistogram
	for _, hb := range hbs {
		age := now.Sub(hb.Seen)
		seen = append(seen, WorkerSeen{Heartbeat: hb, Live: !hb.Stopped && age <= in.cfg.StaleAfter})
		if age > time.Minute {
			continue // its counts are of a minute that is over
		}
		act.Applied += hb.Applied
		act.Retried += hb.Retried
		act.Failed += hb.Failed
		lag.Merge(hb.Lag)
	}
	act.LagP50, act.LagP99 = lag.Quantile(0.5), lag.Quantile(0.99)
	return seen, act
}
