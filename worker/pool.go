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
)

// Defaults for the zero-value fields of Config.
const (
	DefaultJobTimeout           = 2 * time.Minute
	DefaultLeaseTTL             = 10 * time.Second
	DefaultRetryInitial         = 200 * time.Millisecond
	DefaultRetryMax             = 5 * time.Second
	DefaultRetries              = 5
	DefaultNakBase              = time.Second
	DefaultNakMax               = 30 * time.Second
	DefaultCheckInitial         = time.Second
	DefaultCheckMax             = 2 * time.Minute
	DefaultCheckAttempts        = 12
	DefaultCheckPoll            = 250 * time.Millisecond
	DefaultSweepInterval        = time.Minute
	DefaultShutdownNak          = time.Second
	DefaultLossWindow           = 5 * time.Minute
	DefaultReconcileRate        = 2.0
	DefaultReconcileUnlistedMax = 1000
	DefaultReconcilePoll        = 15 * time.Second
	maxCommitAttempts           = 5
	maxDeadLetterReasonLen      = 400
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
	// dead-lettered with ReasonNeedsReconcile. It also confirms membership
	// changes after a loss of the store's data (LossWindow); without it
	// those are dead-lettered with ReasonUnconfirmed. When it also
	// implements MemberCounter, groups past E3Kit's limit fail before their
	// members are paged.
	Reconciler Reconciler
	// Audit, when set, receives a record of every change applied to Virgil,
	// once the job that applied it is committed.
	Audit Auditor
	// Meta keeps what must outlive the store's data: the store's marker as
	// last seen (so a loss is detected across restarts too), the scheduled
	// reconcile's lease and status. Without it a loss is detected only
	// while a worker runs, and there is no scheduled reconcile.
	Meta *Meta
	// LossWindow is how long after a detected loss of the store's data
	// membership changes are checked with CometChat: every job stored before
	// the detection plus LossWindow (default 5 minutes, past CometChat's
	// retries at +10 s and +30 s, with room for queue lag).
	LossWindow time.Duration
	// Groups lists CometChat's groups for the scheduled reconcile.
	Groups GroupLister
	// ReconcileInterval is how often one of the workers reconciles every
	// group with CometChat (0: never). It needs Reconciler, Groups and Meta.
	ReconcileInterval time.Duration
	// ReconcileRate is how many CometChat REST requests per second a
	// scheduled reconcile may cause (default 2: a quarter of the free
	// plan's 500 per minute; paid plans allow 20,000 per minute).
	ReconcileRate float64
	// ReconcileUnlistedMax bounds how many groups one scheduled reconcile
	// visits that the store holds as not deleted but CometChat did not list
	// (a lost deletion webhook); the rest wait for later runs (default
	// DefaultReconcileUnlistedMax).
	ReconcileUnlistedMax int
	// ReconcilePoll is how often workers look whether a scheduled reconcile
	// is due (default 15 s, or a quarter of a shorter ReconcileInterval).
	ReconcilePoll time.Duration
	// Roster, when set, receives the pool's Heartbeat every RosterInterval:
	// its id, start, and the jobs it applied, retried and dead-lettered over
	// the last minute with their lag, for `groupsync explain` and the
	// console.
	Roster *Roster
	// RosterInterval is how often the pool writes its Heartbeat (default
	// DefaultRosterInterval); the counts cover six intervals.
	RosterInterval time.Duration
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
	def(&c.LossWindow, DefaultLossWindow)
	def(&c.RosterInterval, DefaultRosterInterval)
	if c.ReconcilePoll == 0 {
		c.ReconcilePoll = DefaultReconcilePoll
		if c.ReconcileInterval > 0 && c.ReconcileInterval/4 < c.ReconcilePoll {
			c.ReconcilePoll = c.ReconcileInterval / 4
		}
	}
	if c.ReconcileRate == 0 {
		c.ReconcileRate = DefaultReconcileRate
	}
	if c.ReconcileUnlistedMax == 0 {
		c.ReconcileUnlistedMax = DefaultReconcileUnlistedMax
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		c.WorkerID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
}

// validate reports every invalid field of a defaulted Config, joined.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Concurrency < 1 {
		bad("Concurrency %d: want at least 1", c.Concurrency)
	}
	if c.JobTimeout < 0 || c.LeaseTTL < 0 || c.Heartbeat < 0 {
		bad("JobTimeout %v, LeaseTTL %v, Heartbeat %v: must not be negative", c.JobTimeout, c.LeaseTTL, c.Heartbeat)
	}
	if c.Heartbeat >= c.LeaseTTL {
		bad("Heartbeat %s must be shorter than LeaseTTL %s", c.Heartbeat, c.LeaseTTL)
	}
	if c.Retries < 0 {
		bad("Retries %d: must not be negative", c.Retries)
	}
	if c.CheckAttempts < 1 {
		bad("CheckAttempts %d: want at least 1", c.CheckAttempts)
	}
	if c.LossWindow < 0 || c.ReconcileInterval < 0 || c.ReconcilePoll < 0 {
		bad("LossWindow %v, ReconcileInterval %v, ReconcilePoll %v: must not be negative", c.LossWindow, c.ReconcileInterval, c.ReconcilePoll)
	}
	if c.RosterInterval < 0 {
		bad("RosterInterval %v: must not be negative", c.RosterInterval)
	}
	if c.ReconcileRate < 0 {
		bad("ReconcileRate %g: must not be negative", c.ReconcileRate)
	}
	if c.ReconcileUnlistedMax < 0 {
		bad("ReconcileUnlistedMax %d: must not be negative", c.ReconcileUnlistedMax)
	}
	if c.ReconcileInterval > 0 && (c.Reconciler == nil || c.Groups == nil || c.Meta == nil) {
		bad("ReconcileInterval %v: a scheduled reconcile needs a Reconciler, Groups and Meta", c.ReconcileInterval)
	}
	if strings.ContainsAny(c.WorkerID, ": \n") {
		bad("WorkerID %q contains ':' or white space", c.WorkerID)
	}
	if len(errs) > 0 {
		return fmt.Errorf("worker: config: %w", errors.Join(errs...))
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
	v       groupsync.EncryptedGroups
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

	loss lossState
	act  activity // job outcomes for the roster
}

// New returns a Pool taking jobs from q, keeping state in store and applying
// plans through v (usually a *VirgilGroups). It fails on an invalid cfg,
// when registering metrics fails, and when q cannot authenticate jobs (no
// job key or app id: the error matches queue.ErrNoJobKey).
func New(cfg Config, q *queue.Queue, store Store, v groupsync.EncryptedGroups) (*Pool, error) {
	if q == nil || store == nil || v == nil {
		return nil, errors.New("worker: New needs a queue, a store and the encrypted groups")
	}
	if err := checkJobAuth(q); err != nil {
		return nil, err
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

	if err := p.checkStore(ctx); err != nil {
		p.log.Warn().Err(err).Msg("checking the store's marker failed; every job checks it again")
	}
	if p.cfg.Reconciler == nil {
		p.log.Warn().Msg(ReasonNoReconciler)
	}
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
	if p.cfg.Roster != nil {
		started := time.Now()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.rosterLoop(fetchCtx, started)
		}()
	}
	if p.cfg.ReconcileInterval > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.reconcileLoop(fetchCtx)
		}()
	}
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
