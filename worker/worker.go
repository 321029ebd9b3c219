package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
)

// Defaults for the zero-value fields of Config.
const (
	DefaultJobTimeout      = 2 * time.Minute
	DefaultLeaseTTL        = 10 * time.Second
	DefaultRetryInitial    = 200 * time.Millisecond
	DefaultRetryMax        = 5 * time.Second
	DefaultRetries         = 5
	DefaultNakBase         = time.Second
	DefaultNakMax          = 30 * time.Second
	DefaultCheckInitial    = time.Second
	DefaultCheckMax        = 2 * time.Minute
	DefaultCheckAttempts   = 12
	DefaultCheckPoll       = 250 * time.Millisecond
	DefaultSweepInterval   = time.Minute
	DefaultShutdownNak     = time.Second
	maxCommitAttempts      = 5
	maxDeadLetterReasonLen = 400
)

// ReasonNeedsReconcile starts the dead-letter reason of an ActionReconcile
// job when the pool has no Reconciler.
const ReasonNeedsReconcile = "needs reconcile"

// Reconciler reads a group's current membership from CometChat, for
// ActionReconcile jobs (ban/unban events that cannot be trusted, `groupsync
// reconcile`).
type Reconciler interface {
	// Members returns the uids of the group's current members, and exists
	// false when the group no longer exists in CometChat.
	Members(ctx context.Context, guid string) (uids []string, exists bool, err error)
}

// Config configures a Pool. Zero fields take the defaults named in their
// docs; New fills them in, then validates.
type Config struct {
	// Concurrency is the most jobs one process runs at once (default: the
	// queue's partition count). Each partition runs one job at a time across
	// all processes, so more than the partition count gains nothing.
	Concurrency int
	// JobTimeout bounds one delivery of one job (default 2 minutes); a job
	// that times out is retried later.
	JobTimeout time.Duration
	// LeaseTTL is the lifetime of a job's idempotency lease (default 10 s),
	// renewed by the heartbeat while the job runs. A crashed worker's job is
	// taken over by another delivery once its lease expires; until then the
	// new delivery is handed back with growing delays (from NakBase, at most
	// LeaseTTL).
	LeaseTTL time.Duration
	// Heartbeat is how often a running job tells JetStream it is in progress
	// and renews its lease (default: a third of the smaller of LeaseTTL and
	// the queue's AckWait).
	Heartbeat time.Duration
	// RetryInitial and RetryMax bound the exponential backoff between
	// retries of a transient failure within one delivery (defaults 200 ms and
	// 5 s); a Retry-After from Virgil lengthens the wait.
	RetryInitial, RetryMax time.Duration
	// Retries is how many times one call is retried within one delivery
	// before the job is handed back with NakWithDelay (default 5).
	Retries int
	// NakBase and NakMax bound the redelivery delay after a delivery failed:
	// NakBase doubled per delivery, at most NakMax (defaults 1 s and 30 s),
	// or the Retry-After of the last failure when longer (at most 2 minutes).
	NakBase, NakMax time.Duration
	// DoneTTL is how long a completed job is remembered (default 24 h).
	DoneTTL time.Duration
	// CheckInitial, CheckMax and CheckAttempts shape the re-checks of a
	// user's cards after UserSeen: after CheckInitial, then doubling up to
	// CheckMax, CheckAttempts times in all (defaults 1 s, 2 min, 12).
	CheckInitial, CheckMax time.Duration
	// CheckAttempts is described with CheckInitial.
	CheckAttempts int
	// CheckPoll is how often the pool looks for due checks (default 250 ms).
	CheckPoll time.Duration
	// SweepInterval is how often every pending member is checked (default 1
	// minute); negative disables the sweep.
	SweepInterval time.Duration
	// Reconciler, when set, runs ActionReconcile jobs; without it they are
	// dead-lettered with ReasonNeedsReconcile.
	Reconciler Reconciler
	// WorkerID names this process in leases (default host-pid-random).
	WorkerID string
	// Logger receives the pool's logs. The zero value logs nothing.
	Logger zerolog.Logger
	// Registerer, when set, receives the pool's Prometheus metrics.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults(partitions int, ackWait time.Duration) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = partitions
	}
	def(&c.JobTimeout, DefaultJobTimeout)
	def(&c.LeaseTTL, DefaultLeaseTTL)
	if c.Heartbeat == 0 {
		hb := c.LeaseTTL
		if ackWait > 0 && ackWait < hb {
			hb = ackWait
		}
		c.Heartbeat = hb / 3
	}
	def(&c.RetryInitial, DefaultRetryInitial)
	def(&c.RetryMax, DefaultRetryMax)
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	def(&c.NakBase, DefaultNakBase)
	def(&c.NakMax, DefaultNakMax)
	def(&c.DoneTTL, DefaultDoneTTL)
	def(&c.CheckInitial, DefaultCheckInitial)
	def(&c.CheckMax, DefaultCheckMax)
	if c.CheckAttempts == 0 {
		c.CheckAttempts = DefaultCheckAttempts
	}
	def(&c.CheckPoll, DefaultCheckPoll)
	def(&c.SweepInterval, DefaultSweepInterval)
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.WorkerID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
}

