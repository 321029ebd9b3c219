package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// LatencyConfig shapes a latency run.
type LatencyConfig struct {
	Rate     float64       // events offered per second (open loop)
	Duration time.Duration // how long they are offered
	Groups   int
	Users    int // shared pool; each group holds about half of it
	Logf     func(string, ...any)
}

// LatencyResult is the outcome of a latency run.
type LatencyResult struct {
	Workers        int     `json:"workers"`
	OfferedRate    float64 `json:"offered_rate"`
	DurationS      float64 `json:"duration_s"`
	Accepted       int     `json:"accepted"`
	Measured       int     `json:"measured"`   // events seen applied in Virgil
	Superseded     int     `json:"superseded"` // a newer event for the member came first
	Unseen         int     `json:"unseen"`     // accepted but never seen applied
	P50MS          float64 `json:"p50_ms"`
	P95MS          float64 `json:"p95_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	WebhookP50MS   float64 `json:"webhook_p50_ms"`
	WebhookP99MS   float64 `json:"webhook_p99_ms"`
	AppliedRate    float64 `json:"applied_rate"` // events/s seen applied during the offered window
	ServePeakRSSKB int     `json:"serve_peak_rss_kb"`
	WorkerPeakRSS  int     `json:"worker_peak_rss_kb"` // largest over the workers
	PollResolution string  `json:"poll_resolution"`
}

// Summary is one line.
func (r LatencyResult) Summary() string {
	return fmt.Sprintf("latency webhook 200 -> Virgil group changed at %.0f events/s for %.0fs, %d workers: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (measured %d of %d accepted, %d superseded, %d unseen); webhook answer p50 %.1f ms p99 %.1f ms; peak RSS serve %d MiB, worker %d MiB",
		r.OfferedRate, r.DurationS, r.Workers, r.P50MS, r.P95MS, r.P99MS, r.MaxMS, r.Measured, r.Accepted, r.Superseded, r.Unseen,
		r.WebhookP50MS, r.WebhookP99MS, r.ServePeakRSSKB/1024, r.WorkerPeakRSS/1024)
}

// pending is an accepted event waiting to be seen applied.
type pending struct {
	e   *Event
	uid string
	gen int // per (group, uid) generation: a newer event supersedes it
}

// latencyGroup is the generator's view of one group.
type latencyGroup struct {
	mu      sync.Mutex
	guid    string
	created int64
	at      int64
	members []string // in order of joining
	in      map[string]bool
	gen     map[string]int
	waiting []pending
}

// RunLatency starts a cluster, offers membership events at a fixed rate and
// measures, per event, the time from the webhook's 200 to the moment the
// emulator's view of the Virgil group shows the change (polled: the
// resolution is one sweep over the groups with events in flight).
func RunLatency(ctx context.Context, ccfg ClusterConfig, lc LatencyConfig) (LatencyResult, error) {
	logf := lc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c, err := StartCluster(ctx, ccfg)
	if err != nil {
		return LatencyResult{}, err
	}
	defer c.Stop()
	users := make([]string, lc.Users)
	for i := range users {
		users[i] = fmt.Sprintf("lat-user-%04d", i)
	}
	if err := c.RegisterUsers(ctx, users); err != nil {
		return LatencyResult{}, err
	}
	poster := c.Poster(30 * time.Second)
	rng := rand.New(rand.NewPCG(1, 2))
	groups := make([]*latencyGroup, lc.Groups)
	for i := range groups {
		g := &latencyGroup{guid: fmt.Sprintf("lat-group-%03d", i), created: time.Now().Unix() - 3600, in: map[string]bool{}, gen: map[string]int{}}
		initial := []string{}
		for _, j := range rng.Perm(len(users))[:len(users)/2] {
			initial = append(initial, users[j])
		}
		for _, u := range initial {
			g.in[u] = true
		}
		g.members = initial
		g.at = g.created
		if ok, _ := poster.Post(newEvent("group_created", g.guid, initial, g.created, g.created).Body); !ok {
			return LatencyResult{}, fmt.Errorf("group_created of %s not accepted", g.guid)
		}
		groups[i] = g
	}
	// Let the creations settle before measuring.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	if err := poll(ctx, 2*time.Minute, "groups created", func() error {
		for _, g := range groups {
			if _, found, err := c.Group(client, g.guid); err != nil || !found {
				return fmt.Errorf("%s not created yet (%v)", g.guid, err)
			}
		}
		return nil
	}); err != nil {
		return LatencyResult{}, err
	}
	logf("latency: %d groups of %d users ready; offering %.0f events/s for %v", len(groups), len(users)/2, lc.Rate, lc.Duration)

	var (
		mu        sync.Mutex
		lat       []time.Duration
		hookLat   []time.Duration
		accepted  int
		measured  int
		supersede int
		firstSeen time.Time
	)
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	var sweeps, sweepTotal time.Duration
	go func() { // the poller
		defer close(pollDone)
		n := 0
		for {
			start := time.Now()
			active := 0
			for _, g := range groups {
				g.mu.Lock()
				busy := len(g.waiting) > 0
				g.mu.Unlock()
				if !busy {
					continue
				}
				active++
				v, _, err := c.Group(client, g.guid)
				if err != nil {
					continue
				}
				now := time.Now()
				g.mu.Lock()
				keep := g.waiting[:0]
				for _, p := range g.waiting {
					if p.gen != g.gen[p.uid] {
						mu.Lock()
						supersede++
						mu.Unlock()
						continue
					}
					if slices.Contains(v.Participants, c.Identity.User(p.uid)) == p.e.In {
						mu.Lock()
						lat = append(lat, now.Sub(p.e.AcceptedAt))
						measured++
						if firstSeen.IsZero() {
							firstSeen = now
						}
						mu.Unlock()
						continue
					}
					keep = append(keep, p)
				}
				g.waiting = keep
				g.mu.Unlock()
			}
			if active > 0 {
				n++
				sweepTotal += time.Since(start)
				sweeps = sweepTotal / time.Duration(n)
			}
			select {
			case <-stopPoll:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	// The generator: open loop at lc.Rate, at most 256 deliveries in flight.
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / lc.Rate)
	start := time.Now()
	end := start.Add(lc.Duration)
	for i := 0; time.Now().Before(end); i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		g := groups[rng.IntN(len(groups))]
		g.mu.Lock()
		g.at++
		var e *Event
		var uid string
		if len(g.members) > len(users)/2 || (len(g.members) > 1 && rng.IntN(2) == 0) {
			uid = g.members[0] // the longest-standing member leaves
			g.members = g.members[1:]
			e = newEvent(removeTriggers[rng.IntN(len(removeTriggers))], g.guid, []string{uid}, g.created, g.at)
		} else {
			for {
				uid = users[rng.IntN(len(users))]
				if !g.in[uid] {
					break
				}
			}
			g.members = append(g.members, uid)
			e = newEvent(addTriggers[rng.IntN(len(addTriggers))], g.guid, []string{uid}, g.created, g.at)
		}
		g.in[uid] = e.In
		g.gen[uid]++
		gen := g.gen[uid]
		g.mu.Unlock()
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sent := time.Now()
			ok, at := poster.Post(e.Body)
			if !ok {
				return
			}
			e.Accepted, e.AcceptedAt = true, at
			g.mu.Lock()
			g.waiting = append(g.waiting, pending{e: e, uid: uid, gen: gen})
			g.mu.Unlock()
			mu.Lock()
			accepted++
			hookLat = append(hookLat, at.Sub(sent))
			mu.Unlock()
		}()
	}
	wg.Wait()
	offeredFor := time.Since(start)
	mu.Lock()
	measuredInWindow := measured
	mu.Unlock()
	logf("latency: offered for %v; waiting for the rest to apply", offeredFor.Round(time.Millisecond))
	_ = poll(ctx, 3*time.Minute, "every accepted event applied", func() error {
		left := 0
		for _, g := range groups {
			g.mu.Lock()
			left += len(g.waiting)
			g.mu.Unlock()
		}
		if left > 0 {
			return fmt.Errorf("%d events not seen applied", left)
		}
		return nil
	})
	close(stopPoll)
	<-pollDone

	res := LatencyResult{Workers: ccfg.Workers, OfferedRate: lc.Rate, DurationS: lc.Duration.Seconds(), Accepted: accepted,
		Measured: measured, Superseded: supersede, PollResolution: sweeps.Round(10 * time.Microsecond).String()}
	for _, g := range groups {
		res.Unseen += len(g.waiting)
	}
	q := quantiles(lat)
	res.P50MS, res.P95MS, res.P99MS, res.MaxMS = q(0.50), q(0.95), q(0.99), q(1)
	hq := quantiles(hookLat)
	res.WebhookP50MS, res.WebhookP99MS = hq(0.50), hq(0.99)
	res.AppliedRate = float64(measuredInWindow) / offeredFor.Seconds()
	if rss, err := c.Serve().PeakRSS(); err == nil {
		res.ServePeakRSSKB = rss
	}
	for _, w := range c.Workers() {
		if rss, err := w.PeakRSS(); err == nil && rss > res.WorkerPeakRSS {
			res.WorkerPeakRSS = rss
		}
	}
	return res, nil
}

// quantiles returns a function giving the q-quantile of d in milliseconds.
func quantiles(d []time.Duration) func(q float64) float64 {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return func(q float64) float64 {
		if len(s) == 0 {
			return 0
		}
		i := min(len(s)-1, int(q*float64(len(s))))
		return float64(s[i].Microseconds()) / 1000
	}
}

// ThroughputConfig shapes a throughput run.
type ThroughputConfig struct {
	Events int // membership jobs queued before the workers start
	Groups int
	Users  int
	Logf   func(string, ...any)
}

// ThroughputResult is the outcome of a throughput run.
type ThroughputResult struct {
	Workers       int     `json:"workers"`
	Jobs          int     `json:"jobs"`
	Seconds       float64 `json:"seconds"`
	JobsPerSecond float64 `json:"jobs_per_s"`
	Converged     bool    `json:"converged"`
	WorkerPeakRSS int     `json:"worker_peak_rss_kb"`
}

// Summary is one line.
func (r ThroughputResult) Summary() string {
	return fmt.Sprintf("throughput with %d worker process(es): %d jobs in %.1fs = %.0f jobs/s (groups converged: %v; worker peak RSS %d MiB)",
		r.Workers, r.Jobs, r.Seconds, r.JobsPerSecond, r.Converged, r.WorkerPeakRSS/1024)
}

// RunThroughput queues tc.Events membership jobs (plus one group_created per
// group) through the webhook with no worker running, then starts
// cfg.Workers worker processes and times how long they take to empty the
// queue.
func RunThroughput(ctx context.Context, ccfg ClusterConfig, tc ThroughputConfig) (ThroughputResult, error) {
	logf := tc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	workers := ccfg.Workers
	ccfg.Workers = 0
	c, err := StartCluster(ctx, ccfg)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer c.Stop()
	users := make([]string, tc.Users)
	for i := range users {
		users[i] = fmt.Sprintf("tp-user-%04d", i)
	}
	if err := c.RegisterUsers(ctx, users); err != nil {
		return ThroughputResult{}, err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var events []*Event
	created := time.Now().Unix() - 3600
	in := map[[2]string]bool{}
	for g := range tc.Groups {
		guid := fmt.Sprintf("tp-group-%03d", g)
		initial := []string{users[0], users[1+g%(len(users)-1)]}
		for _, u := range initial {
			in[[2]string{guid, u}] = true
		}
		events = append(events, newEvent("group_created", guid, initial, created, created))
	}
	for i := range tc.Events {
		guid := fmt.Sprintf("tp-group-%03d", i%tc.Groups)
		u := users[2+rng.IntN(len(users)-2)]
		k := [2]string{guid, u}
		trig := addTriggers[rng.IntN(2)]
		if in[k] {
			trig = removeTriggers[rng.IntN(3)]
		}
		e := newEvent(trig, guid, []string{u}, created, created+1+int64(i))
		in[k] = e.In
		events = append(events, e)
	}
	poster := c.Poster(30 * time.Second)
	// Creations first, then the rest, 16 deliveries at a time per group order.
	byGroup := map[string][]*Event{}
	for _, e := range events {
		byGroup[e.GUID] = append(byGroup[e.GUID], e)
	}
	var wg sync.WaitGroup
	for _, list := range byGroup {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range list {
				e.Accepted, e.AcceptedAt = poster.Post(e.Body)
			}
		}()
	}
	wg.Wait()
	msgs, _, _, err := c.QueuedJobs(ctx)
	if err != nil {
		return ThroughputResult{}, err
	}
	logf("throughput: %d jobs queued; starting %d worker(s)", msgs, workers)
	start := time.Now()
	for range workers {
		if _, err := c.StartWorker(); err != nil {
			return ThroughputResult{}, err
		}
	}
	if err := poll(ctx, 10*time.Minute, "queue empty", func() error {
		n, _, _, err := c.QueuedJobs(ctx)
		if err == nil && n > 0 {
			err = fmt.Errorf("%d jobs queued", n)
		}
		return err
	}); err != nil {
		return ThroughputResult{}, err
	}
	elapsed := time.Since(start)
	res := ThroughputResult{Workers: workers, Jobs: int(msgs), Seconds: elapsed.Seconds(), JobsPerSecond: float64(msgs) / elapsed.Seconds()}
	for _, w := range c.Workers() {
		if rss, err := w.PeakRSS(); err == nil && rss > res.WorkerPeakRSS {
			res.WorkerPeakRSS = rss
		}
	}
	expected, _ := Expected(events)
	run := &chaosRun{c: c}
	var groups []string
	for g := range expected {
		groups = append(groups, g)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	res.Converged = poll(ctx, 30*time.Second, "converged", func() error {
		if d := run.compare(client, groups, expected); len(d) > 0 {
			return fmt.Errorf("%s", d[0])
		}
		return nil
	}) == nil
	return res, nil
}
