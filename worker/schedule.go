package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil"
)

// The kinds of drift counted in groupsync_reconcile_drift_total and
// ReconcileStatus.Drift.
const (
	DriftMissing = "member_missing"
	DriftExtra   = "member_extra"
	DriftDeleted = "group_deleted"
	// DriftUnknown counts Virgil participants that neither CometChat nor the
	// stored state named (a change applied to Virgil whose state was lost).
	DriftUnknown = "participant_unknown"
)

// scheduledPrefix starts the ids of scheduled reconcile jobs:
// "reconcile-auto-<run>-<guid>".
const scheduledPrefix = "reconcile-auto-"

// reconcileLease names the lease of the scheduled reconcile in Meta.
const reconcileLease = "reconcile"

// GroupLister lists CometChat's groups for the scheduled reconcile.
type GroupLister interface {
	// Groups calls fn with each page of the app's groups, stopping at fn's
	// first error.
	Groups(ctx context.Context, fn func(page []GroupCount) error) error
}

// GroupCount is one group of a GroupLister page.
type GroupCount struct {
	// GUID is the CometChat group id.
	GUID string
	// Members is the member count CometChat reports.
	Members int
}

// ReconcileJob returns the job that asks a worker to bring group guid in line
// with CometChat, for the run named run (no '-' in it). Its id is unique per
// run, so a later run is never dropped as a duplicate of an earlier one.
func ReconcileJob(guid, run string) groupsync.Job {
	return groupsync.Job{
		ID: "reconcile-" + run + "-" + guid,
		Event: groupsync.Event{
			Trigger: groupsync.TriggerReconcile, Action: groupsync.ActionReconcile,
			GUID: guid, MembersCount: -1,
		},
		ReceivedAt: time.Now().UTC(),
	}
}

// scheduledRun returns the run of a scheduled reconcile job's id.
func scheduledRun(jobID string) (string, bool) {
	rest, ok := strings.CutPrefix(jobID, scheduledPrefix)
	if !ok {
		return "", false
	}
	run, _, ok := strings.Cut(rest, "-")
	return run, ok && run != ""
}

// recordDrift counts what a committed reconcile job repaired, and adds it to
// its scheduled run's status.
func (p *Pool) recordDrift(ctx context.Context, jobID string, drift groupsync.Drift, log zerolog.Logger) {
	counts := map[string]int{DriftMissing: len(drift.Missing), DriftExtra: len(drift.Extra), DriftUnknown: drift.Unknown}
	if drift.Deleted {
		counts[DriftDeleted] = 1
	}
	for kind, n := range counts {
		if n > 0 {
			p.metrics.drift.WithLabelValues(kind).Add(float64(n))
		}
	}
	if !drift.Empty() {
		log.Info().Strs("missing", drift.Missing).Strs("extra", drift.Extra).Int("unknown", drift.Unknown).Bool("deleted", drift.Deleted).
			Msg("reconcile repaired drift from CometChat")
	}
	run, ok := scheduledRun(jobID)
	if !ok || p.cfg.Meta == nil {
		return
	}
	err := p.cfg.Meta.updateReconcile(context.WithoutCancel(ctx), func(s *ReconcileStatus) {
		if s.Run != run {
			return
		}
		s.Reconciled++
		for kind, n := range counts {
			if n > 0 {
				if s.Drift == nil {
					s.Drift = map[string]int{}
				}
				s.Drift[kind] += n
			}
		}
	})
	if err != nil {
		log.Warn().Err(err).Msg("recording the reconcile's drift in its run status failed")
	}
}

