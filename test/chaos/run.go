package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil"
)

// ChaosConfig shapes a chaos run.
type ChaosConfig struct {
	Duration time.Duration // how long the generator posts
	Groups   int           // CometChat groups it changes
	Users    int           // users it moves in and out of them
	Rate     float64       // events per second over all groups
	Period   time.Duration // time between two faults
	Seed     uint64
	Logf     func(format string, args ...any)
	// Drain bounds the wait for the queue to empty and the groups to settle.
	Drain time.Duration
}

// Report is the outcome of a chaos run.
type Report struct {
	Sent         int            `json:"events_sent"`     // distinct events generated
	Duplicates   int            `json:"duplicates_sent"` // extra deliveries of events already accepted
	Reordered    int            `json:"reordered_pairs"` // pairs delivered newest first
	RepeatedAdds int            `json:"repeated_adds"`   // adds with the very body of an earlier add of the same user
	Forged       int            `json:"forged_times"`    // bodies with a time far in the future (clamped)
	Accepted     int            `json:"events_accepted"` // distinct events answered 200
	LostWebhooks int            `json:"lost_webhooks"`   // events never delivered, for the scheduled reconcile
	Applied      int            `json:"applied"`
	DeadLettered int            `json:"dead_lettered"`
	Lost         int            `json:"lost"`
	Unrepaired   int            `json:"unrepaired"` // dropped webhooks whose change Virgil does not show (the reconcile did not bring it in)
	Diverged     int            `json:"groups_diverged"`
	Groups       int            `json:"groups"`
	Faults       []string       `json:"faults"`
	Statuses     map[string]int `json:"webhook_statuses"`
	Failed       []FailedJob    `json:"failed_jobs,omitempty"`
	Divergence   []string       `json:"divergence,omitempty"`
	Lapses       []string       `json:"lost_events,omitempty"`
	Unaccepted   int            `json:"unaccepted"` // events never answered 200 before giving up
}

// Summary is the one line every run prints.
func (r Report) Summary() string {
	return fmt.Sprintf("events accepted %d, applied %d, dead-lettered %d, lost %d, groups diverged %d (sent %d, duplicates %d, reordered pairs %d, repeated adds %d, forged times %d, webhooks dropped for the reconcile %d of which not reconciled %d, never accepted %d, faults %d)",
		r.Accepted, r.Applied, r.DeadLettered, r.Lost, r.Diverged, r.Sent, r.Duplicates, r.Reordered, r.RepeatedAdds, r.Forged, r.LostWebhooks, r.Unrepaired, r.Unaccepted, len(r.Faults))
}

