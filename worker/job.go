package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// result is how a job run ended, besides its error.
type result int

const (
	resApplied result = iota
	resDuplicate
	resHeld
	resLeaseLost
	resFailed
)

// errNeedsReconcile is the cause of dead-lettering a reconcile job without
// a Reconciler.
var errNeedsReconcile = errors.New(ReasonNeedsReconcile)

// handle runs one delivery and settles it.
func (p *Pool) handle(ctx context.Context, d *queue.Delivery) {
	start := time.Now()
	p.inFlight.Add(1)
	p.metrics.inFlight.Inc()
	defer func() {
		p.inFlight.Add(-1)
		p.metrics.inFlight.Dec()
	}()
	log := p.log.With().Str("job_id", d.Job.ID).Str("group_id", d.Job.Event.GUID).
		Str("trigger", string(d.Job.Event.Trigger)).Uint64("stream_seq", d.StreamSeq).
		Uint64("attempt", d.NumDelivered).Logger()
	lease := Lease{Seq: d.StreamSeq, Delivery: d.NumDelivered, Worker: p.cfg.WorkerID}

	jobCtx, cancel := context.WithTimeoutCause(ctx, p.cfg.JobTimeout, errJobTimeout)
	defer cancel()
	jobCtx = log.WithContext(jobCtx)
	var leased atomic.Bool
	hbCtx, stopHB := context.WithCancelCause(jobCtx)
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		p.heartbeat(hbCtx, d, lease, &leased, stopHB, log)
	}()
	res, err := p.run(hbCtx, d, lease, &leased, log)
	stopHB(nil)
	hb.Wait()
	if cause := context.Cause(hbCtx); err != nil && errors.Is(cause, ErrLeaseLost) {
		res, err = resLeaseLost, cause
	}
	p.settle(ctx, d, lease, res, err, time.Since(start), log)
	p.metrics.duration.Observe(time.Since(start).Seconds())
}

var errJobTimeout = errors.New("worker: job timed out")

