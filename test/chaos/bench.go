package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Latency patterns.
const (
	// PatternMembership offers add and remove events on existing groups.
	PatternMembership = "membership"
	// PatternCreate offers group_created events, each for a new group.
	PatternCreate = "create"
)

// LatencyConfig shapes a latency run.
type LatencyConfig struct {
	Rate     float64       // events offered per second (open loop)
	Duration time.Duration // how long they are offered
	Pattern  string        // PatternMembership (default) or PatternCreate
	// Profile, when set, is where a CPU profile of the first worker during
	// the offered window is written.
	Profile string
	Groups  int // membership: the groups events change
	Users   int // membership: shared pool; each group holds about half of it
	// FailoverAt, when positive, SIGKILLs the NATS node leading the job
	// stream this long into the offered window (Cluster.KillStreamLeader;
	// a cluster of several NATS nodes only) and keeps it down FailoverDown
	// (default 3 s) after another node took over. The result then splits
	// the events by when they were posted (FailoverResult).
	FailoverAt   time.Duration
	FailoverDown time.Duration
	Logf         func(string, ...any)
}

// LatencyResult is the outcome of a latency run.
type LatencyResult struct {
	Pattern        string  `json:"pattern"`
	Workers        int     `json:"workers"`
	OfferedRate    float64 `json:"offered_rate"`
	DurationS      float64 `json:"duration_s"`
	Accepted       int     `json:"accepted"`
	Measured       int     `json:"measured"`   // events found applied in the emulator's history
	Unseen         int     `json:"unseen"`     // accepted but never found applied
	Unmeasured     int     `json:"unmeasured"` // older than the emulator's kept history
	P50MS          float64 `json:"p50_ms"`
	P95MS          float64 `json:"p95_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	WebhookP50MS   float64 `json:"webhook_p50_ms"`
	WebhookP99MS   float64 `json:"webhook_p99_ms"`
	AppliedRate    float64 `json:"applied_rate"` // events/s applied during the offered window
	ServePeakRSSKB int     `json:"serve_peak_rss_kb"`
	WorkerPeakRSS  int     `json:"worker_peak_rss_kb"` // largest over the workers
	// CPU is the CPU time each part used from the first event until every
	// group reached its final state (CPUWallS seconds), and Cores the
	// machine's CPU count (see Cluster.CPU).
	CPU      map[string]float64 `json:"cpu_s,omitempty"`
	CPUWallS float64            `json:"cpu_wall_s"`
	Cores    int                `json:"cores"`
	// NotAccepted counts events never answered 200 although retried for
	// 30 s; FinalState says whether every group whose events were all
	// accepted reached the members they imply; FailedJobs counts dead
	// letters (groupsync jobs failed).
	NotAccepted int  `json:"not_accepted"`
	FinalState  bool `json:"final_state"`
	FailedJobs  int  `json:"failed_jobs"`
	// Failover is set when the run killed the job stream's leader.
	Failover *FailoverResult `json:"failover,omitempty"`
}

// FailoverResult is a latency run with one job stream leader killed: when
// the steps of the failover happened, in seconds from the kill, and the
// latency of the events by when they were posted.
type FailoverResult struct {
	LeaderFailover
	// KillAtS is when the leader was killed, in seconds into the offered
	// window.
	KillAtS float64 `json:"kill_at_s"`
	// ElectionS is the failover time: from the SIGKILL until the harness
	// saw another node lead the job stream (polling every 100 ms).
	ElectionS float64 `json:"election_s"`
	// RestartS and CurrentS are when the killed node accepted clients
	// again and when every replica was current again.
	RestartS float64 `json:"restart_s"`
	CurrentS float64 `json:"current_s"`
	// During holds the events posted from the kill until the election,
	// and those posted before the kill that were not applied by then.
	During LatencyClass `json:"during"`
	// Recovery holds the events posted from the election until every
	// replica was current again (two of three nodes up, then the killed
	// one catching up).
	Recovery LatencyClass `json:"recovery"`
	// Steady holds every other event: applied before the kill, or posted
	// once the cluster was whole again.
	Steady LatencyClass `json:"steady"`
}

// class returns the class of an event posted at sent and applied at
// applied.
func (f *FailoverResult) class(sent, applied time.Time) *LatencyClass {
	switch {
	case !sent.Before(f.Killed) && sent.Before(f.Elected), sent.Before(f.Killed) && !applied.Before(f.Killed):
		return &f.During
	case !sent.Before(f.Elected) && sent.Before(f.Current):
		return &f.Recovery
	default:
		return &f.Steady
	}
}

// LatencyClass is the latency of a set of accepted and applied events, in
// milliseconds: from the webhook's 200 to the change in Virgil (as the
// steady figures are measured), from the first delivery (before any 503
// and retry) to the change in Virgil, and from the first delivery to the
// 200.
type LatencyClass struct {
	Events    int     `json:"events"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	PostP50MS float64 `json:"post_p50_ms"`
	PostP99MS float64 `json:"post_p99_ms"`
	PostMaxMS float64 `json:"post_max_ms"`
	AnswerP50 float64 `json:"answer_p50_ms"`
	AnswerP99 float64 `json:"answer_p99_ms"`
	AnswerMax float64 `json:"answer_max_ms"`
	applied   []time.Duration
	posted    []time.Duration
	answered  []time.Duration
}

