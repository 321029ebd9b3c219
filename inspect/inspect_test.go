package inspect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/worker"
)

const (
	ownerID = groupsync.DefaultOwnerIdentity
	appID   = "app"
)

var jobKey = queue.JobKey("inspect-test-job-key-0123456789abcdef")

// env is groupsync's worker side on real parts: an embedded NATS with the
// queue, the audit trail, the JetStream KV store and the roster, the Virgil
// emulator over HTTP with the real virgil.Owner, and a running pool.
type env struct {
	t        *testing.T
	nc       *nats.Conn
	js       jetstream.JetStream
	q        *queue.Queue
	audit    *queue.Audit
	store    *worker.KVStore
	roster   *worker.Roster
	meta     *worker.Meta
	emu      *emulator.Emulator
	url      string
	gen      *virgil.JWTGenerator
	owner    *virgil.Owner
	ownerKey *virgil.PrivateKey
	ids      *groupsync.Identities

	mu    sync.Mutex
	cards map[string]string // uid -> card id
	keys  map[string]*virgil.PrivateKey
}

func logger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, cards: map[string]string{}, keys: map[string]*virgil.PrivateKey{}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := natstest.Run(t)
	e.nc = natstest.Connect(t, srv)
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	e.q, err = queue.Open(ctx, e.nc, queue.Config{Partitions: 2, FetchWait: 200 * time.Millisecond, AckWait: 5 * time.Second,
		Logger: logger(t), JobKey: jobKey, AppID: appID})
	if err != nil {
		t.Fatalf("queue.Open: %v", err)
	}
	t.Cleanup(func() { _ = e.q.Close() })
	if e.audit, err = queue.OpenAudit(ctx, e.nc, queue.AuditConfig{}); err != nil {
		t.Fatalf("OpenAudit: %v", err)
	}
	if e.store, err = worker.OpenKVStore(ctx, e.js, worker.KVConfig{}); err != nil {
		t.Fatalf("OpenKVStore: %v", err)
	}
	if e.roster, err = worker.OpenRoster(ctx, e.js, worker.RosterConfig{}); err != nil {
		t.Fatalf("OpenRoster: %v", err)
	}
	if e.meta, err = worker.OpenMeta(ctx, e.js, "", 0); err != nil {
		t.Fatalf("OpenMeta: %v", err)
	}

	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.gen = &virgil.JWTGenerator{AppID: "a1b2c3d4e5f60718293a4b5c6d7e8f90", AppKeyID: "0123456789abcdef0123456789abcdef", AppKey: appKey}
	if e.emu, err = emulator.New(emulator.Config{AppID: e.gen.AppID, AppKeyID: e.gen.AppKeyID, AppPublicKey: appKey.Public()}); err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	hs := httptest.NewServer(e.emu)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	ownerKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.ownerKey = ownerKey
	e.owner = virgil.NewOwner(e.client(ownerID), ownerKey, ownerID, virgil.WithServiceKey(e.emu.ServiceKey()))
	if _, err := e.owner.EnsureCard(ctx); err != nil {
		t.Fatalf("EnsureCard: %v", err)
	}
	if e.ids, err = groupsync.NewIdentities([]byte("inspect-test-identity-secret"), ""); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) client(identity string) *virgil.Client {
	return virgil.NewClient(e.url, e.gen.Source(identity), virgil.WithTimeout(10*time.Second))
}

// startPool runs a worker pool with the roster until the test ends.
func (e *env) startPool() {
	e.t.Helper()
	p, err := worker.New(worker.Config{
		JobTimeout: 20 * time.Second, LeaseTTL: 3 * time.Second, RetryInitial: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		NakBase: 100 * time.Millisecond, NakMax: 2 * time.Second, SweepInterval: -1, Logger: logger(e.t),
		Audit: e.audit, Roster: e.roster, RosterInterval: 200 * time.Millisecond, WorkerID: "w-inspect", Meta: e.meta,
	}, e.q, e.store, worker.NewVirgilGroups(e.owner, e.ids))
	if err != nil {
		e.t.Fatalf("worker.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
		<-done
	})
}