func (c *Config) validate() error {
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("worker: concurrency %d < 1", c.Concurrency)
	case c.JobTimeout < 0 || c.LeaseTTL < 0 || c.Heartbeat < 0:
		return errors.New("worker: negative job timeout, lease TTL or heartbeat")
	case c.Heartbeat >= c.LeaseTTL:
		return fmt.Errorf("worker: heartbeat %s must be shorter than the lease TTL %s", c.Heartbeat, c.LeaseTTL)
	case c.Retries < 0:
		return fmt.Errorf("worker: retries %d < 0", c.Retries)
	case c.CheckAttempts < 1:
		return fmt.Errorf("worker: check attempts %d < 1", c.CheckAttempts)
	case strings.ContainsAny(c.WorkerID, ": \n"):
		return fmt.Errorf("worker: worker id %q contains ':' or white space", c.WorkerID)
	}
	return nil
}

// Pool runs jobs from the queue: one loop per partition, each job under a
// fenced idempotency lease, its plan applied to Virgil with retries, then
// acknowledged, handed back with a delay, or dead-lettered. Any number of
// pools, in any number of processes, may share a queue and a store.
type Pool struct {
	cfg     Config
	q       *queue.Queue
	store   Store
	v       groupsync.Virgil
	log     zerolog.Logger
	metrics *metrics
	sem     chan struct{}

	mu         sync.Mutex
	running    bool
	stopped    bool
	stopFetch  context.CancelFunc
	cancelWork context.CancelFunc
	done       chan struct{}
	wg         sync.WaitGroup
	inFlight   atomic.Int64
}

// New returns a Pool taking jobs from q, keeping state in store and applying
// plans through v (usually a *VirgilGroups). It fails on an invalid cfg or
// when registering metrics fails.
func New(cfg Config, q *queue.Queue, store Store, v groupsync.Virgil) (*Pool, error) {
	if q == nil || store == nil || v == nil {
		return nil, errors.New("worker: New needs a queue, a store and a Virgil port")
	}
	cfg.setDefaults(q.Partitions(), q.Config().AckWait)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Pool{
		cfg: cfg, q: q, store: store, v: v, metrics: m,
		log:  cfg.Logger.With().Str("worker_id", cfg.WorkerID).Logger(),
		sem:  make(chan struct{}, cfg.Concurrency),
		done: make(chan struct{}),
	}, nil
}

// Config returns the configuration in use, defaults filled in.
func (p *Pool) Config() Config { return p.cfg }

// InFlight returns the number of jobs running now.
func (p *Pool) InFlight() int { return int(p.inFlight.Load()) }

// ErrPoolStopped is returned by Run on a pool that was already run or
// stopped.
var ErrPoolStopped = errors.New("worker: pool already run or stopped")