// add counts one event sent at sent, answered 200 at ok and applied at
// applied.
func (l *LatencyClass) add(sent, ok, applied time.Time) {
	l.Events++
	l.applied = append(l.applied, max(0, applied.Sub(ok)))
	l.posted = append(l.posted, max(0, applied.Sub(sent)))
	l.answered = append(l.answered, ok.Sub(sent))
}

// done fills in the quantiles.
func (l *LatencyClass) done() {
	q := quantiles(l.applied)
	l.P50MS, l.P99MS, l.MaxMS = q(0.50), q(0.99), q(1)
	q = quantiles(l.posted)
	l.PostP50MS, l.PostP99MS, l.PostMaxMS = q(0.50), q(0.99), q(1)
	q = quantiles(l.answered)
	l.AnswerP50, l.AnswerP99, l.AnswerMax = q(0.50), q(0.99), q(1)
}

// String is one line.
func (l LatencyClass) String() string {
	return fmt.Sprintf("%d events: 200 -> Virgil p50 %.1f ms, p99 %.1f ms, max %.1f ms; first delivery -> Virgil p50 %.1f ms, p99 %.1f ms, max %.1f ms; first delivery -> 200 p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		l.Events, l.P50MS, l.P99MS, l.MaxMS, l.PostP50MS, l.PostP99MS, l.PostMaxMS, l.AnswerP50, l.AnswerP99, l.AnswerMax)
}

// Verdict is nil when every event answered 200 was applied: found in the
// emulator's history, every group whose events were all accepted in its
// final state, and no failed job.
func (r LatencyResult) Verdict() error {
	var errs []error
	if r.Unseen > 0 {
		errs = append(errs, fmt.Errorf("%d events answered 200 were never applied", r.Unseen))
	}
	if !r.FinalState {
		errs = append(errs, errors.New("not every group reached its final state"))
	}
	if r.FailedJobs > 0 {
		errs = append(errs, fmt.Errorf("%d jobs failed", r.FailedJobs))
	}
	return errors.Join(errs...)
}

// Summary is one line, and one more per class of events when the run
// killed the job stream's leader.
func (r LatencyResult) Summary() string {
	return r.summary() + r.failoverSummary()
}

func (r LatencyResult) failoverSummary() string {
	f := r.Failover
	if f == nil {
		return ""
	}
	return fmt.Sprintf("\nfailover: %s (job stream leader) SIGKILLed %.1fs into the window; %s leads %.2fs later; %s back %.1fs and every replica current %.1fs after the kill"+
		"\n  steady:   %s\n  failover: %s\n  recovery: %s",
		f.Leader, f.KillAtS, f.NewLeader, f.ElectionS, f.Leader, f.RestartS, f.CurrentS, f.Steady, f.During, f.Recovery)
}

func (r LatencyResult) summary() string {
	verdict := "every event answered 200 applied, no failed job"
	if err := r.Verdict(); err != nil {
		verdict = "VERDICT FAILED: " + strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return fmt.Sprintf("latency webhook 200 -> Virgil group changed (%s events) at %.0f events/s for %.0fs, %d workers: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (measured %d of %d accepted, %d unseen, %d never accepted); applied %.0f events/s; webhook answer p50 %.1f ms p99 %.1f ms; peak RSS serve %d MiB, worker %d MiB; CPU %s; %s",
		r.Pattern, r.OfferedRate, r.DurationS, r.Workers, r.P50MS, r.P95MS, r.P99MS, r.MaxMS, r.Measured, r.Accepted, r.Unseen, r.NotAccepted,
		r.AppliedRate, r.WebhookP50MS, r.WebhookP99MS, r.ServePeakRSSKB/1024, r.WorkerPeakRSS/1024, cpuSummary(r.CPU, r.CPUWallS, r.Cores), verdict)
}

// offered is one event the generator posted.
type offered struct {
	e    *Event
	uid  string // membership: the member it moves
	sent time.Time
}

// latencyGroup is the generator's view of one group.
type latencyGroup struct {
	mu      sync.Mutex
	guid    string
	created int64
	at      int64
	members []string // in order of joining
	in      map[string]bool
	events  []*offered // in the order they were generated
}

// RunLatency starts a cluster, offers events at a fixed rate (open loop) and
// measures, per event, the time from the webhook's 200 to the moment the
// Virgil group showed the change. The moment comes from the emulator's
// history of each group (stamped when the change was stored), read once
// after the run, so measuring puts no load on the system and has no polling
// resolution.
func RunLatency(ctx context.Context, ccfg ClusterConfig, lc LatencyConfig) (LatencyResult, error) {
	logf := lc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if lc.Pattern == "" {
		lc.Pattern = PatternMembership
	}
	if lc.Pattern != PatternMembership && lc.Pattern != PatternCreate {
		return LatencyResult{}, fmt.Errorf("latency pattern %q: want %s or %s", lc.Pattern, PatternMembership, PatternCreate)
	}
	c, err := StartCluster(ctx, ccfg)
	if err != nil {
		return LatencyResult{}, err
	}
	defer c.Stop()
	users := make([]string, max(lc.Users, 2))
	for i := range users {
		users[i] = fmt.Sprintf("lat-user-%04d", i)
	}
	if err := c.RegisterUsers(ctx, users); err != nil {
		return LatencyResult{}, err
	}
	if lc.FailoverAt > 0 && c.natsC == nil {
		return LatencyResult{}, errors.New("latency failover: needs a NATS cluster (-nats-nodes 3)")
	}
	if lc.FailoverAt >= lc.Duration {
		return LatencyResult{}, fmt.Errorf("latency failover at %v: must be inside the offered window of %v", lc.FailoverAt, lc.Duration)
	}
	if lc.FailoverDown == 0 {
		lc.FailoverDown = 3 * time.Second
	}
	poster := c.Poster(30 * time.Second)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	rng := rand.New(rand.NewPCG(1, 2))
	created := time.Now().Unix() - 3600
	var groups []*latencyGroup
	if lc.Pattern == PatternMembership {
		for i := range max(lc.Groups, 1) {
			g := &latencyGroup{guid: fmt.Sprintf("lat-group-%03d", i), created: created, at: created, in: map[string]bool{}}
			for _, j := range rng.Perm(len(users))[:len(users)/2] {
				g.in[users[j]] = true
				g.members = append(g.members, users[j])
			}
			if ok, _ := poster.Post(newEvent("group_created", g.guid, g.members, g.created, g.created, g.created).Body); !ok {
				return LatencyResult{}, fmt.Errorf("group_created of %s not accepted", g.guid)
			}
			groups = append(groups, g)
		}
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
		logf("latency: %d groups of %d users ready", len(groups), len(users)/2)
	}
	logf("latency: offering %.0f %s events/s for %v", lc.Rate, lc.Pattern, lc.Duration)

	var (
		mu       sync.Mutex
		hookLat  []time.Duration
		accepted int
	)
	cpu0 := c.CPU()
	profiled := make(chan error, 1)
	if lc.Profile != "" && len(c.Workers()) > 0 {
		go func() { profiled <- c.Workers()[0].CPUProfile(lc.Duration, lc.Profile) }()
	} else {
		profiled <- nil
	}
	// Deliveries in flight: enough for the 503s and retries of several
	// seconds of events while a leader is elected.
	sem := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / lc.Rate)
	start := time.Now()
	end := start.Add(lc.Duration)
	type failoverDone struct {
		f   LeaderFailover
		err error
	}
	failedOver := make(chan failoverDone, 1)
	if lc.FailoverAt > 0 {
		go func() {
			select {
			case <-ctx.Done():
				failedOver <- failoverDone{err: ctx.Err()}
				return
			case <-time.After(time.Until(start.Add(lc.FailoverAt))):
			}
			logf("latency: SIGKILL the NATS node leading the job stream")
			f, err := c.KillStreamLeader(ctx, lc.FailoverDown)
			failedOver <- failoverDone{f, err}
		}()
	}
	for i := 0; time.Now().Before(end); i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		var g *latencyGroup
		o := &offered{}
		if lc.Pattern == PatternCreate {
			g = &latencyGroup{guid: fmt.Sprintf("lat-new-%06d", i), created: time.Now().Unix()}
			g.members = []string{users[i%len(users)]}
			o.e = newEvent("group_created", g.guid, g.members, g.created, g.created, g.created)
			groups = append(groups, g)
		} else {
			g = groups[rng.IntN(len(groups))]
			g.mu.Lock()
			g.at++
			if len(g.members) > len(users)/2 || (len(g.members) > 1 && rng.IntN(2) == 0) {
				o.uid = g.members[0] // the longest-standing member leaves
				g.members = g.members[1:]
				o.e = newEvent(removeTriggers[rng.IntN(len(removeTriggers))], g.guid, []string{o.uid}, g.created, g.at, g.at)
			} else {
				for {
					o.uid = users[rng.IntN(len(users))]
					if !g.in[o.uid] {
						break
					}
				}
				g.members = append(g.members, o.uid)
				o.e = newEvent(addTriggers[rng.IntN(len(addTriggers))], g.guid, []string{o.uid}, g.created, g.at, g.at)
			}
			g.in[o.uid] = o.e.In
			g.mu.Unlock()
		}
		g.events = append(g.events, o)
		o.sent = time.Now()
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, at := poster.Post(o.e.Body)
			if !ok {
				return
			}
			o.e.Accepted, o.e.AcceptedAt = true, at
			mu.Lock()
			accepted++
			hookLat = append(hookLat, at.Sub(o.sent))
			mu.Unlock()
		}()
	}
	wg.Wait()
	offeredFor := time.Since(start)
	if err := <-profiled; err != nil {
		logf("latency: CPU profile: %v", err)
	}
	var failover *LeaderFailover
	if lc.FailoverAt > 0 {
		done := <-failedOver
		if done.err != nil {
			return LatencyResult{}, fmt.Errorf("latency failover: %w", done.err)
		}
		failover = &done.f
	}
	logf("latency: offered for %v; waiting for the rest to apply", offeredFor.Round(time.Millisecond))
	allAccepted := func(g *latencyGroup) bool {
		for _, o := range g.events {
			if !o.e.Accepted {
				return false
			}
		}
		return true
	}
	final := poll(ctx, 3*time.Minute, "every group in its final state", func() error {
		for _, g := range groups {
			if !allAccepted(g) {
				continue // its final state is not what the generator thinks
			}
			v, found, err := c.Group(client, g.guid)
			if err != nil {
				return err
			}
			want := []string{c.Identity.Owner()}
			for _, u := range g.members {
				want = append(want, c.Identity.User(u))
			}
			slices.Sort(want)
			if !found || !slices.Equal(v.Participants, want) {
				return fmt.Errorf("%s not in its final state yet", g.guid)
			}
		}
		return nil
	})
	if final != nil {
		logf("latency: %v", final)
	}
	res := LatencyResult{Pattern: lc.Pattern, Workers: ccfg.Workers, OfferedRate: lc.Rate, DurationS: offeredFor.Seconds(),
		Accepted: accepted, CPU: map[string]float64{}, CPUWallS: time.Since(start).Seconds(), Cores: runtime.NumCPU(),
		FinalState: final == nil}
	failed, err := c.FailedJobs(ctx)
	if err != nil {
		return res, err
	}
	res.FailedJobs = len(failed)
	if failover != nil {
		f := *failover
		since := func(t time.Time) float64 { return t.Sub(f.Killed).Seconds() }
		res.Failover = &FailoverResult{LeaderFailover: f, KillAtS: f.Killed.Sub(start).Seconds(),
			ElectionS: since(f.Elected), RestartS: since(f.Restarted), CurrentS: since(f.Current)}
	}
	for name, d := range c.CPU() {
		res.CPU[name] = (d - cpu0[name]).Seconds()
	}
	var lat []time.Duration
	appliedInWindow := 0
	for _, g := range groups {
		v, _, err := c.GroupWithHistory(client, g.guid)
		if err != nil {
			return res, err
		}
		for o, at := range appliedAt(g.events, v.History, c.Identity.User) {
			if !o.e.Accepted {
				res.NotAccepted++
				continue
			}
			if v.HistoryDropped > 0 && len(v.History) > 0 && o.sent.Before(v.History[0].At) {
				res.Unmeasured++ // its change may have been dropped
				continue
			}
			if at.IsZero() {
				res.Unseen++
				continue
			}
			res.Measured++
			lat = append(lat, max(0, at.Sub(o.e.AcceptedAt)))
			if f := res.Failover; f != nil {
				f.class(o.sent, at).add(o.sent, o.e.AcceptedAt, at)
			}
			if !at.After(end) {
				appliedInWindow++
			}
		}
	}
	q := quantiles(lat)
	res.P50MS, res.P95MS, res.P99MS, res.MaxMS = q(0.50), q(0.95), q(0.99), q(1)
	hq := quantiles(hookLat)
	res.WebhookP50MS, res.WebhookP99MS = hq(0.50), hq(0.99)
	res.AppliedRate = float64(appliedInWindow) / offeredFor.Seconds()
	if f := res.Failover; f != nil {
		f.During.done()
		f.Recovery.done()
		f.Steady.done()
	}
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