// register publishes a new card for each uid.
func (e *env) register(uids ...string) {
	e.t.Helper()
	for _, uid := range uids {
		key, err := virgil.GenerateKey()
		if err != nil {
			e.t.Fatal(err)
		}
		e.mu.Lock()
		prev := e.cards[uid]
		e.mu.Unlock()
		rc, err := virgil.NewRawCard(key, e.ids.User(uid), prev, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = e.client(e.ids.User(uid)).PublishCard(ctx, rc)
		cancel()
		if err != nil {
			e.t.Fatalf("publish card of %s: %v", uid, err)
		}
		e.mu.Lock()
		e.cards[uid], e.keys[uid] = rc.ID(), key
		e.mu.Unlock()
	}
}

func (e *env) publish(jobs ...groupsync.Job) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, j := range jobs {
		if _, err := e.q.Publish(ctx, j); err != nil {
			e.t.Fatalf("Publish %s: %v", j.ID, err)
		}
	}
}

// waitSettled waits until the job stream is empty.
func (e *env) waitSettled() {
	e.t.Helper()
	testkit.EventuallyErr(e.t, 30*time.Second, "jobs settled", func() error {
		st, err := e.q.Stats(context.Background())
		if err != nil {
			return err
		}
		if st.Jobs != 0 {
			return fmt.Errorf("%d jobs in the stream", st.Jobs)
		}
		return nil
	})
}

// waitHistory waits until guid has n audit records.
func (e *env) waitHistory(guid string, n int) {
	e.t.Helper()
	testkit.EventuallyErr(e.t, 20*time.Second, "audit records", func() error {
		recs, err := e.audit.History(context.Background(), guid, 0)
		if err != nil {
			return err
		}
		if len(recs) < n {
			return fmt.Errorf("%d audit records of %s, want %d", len(recs), guid, n)
		}
		return nil
	})
}

// inspector is an Inspector on every part of e; mod adjusts its Config.
func (e *env) inspector(mod ...func(*inspect.Config)) *inspect.Inspector {
	e.t.Helper()
	cfg := inspect.Config{Queue: e.q, Audit: e.audit, Store: e.store, Virgil: e.owner, Identities: e.ids, Workers: e.roster, Reconcile: e.meta}
	for _, m := range mod {
		m(&cfg)
	}
	in, err := inspect.New(cfg)
	if err != nil {
		e.t.Fatalf("inspect.New: %v", err)
	}
	return in
}

const created = 1_718_000_000 // the test group's createdAt

func event(guid string, trig groupsync.Trigger, act groupsync.Action, at int64, by string, uids ...string) groupsync.Job {
	ev := groupsync.Event{Trigger: trig, Action: act, GUID: guid, AppID: appID, CreatedAt: created, UpdatedAt: at, By: by,
		MembersCount: -1, Received: time.Now().Unix()}
	for _, u := range uids {
		ev.Members = append(ev.Members, groupsync.Member{UID: u})
	}
	return groupsync.Job{ID: groupsync.JobID(groupsync.IdempotencyKey(ev)), Event: ev, ReceivedAt: time.Now().UTC()}
}

func uids(ms []inspect.Member) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

// scenario is a group "team" created with alice, bob, carol and dave (who
// has no card), then carol kicked by alice; and a reconcile job of group
// "big" that fails for want of a CometChat reconciler.
type scenario struct {
	*env
	kick  groupsync.Job
	recon groupsync.Job
}

func setup(t *testing.T) scenario {
	e := newEnv(t)
	e.register("alice", "bob", "carol")
	e.startPool()
	s := scenario{env: e}
	e.publish(event("team", groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "alice", "bob", "carol", "dave"))
	s.kick = event("team", groupsync.TriggerMemberKicked, groupsync.ActionRemove, created+30, "alice", "carol")
	e.publish(s.kick)
	s.recon = worker.ReconcileJob("big", "run1")
	e.publish(s.recon)
	e.waitSettled()
	e.waitHistory("team", 5)
	return s
}

