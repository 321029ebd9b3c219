package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of the roster.
const (
	// DefaultRosterBucket is the JetStream key-value bucket of the Roster.
	DefaultRosterBucket = "groupsync_workers"
	// DefaultRosterInterval is how often a pool writes its Heartbeat.
	DefaultRosterInterval = 10 * time.Second
	// DefaultRosterTTL is how long a heartbeat stays in the bucket: a
	// worker that stopped writing disappears after it.
	DefaultRosterTTL = time.Minute
	// activitySlots is how many slots of one roster interval the pool's
	// counts cover: six slots of 10 s make the last minute.
	activitySlots = 6
)

// Heartbeat is what one worker pool says about itself every roster
// interval: who it is, since when it runs, and what it did over the last
// minute.
type Heartbeat struct {
	// Worker is the pool's WorkerID.
	Worker string `json:"worker"`
	// Started is when the pool started running.
	Started time.Time `json:"started"`
	// Seen is when the pool wrote this heartbeat.
	Seen time.Time `json:"seen"`
	// Stopped reports the pool's last heartbeat, written as it stopped.
	Stopped bool `json:"stopped,omitempty"`
	// Partitions is how many partitions the pool consumes.
	Partitions int `json:"partitions"`
	// Concurrency is how many jobs the pool runs at most at once.
	Concurrency int `json:"concurrency"`
	// InFlight is how many jobs the pool was running.
	InFlight int `json:"in_flight"`
	// Window is the span the counts below cover (about a minute; less
	// just after the start).
	Window time.Duration `json:"window"`
	// Applied, Retried and Failed count the job deliveries of the window
	// that were applied, handed back to be retried, and dead-lettered.
	Applied int `json:"applied"`
	Retried int `json:"retried"`
	Failed  int `json:"failed"`
	// LagP50 and LagP99 are the median and 99th percentile of the lag of
	// the applied jobs (from the job's storing in the queue to its change
	// in Virgil), to the precision of Lag's buckets; zero without jobs.
	LagP50 time.Duration `json:"lag_p50"`
	LagP99 time.Duration `json:"lag_p99"`
	// Lag is the histogram of those lags, which sums across workers.
	Lag LagHistogram `json:"lag"`
}

// LagHistogram counts durations in buckets that grow by a quarter from one
// millisecond: bucket i holds durations up to LagBucketBound(i), the last
// one everything longer. Histograms of several workers add up (Merge), and a
// quantile read from one is at most a quarter above the true value.
type LagHistogram []uint32

// lagBuckets is the bucket count: 1 ms * 1.25^89 is about 11 hours.
const lagBuckets = 90

// LagBucketBound is the upper bound of bucket i of a LagHistogram.
func LagBucketBound(i int) time.Duration {
	return time.Duration(float64(time.Millisecond) * math.Pow(1.25, float64(i)))
}

func lagBucket(d time.Duration) int {
	if d <= time.Millisecond {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(time.Millisecond)) / math.Log(1.25)))
	// Guard against rounding at a bucket's bound.
	for i > 0 && LagBucketBound(i-1) >= d {
		i--
	}
	return min(i, lagBuckets-1)
}

// Add counts d.
func (h *LagHistogram) Add(d time.Duration) {
	i := lagBucket(d)
	if len(*h) <= i {
		*h = append(*h, make(LagHistogram, i+1-len(*h))...)
	}
	(*h)[i]++
}

// Merge adds o's counts to h.
func (h *LagHistogram) Merge(o LagHistogram) {
	if len(*h) < len(o) {
		*h = append(*h, make(LagHistogram, len(o)-len(*h))...)
	}
	for i, n := range o {
		(*h)[i] += n
	}
}

// Count returns how many durations h counted.
func (h LagHistogram) Count() int {
	n := 0
	for _, c := range h {
		n += int(c)
	}
	return n
}

// Quantile returns the upper bound of the bucket holding the q quantile (0 <
// q <= 1) of the counted durations; zero when h is empty.
func (h LagHistogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	seen := 0
	for i, c := range h {
		seen += int(c)
		if seen >= rank {
			return LagBucketBound(i)
		}
	}
	return LagBucketBound(len(h) - 1)
}

// activity counts a pool's job outcomes in slots of one roster interval.
type activity struct {
	mu    sync.Mutex
	slots [activitySlots]activitySlot
	cur   int
	used  int       // slots rotated into so far, at most activitySlots
	since time.Time // when the current slot began
}

type activitySlot struct {
	applied, retried, failed int
	lag                      LagHistogram
}

func (a *activity) applied(lag time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &a.slots[a.cur]
	s.applied++
	s.lag.Add(lag)
}

func (a *activity) retried() {
	a.mu.Lock()
	a.slots[a.cur].retried++
	a.mu.Unlock()
}

func (a *activity) failed() {
	a.mu.Lock()
	a.slots[a.cur].failed++
	a.mu.Unlock()
}

// fill writes the counts of the window that ends at now into hb, then starts
// a new slot, dropping the oldest.
func (a *activity) fill(hb *Heartbeat, started, now time.Time, interval time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var lag LagHistogram
	hb.Applied, hb.Retried, hb.Failed = 0, 0, 0
	for _, s := range a.slots {
		hb.Applied += s.applied
		hb.Retried += s.retried
		hb.Failed += s.failed
		lag.Merge(s.lag)
	}
	hb.Lag, hb.LagP50, hb.LagP99 = lag, lag.Quantile(0.5), lag.Quantile(0.99)
	hb.Window = min(now.Sub(started), time.Duration(activitySlots)*interval)
	a.cur = (a.cur + 1) % activitySlots
	a.slots[a.cur] = activitySlot{}
}