// appliedAt finds in a group's history when each of its events became
// visible: a creation at the first change, a membership event at the first
// change after it was sent that shows its member in the expected state and
// comes after the change of the member's previous event (the generator only
// offers events that flip a member, and one partition applies a group's
// events in order, so every event is one change of the history). Events not
// found map to the zero time.
func appliedAt(events []*offered, history []GroupChange, identity func(string) string) map[*offered]time.Time {
	out := make(map[*offered]time.Time, len(events))
	next := map[string]int{} // per member: the history index to search from
	for _, o := range events {
		if o.e.Trigger == "group_created" && o.uid == "" {
			if len(history) > 0 {
				out[o] = history[0].At
			} else {
				out[o] = time.Time{}
			}
			continue
		}
		id := identity(o.uid)
		out[o] = time.Time{}
		for j := next[o.uid]; j < len(history); j++ {
			h := history[j]
			if h.At.Before(o.sent) || slices.Contains(h.Participants, id) != o.e.In {
				continue
			}
			out[o], next[o.uid] = h.At, j+1
			break
		}
	}
	return out
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
	// VirgilDelay, when positive, holds every Virgil request this long in
	// the emulator, as the round trip to Virgil's cloud would.
	VirgilDelay time.Duration
	Logf        func(string, ...any)
}