// RegisterUsers publishes a Virgil card for each uid, as each user's E3Kit
// client does on first login, so the workers can give them group tickets.
func (c *Cluster) RegisterUsers(ctx context.Context, uids []string) error {
	gen := &virgil.JWTGenerator{AppID: c.appID, AppKeyID: c.appKeyID, AppKey: c.appKey}
	sem := make(chan struct{}, 8)
	errs := make(chan error, len(uids))
	for _, uid := range uids {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			identity := c.Identity.User(uid)
			key, err := virgil.GenerateKey()
			if err == nil {
				c.mu.Lock()
				if c.userKeys == nil {
					c.userKeys = map[string]*virgil.PrivateKey{}
				}
				c.userKeys[uid] = key
				c.mu.Unlock()
				var raw *virgil.RawCard
				if raw, err = virgil.NewRawCard(key, identity, "", time.Now()); err == nil {
					_, err = virgil.NewClient(c.VirgilURL, gen.Source(identity)).PublishCard(ctx, raw)
				}
			}
			if err != nil {
				err = fmt.Errorf("publish the card of %s: %w", uid, err)
			}
			errs <- err
		}()
	}
	var all []error
	for range uids {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// Decrypts reports why user uid cannot open the newest epoch of group guid
// with the key RegisterUsers made for them (nil when they can): what the
// user's E3Kit client needs to read new messages.
func (c *Cluster) Decrypts(ctx context.Context, uid, guid string, owner *virgil.PublicKey) error {
	c.mu.Lock()
	key := c.userKeys[uid]
	c.mu.Unlock()
	if key == nil {
		return fmt.Errorf("no key for %s", uid)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	v, found, err := c.Group(client, guid)
	if err != nil || !found || len(v.Epochs) == 0 {
		return fmt.Errorf("no group %s (%v)", guid, err)
	}
	path, err := virgil.SessionPath(c.Identity.Group(guid))
	if err != nil {
		return err
	}
	gen := &virgil.JWTGenerator{AppID: c.appID, AppKeyID: c.appKeyID, AppKey: c.appKey}
	vc := virgil.NewClient(c.VirgilURL, gen.Source(c.Identity.User(uid)))
	entry, err := vc.KeyknoxPull(ctx, virgil.GroupSessionsRoot, path, v.Epochs[len(v.Epochs)-1], c.Identity.Owner())
	if err != nil {
		return err
	}
	if len(entry.Value) == 0 {
		return errors.New("no copy of the newest epoch")
	}
	_, err = virgil.DecryptThenVerify(entry.Meta, entry.Value, key, owner)
	return err
}

// ownerKey returns the public key of the owner's current card.
func (c *Cluster) ownerKey(ctx context.Context) (*virgil.PublicKey, error) {
	gen := &virgil.JWTGenerator{AppID: c.appID, AppKeyID: c.appKeyID, AppKey: c.appKey}
	cards, err := virgil.NewClient(c.VirgilURL, gen.Source(c.Identity.Owner())).SearchCards(ctx, []string{c.Identity.Owner()})
	if err != nil {
		return nil, err
	}
	linked := virgil.LinkCards(cards)
	if len(linked) == 0 {
		return nil, errors.New("the owner has no card")
	}
	return linked[len(linked)-1].PublicKey, nil
}

// Poster returns a webhook poster for the cluster.
func (c *Cluster) Poster(giveUp time.Duration) *Poster {
	urls := make([]string, len(c.HTTPURLs))
	for i, u := range c.HTTPURLs {
		urls[i] = u + "/webhooks/cometchat"
	}
	return &Poster{
		URL: c.HTTPURL + "/webhooks/cometchat", URLs: urls, User: webhookUser, Password: c.Secrets()["webhook password"],
		Client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		GiveUp: giveUp,
	}
}

// chaosRun is the shared state of a running chaos scenario.
type chaosRun struct {
	c      *Cluster
	cfg    ChaosConfig
	poster *Poster

	mu         sync.Mutex
	events     []*Event
	duplicates int
	reordered  int
	repeated   int // adds repeating an earlier add's body
	forged     int // bodies with forged times

	lost int // events whose webhook the generator dropped

	// reorderGate: the generator holds it read-locked while it delivers a
	// same-member pair newest first; a store loss without the fake
	// CometChat takes it write-locked.
	reorderGate  sync.RWMutex
	reorderPause atomic.Bool
	// redisLosses counts store losses without the fake CometChat. The
	// retries after one only repeat events delivered since: an older one
	// would find neither its done mark (Redis) nor, after a NATS restart,
	// its de-duplication entry, and nothing left to order it against a
	// newer event (docs/design.md, invariant 5).
	redisLosses atomic.Int64
}

// RunChaos posts membership events to the cluster for cfg.Duration while it
// kills workers, restarts NATS and Redis and makes Virgil fail, then waits
// for the queue to drain and compares every Virgil group with the accepted
// events.
func RunChaos(ctx context.Context, c *Cluster, cfg ChaosConfig) (Report, error) {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Drain == 0 {
		cfg.Drain = 3 * time.Minute
	}
	r := &chaosRun{c: c, cfg: cfg, poster: c.Poster(90 * time.Second)}
	users := make([]string, cfg.Users)
	for i := range users {
		users[i] = fmt.Sprintf("chaos-user-%03d", i)
	}
	if err := c.RegisterUsers(ctx, users); err != nil {
		return Report{}, err
	}
	groups := make([]string, cfg.Groups)
	for i := range groups {
		groups[i] = fmt.Sprintf("chaos-group-%03d", i)
	}

	genCtx, stopGen := context.WithTimeout(ctx, cfg.Duration)
	defer stopGen()
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.generate(genCtx, g, users, rand.New(rand.NewPCG(cfg.Seed, uint64(i))))
		}()
	}
	faults := make(chan []string, 1)
	go func() { faults <- r.inject(ctx, genCtx, logf) }()
	wg.Wait()
	applied := <-faults
	logf("generator done: %d events; waiting for the queue to drain", len(r.events))
	_ = c.ClearFault()
	for len(c.Workers()) == 0 {
		if _, err := c.StartWorker(); err != nil {
			return Report{}, err
		}
	}

	// Drain: the stream is empty and every group matches the accepted events.
	expected, deciders := Expected(r.events)
	client := &http.Client{Timeout: 5 * time.Second}
	var diverged []string
	err := poll(ctx, cfg.Drain, "groups converge", func() error {
		msgs, _, _, err := c.QueuedJobs(ctx)
		if err != nil {
			return err
		}
		if msgs > 0 {
			return fmt.Errorf("%d jobs still queued", msgs)
		}
		diverged = r.compare(client, groups, expected)
		if len(diverged) > 0 {
			return fmt.Errorf("%d groups differ: %s", len(diverged), diverged[0])
		}
		return nil
	})
	if err != nil {
		logf("after draining: %v", err)
	}
	failed, ferr := c.FailedJobs(ctx)
	if ferr != nil {
		return Report{}, ferr
	}
	rep := r.report(client, groups, expected, deciders, diverged, failed)
	rep.Faults = applied
	return rep, nil
}