// Run takes jobs until ctx ends or Stop is called, then returns once every
// job has settled. Ending ctx stops fetching and cancels running jobs, which
// are handed back to the queue; Stop is the graceful way. A pool runs once.
func (p *Pool) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.running || p.stopped {
		p.mu.Unlock()
		return ErrPoolStopped
	}
	p.running = true
	fetchCtx, stopFetch := context.WithCancel(ctx)
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	p.stopFetch, p.cancelWork = stopFetch, cancelWork
	p.mu.Unlock()
	defer close(p.done)
	defer cancelWork()

	stopWatch := context.AfterFunc(ctx, cancelWork)
	defer stopWatch()

	p.log.Info().Int("partitions", p.q.Partitions()).Int("concurrency", p.cfg.Concurrency).Msg("worker pool started")
	for part := 0; part < p.q.Partitions(); part++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.loop(fetchCtx, workCtx, part)
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.checkLoop(fetchCtx)
	}()
	p.wg.Wait()
	p.log.Info().Msg("worker pool stopped")
	return nil
}

// Stop stops fetching jobs, lets running jobs finish until ctx ends, then
// cancels the rest (they are handed back to the queue with a short delay)
// and waits for them. It returns ctx's error when jobs had to be cancelled.
// Stop is idempotent and may be called before Run (Run then returns
// ErrPoolStopped).
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopped = true
	running := p.running
	stopFetch, cancelWork := p.stopFetch, p.cancelWork
	p.mu.Unlock()
	if !running {
		return nil
	}
	stopFetch()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	cancelWork()
	<-p.done
	return fmt.Errorf("worker: stop: running jobs cancelled: %w", ctx.Err())
}

// loop runs the jobs of one partition.
func (p *Pool) loop(fetchCtx, workCtx context.Context, part int) {
	log := p.log.With().Int("partition", part).Logger()
	wait := backoff.NewExponentialBackOff()
	wait.InitialInterval, wait.MaxInterval, wait.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	for fetchCtx.Err() == nil {
		d, err := p.q.Next(fetchCtx, part)
		if err != nil {
			if fetchCtx.Err() != nil {
				return
			}
			next := wait.NextBackOff()
			log.Warn().Err(err).Dur("retry_in", next).Msg("fetching jobs failed, retrying")
			select {
			case <-fetchCtx.Done():
				return
			case <-time.After(next):
			}
			continue
		}
		wait.Reset()
		select {
		case p.sem <- struct{}{}:
		case <-workCtx.Done():
			p.nakDelivery(d, p.cfg.NakBase, log)
			return
		}
		p.handle(workCtx, d)
		<-p.sem
	}
}

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
		next, plan, err := p.plan(ctx, st, job, d.StreamSeq, log)
		if err != nil {
			return err
		}
		log.Debug().Interface("steps", plan.Steps).Strs("stale", plan.Stale).Str("ignored", plan.Ignored).Msg("plan")
		if err := p.execute(ctx, guid, plan, &next, log); err != nil {
			return err
		}
		err = p.retry(ctx, log, "commit", func() error {
			return p.store.Commit(ctx, Commit{JobID: job.ID, Lease: lease, GUID: guid, Version: ver, State: next, DoneTTL: p.cfg.DoneTTL})
		})
		if errors.Is(err, ErrConflict) {
			log.Info().Msg("group state changed meanwhile, planning again")
			continue
		}
		return err
	}
	return fmt.Errorf("worker: job %s: group state kept changing: %w", job.ID, ErrConflict)
}

