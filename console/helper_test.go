package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/worker"
)

// Credentials and keys of the tests; none may ever show in a page.
const (
	testUser  = "operator"
	testPass  = "console-test-password-7f3a"
	testAppID = "app"
)

var testJobKey = queue.JobKey("console-test-job-key-0123456789abcdef")

// testBundle is a console over the real Inspector: an embedded JetStream
// with the queue (one partition), the audit trail, the KV store, the
// workers' roster and bookkeeping, and the Virgil emulator read by the real
// owner.
type testBundle struct {
	srv    *console.Server
	http   *httptest.Server
	q      *queue.Queue
	nc     *nats.Conn
	js     jetstream.JetStream
	audit  *queue.Audit
	store  *worker.KVStore
	roster *worker.Roster
	meta   *worker.Meta
	owner  *virgil.Owner
	ids    *groupsync.Identities
	gen    *virgil.JWTGenerator
	vurl   string
	reg    *prometheus.Registry
	logs   *testkit.Buffer
	csrf   string
	queue  queue.Config
	// user and pass are the console's credentials, which do sends.
	user, pass string
}

// setup starts a console over fresh parts and a client for it. mod adjusts
// the console's Config.
func setup(t *testing.T, mod ...func(*console.Config)) *testBundle {
	t.Helper()
	b := openParts(t)
	b.serve(t, mod...)
	return b
}