// generate changes one group until ctx ends: a group_created, then adds and
// removes of random users at the configured rate, with CometChat's retries
// (duplicates) and deliveries out of order.
func (r *chaosRun) generate(ctx context.Context, guid string, users []string, rng *rand.Rand) {
	created := time.Now().Unix() - 3600
	at := created
	interval := time.Duration(float64(time.Second) * float64(r.cfg.Groups) / r.cfg.Rate)
	in := map[string]bool{}
	initial := []string{users[rng.IntN(len(users))]}
	in[initial[0]] = true
	// CometChat's REST API tells the truth: the members after every event
	// the generator made, delivered or not.
	truth := func() {
		if r.c.CometChat == nil {
			return
		}
		var members []string
		for u, ok := range in {
			if ok {
				members = append(members, u)
			}
		}
		slices.Sort(members)
		r.c.CometChat.SetGroup(guid, members...)
	}
	truth()
	r.deliver(newEvent("group_created", guid, initial, created, created, created))
	var recent []*Event
	latest := map[string]*Event{}    // by uid: the last event that moved them
	addedBefore := map[string]bool{} // by uid: a group_member_added body was sent
	losses := r.redisLosses.Load()
	// next moves u. Unless timed is set, an add may be a
	// group_member_added body without a time (the same body for every add
	// of u, so a user added back repeats it) and a body may carry a forged
	// time: such events are ordered by the queue alone.
	next := func(u string, timed bool) *Event {
		// Event times never fall behind the clock and grow by at least a
		// second per event, so at a group's rate they run seconds ahead of
		// the workers' clock: CometChat's clock running ahead of ours,
		// within the allowed skew, which a reconcile (stamped with the
		// time it read CometChat) must cope with.
		at = max(at+1, time.Now().Unix())
		bodyAt := at
		if !timed && rng.IntN(15) == 0 {
			bodyAt = forged
		}
		var e *Event
		switch {
		case in[u]:
			e = newEvent(removeTriggers[rng.IntN(len(removeTriggers))], guid, []string{u}, created, at, bodyAt)
		case !timed && rng.IntN(2) == 0:
			e = newEvent("group_member_added", guid, []string{u}, created, at, untimed)
			bodyAt = untimed
			r.mu.Lock()
			if addedBefore[u] {
				r.repeated++
			}
			r.mu.Unlock()
			addedBefore[u] = true
		default:
			e = newEvent(addTriggers[rng.IntN(len(addTriggers))], guid, []string{u}, created, at, bodyAt)
		}
		if bodyAt == forged {
			r.mu.Lock()
			r.forged++
			r.mu.Unlock()
		}
		in[u] = e.In
		latest[u] = e
		truth()
		return e
	}
	// retryable reports whether a CometChat retry of e may come now with an
	// order the model can tell: e still decides its members, or e and what
	// decides them now carry times (the workers settle the rest with
	// CometChat's REST API, which the model does not follow).
	retryable := func(e *Event) bool {
		for _, u := range e.UIDs {
			if l := latest[u]; l != e && (!e.Timed || !l.Timed) {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		u := users[rng.IntN(len(users))]
		switch p := rng.IntN(100); {
		case p < 12 && !r.reorderPause.Load():
			// A delivery that failed comes again after a newer event: the
			// newer one first, then the older. Half the pairs move the same
			// member twice, so only the times can tell the order.
			r.reorderGate.RLock()
			first := next(u, true)
			if rng.IntN(2) == 0 {
				u = users[rng.IntN(len(users))]
			}
			second := next(u, true)
			r.mu.Lock()
			r.reordered++
			r.mu.Unlock()
			r.deliver(second)
			r.deliver(first)
			r.reorderGate.RUnlock()
			recent = append(recent, first, second)
		case p < 22:
			// CometChat's retry of an event already delivered, from before a
			// Redis data loss too (with the fake CometChat; without it, only
			// since the last loss, which the gate orders this against).
			r.reorderGate.RLock()
			if n := r.redisLosses.Load(); n != losses {
				losses, recent = n, nil
			}
			if len(recent) > 0 {
				if e := recent[rng.IntN(len(recent))]; retryable(e) {
					if ok, _ := r.poster.Post(e.Body); ok {
						r.mu.Lock()
						r.duplicates++
						r.mu.Unlock()
					}
				}
			}
			r.reorderGate.RUnlock()
		case p < 24 && r.c.CometChat != nil:
			// A webhook CometChat gave up on: the scheduled reconcile must
			// bring the change in.
			e := next(u, true)
			e.Lost = true
			r.mu.Lock()
			r.events = append(r.events, e)
			r.lost++
			r.mu.Unlock()
		default:
			e := next(u, false)
			r.deliver(e)
			recent = append(recent, e)
		}
		// Retries come within the duplicate window of the queue.
		if len(recent) > 20 {
			recent = recent[len(recent)-20:]
		}
	}
}

func (r *chaosRun) deliver(e *Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	ok, at := r.poster.Post(e.Body)
	r.mu.Lock()
	e.Accepted, e.AcceptedAt = ok, at
	r.mu.Unlock()
}

// inject applies one fault per period, cycling through the list, until
// genCtx ends and every kind ran once; it returns what it did.
func (r *chaosRun) inject(ctx, genCtx context.Context, logf func(string, ...any)) []string {
	faults := r.faults(ctx)
	var done []string
	start := time.Now()
	for i := 0; ; i++ {
		// Every kind runs at least once, even if the generator ends first.
		if genCtx.Err() != nil && i >= len(faults) {
			return done
		}
		select {
		case <-genCtx.Done():
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * r.cfg.Period))):
		}
		f := faults[i%len(faults)]
		logf("fault: %s", f.name)
		if err := f.do(); err != nil {
			logf("fault %s failed: %v", f.name, err)
			done = append(done, f.name+" (failed: "+err.Error()+")")
			continue
		}
		done = append(done, f.name)
	}
}

