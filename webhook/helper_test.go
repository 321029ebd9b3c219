package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/webhook"
)

// Credentials and ids of the test deployment. The examples carry appID.
const (
	appID        = "5f1d2e3c4b5a6978"
	webhookUser  = "cometchat"
	webhookPass  = "S3cretWebhookPassw0rd"
	apiKey       = "cometchatRestApiKeyS3cret"
	testPartns   = 4
	examplesPath = "../testdata/cometchat"
)

// testJobKey signs the jobs the test server queues.
var testJobKey = queue.JobKey("webhook-test-job-key-0123456789abcdef")

// fakeIssuer issues "jwt-for-<identity>" tokens.
type fakeIssuer struct{}

func (fakeIssuer) IssueToken(identity string) (string, error) { return "jwt-for-" + identity, nil }

// testBundle holds what a test needs besides the Server under test.
type testBundle struct {
	url  string // http://127.0.0.1:port of the server
	nats *natstest.Server
	nc   *nats.Conn
	q    *queue.Queue
	js   jetstream.JetStream
	ids  *groupsync.Identities
	reg  *prometheus.Registry
	logs *testkit.Buffer
}

func mustIdentities(tb testing.TB) *groupsync.Identities {
	tb.Helper()
	ids, err := groupsync.NewIdentities([]byte("0123456789abcdef-test-secret"), "")
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

// baseConfig is a valid Config in trust-header mode, logging to logs.
func baseConfig(tb testing.TB, logs io.Writer) webhook.Config {
	var w io.Writer = logs
	if t, ok := tb.(*testing.T); ok {
		w = io.MultiWriter(zerolog.NewTestWriter(t), logs)
	}
	return webhook.Config{
		Addr:       "127.0.0.1:0",
		Username:   webhookUser,
		Password:   webhookPass,
		AppID:      appID,
		Logger:     zerolog.New(w).Level(zerolog.DebugLevel),
		Registerer: prometheus.NewRegistry(),
		Identities: mustIdentities(tb),
		Tokens:     fakeIssuer{},
		ClientAuth: webhook.ClientAuthTrustHeader,
	}
}

// setup starts an embedded JetStream, opens a Queue on it and starts a
// Server on a free loopback port in front of it. mod adjusts the Config.
func setup(tb testing.TB, mod ...func(*webhook.Config)) (*webhook.Server, *testBundle) {
	tb.Helper()
	b := &testBundle{logs: &testkit.Buffer{}}
	b.nats = natstest.Run(tb)
	b.nc = natstest.Connect(tb, b.nats)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, b.nc, queue.Config{Partitions: testPartns, PublishTimeout: time.Second, JobKey: testJobKey, AppID: appID})
	if err != nil {
		tb.Fatalf("queue.Open: %v", err)
	}
	b.q = q
	if b.js, err = jetstream.New(b.nc); err != nil {
		tb.Fatal(err)
	}
	cfg := baseConfig(tb, b.logs)
	b.ids = cfg.Identities
	b.reg = cfg.Registerer.(*prometheus.Registry)
	for _, m := range mod {
		m(&cfg)
	}
	return startServer(tb, cfg, q, b)
}

// startServer starts a Server for cfg and enq on cfg.Addr and shuts it down
// at the end of the test.
func startServer(tb testing.TB, cfg webhook.Config, enq webhook.Enqueuer, b *testBundle) (*webhook.Server, *testBundle) {
	tb.Helper()
	srv, err := webhook.New(cfg, enq)
	if err != nil {
		tb.Fatalf("webhook.New: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
	})
	if srv.Addr() == "" || strings.HasSuffix(srv.Addr(), ":0") {
		tb.Fatalf("Addr() = %q after Start, want the bound address", srv.Addr())
	}
	b.url = "http://" + srv.Addr()
	return srv, b
}

// readExample returns an example body from testdata.
func readExample(tb testing.TB, name string) []byte {
	tb.Helper()
	body, err := os.ReadFile(filepath.Join(examplesPath, name))
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// exampleNames lists the example bodies.
func exampleNames(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(examplesPath, "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no examples in %s: %v", examplesPath, err)
	}
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	return files
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request and decodes a JSON answer.
func do(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			tb.Fatalf("%s %s: answer %q is not a JSON object: %v", req.Method, req.URL.Path, raw, err)
		}
	}
	return r
}

// webhookRequest builds an authenticated webhook POST.
func webhookRequest(tb testing.TB, base string, body []byte) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, base+webhook.PathWebhook, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.SetBasicAuth(webhookUser, webhookPass)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// post sends body as an authenticated webhook.
func post(tb testing.TB, base string, body []byte) response {
	tb.Helper()
	return do(tb, webhookRequest(tb, base, body))
}

// streamState returns the number of stored jobs per subject of the job
// stream.
func (b *testBundle) streamState(tb testing.TB) (total uint64, bySubject map[string]uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := b.js.Stream(ctx, b.q.Config().Stream)
	if err != nil {
		tb.Fatalf("stream: %v", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(b.q.Config().SubjectPrefix+".*"))
	if err != nil {
		tb.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs, info.State.Subjects
}

// lastJob returns the last job stored on subject and its Nats-Msg-Id.
func (b *testBundle) lastJob(tb testing.TB, subject string) (groupsync.Job, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := b.js.Stream(ctx, b.q.Config().Stream)
	if err != nil {
		tb.Fatalf("stream: %v", err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		tb.Fatalf("last message on %s: %v", subject, err)
	}
	var job groupsync.Job
	if err := json.Unmarshal(msg.Data, &job); err != nil {
		tb.Fatalf("stored job on %s does not decode: %v", subject, err)
	}
	return job, msg.Header.Get(jetstream.MsgIDHeader)
}

// The queue's Queue is the production Enqueuer.
var _ webhook.Enqueuer = (*queue.Queue)(nil)