// openParts opens the parts an Inspector reads, without a worker pool.
func openParts(t *testing.T) *testBundle {
	t.Helper()
	ns := natstest.Run(t)
	nc := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, queue.Config{
		Partitions: 1,
		FetchWait:  200 * time.Millisecond,
		AckWait:    5 * time.Second,
		JobKey:     testJobKey,
		AppID:      testAppID,
		Logger:     quietLogger(t),
	})
	if err != nil {
		t.Fatalf("queue.Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBundle{q: q, nc: nc, js: js, reg: prometheus.NewRegistry(), logs: &testkit.Buffer{}, queue: q.Config()}
	if b.audit, err = queue.OpenAudit(ctx, nc, queue.AuditConfig{}); err != nil {
		t.Fatalf("OpenAudit: %v", err)
	}
	if b.store, err = worker.OpenKVStore(ctx, js, worker.KVConfig{}); err != nil {
		t.Fatalf("OpenKVStore: %v", err)
	}
	if b.roster, err = worker.OpenRoster(ctx, js, worker.RosterConfig{}); err != nil {
		t.Fatalf("OpenRoster: %v", err)
	}
	if b.meta, err = worker.OpenMeta(ctx, js, "", 0); err != nil {
		t.Fatalf("OpenMeta: %v", err)
	}
	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b.gen = &virgil.JWTGenerator{AppID: "a1b2c3d4e5f60718293a4b5c6d7e8f90", AppKeyID: "0123456789abcdef0123456789abcdef", AppKey: appKey}
	emu, err := emulator.New(emulator.Config{AppID: b.gen.AppID, AppKeyID: b.gen.AppKeyID, AppPublicKey: appKey.Public()})
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	hs := httptest.NewServer(emu)
	t.Cleanup(hs.Close)
	b.vurl = hs.URL
	ownerKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b.owner = virgil.NewOwner(b.client(groupsync.DefaultOwnerIdentity), ownerKey, groupsync.DefaultOwnerIdentity, virgil.WithServiceKey(emu.ServiceKey()))
	if _, err := b.owner.EnsureCard(ctx); err != nil {
		t.Fatalf("EnsureCard: %v", err)
	}
	if b.ids, err = groupsync.NewIdentities([]byte("console-test-identity-secret"), ""); err != nil {
		t.Fatal(err)
	}
	return b
}

func quietLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

func (b *testBundle) client(identity string) *virgil.Client {
	return virgil.NewClient(b.vurl, b.gen.Source(identity), virgil.WithTimeout(10*time.Second))
}

// serve starts the console over an Inspector of every part.
func (b *testBundle) serve(t *testing.T, mod ...func(*console.Config)) {
	t.Helper()
	in, err := inspect.New(inspect.Config{Queue: b.q, Audit: b.audit, Store: b.store, Virgil: b.owner, Identities: b.ids, Workers: b.roster, Reconcile: b.meta})
	if err != nil {
		t.Fatalf("inspect.New: %v", err)
	}
	cfg := console.Config{
		Username:   testUser,
		Password:   testPass,
		Logger:     zerolog.New(io.MultiWriter(b.logs, zerolog.NewTestWriter(t))),
		Registerer: b.reg,
	}
	for _, m := range mod {
		m(&cfg)
	}
	b.user, b.pass = cfg.Username, cfg.Password
	b.srv, err = console.New(cfg, in)
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	b.http = httptest.NewServer(b.srv)
	t.Cleanup(b.http.Close)
	resp := b.do(t, "GET", "/", nil, jsonAccept)
	b.csrf = resp.Header.Get(console.HeaderCSRF)
	if b.csrf == "" {
		t.Fatalf("GET / = %d, carries no %s header", resp.StatusCode, console.HeaderCSRF)
	}
}

// startPool runs a worker pool on the parts until the test ends.
func (b *testBundle) startPool(t *testing.T) {
	t.Helper()
	p, err := worker.New(worker.Config{
		JobTimeout: 20 * time.Second, LeaseTTL: 3 * time.Second, RetryInitial: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		NakBase: 100 * time.Millisecond, NakMax: 2 * time.Second, SweepInterval: -1, Logger: quietLogger(t),
		Audit: b.audit, Roster: b.roster, RosterInterval: 200 * time.Millisecond, WorkerID: "w-console", Meta: b.meta,
	}, b.q, b.store, worker.NewVirgilGroups(b.owner, b.ids))
	if err != nil {
		t.Fatalf("worker.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
		<-done
	})
}

// register publishes a Virgil card for each uid.
func (b *testBundle) register(t *testing.T, uids ...string) {
	t.Helper()
	for _, uid := range uids {
		key, err := virgil.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := virgil.NewRawCard(key, b.ids.User(uid), "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := testContext()
		_, err = b.client(b.ids.User(uid)).PublishCard(ctx, rc)
		cancel()
		if err != nil {
			t.Fatalf("publish card of %s: %v", uid, err)
		}
	}
}

// publish queues jobs.
func (b *testBundle) publish(t *testing.T, jobs ...groupsync.Job) {
	t.Helper()
	ctx, cancel := testContext()
	defer cancel()
	for _, j := range jobs {
		if _, err := b.q.Publish(ctx, j); err != nil {
			t.Fatalf("Publish %s: %v", j.ID, err)
		}
	}
}

// waitSettled waits until the job stream is empty.
func (b *testBundle) waitSettled(t *testing.T) {
	t.Helper()
	testkit.EventuallyErr(t, 30*time.Second, "jobs settled", func() error {
		st, err := b.q.Stats(context.Background())
		if err != nil {
			return err
		}
		if st.Jobs != 0 {
			return fmt.Errorf("%d jobs in the stream", st.Jobs)
		}
		return nil
	})
}

// reqOpt adjusts a request.
type reqOpt func(*http.Request)

var (
	jsonAccept = func(r *http.Request) { r.Header.Set("Accept", "application/json") }
	htmlAccept = func(r *http.Request) { r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8") }
	noAuth     = func(r *http.Request) { r.Header.Del("Authorization") }
)

func withAuth(user, pass string) reqOpt {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// withJSONBody sends body as the request's JSON body.
func withJSONBody(body string) reqOpt {
	return func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Type", "application/json")
	}
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// response is an answer read whole.
type response struct {
	*http.Response
	body string
}

// do sends a request with the test credentials (opts may change them); a
// form is posted url-encoded. Redirects are not followed.
func (b *testBundle) do(t *testing.T, method, path string, form url.Values, opts ...reqOpt) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.SetBasicAuth(b.user, b.pass)
	for _, o := range opts {
		o(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b2, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Response: resp, body: string(b2)}
}

// post posts form with the CSRF token.
func (b *testBundle) post(t *testing.T, path string, form url.Values, opts ...reqOpt) response {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.do(t, "POST", path, form, opts...)
}

// getJSON gets path as JSON into v, failing unless the status is 200.
func (b *testBundle) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp := b.do(t, "GET", path, nil, jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s, want 200", path, resp.StatusCode, resp.body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s Content-Type = %q, want JSON", path, ct)
	}
	if err := json.Unmarshal([]byte(resp.body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, resp.body)
	}
}

// deadLetter queues a job for guid and dead-letters it with reason; it
// returns the job as queued.
func (b *testBundle) deadLetter(t *testing.T, id, guid, reason string) groupsync.Job {
	t.Helper()
	job := groupsync.Job{
		ID: id,
		Event: groupsync.Event{
			Trigger:      groupsync.TriggerMemberAdded,
			Action:       groupsync.ActionAdd,
			AppID:        testAppID,
			GUID:         guid,
			Members:      []groupsync.Member{{UID: "alice"}},
			MembersCount: 2,
		},
		ReceivedAt: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.q.Publish(ctx, job); err != nil {
		t.Fatalf("Publish(%s): %v", id, err)
	}
	d, err := b.q.Next(ctx, 0)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if d.Job.ID != id {
		t.Fatalf("Next = job %s, want %s", d.Job.ID, id)
	}
	if err := d.DeadLetter(ctx, reason); err != nil {
		t.Fatalf("DeadLetter(%s): %v", id, err)
	}
	return job
}

// failedIDs lists the ids in the dead-letter stream, read from the queue
// itself.
func (b *testBundle) failedIDs(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	jobs, err := b.q.Failed(ctx)
	if err != nil {
		t.Fatalf("Failed: %v", err)
	}
	ids := []string{}
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// signatures returns the signature headers of every dead letter, read
// straight from the stream.
func (b *testBundle) signatures(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, b.queue.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sigs []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if sig := m.Header.Get(queue.HeaderSignature); sig != "" {
			sigs = append(sigs, sig)
		}
	}
	return sigs
}

// testContext bounds one step of a test.
func testContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}