// fault is one kind of trouble the chaos run causes.
type fault struct {
	name string
	do   func() error
}

// FaultKinds is how many kinds of fault a chaos run cycles through.
var FaultKinds = len((&chaosRun{}).faults(context.Background()))

// faults lists the kinds of fault, in the order a run applies them.
func (r *chaosRun) faults(ctx context.Context) []fault {
	c := r.c
	if c != nil && c.natsC != nil {
		return r.clusterFaults(ctx)
	}
	return []fault{
		{"SIGKILL a worker, start another", func() error {
			if err := c.KillWorker(0); err != nil {
				return err
			}
			_, err := c.StartWorker()
			return err
		}},
		{"Virgil 503 on every 3rd request for 4s", func() error { return c.Fault(`{"status":503,"every":3,"for":"4s"}`) }},
		{"SIGKILL every worker, start them again", func() error {
			n := len(c.Workers())
			for range n {
				if err := c.KillWorker(0); err != nil {
					return err
				}
			}
			for range max(n, 1) {
				if _, err := c.StartWorker(); err != nil {
					return err
				}
			}
			return nil
		}},
		{"restart NATS (down 2s)", func() error { return c.RestartNATS(2 * time.Second) }},
		{"Virgil 429 Retry-After 1s on every 2nd request for 4s", func() error {
			return c.Fault(`{"status":429,"retry_after":"1s","every":2,"for":"4s"}`)
		}},
		{"restart Redis empty (down 1s)", func() error { return r.restartRedis(ctx) }},
		{"Virgil slow: 300ms per request for 4s", func() error { return c.Fault(`{"delay":"300ms","for":"4s"}`) }},
		{"Virgil 500 on every request for 2s", func() error { return c.Fault(`{"status":500,"for":"2s"}`) }},
	}
}