// heartbeat keeps a long job's delivery and lease alive; it cancels the job
// (cause ErrLeaseLost) when the lease was taken by another delivery.
func (p *Pool) heartbeat(ctx context.Context, d *queue.Delivery, lease Lease, leased *atomic.Bool, stop context.CancelCauseFunc, log zerolog.Logger) {
	t := time.NewTicker(p.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := d.InProgress(); err != nil {
			log.Warn().Err(err).Msg("in-progress heartbeat failed")
		}
		if !leased.Load() {
			continue
		}
		err := p.store.Extend(ctx, d.Job.ID, lease, p.cfg.LeaseTTL)
		if errors.Is(err, ErrLeaseLost) {
			log.Warn().Msg("job lease taken by another delivery, abandoning the job")
			stop(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("lease renewal failed")
		}
	}
}

// run acquires the job's lease, plans and applies it, and commits.
func (p *Pool) run(ctx context.Context, d *queue.Delivery, lease Lease, leased *atomic.Bool, log zerolog.Logger) (result, error) {
	job := d.Job
	if job.ID == "" || job.Event.GUID == "" {
		return resFailed, groupsync.Permanent(errors.New("malformed job: no id or group id"))
	}
	if job.Event.Action == groupsync.ActionReconcile && p.cfg.Reconciler == nil {
		return resFailed, groupsync.Permanent(errNeedsReconcile)
	}
	for attempt := 0; ; attempt++ {
		var status LeaseStatus
		err := p.retry(ctx, log, "acquire lease", func() error {
			var err error
			status, err = p.store.Acquire(ctx, job.ID, lease, p.cfg.LeaseTTL)
			return err
		})
		if err != nil {
			return resFailed, err
		}
		switch {
		case status == LeaseDone:
			return resDuplicate, nil
		case status == LeaseHeld && attempt > 0:
			// Lost to a newer delivery while running: that delivery settles
			// the job, not this stale one.
			return resLeaseLost, fmt.Errorf("worker: job %s: %w", job.ID, ErrLeaseLost)
		case status == LeaseHeld:
			return resHeld, nil
		}
		leased.Store(true)

		err = p.apply(ctx, d, lease, log)
		if !errors.Is(err, ErrLeaseLost) || attempt > 0 {
			if err != nil {
				if errors.Is(err, ErrLeaseLost) {
					return resLeaseLost, err
				}
				return resFailed, err
			}
			return resApplied, nil
		}
		// The lease vanished: either another delivery took it (Acquire says
		// held or done) or the store lost its data (Acquire succeeds; plans are
		// convergent, so running again is safe).
		log.Warn().Msg("job lease lost before commit, checking the store")
	}
}

// apply plans the job from the stored state, applies the plan, and commits,
// re-planning when the state changed meanwhile.
func (p *Pool) apply(ctx context.Context, d *queue.Delivery, lease Lease, log zerolog.Logger) error {
	job := d.Job
	guid := job.Event.GUID
	for range maxCommitAttempts {
		var st groupsync.GroupState
		var ver uint64
		err := p.retry(ctx, log, "read group state", func() error {
			var err error
			st, ver, err = p.store.Group(ctx, guid)
			return err
		})
		if err != nil {
			return err
		}
		if err := p.retry(ctx, log, "check store marker", func() error { return p.checkStore(ctx) }); err != nil {
			return err
		}
		next, plan, drift, err := p.plan(ctx, st, d)
		if err != nil {
			return err
		}
		log.Debug().Interface("steps", plan.Steps).Strs("stale", plan.Stale).Str("ignored", plan.Ignored).Msg("plan")
		executed := time.Now()
		unknown, err := p.execute(ctx, guid, plan, &next, log)
		if err != nil {
			return err
		}
		drift.Unknown = unknown
		err = p.retry(ctx, log, "commit", func() error {
			return p.store.Commit(ctx, Commit{JobID: job.ID, Lease: lease, GUID: guid, Version: ver, State: next, DoneTTL: p.cfg.DoneTTL})
		})
		if errors.Is(err, ErrConflict) {
			log.Info().Msg("group state changed meanwhile, planning again")
			continue
		}
		if err == nil {
			p.audit(ctx, d, plan, next, executed, drift.Unknown, log)
			p.recordDrift(ctx, job.ID, drift, log)
		}
		return err
	}
	return fmt.Errorf("worker: job %s: group state kept changing: %w", job.ID, ErrConflict)
}

// plan returns the new state and the plan of job; for a reconcile it reads
// the group's members from CometChat and leaves the planning to
// groupsync.Reconcile (returning the drift it repairs), and for a job stored
// around a loss of the store's data it has CometChat confirm the plan's
// membership changes.
func (p *Pool) plan(ctx context.Context, st groupsync.GroupState, d *queue.Delivery) (groupsync.GroupState, groupsync.Plan, groupsync.Drift, error) {
	job := d.Job
	next, plan := groupsync.Apply(st, job.Event, d.StreamSeq)
	if len(plan.Recheck) > 0 && p.cfg.Reconciler != nil {
		// A flip that CometChat's retries may have swapped with the event
		// before it, or whose time cannot order it against a read of
		// CometChat: CometChat knows which came last (docs/convergence.md).
		zerolog.Ctx(ctx).Info().Strs("uids", plan.Recheck).Msg("membership flip in an order the events' times cannot tell, checking the group with CometChat")
		plan.Reconcile = true
	}
	if !plan.Reconcile {
		if needsConfirm(job, plan) && p.guarded(d.Stored) {
			next, plan, err := p.confirm(ctx, d, next, plan)
			return next, plan, groupsync.Drift{}, err
		}
		return next, plan, groupsync.Drift{}, nil
	}
	snap, err := p.snapshot(ctx, job.Event.GUID)
	if err != nil {
		return st, plan, groupsync.Drift{}, fmt.Errorf("worker: reconcile group %s: %w", job.Event.GUID, err)
	}
	next, plan, drift := groupsync.Reconcile(st, snap, d.StreamSeq)
	return next, plan, drift, nil
}

// execute applies plan's steps to Virgil, recording in st who is pending
// and which card each new participant got tickets under. It returns how many
// participants its OpRetain steps removed.
func (p *Pool) execute(ctx context.Context, guid string, plan groupsync.Plan, st *groupsync.GroupState, log zerolog.Logger) (int, error) {
	unknown := 0
	for _, s := range plan.Steps {
		var err error
		switch s.Op {
		case groupsync.OpRetain:
			err = p.retry(ctx, log, "virgil retain", func() error {
				n, err := p.v.Retain(ctx, guid, s.UIDs)
				unknown += n
				return err
			})
		case groupsync.OpCreate, groupsync.OpAdd, groupsync.OpEnsure:
			err = p.add(ctx, guid, s, st, log)
		case groupsync.OpRemove:
			err = p.retry(ctx, log, "virgil remove", func() error { return p.v.Remove(ctx, guid, s.UIDs) })
		case groupsync.OpDelete:
			err = p.retry(ctx, log, "virgil delete", func() error { return p.v.Delete(ctx, guid) })
		case groupsync.OpReAdd:
			var cards map[string]string
			err = p.retry(ctx, log, "virgil card ids", func() error {
				var err error
				cards, err = p.v.CardIDs(ctx, s.UIDs)
				return err
			})
			if err == nil {
				err = p.retry(ctx, log, "virgil re-add", func() error { return p.v.ReAdd(ctx, guid, s.UIDs) })
			}
			if err == nil {
				for _, uid := range s.UIDs {
					if c := cards[uid]; c != "" {
						st.MarkCard(uid, c)
					}
				}
			}
		default:
			err = groupsync.Permanent(fmt.Errorf("worker: unknown plan step %q", s.Op))
		}
		if err != nil {
			return unknown, fmt.Errorf("worker: %s %s on group %s: %w", s.Op, fmtUIDs(s.UIDs), guid, err)
		}
		p.metrics.steps.WithLabelValues(string(s.Op)).Inc()
	}
	return unknown, nil
}

// fmtUIDs lists a few uids for messages, and counts the rest.
func fmtUIDs(uids []string) string {
	const show = 5
	if len(uids) <= show {
		return "[" + strings.Join(uids, " ") + "]"
	}
	return fmt.Sprintf("[%s and %d more]", strings.Join(uids[:show], " "), len(uids)-show)
}

// add runs a create, add or ensure step and records, for each member given
// access, the card its tickets were made for (a card that changes later is
// seen as changed).
func (p *Pool) add(ctx context.Context, guid string, s groupsync.Step, st *groupsync.GroupState, log zerolog.Logger) error {
	var res groupsync.Added
	err := p.retry(ctx, log, "virgil "+string(s.Op), func() error {
		var err error
		if s.Op == groupsync.OpCreate {
			res, err = p.v.Create(ctx, guid, s.UIDs)
		} else {
			res, err = p.v.Add(ctx, guid, s.UIDs)
		}
		return err
	})
	if err != nil {
		return err
	}
	isPending := make(map[string]bool, len(res.Pending))
	for _, uid := range res.Pending {
		isPending[uid] = true
	}
	for _, uid := range s.UIDs {
		st.MarkPending(uid, isPending[uid])
		if isPending[uid] {
			st.MarkPendingReason(uid, res.Refused[uid])
		} else {
			st.MarkCard(uid, res.CardIDs[uid])
		}
	}
	if len(res.Pending) > 0 {
		log.Info().Strs("pending", res.Pending).Msg("members without a Virgil card kept pending")
	}
	for _, uid := range slices.Sorted(maps.Keys(res.Refused)) {
		log.Warn().Str("uid", uid).Str("reason", res.Refused[uid]).
			Msg("member kept pending: their Virgil card has no valid Virgil signature and gets no ticket")
	}
	return nil
}