// ThroughputResult is the outcome of a throughput run.
type ThroughputResult struct {
	Workers       int     `json:"workers"`
	Concurrency   int     `json:"concurrency"` // per worker process; 0: one per partition
	Groups        int     `json:"groups"`
	VirgilDelayMS float64 `json:"virgil_delay_ms"`
	Jobs          int     `json:"jobs"`
	Seconds       float64 `json:"seconds"`
	JobsPerSecond float64 `json:"jobs_per_s"`
	Converged     bool    `json:"converged"`
	WorkerPeakRSS int     `json:"worker_peak_rss_kb"`
	// CPU is the CPU time each part used while the queue drained, in
	// seconds (see Cluster.CPU), and Cores the machine's CPU count: it shows
	// what limited the run.
	CPU   map[string]float64 `json:"cpu_s,omitempty"`
	Cores int                `json:"cores"`
	// Epochs is the mean number of epochs per group at the end: each
	// removal adds one, and each add re-shares every epoch.
	Epochs float64 `json:"mean_epochs"`
}

// Summary is one line.
func (r ThroughputResult) Summary() string {
	conc := "one job per partition"
	if r.Concurrency > 0 {
		conc = fmt.Sprintf("%d jobs at a time", r.Concurrency)
	}
	return fmt.Sprintf("throughput with %d worker process(es) (%s each; %d groups; Virgil delay %.0f ms): %d jobs in %.1fs = %.0f jobs/s (groups converged: %v; worker peak RSS %d MiB; %.0f epochs per group; CPU %s)",
		r.Workers, conc, r.Groups, r.VirgilDelayMS, r.Jobs, r.Seconds, r.JobsPerSecond, r.Converged, r.WorkerPeakRSS/1024, r.Epochs, cpuSummary(r.CPU, r.Seconds, r.Cores))
}