// Roster is the JetStream key-value bucket where every worker pool writes
// its Heartbeat, so that processes without a pool (serve, `groupsync
// explain`, the console) can tell which workers run and what they did. Keys
// expire after the bucket's TTL. It is safe for concurrent use by any number
// of processes; each pool writes only its own key.
type Roster struct {
	js     jetstream.JetStream
	bucket string

	mu sync.Mutex
	kv jetstream.KeyValue // nil: a read-only roster whose bucket did not exist yet
}

// RosterConfig configures OpenRoster. Zero fields take the defaults named in
// their docs.
type RosterConfig struct {
	// Bucket is the key-value bucket (default DefaultRosterBucket).
	Bucket string
	// Replicas is the bucket's replica count (use the job streams'): a new
	// bucket gets it (1 when 0); a live one is changed only when it is set
	// and differs, as for the bookkeeping bucket (OpenMeta).
	Replicas int
	// TTL is how long a heartbeat is kept (default DefaultRosterTTL).
	TTL time.Duration
	// ReadOnly opens the roster to read it without creating or changing the
	// bucket: a missing bucket reads as no workers until a worker creates
	// it (a reader that starts before the workers sees them once they
	// run).
	ReadOnly bool
}

// OpenRoster creates or opens the roster's bucket on js.
func OpenRoster(ctx context.Context, js jetstream.JetStream, cfg RosterConfig) (*Roster, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultRosterBucket
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultRosterTTL
	}
	if cfg.TTL < time.Second || cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("worker: roster config: TTL %v (want at least 1s), Replicas %d (want 0 to 5)", cfg.TTL, cfg.Replicas)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case err == nil:
		st, serr := kv.Status(ctx)
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if cfg.ReadOnly || serr == nil && (cfg.Replicas == 0 || ok && bs.StreamInfo().Config.Replicas == cfg.Replicas) {
			return &Roster{js: js, kv: kv, bucket: cfg.Bucket}, nil
		}
	case errors.Is(err, jetstream.ErrBucketNotFound) && cfg.ReadOnly:
		return &Roster{js: js, bucket: cfg.Bucket}, nil
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("worker: open kv bucket %s: %w", cfg.Bucket, err)
	}
	replicas := max(cfg.Replicas, 1)
	kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, Description: "groupsync worker heartbeats",
		History: 1, TTL: cfg.TTL, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: open kv bucket %s: %w", cfg.Bucket, err)
	}
	return &Roster{js: js, kv: kv, bucket: cfg.Bucket}, nil
}

// bucketKV returns the bucket, looking it up again when a read-only roster
// opened before it existed; nil when it still does not exist.
func (r *Roster) bucketKV(ctx context.Context) (jetstream.KeyValue, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kv != nil {
		return r.kv, nil
	}
	kv, err := r.js.KeyValue(ctx, r.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("worker: open kv bucket %s: %w", r.bucket, err)
	}
	r.kv = kv
	return kv, nil
}

// rosterKey is the key of a worker: its id in base64url, since ids may hold
// characters keys may not.
func rosterKey(worker string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(worker))
}

// Put writes hb under its worker's key.
func (r *Roster) Put(ctx context.Context, hb Heartbeat) error {
	kv, err := r.bucketKV(ctx)
	if err != nil {
		return err
	}
	if kv == nil {
		return fmt.Errorf("worker: roster %s: the bucket does not exist (opened read-only)", r.bucket)
	}
	b, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("worker: roster: encode heartbeat: %w", err)
	}
	if _, err := kv.Put(ctx, rosterKey(hb.Worker), b); err != nil {
		return fmt.Errorf("worker: roster put %s: %w", hb.Worker, err)
	}
	return nil
}

// Heartbeats returns the latest heartbeat of every worker heard from within
// the bucket's TTL, sorted by worker id. A heartbeat that does not decode is
// an error: the bucket is groupsync's own.
func (r *Roster) Heartbeats(ctx context.Context) ([]Heartbeat, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	kv, err := r.bucketKV(ctx)
	if err != nil || kv == nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("worker: roster list: %w", err)
	}
	defer func() { _ = w.Stop() }()
	latest := map[string]Heartbeat{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("worker: roster list: %w", ctx.Err())
		}
		if e == nil {
			break // every current value was delivered
		}
		var hb Heartbeat
		if err := json.Unmarshal(e.Value(), &hb); err != nil {
			return nil, fmt.Errorf("worker: roster: heartbeat %s: decode: %w", e.Key(), err)
		}
		latest[e.Key()] = hb
	}
	out := make([]Heartbeat, 0, len(latest))
	for _, hb := range latest {
		out = append(out, hb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Worker < out[j].Worker })
	return out, nil
}

// rosterLoop writes the pool's heartbeat at once, then every
// RosterInterval until ctx ends, and a last one marked Stopped.
func (p *Pool) rosterLoop(ctx context.Context, started time.Time) {
	t := time.NewTicker(p.cfg.RosterInterval)
	defer t.Stop()
	beat := func(ctx context.Context, stopped bool) {
		now := time.Now()
		hb := Heartbeat{
			Worker: p.cfg.WorkerID, Started: started.UTC(), Seen: now.UTC(), Stopped: stopped,
			Partitions: p.q.Partitions(), Concurrency: p.cfg.Concurrency, InFlight: p.InFlight(),
		}
		p.act.fill(&hb, started, now, p.cfg.RosterInterval)
		wctx, cancel := context.WithTimeout(ctx, p.cfg.RosterInterval)
		defer cancel()
		if err := p.cfg.Roster.Put(wctx, hb); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("writing the worker's heartbeat failed")
		}
	}
	beat(ctx, false)
	for {
		select {
		case <-ctx.Done():
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			beat(bg, true)
			cancel()
			return
		case <-t.C:
			beat(ctx, false)
		}
	}
}
