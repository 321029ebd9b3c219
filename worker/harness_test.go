package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/worker"
	"github.com/groupsync/groupsync/worker/redistest"
)

const ownerID = groupsync.DefaultOwnerIdentity

func testLogger(tb testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// eventually is testkit.EventuallyErr for conditions that describe
// themselves when false.
func eventually(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	testkit.EventuallyErr(tb, timeout, "condition", func() error {
		if ok, desc := cond(); !ok {
			return errors.New(desc)
		}
		return nil
	})
}

// env is the whole worker side of groupsync on real servers: an embedded
// NATS with the queue, a redis-server, the Virgil emulator over HTTP and the
// real virgil.Owner.
type env struct {
	tb       testing.TB
	nats     *natstest.Server
	nc       *nats.Conn
	q        *queue.Queue
	qcfg     queue.Config
	redis    *redistest.Server
	store    worker.Store
	emu      *emulator.Emulator
	url      string
	gen      *virgil.JWTGenerator
	owner    *virgil.Owner
	ownerKey *virgil.PrivateKey
	ids      *groupsync.Identities
	groups   *worker.VirgilGroups
	seq      atomic.Int64

	mu    sync.Mutex
	users map[string]*member
}

type envOptions struct {
	queue func(*queue.Config)
	redis []redistest.Option
	kv    bool // JetStream KV store instead of Redis
}

func newEnv(tb testing.TB, opts envOptions) *env {
	tb.Helper()
	e := &env{tb: tb, users: map[string]*member{}}
	e.nats = natstest.Run(tb)
	e.nc = e.connect()
	e.qcfg = queue.Config{Partitions: 4, FetchWait: 200 * time.Millisecond, AckWait: 5 * time.Second, Logger: testLogger(tb),
		JobKey: testJobKey, AppID: testAppID}
	if opts.queue != nil {
		opts.queue(&e.qcfg)
	}
	e.q = e.openQueue(e.nc)

	if opts.kv {
		e.store = mustKVStore(tb, e.nats.URL())
	} else {
		e.redis = redistest.Start(tb, opts.redis...)
		e.store = worker.NewRedisStore(mustRedis(tb, e.redis), "")
	}

	appKey, err := virgil.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	e.gen = &virgil.JWTGenerator{AppID: "a1b2c3d4e5f60718293a4b5c6d7e8f90", AppKeyID: "0123456789abcdef0123456789abcdef", AppKey: appKey}
	e.emu, err = emulator.New(emulator.Config{AppID: e.gen.AppID, AppKeyID: e.gen.AppKeyID, AppPublicKey: appKey.Public()})
	if err != nil {
		tb.Fatalf("emulator.New: %v", err)
	}
	srv := httptest.NewServer(e.emu)
	tb.Cleanup(srv.Close)
	e.url = srv.URL

	ownerKey, err := virgil.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	e.ownerKey = ownerKey
	e.owner = virgil.NewOwner(e.client(ownerID), ownerKey, ownerID, virgil.WithServiceKey(e.emu.ServiceKey()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.owner.EnsureCard(ctx); err != nil {
		tb.Fatalf("EnsureCard: %v", err)
	}
	e.ids, err = groupsync.NewIdentities([]byte("worker-test-identity-secret"), "")
	if err != nil {
		tb.Fatal(err)
	}
	e.groups = worker.NewVirgilGroups(e.owner, e.ids)
	return e
}

func (e *env) connect() *nats.Conn {
	return natstest.Connect(e.tb, e.nats, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
}

func (e *env) openQueue(nc *nats.Conn) *queue.Queue {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, e.qcfg)
	if err != nil {
		e.tb.Fatalf("queue.Open: %v", err)
	}
	e.tb.Cleanup(func() { _ = q.Close() })
	return q
}

func (e *env) client(identity string) *virgil.Client {
	return virgil.NewClient(e.url, e.gen.Source(identity), virgil.WithTimeout(10*time.Second))
}

// poolConfig is a worker.Config with test-sized timings.
func (e *env) poolConfig() worker.Config {
	return worker.Config{
		JobTimeout:    20 * time.Second,
		LeaseTTL:      3 * time.Second,
		RetryInitial:  20 * time.Millisecond,
		RetryMax:      500 * time.Millisecond,
		NakBase:       100 * time.Millisecond,
		NakMax:        2 * time.Second,
		CheckInitial:  100 * time.Millisecond,
		CheckMax:      time.Second,
		CheckPoll:     50 * time.Millisecond,
		SweepInterval: -1,
		Logger:        testLogger(e.tb),
	}
}

// startPool runs a pool until the test ends (or stop is called) and
// returns it.
func (e *env) startPool(cfg worker.Config, q *queue.Queue, store worker.Store, v groupsync.EncryptedGroups) (*worker.Pool, func()) {
	e.tb.Helper()
	if q == nil {
		q = e.q
	}
	if store == nil {
		store = e.store
	}
	if v == nil {
		v = e.groups
	}
	p, err := worker.New(cfg, q, store, v)
	if err != nil {
		e.tb.Fatalf("worker.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Stop(ctx); err != nil {
				e.tb.Errorf("Stop: %v", err)
			}
			if err := <-done; err != nil {
				e.tb.Errorf("Run: %v", err)
			}
		})
	}
	e.tb.Cleanup(stop)
	return p, stop
}

// member is a simulated E3Kit user with a card.
type member struct {
	uid, identity string
	key           *virgil.PrivateKey
	cardID        string
	client        *virgil.Client
}

// register publishes a card for uid (or replaces the current one).
func (e *env) register(uids ...string) {
	e.tb.Helper()
	for _, uid := range uids {
		e.mu.Lock()
		m := e.users[uid]
		e.mu.Unlock()
		key, err := virgil.GenerateKey()
		if err != nil {
			e.tb.Fatal(err)
		}
		if m == nil {
			m = &member{uid: uid, identity: e.ids.User(uid), client: e.client(e.ids.User(uid))}
		}
		rc, err := virgil.NewRawCard(key, m.identity, m.cardID, time.Now())
		if err != nil {
			e.tb.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = m.client.PublishCard(ctx, rc)
		cancel()
		if err != nil {
			e.tb.Fatalf("publish card of %s: %v", uid, err)
		}
		m.key, m.cardID = key, rc.ID()
		e.mu.Lock()
		e.users[uid] = m
		e.mu.Unlock()
	}
}

// view returns the sorted uids-as-identities the emulator holds for guid,
// and whether the group exists.
func (e *env) view(guid string) (emulator.GroupView, bool) {
	return e.emu.Group(ownerID, e.ids.Group(guid))
}

// want is the participants a group with uids as members must have.
func (e *env) want(uids ...string) []string {
	out := append([]string{ownerID}, e.ids.Users(uids)...)
	sort.Strings(out)
	return out
}

func (e *env) names(idents []string) string {
	back := map[string]string{ownerID: "owner"}
	e.mu.Lock()
	for uid := range e.users {
		back[e.ids.User(uid)] = uid
	}
	e.mu.Unlock()
	var out []string
	for _, id := range idents {
		if n, ok := back[id]; ok {
			out = append(out, n)
		} else {
			out = append(out, id[:8])
		}
	}
	return strings.Join(out, ",")
}

// waitMembers waits until guid's Virgil participants are the owner and uids.
func (e *env) waitMembers(guid string, uids ...string) emulator.GroupView {
	e.tb.Helper()
	want := e.want(uids...)
	var v emulator.GroupView
	eventually(e.tb, 20*time.Second, func() (bool, string) {
		var ok bool
		v, ok = e.view(guid)
		return ok && slices.Equal(v.Participants, want), fmt.Sprintf("group %s: participants [%s] (exists %v), want [%s]", guid, e.names(v.Participants), ok, e.names(want))
	})
	return v
}

func (e *env) waitDeleted(guid string) {
	e.tb.Helper()
	eventually(e.tb, 20*time.Second, func() (bool, string) {
		v, ok := e.view(guid)
		return !ok, fmt.Sprintf("group %s still exists with [%s]", guid, e.names(v.Participants))
	})
}

// testJobKey signs the tests' jobs; testAppID is their CometChat app.
var testJobKey = queue.JobKey("worker-test-job-key-0123456789abcdef")

const testAppID = "app"

// job makes a job for ev as the webhook does: its id is the event's content
// key and a random part, so every call makes a new delivery of ev.
func job(ev groupsync.Event) groupsync.Job {
	if ev.MembersCount == 0 {
		ev.MembersCount = -1
	}
	now := time.Now()
	if ev.Received == 0 {
		ev.Received = now.Unix()
	}
	return groupsync.Job{ID: groupsync.JobID(groupsync.IdempotencyKey(ev)), Event: ev, ReceivedAt: now.UTC()}
}

func (e *env) publish(jobs ...groupsync.Job) {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, j := range jobs {
		if _, err := e.q.Publish(ctx, j); err != nil {
			e.tb.Fatalf("Publish %s: %v", j.ID, err)
		}
	}
}

// publishCopy stores j again under another Nats-Msg-Id, as a CometChat
// retry outside the queue's duplicate window would: only the worker's
// idempotency can catch it.
func (e *env) publishCopy(j groupsync.Job) {
	e.tb.Helper()
	e.publishRaw(j, "sign", fmt.Sprintf("copy-%s-%d", j.ID, e.seq.Add(1)))
}

// publishRaw stores j on its partition under msgID as anyone with access
// to NATS could, bypassing the queue: signed with sig, with the test job
// key when sig is "sign", unsigned when it is empty.
func (e *env) publishRaw(j groupsync.Job, sig, msgID string) {
	e.tb.Helper()
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.tb.Fatal(err)
	}
	b, err := json.Marshal(j)
	if err != nil {
		e.tb.Fatal(err)
	}
	if sig == "sign" {
		sig = testJobKey.Sign(b)
	}
	msg := &nats.Msg{Subject: fmt.Sprintf("%s.%d", e.q.Config().SubjectPrefix, queue.Partition(j.Event.GUID, e.q.Partitions())), Data: b, Header: nats.Header{}}
	if sig != "" {
		msg.Header.Set(queue.HeaderSignature, sig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		e.tb.Fatalf("publish %s straight to JetStream: %v", j.ID, err)
	}
}

// waitSettled waits until no partition holds a pending or unsettled job.
func (e *env) waitSettled() {
	e.tb.Helper()
	eventually(e.tb, 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stats, err := e.q.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		return stats.Jobs == 0, fmt.Sprintf("%d jobs still in the stream: %+v", stats.Jobs, stats.Partitions)
	})
}

// evt builds events of one group.
type evt struct {
	guid    string
	created int64
}

func (g evt) ev(trig groupsync.Trigger, act groupsync.Action, at int64, uids ...string) groupsync.Event {
	e := groupsync.Event{Trigger: trig, Action: act, GUID: g.guid, AppID: testAppID, CreatedAt: g.created, UpdatedAt: at, MembersCount: -1}
	if act == groupsync.ActionCreate {
		e.UpdatedAt = 0
	}
	for _, u := range uids {
		e.Members = append(e.Members, groupsync.Member{UID: u})
	}
	return e
}

// countingVirgil counts the calls that reach Virgil.
type countingVirgil struct {
	groupsync.EncryptedGroups
	creates, adds, removes, deletes, readds, retains atomic.Int64
}

func (c *countingVirgil) Create(ctx context.Context, guid string, uids []string) (groupsync.Added, error) {
	c.creates.Add(1)
	return c.EncryptedGroups.Create(ctx, guid, uids)
}

func (c *countingVirgil) Add(ctx context.Context, guid string, uids []string) (groupsync.Added, error) {
	c.adds.Add(1)
	return c.EncryptedGroups.Add(ctx, guid, uids)
}

func (c *countingVirgil) Remove(ctx context.Context, guid string, uids []string) error {
	c.removes.Add(1)
	return c.EncryptedGroups.Remove(ctx, guid, uids)
}

func (c *countingVirgil) Delete(ctx context.Context, guid string) error {
	c.deletes.Add(1)
	return c.EncryptedGroups.Delete(ctx, guid)
}

func (c *countingVirgil) Retain(ctx context.Context, guid string, uids []string) (int, error) {
	c.retains.Add(1)
	return c.EncryptedGroups.Retain(ctx, guid, uids)
}

func (c *countingVirgil) ReAdd(ctx context.Context, guid string, uids []string) error {
	c.readds.Add(1)
	return c.EncryptedGroups.ReAdd(ctx, guid, uids)
}

func (c *countingVirgil) total() int64 {
	return c.creates.Load() + c.adds.Load() + c.removes.Load() + c.deletes.Load() + c.readds.Load() + c.retains.Load()
}

var errCut = errors.New("test: connection cut")