// reconcileLoop runs the scheduled reconcile: every ReconcilePoll, a worker
// whose lease in Meta holds checks whether the last run began at least
// ReconcileInterval ago (or stopped early), and if so runs one.
func (p *Pool) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.ReconcilePoll)
	defer t.Stop()
	for {
		if err := p.maybeReconcile(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("scheduled reconcile failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcileLeaseTTL is how long the scheduled reconcile's lease lasts
// unrenewed.
func (p *Pool) reconcileLeaseTTL() time.Duration { return max(3*p.cfg.ReconcilePoll, 30*time.Second) }

func (p *Pool) reconcileDue(ctx context.Context) (bool, error) {
	last, ok, err := p.cfg.Meta.LastReconcile(ctx)
	if err != nil || !ok {
		return !ok, err
	}
	if last.FinishedAt.IsZero() && last.Error == "" && last.Worker != p.cfg.WorkerID {
		// Another worker's run that never finished: its lease has expired
		// (we hold it now), so it died.
		return true, nil
	}
	return time.Since(last.StartedAt) >= p.cfg.ReconcileInterval, nil
}

func (p *Pool) maybeReconcile(ctx context.Context) error {
	meta := p.cfg.Meta
	ok, err := meta.TakeLease(ctx, reconcileLease, p.cfg.WorkerID, p.reconcileLeaseTTL())
	if err != nil || !ok {
		return err
	}
	defer func() {
		if err := meta.DropLease(context.WithoutCancel(ctx), reconcileLease, p.cfg.WorkerID); err != nil {
			p.log.Warn().Err(err).Msg("dropping the reconcile lease failed; it expires by itself")
		}
	}()
	if due, err := p.reconcileDue(ctx); err != nil || !due {
		return err
	}
	return p.reconcileAll(ctx)
}

// errReconcileLeaseLost stops a run whose lease another worker took.
var errReconcileLeaseLost = errors.New("worker: scheduled reconcile: lease lost to another worker")

// reconcileAll lists every group and queues a reconcile job for each, paced
// to ReconcileRate CometChat requests per second (a page of groups costs
// one; a group's job, two: its member count and its members). Groups past
// E3Kit's limit are skipped and named in the status. After a complete
// listing, it also queues the groups the store holds as not deleted that
// CometChat did not list (reconcileUnlisted).
func (p *Pool) reconcileAll(ctx context.Context) error {
	meta := p.cfg.Meta
	run := time.Now().UTC().Format("20060102T150405.000")
	st := ReconcileStatus{Run: run, Worker: p.cfg.WorkerID, StartedAt: time.Now().UTC()}
	// save writes the run's status, keeping what its jobs added.
	save := func() error {
		return meta.updateReconcile(context.WithoutCancel(ctx), func(s *ReconcileStatus) {
			reconciled, drift := 0, map[string]int(nil)
			if s.Run == run {
				reconciled, drift = s.Reconciled, s.Drift
			}
			*s = st
			s.Reconciled, s.Drift = reconciled, drift
		})
	}
	if err := save(); err != nil {
		return err
	}
	log := p.log.With().Str("run", run).Logger()
	log.Info().Msg("scheduled reconcile started")

	pace := time.Duration(float64(time.Second) / p.cfg.ReconcileRate)
	next := time.Now()
	wait := func(requests int) error {
		d := time.Until(next)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		next = next.Add(time.Duration(requests) * pace)
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	renewed := time.Now()
	// renew renews the lease when a third of it has passed.
	renew := func() error {
		if time.Since(renewed) <= p.reconcileLeaseTTL()/3 {
			return nil
		}
		ok, err := meta.TakeLease(ctx, reconcileLease, p.cfg.WorkerID, p.reconcileLeaseTTL())
		if err != nil {
			return err
		}
		if !ok {
			return errReconcileLeaseLost
		}
		renewed = time.Now()
		return nil
	}
	// queue queues guid's reconcile job, paced, renewing the lease.
	queue := func(guid string) error {
		if err := renew(); err != nil {
			return err
		}
		if err := wait(2); err != nil {
			return err
		}
		job := ReconcileJob(guid, "auto-"+run)
		if _, err := p.q.Publish(ctx, job); err != nil {
			return fmt.Errorf("queue reconcile of %s: %w", guid, err)
		}
		st.Queued++
		return nil
	}
	// listed holds every group CometChat listed, those past the limit too,
	// lower-cased as webhooks' guids are stored.
	listed := map[string]bool{}
	err := wait(1)
	if err == nil {
		err = p.cfg.Groups.Groups(ctx, func(page []GroupCount) error {
			for _, g := range page {
				st.Groups++
				listed[strings.ToLower(strings.TrimSpace(g.GUID))] = true
				if g.Members > virgil.MaxParticipants-1 {
					st.TooLargeCount++
					if len(st.TooLarge) < 20 {
						st.TooLarge = append(st.TooLarge, g.GUID)
					}
					log.Warn().Str("group_id", g.GUID).Int("members", g.Members).Msg("group past E3Kit's participant limit, not reconciled")
					continue
				}
				if err := queue(g.GUID); err != nil {
					return err
				}
			}
			if err := save(); err != nil {
				log.Warn().Err(err).Msg("saving the reconcile status failed")
			}
			return wait(1)
		})
	}
	if err != nil {
		// An incomplete listing would make every group it did not reach
		// look deleted.
		st.UnlistedSkipped = "CometChat's listing of the groups was incomplete"
	} else {
		err = p.reconcileUnlisted(ctx, &st, listed, renew, queue, log)
	}
	if err != nil {
		st.Error = err.Error()
		p.metrics.runs.WithLabelValues("failed").Inc()
		log.Warn().Err(err).Int("queued", st.Queued).Msg("scheduled reconcile stopped early")
	} else {
		st.FinishedAt = time.Now().UTC()
		p.metrics.runs.WithLabelValues("finished").Inc()
		log.Info().Int("groups", st.Groups).Int("queued", st.Queued).Int("too_large", st.TooLargeCount).
			Int("unlisted", st.Unlisted).Int("unlisted_left", st.UnlistedLeft).Msg("scheduled reconcile queued every group")
	}
	if serr := save(); serr != nil && err == nil {
		return serr
	}
	return err
}

// reconcileUnlisted queues a reconcile job, with queue, for each group the
// store holds as not deleted that CometChat did not list in this run's
// complete listing: its deletion webhook was lost. The job reads the group
// from CometChat and deletes it only when CometChat answers that it does
// not have it; a group created since the listing is found and kept. At most
// ReconcileUnlistedMax are queued per run, starting at a random one so that
// groups CometChat does have but did not list cannot hold back the rest
// forever. renew keeps the run's lease while the store is read. Failing to
// list the store's groups skips the step (said in the status), not the run.
func (p *Pool) reconcileUnlisted(ctx context.Context, st *ReconcileStatus, listed map[string]bool, renew func() error, queue func(string) error, log zerolog.Logger) error {
	guids, err := p.store.Groups(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		st.UnlistedSkipped = "reading the store's groups failed"
		log.Warn().Err(err).Msg("scheduled reconcile: listing the store's groups failed; groups deleted without a webhook are not looked for")
		return nil
	}
	var unlisted []string
	for _, guid := range guids {
		if !listed[guid] {
			unlisted = append(unlisted, guid)
		}
	}
	if len(unlisted) == 0 {
		return nil
	}
	start := rand.IntN(len(unlisted))
	for i := range unlisted {
		guid := unlisted[(start+i)%len(unlisted)]
		if err := renew(); err != nil {
			return err
		}
		state, _, err := p.store.Group(ctx, guid)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Warn().Err(err).Str("group_id", guid).Msg("scheduled reconcile: reading a group the listing missed failed; it waits for the next run")
			continue
		}
		if state.Lifecycle == groupsync.LifecycleDeleted {
			continue
		}
		if st.Unlisted >= p.cfg.ReconcileUnlistedMax {
			st.UnlistedLeft++
			continue
		}
		log.Info().Str("group_id", guid).Msg("group held as existing that CometChat did not list; reconciling it")
		if err := queue(guid); err != nil {
			return err
		}
		st.Unlisted++
	}
	if st.UnlistedLeft > 0 {
		log.Warn().Int("queued", st.Unlisted).Int("left", st.UnlistedLeft).Msg("scheduled reconcile: more groups missing from CometChat's listing than one run visits; the rest wait for later runs")
	}
	return nil
}