// restartRedis restarts Redis empty. With the fake CometChat REST API, events
// stay in flight and CometChat's retries of events from before the loss keep
// coming: the workers find the loss and check those changes with CometChat
// (docs/design.md, invariant 5). Without it, losing Redis weakens the ordering of
// the events in flight at that moment, so the restart waits as
// withStoreLoss does; the run then still expects exact convergence.
func (r *chaosRun) restartRedis(ctx context.Context) error {
	if r.c.CometChat != nil {
		return r.c.RestartRedis(time.Second)
	}
	return r.withStoreLoss(ctx, func() error { return r.c.RestartRedis(time.Second) })
}

// withStoreLoss runs loss, which may lose Redis's recent writes, after the
// generator has stopped delivering pairs newest first and retries of the
// events delivered so far, and after the jobs already queued are worked off.
func (r *chaosRun) withStoreLoss(ctx context.Context, loss func() error) error {
	r.reorderPause.Store(true)
	defer r.reorderPause.Store(false)
	r.redisLosses.Add(1) // retries from now on repeat only newer events
	r.reorderGate.Lock()
	r.reorderGate.Unlock() // (only waits for the pair or retry being delivered)
	_, last, _, err := r.c.QueuedJobs(ctx)
	if err != nil {
		return err
	}
	err = poll(ctx, 60*time.Second, "jobs before the store loss settle", func() error {
		msgs, _, first, err := r.c.QueuedJobs(ctx)
		if err != nil {
			return err
		}
		if msgs > 0 && first <= last {
			return fmt.Errorf("job %d still queued", first)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return loss()
}

// compare returns one line per group whose participants differ from the
// owner plus the expected members.
func (r *chaosRun) compare(client *http.Client, groups []string, expected map[string][]string) []string {
	var out []string
	for _, g := range groups {
		want := []string{r.c.Identity.Owner()}
		for _, u := range expected[g] {
			want = append(want, r.c.Identity.User(u))
		}
		slices.Sort(want)
		v, found, err := r.c.Group(client, g)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: %v", g, err))
		case !found:
			out = append(out, fmt.Sprintf("%s: no Virgil group", g))
		case !slices.Equal(v.Participants, want):
			out = append(out, fmt.Sprintf("%s: participants %v, want %v", g, r.names(v.Participants), r.names(want)))
		default:
			out = append(out, r.decryption(g, expected[g])...)
		}
	}
	return out
}

// decryption is the verdict that counts: every member of group g opens
// its newest epoch with their own key, and every other user cannot.
func (r *chaosRun) decryption(g string, members []string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner, err := r.c.ownerKey(ctx)
	if err != nil {
		return []string{fmt.Sprintf("%s: owner card: %v", g, err)}
	}
	var out []string
	for i := range r.cfg.Users {
		u := fmt.Sprintf("chaos-user-%03d", i)
		err := r.c.Decrypts(ctx, u, g, owner)
		switch member := slices.Contains(members, u); {
		case member && err != nil:
			out = append(out, fmt.Sprintf("%s: member %s cannot decrypt the newest epoch: %v", g, u, err))
		case !member && err == nil:
			out = append(out, fmt.Sprintf("%s: %s, not a member, decrypts the newest epoch", g, u))
		}
	}
	return out
}

// names maps identities back to uids for messages.
func (r *chaosRun) names(identities []string) []string {
	back := map[string]string{r.c.Identity.Owner(): "owner"}
	for i := range r.cfg.Users {
		u := fmt.Sprintf("chaos-user-%03d", i)
		back[r.c.Identity.User(u)] = u
	}
	out := make([]string, len(identities))
	for i, id := range identities {
		if n, ok := back[id]; ok {
			out[i] = n
		} else {
			out[i] = id
		}
	}
	return out
}

func (r *chaosRun) report(client *http.Client, groups []string, expected map[string][]string, deciders map[[2]string]*Event,
	diverged []string, failed []FailedJob) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Sent: len(r.events), Duplicates: r.duplicates, Reordered: r.reordered, RepeatedAdds: r.repeated, Forged: r.forged, Groups: len(groups),
		Failed: failed, Divergence: diverged, Diverged: len(diverged), Statuses: map[string]int{}}
	statuses, errs := r.poster.Statuses()
	for code, n := range statuses {
		rep.Statuses[fmt.Sprint(code)] = n
	}
	rep.Statuses["no answer"] = errs
	dead := map[string]bool{}
	for _, f := range failed {
		dead[groupsync.ContentKey(f.ID)] = true
	}
	for _, e := range r.events {
		if e.Lost {
			rep.LostWebhooks++
			continue
		}
		if !e.Accepted {
			rep.Unaccepted++
			continue
		}
		rep.Accepted++
		if dead[groupsync.ContentKey(e.JobID)] {
			rep.DeadLettered++
		}
	}
	// An accepted event is lost when it decides a member's fate, Virgil
	// does not show that fate, and it is not a dead letter; a dropped
	// webhook in that place was not reconciled.
	views := map[string]GroupView{}
	for _, g := range groups {
		v, _, _ := r.c.Group(client, g)
		views[g] = v
	}
	keys := make([][2]string, 0, len(deciders))
	for k := range deciders {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		e := deciders[k]
		has := slices.Contains(views[k[0]].Participants, r.c.Identity.User(k[1]))
		if has == e.In || dead[groupsync.ContentKey(e.JobID)] {
			continue
		}
		lapse := fmt.Sprintf("%s %s %s at %d (job %s…)", e.GUID, e.Trigger, strings.Join(e.UIDs, ","), e.At, e.JobID[:12])
		if e.Lost {
			rep.Unrepaired++
			lapse += ": webhook never delivered, not reconciled"
		} else {
			rep.Lost++
		}
		rep.Lapses = append(rep.Lapses, lapse)
	}
	rep.Applied = rep.Accepted - rep.DeadLettered - rep.Lost
	return rep
}

// Check compares the Virgil groups with the accepted events among events,
// once and without waiting, and reports the lost events and diverged groups.
func (c *Cluster) Check(ctx context.Context, events []*Event) (Report, error) {
	r := &chaosRun{c: c, poster: c.Poster(0), events: events}
	expected, deciders := Expected(events)
	var groups []string
	for g := range expected {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	client := &http.Client{Timeout: 5 * time.Second}
	failed, err := c.FailedJobs(ctx)
	if err != nil {
		return Report{}, err
	}
	return r.report(client, groups, expected, deciders, r.compare(client, groups, expected), failed), nil
}