// plan returns the new state and the plan of job, reading CometChat for a
// reconcile.
func (p *Pool) plan(ctx context.Context, st groupsync.GroupState, job groupsync.Job, seq uint64, log zerolog.Logger) (groupsync.GroupState, groupsync.Plan, error) {
	next, plan := groupsync.Apply(st, job.Event, seq)
	if !plan.Reconcile {
		return next, plan, nil
	}
	var members []string
	var exists bool
	err := p.retry(ctx, log, "read CometChat members", func() error {
		var err error
		members, exists, err = p.cfg.Reconciler.Members(ctx, job.Event.GUID)
		return err
	})
	if err != nil {
		return st, plan, fmt.Errorf("worker: reconcile group %s: %w", job.Event.GUID, err)
	}
	now := time.Now().Unix()
	base := st
	if base.Lifecycle == groupsync.LifecycleDeleted && exists {
		base = groupsync.GroupState{GUID: st.GUID}
	}
	ev := groupsync.Event{GUID: job.Event.GUID, UpdatedAt: now, MembersCount: -1}
	out := groupsync.Plan{GUID: job.Event.GUID}
	if !exists {
		ev.Trigger, ev.Action = groupsync.TriggerGroupDeleted, groupsync.ActionDelete
		next, plan = groupsync.Apply(base, ev, seq)
		out.Steps = plan.Steps
		return next, out, nil
	}
	want := map[string]bool{}
	add := ev
	add.Trigger, add.Action = groupsync.TriggerReconcile, groupsync.ActionAdd
	for _, uid := range members {
		want[uid] = true
		add.Members = append(add.Members, groupsync.Member{UID: uid})
	}
	next, plan = groupsync.Apply(base, add, seq)
	out.Steps = append(out.Steps, plan.Steps...)
	rm := ev
	rm.Trigger, rm.Action = groupsync.TriggerReconcile, groupsync.ActionRemove
	for _, uid := range next.Current() {
		if !want[uid] {
			rm.Members = append(rm.Members, groupsync.Member{UID: uid})
		}
	}
	if len(rm.Members) > 0 {
		next, plan = groupsync.Apply(next, rm, seq)
		out.Steps = append(out.Steps, plan.Steps...)
	}
	if len(out.Steps) == 0 {
		// Make sure the group exists even without members besides the owner.
		out.Steps = []groupsync.Step{{Op: groupsync.OpAdd}}
	}
	return next, out, nil
}

// execute applies plan's steps to Virgil, recording in st who is pending
// and which card each new participant got tickets under.
func (p *Pool) execute(ctx context.Context, guid string, plan groupsync.Plan, st *groupsync.GroupState, log zerolog.Logger) error {
	for _, s := range plan.Steps {
		var err error
		switch s.Op {
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
			return fmt.Errorf("worker: %s %s on group %s: %w", s.Op, fmtUIDs(s.UIDs), guid, err)
		}
		p.metrics.steps.WithLabelValues(string(s.Op)).Inc()
	}
	return nil
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
		if !isPending[uid] {
			st.MarkCard(uid, res.CardIDs[uid])
		}
	}
	if len(res.Pending) > 0 {
		log.Info().Strs("pending", res.Pending).Msg("members without a Virgil card kept pending")
	}
	return nil
}

// transient reports whether err may go away when retried within the same
// delivery.
func transient(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil, groupsync.IsPermanent(err), errors.Is(err, ErrLeaseLost), errors.Is(err, ErrConflict):
		return false
	}
	return true
}