// seqs are the audit sequences of recs.
func seqs(recs []queue.AuditRecord) []uint64 {
	var s []uint64
	for _, r := range recs {
		s = append(s, r.Seq)
	}
	return s
}

func TestInspect(t *testing.T) {
	s := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := s.inspector()

	t.Run("Group", func(t *testing.T) {
		g, err := in.Group(ctx, "Team")
		if err != nil {
			t.Fatalf("Group(team): %v", err)
		}
		if g.GUID != "team" || !g.Store.Read || g.Store.Lifecycle != groupsync.LifecycleExists {
			t.Fatalf("Group(team) = %+v", g)
		}
		for _, c := range []struct {
			name      string
			got, want []string
		}{
			{"store participants", uids(g.Store.Participants), []string{"alice", "bob"}},
			{"store pending", uids(g.Store.Pending), []string{"dave"}},
			{"store removed", uids(g.Store.Removed), []string{"carol"}},
			{"virgil participants", g.Virgil.Participants, []string{"alice", "bob"}},
		} {
			if !slices.Equal(c.got, c.want) {
				t.Errorf("Group(team) %s = %v, want %v", c.name, c.got, c.want)
			}
		}
		v := g.Virgil
		if !v.Read || !v.Exists || v.GroupID != s.ids.Group("team") || !slices.Equal(v.Epochs, []uint32{0, 1}) || v.Latest != 1 ||
			len(v.Unknown)+len(v.Missing)+len(v.Extra)+len(v.CardChanged) != 0 || v.Note != "" {
			t.Errorf("Group(team).Virgil = %+v, want epochs 0 and 1, nothing unknown, missing, extra or changed", v)
		}
		if len(g.History) != 5 || g.History[4].Action != "remove" || g.History[4].UID != "carol" || len(g.Failed) != 0 {
			t.Errorf("Group(team) history %+v, failed %+v; want 5 records ending with carol's removal, no failed job", g.History, g.Failed)
		}
		if g.Older != 0 {
			t.Errorf("Group(team).Older = %d with its whole history on one page", g.Older)
		}
		// The history before carol's removal: the first 4 records.
		p, err := in.History(ctx, " Team", g.History[4].Seq)
		if err != nil || p.GUID != "team" || p.Before != g.History[4].Seq || p.Older != 0 || !slices.Equal(seqs(p.History), seqs(g.History[:4])) {
			t.Errorf("History(team, before %d) = %+v, %v; want the first 4 records, nothing older", g.History[4].Seq, p, err)
		}
		if _, err := in.History(ctx, " ", 0); !errors.Is(err, inspect.ErrNotFound) {
			t.Errorf("History(no guid) = %v, want ErrNotFound", err)
		}
	})

	t.Run("ExplainKicked", func(t *testing.T) {
		r, err := in.Explain(ctx, "team", "carol")
		if err != nil {
			t.Fatalf("Explain(team, carol): %v", err)
		}
		want := fmt.Sprintf("carol is not a participant: kicked by alice at %s, job %s; no later add",
			time.Unix(created+30, 0).UTC().Format(time.RFC3339), s.kick.ID)
		if r.Sentence != want {
			t.Errorf("Explain(team, carol) = %q, want %q", r.Sentence, want)
		}
		if r.Last == nil || r.Last.JobID != s.kick.ID || r.Stored == nil || r.Stored.In || r.InVirgil == nil || *r.InVirgil {
			t.Errorf("Explain(team, carol) evidence = %+v", r)
		}
	})

	t.Run("ExplainPending", func(t *testing.T) {
		r, err := in.Explain(ctx, "team", "dave")
		if err != nil {
			t.Fatalf("Explain(team, dave): %v", err)
		}
		if !strings.HasPrefix(r.Sentence, "dave is pending: they have no Virgil card yet (added at the group's creation by alice") ||
			!strings.HasSuffix(r.Sentence, "; they join when they first log in") {
			t.Errorf("Explain(team, dave) = %q", r.Sentence)
		}
		if r.InVirgil == nil || *r.InVirgil || r.Stored == nil || !r.Stored.Pending {
			t.Errorf("Explain(team, dave) evidence = %+v", r)
		}
	})

	t.Run("ExplainParticipantAndStranger", func(t *testing.T) {
		r, err := in.Explain(ctx, "team", "bob")
		if err != nil || !strings.HasPrefix(r.Sentence, "bob is a participant: added at the group's creation by alice") || r.InVirgil == nil || !*r.InVirgil {
			t.Errorf("Explain(team, bob) = %+v, %v", r, err)
		}
		r, err = in.Explain(ctx, "team", "zed")
		if err != nil || r.Sentence != "zed is not a participant: no event about them has reached groupsync" || r.Stored != nil || r.Last != nil {
			t.Errorf("Explain(team, zed) = %+v, %v", r, err)
		}
	})

	t.Run("UnknownGroup", func(t *testing.T) {
		if _, err := in.Group(ctx, "nobody"); !errors.Is(err, inspect.ErrNotFound) {
			t.Errorf("Group(nobody) error = %v, want ErrNotFound", err)
		}
		if _, err := in.Explain(ctx, "nobody", "alice"); !errors.Is(err, inspect.ErrNotFound) {
			t.Errorf("Explain(nobody, alice) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("FailedGroupIsKnown", func(t *testing.T) {
		g, err := in.Group(ctx, "big")
		if err != nil {
			t.Fatalf("Group(big), known from its failed job only: %v", err)
		}
		if len(g.Failed) != 1 || g.Failed[0].ID != s.recon.ID || g.Virgil.Exists || len(g.Store.Participants) != 0 {
			t.Errorf("Group(big) = %+v, want its failed reconcile only", g)
		}
	})

	t.Run("VirgilNotConfigured", func(t *testing.T) {
		in := s.inspector(func(c *inspect.Config) { c.Virgil, c.Identities = nil, nil })
		g, err := in.Group(ctx, "team")
		if err != nil {
			t.Fatal(err)
		}
		if g.Virgil.Read || g.Virgil.Note != inspect.NotConfigured || g.Virgil.Participants != nil || g.Virgil.Exists {
			t.Errorf("Group(team).Virgil without Virgil = %+v, want not read", g.Virgil)
		}
		r, err := in.Explain(ctx, "team", "bob")
		if err != nil || r.InVirgil != nil || r.VirgilNote != inspect.NotConfigured || strings.Contains(r.Sentence, "Virgil") {
			t.Errorf("Explain(team, bob) without Virgil = %+v, %v; want nothing said of Virgil", r, err)
		}
	})

	// The uid mapping is what turns Virgil's identities back into users:
	// with another identity secret nobody maps, and the report must say
	// so rather than pass.
	t.Run("BrokenMappingIsVisible", func(t *testing.T) {
		wrong, err := groupsync.NewIdentities([]byte("another-identity-secret-entirely"), "")
		if err != nil {
			t.Fatal(err)
		}
		in := s.inspector(func(c *inspect.Config) { c.Identities = wrong })
		if _, err := in.Group(ctx, "nobody-either"); !errors.Is(err, inspect.ErrNotFound) {
			t.Fatalf("Group(nobody-either) = %v", err)
		}
		g, err := in.Group(ctx, "team")
		if err != nil {
			t.Fatal(err)
		}
		// Under the wrong secret the group's Virgil id is another one,
		// which does not exist: both members are missing.
		if g.Virgil.Exists || !slices.Equal(g.Virgil.Missing, []string{"alice", "bob"}) {
			t.Errorf("Group(team) with a wrong mapping: Virgil = %+v, want the group missing and alice, bob missing", g.Virgil)
		}
		r, err := in.Explain(ctx, "team", "bob")
		if err != nil || !strings.Contains(r.Sentence, "yet Virgil does not list them") {
			t.Errorf("Explain(team, bob) with a wrong mapping = %q, %v", r.Sentence, err)
		}
	})

	// A Virgil that cannot be read is said so; and a group nothing else
	// knows is then not called unknown, since Virgil might hold it.
	t.Run("VirgilDown", func(t *testing.T) {
		down := virgil.NewOwner(virgil.NewClient("http://127.0.0.1:1", s.gen.Source(ownerID), virgil.WithTimeout(time.Second)),
			s.ownerKey, ownerID, virgil.WithServiceKey(s.emu.ServiceKey()))
		in := s.inspector(func(c *inspect.Config) { c.Virgil = down })
		g, err := in.Group(ctx, "team")
		if err != nil || g.Virgil.Read || !strings.HasPrefix(g.Virgil.Note, "read failed: ") || len(g.Store.Participants) != 2 {
			t.Errorf("Group(team) with Virgil down = %+v, %v; want the store and Virgil read failed", g, err)
		}
		r, err := in.Explain(ctx, "team", "bob")
		if err != nil || r.InVirgil != nil || !strings.HasPrefix(r.VirgilNote, "read failed: ") {
			t.Errorf("Explain(team, bob) with Virgil down = %+v, %v", r, err)
		}
		if _, err := in.Group(ctx, "nobody"); err == nil || errors.Is(err, inspect.ErrNotFound) {
			t.Errorf("Group(nobody) with Virgil down: %v, want an error that is not ErrNotFound", err)
		}
	})

	t.Run("CardChanged", func(t *testing.T) {
		s.register("bob")
		g, err := in.Group(ctx, "team")
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		current := s.cards["bob"]
		s.mu.Unlock()
		if len(g.Virgil.CardChanged) != 1 || g.Virgil.CardChanged[0].UID != "bob" || g.Virgil.CardChanged[0].Current != current ||
			g.Virgil.CardChanged[0].Stored == "" || g.Virgil.CardChanged[0].Stored == current {
			t.Errorf("Group(team).Virgil.CardChanged = %+v, want bob's new card %s", g.Virgil.CardChanged, current)
		}
		r, err := in.Explain(ctx, "team", "bob")
		if err != nil || r.CardChanged == nil || r.CardChanged.Current != current {
			t.Errorf("Explain(team, bob).CardChanged = %+v, %v", r.CardChanged, err)
		}
	})

	t.Run("Overview", func(t *testing.T) {
		// The pool's window is six roster intervals of 200 ms: a job
		// applied now is counted for about a second.
		s.publish(event("fresh", groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "alice"))
		var ov inspect.Overview
		testkit.EventuallyErr(t, 10*time.Second, "overview", func() error {
			var err error
			if ov, err = in.Overview(ctx); err != nil {
				return err
			}
			if ov.Activity == nil || ov.Activity.Applied < 1 || ov.Waiting != 0 {
				return fmt.Errorf("activity %+v, %d waiting; want a job applied, none waiting", ov.Activity, ov.Waiting)
			}
			return nil
		})
		if len(ov.Partitions) != 2 || ov.Waiting != 0 || !ov.Oldest.IsZero() || ov.Failed != 1 {
			t.Errorf("Overview = %+v, want 2 empty partitions and 1 failed job", ov)
		}
		if len(ov.Workers) != 1 || ov.Workers[0].Worker != "w-inspect" || !ov.Workers[0].Live || ov.WorkersNote != "" {
			t.Errorf("Overview.Workers = %+v, want w-inspect live", ov.Workers)
		}
		if ov.Activity.LagP50 <= 0 || ov.Activity.LagP99 < ov.Activity.LagP50 {
			t.Errorf("Overview lag p50 %v p99 %v", ov.Activity.LagP50, ov.Activity.LagP99)
		}
		if ov.Reconcile != nil || ov.ReconcileNote != "none has run yet" {
			t.Errorf("Overview.Reconcile = %+v, %q; want none has run yet", ov.Reconcile, ov.ReconcileNote)
		}
		bare, err := s.inspector(func(c *inspect.Config) { c.Workers, c.Reconcile = nil, nil }).Overview(ctx)
		if err != nil || bare.Workers != nil || bare.Activity != nil || bare.WorkersNote != inspect.NotConfigured || bare.ReconcileNote != inspect.NotConfigured {
			t.Errorf("Overview without roster and meta = %+v, %v; want both not configured", bare, err)
		}
	})

	t.Run("FailedJobs", func(t *testing.T) {
		failed, err := in.Failed(ctx)
		if err != nil || len(failed) != 1 || failed[0].ID != s.recon.ID || !strings.Contains(failed[0].Error, worker.ReasonNeedsReconcile) {
			t.Fatalf("Failed = %+v, %v; want the reconcile of big", failed, err)
		}
		d, err := in.FailedJob(ctx, s.recon.ID)
		if err != nil {
			t.Fatalf("FailedJob: %v", err)
		}
		if d.ID != s.recon.ID || d.Attempts != 1 || !d.Replayable || d.BodySize == 0 || !strings.Contains(string(d.Body), `"guid":"big"`) {
			t.Errorf("FailedJob = %+v (body %s)", d, d.Body)
		}
		if strings.Contains(string(d.Body), string(jobKey)) || strings.Contains(string(d.Body), jobKey.Sign([]byte("x"))[:8]) {
			t.Errorf("FailedJob body %s holds the job key or a signature", d.Body)
		}
		if _, err := in.FailedJob(ctx, "nope"); !errors.Is(err, inspect.ErrNotFound) {
			t.Errorf("FailedJob(nope) error = %v, want ErrNotFound", err)
		}
		if n, err := in.Retry(ctx, "nope", s.recon.ID); !errors.Is(err, inspect.ErrNotFound) || n != 0 {
			t.Errorf("Retry(nope, ...) = %d, %v; want 0, ErrNotFound", n, err)
		}
		if n, err := in.Retry(ctx, s.recon.ID); err != nil || n != 1 {
			t.Fatalf("Retry = %d, %v; want 1", n, err)
		}
		// Without a reconciler it fails again.
		testkit.EventuallyErr(t, 20*time.Second, "failed again", func() error {
			f, err := in.Failed(ctx)
			if err != nil || len(f) != 1 {
				return fmt.Errorf("failed jobs %+v, %v", f, err)
			}
			return nil
		})
		if n, err := in.RetryAll(ctx); err != nil || n != 1 {
			t.Fatalf("RetryAll = %d, %v; want 1", n, err)
		}
		s.waitSettled()
		testkit.EventuallyErr(t, 20*time.Second, "failed again", func() error {
			f, err := in.Failed(ctx)
			if err != nil || len(f) != 1 {
				return fmt.Errorf("failed jobs %+v, %v", f, err)
			}
			return nil
		})
		if n, err := in.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("Purge = %d, %v; want 1", n, err)
		}
		if f, err := in.Failed(ctx); err != nil || len(f) != 0 {
			t.Fatalf("Failed after Purge = %+v, %v", f, err)
		}
		if _, err := in.Group(ctx, "big"); !errors.Is(err, inspect.ErrNotFound) {
			t.Errorf("Group(big) once its failed job is purged: %v, want ErrNotFound", err)
		}
	})
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	ids, err := groupsync.NewIdentities([]byte("inspect-test-identity-secret"), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  inspect.Config
	}{
		{"NoQueue", inspect.Config{Audit: &queue.Audit{}}},
		{"NoAudit", inspect.Config{Queue: &queue.Queue{}}},
		{"VirgilWithoutIdentities", inspect.Config{Queue: &queue.Queue{}, Audit: &queue.Audit{}, Virgil: &virgil.Owner{}}},
		{"NegativeLimit", inspect.Config{Queue: &queue.Queue{}, Audit: &queue.Audit{}, HistoryLimit: -1}},
	} {
		if _, err := inspect.New(tc.cfg); err == nil {
			t.Errorf("New(%s) succeeded", tc.name)
		}
	}
	if _, err := inspect.New(inspect.Config{Queue: &queue.Queue{}, Audit: &queue.Audit{}, Virgil: &virgil.Owner{}, Identities: ids}); err != nil {
		t.Errorf("New(complete) = %v", err)
	}
	// Every mistake is reported, as the other packages' configs do.
	_, err = inspect.New(inspect.Config{Virgil: &virgil.Owner{}, StaleAfter: -time.Second})
	for _, want := range []string{"Queue and Audit", "Identities", "StaleAfter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with three mistakes = %v, which does not name %s", err, want)
		}
	}
}