// cpuSummary shows each part's CPU time as a share of what the machine's
// cores could give in the run's wall time.
func cpuSummary(cpu map[string]float64, seconds float64, cores int) string {
	if len(cpu) == 0 || seconds <= 0 || cores <= 0 {
		return "not measured"
	}
	names := make([]string, 0, len(cpu))
	total := 0.0
	for n, s := range cpu {
		names = append(names, n)
		total += s
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %.0f%%, ", n, 100*cpu[n]/(seconds*float64(cores)))
	}
	fmt.Fprintf(&b, "total %.0f%% of %d cores", 100*total/(seconds*float64(cores)), cores)
	return b.String()
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
		events = append(events, newEvent("group_created", guid, initial, created, created, created))
	}
	for i := range tc.Events {
		guid := fmt.Sprintf("tp-group-%03d", i%tc.Groups)
		u := users[2+rng.IntN(len(users)-2)]
		k := [2]string{guid, u}
		trig := addTriggers[rng.IntN(2)]
		if in[k] {
			trig = removeTriggers[rng.IntN(3)]
		}
		e := newEvent(trig, guid, []string{u}, created, created+1+int64(i), created+1+int64(i))
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
	if tc.VirgilDelay > 0 {
		if err := c.Fault(fmt.Sprintf(`{"delay":%q}`, tc.VirgilDelay.String())); err != nil {
			return ThroughputResult{}, err
		}
	}
	logf("throughput: %d jobs queued; starting %d worker(s)", msgs, workers)
	cpu0 := c.CPU()
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
	res := ThroughputResult{Workers: workers, Jobs: int(msgs), Seconds: elapsed.Seconds(), JobsPerSecond: float64(msgs) / elapsed.Seconds(),
		CPU: map[string]float64{}, Cores: runtime.NumCPU(), Concurrency: ccfg.Concurrency, Groups: tc.Groups,
		VirgilDelayMS: float64(tc.VirgilDelay) / float64(time.Millisecond)}
	if tc.VirgilDelay > 0 {
		if err := c.ClearFault(); err != nil {
			return ThroughputResult{}, err
		}
	}
	for name, d := range c.CPU() {
		res.CPU[name] = (d - cpu0[name]).Seconds()
	}
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
	for _, g := range groups {
		if v, found, err := c.Group(client, g); err == nil && found {
			res.Epochs += float64(len(v.Epochs)) / float64(len(groups))
		}
	}
	res.Converged = poll(ctx, 30*time.Second, "converged", func() error {
		if d := run.compare(client, groups, expected); len(d) > 0 {
			return fmt.Errorf("%s", d[0])
		}
		return nil
	}) == nil
	return res, nil
}