// retryAfter returns the Retry-After of a Virgil error, 0 if none.
func retryAfter(err error) time.Duration {
	var ae *virgil.APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// hintedBackOff is an exponential backoff that waits at least the last
// failure's Retry-After.
type hintedBackOff struct {
	*backoff.ExponentialBackOff
	hint time.Duration
}

func (b *hintedBackOff) NextBackOff() time.Duration {
	next := b.ExponentialBackOff.NextBackOff()
	if next != backoff.Stop && b.hint > next {
		next = b.hint
	}
	return next
}

// retry runs op, retrying transient failures with exponential backoff up to
// Config.Retries times while ctx lasts. It returns op's last error.
func (p *Pool) retry(ctx context.Context, log zerolog.Logger, what string, op func() error) error {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval, eb.MaxInterval, eb.MaxElapsedTime = p.cfg.RetryInitial, p.cfg.RetryMax, 0
	b := &hintedBackOff{ExponentialBackOff: eb}
	var last error
	attempt := 0
	err := backoff.RetryNotify(func() error {
		attempt++
		err := op()
		if err == nil {
			return nil
		}
		last = err
		b.hint = retryAfter(err)
		if !transient(ctx, err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(backoff.WithMaxRetries(b, uint64(p.cfg.Retries)), ctx), func(err error, d time.Duration) {
		p.metrics.retries.Inc()
		log.Warn().Err(err).Str("call", what).Int("call_attempt", attempt).Dur("retry_in", d).Msg("call failed, retrying")
	})
	if err != nil && last != nil && !errors.Is(err, last) {
		// The context ended while waiting: keep both causes.
		return fmt.Errorf("%w (last failure: %w)", err, last)
	}
	return err
}

// settle acknowledges, hands back or dead-letters the delivery.
func (p *Pool) settle(ctx context.Context, d *queue.Delivery, lease Lease, res result, err error, took time.Duration, log zerolog.Logger) {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case err == nil && (res == resApplied || res == resDuplicate):
		if aerr := d.Ack(bg); aerr != nil {
			log.Warn().Err(aerr).Msg("ack failed; the job will be redelivered and found done")
		}
		label := "applied"
		if res == resDuplicate {
			label = "duplicate"
			log.Debug().Msg("job already done, acknowledged")
		} else {
			lag := time.Since(d.Stored)
			p.metrics.lag.Observe(lag.Seconds())
			log.Debug().Dur("took", took).Dur("queued", lag-took).Msg("job applied")
		}
		p.metrics.jobs.WithLabelValues(label).Inc()
		return
	case err == nil && res == resHeld:
		// Usually the lease of a worker that died, about to expire (its
		// heartbeat also kept the ack wait going): look again soon.
		delay := min(p.nakDelay(d.NumDelivered, nil), p.cfg.LeaseTTL)
		log.Info().Dur("retry_in", delay).Msg("job leased by another delivery, handing it back")
		p.nakDelivery(d, delay, log)
		p.metrics.jobs.WithLabelValues("held").Inc()
		return
	case res == resLeaseLost:
		// Another delivery owns the job now; it settles it.
		log.Warn().Err(err).Msg("job lease lost, leaving the delivery to its new owner")
		p.metrics.jobs.WithLabelValues("lease_lost").Inc()
		return
	}
	if rerr := p.store.Release(bg, d.Job.ID, lease); rerr != nil {
		log.Warn().Err(rerr).Msg("releasing the job lease failed; it expires by itself")
	}
	shutdown := ctx.Err() != nil && !errors.Is(context.Cause(ctx), errJobTimeout)
	switch {
	case shutdown:
		log.Info().Msg("shutting down, handing the job back")
		p.nakDelivery(d, DefaultShutdownNak, log)
		p.metrics.jobs.WithLabelValues("shutdown").Inc()
	case groupsync.IsPermanent(err) || d.LastAttempt():
		reason := deadLetterReason(err, d.LastAttempt() && !groupsync.IsPermanent(err), d.NumDelivered)
		if derr := d.DeadLetter(bg, reason); derr != nil {
			log.Error().Err(derr).Str("reason", reason).Msg("dead-lettering failed; the job will be redelivered")
			return
		}
		log.Error().Err(err).Str("reason", reason).Msg("job dead-lettered")
		p.metrics.jobs.WithLabelValues("dead_lettered").Inc()
	default:
		delay := p.nakDelay(d.NumDelivered, err)
		log.Warn().Err(err).Dur("retry_in", delay).Msg("job failed, will be redelivered")
		p.nakDelivery(d, delay, log)
		p.metrics.jobs.WithLabelValues("retried").Inc()
	}
}

func (p *Pool) nakDelivery(d *queue.Delivery, delay time.Duration, log zerolog.Logger) {
	if err := d.NakWithDelay(delay); err != nil {
		log.Warn().Err(err).Msg("nak failed; the job is redelivered after the ack wait")
	}
}

// nakDelay is NakBase doubled per delivery, at most NakMax, or the failure's
// Retry-After when longer (at most 2 minutes).
func (p *Pool) nakDelay(delivered uint64, err error) time.Duration {
	d := p.cfg.NakBase
	for i := uint64(1); i < delivered && d < p.cfg.NakMax; i++ {
		d *= 2
	}
	d = min(d, p.cfg.NakMax)
	if ra := retryAfter(err); ra > d {
		d = min(ra, 2*time.Minute)
	}
	return d
}

func deadLetterReason(err error, exhausted bool, attempts uint64) string {
	msg := "unknown failure"
	if err != nil {
		msg = err.Error()
	}
	if errors.Is(err, errNeedsReconcile) {
		msg = ReasonNeedsReconcile + ": the event cannot be trusted and no CometChat reconciler is configured; run `groupsync reconcile`"
	} else if exhausted {
		msg = fmt.Sprintf("failed %d deliveries: %s", attempts, msg)
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	if len(msg) > maxDeadLetterReasonLen {
		msg = msg[:maxDeadLetterReasonLen] + "…"
	}
	return msg
}
