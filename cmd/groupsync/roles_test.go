package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/webhook"
)

// mustOpen opens m and closes it when the test ends.
func mustOpen(tb testing.TB, m *Main) *Main {
	tb.Helper()
	tb.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Open(ctx); err != nil {
		tb.Fatalf("Main.Open: %v", err)
	}
	return m
}

// testOwner is the owner identity of the in-process role tests, and
// testIdentitySecret their identity secret.
const (
	testOwner          = groupsync.DefaultOwnerIdentity
	testIdentitySecret = "identity secret of the test"
)

// roleSetup is what the tests that run roles as Mains in the test process
// share: an embedded NATS, the emulator role on a free port, a Virgil
// application, identities, an owner key, and the Config every role starts
// from (built by hand, without flags).
type roleSetup struct {
	t        *testing.T
	nats     *natstest.Server
	jwt      *virgil.JWTGenerator
	emu      *Main
	ids      *groupsync.Identities
	ownerKey *virgil.PrivateKey
	base     Config
}

// newRoleSetup starts NATS and the emulator role; jobKey signs the jobs of
// the roles started from it (32 bytes or more).
func newRoleSetup(t *testing.T, jobKey string) *roleSetup {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t))
	r := &roleSetup{t: t, nats: natstest.Run(t), jwt: testJWT(t), ids: mustIdentities(t, testIdentitySecret, testOwner)}
	r.emu = mustOpen(t, &Main{Config: Config{Logger: log,
		Emulator: &EmulatorConfig{Addr: "127.0.0.1:0", Emulator: emulatorConfig(r.jwt, "", nil, true, log)}}})
	var err error
	if r.ownerKey, err = virgil.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	r.base = Config{
		Logger:          log,
		ShutdownTimeout: 10 * time.Second,
		NATS:            NATSConfig{URL: r.nats.URL(), Name: "test"},
		Queue:           queue.Config{Partitions: 2, JobKey: queue.JobKey(jobKey), AppID: exampleAppID},
		Virgil:          VirgilConfig{APIURL: r.emu.VirgilURL, JWT: r.jwt},
	}
	return r
}

// worker opens a worker role; edit, when not nil, changes its config first.
func (r *roleSetup) worker(edit func(*WorkerConfig)) *Main {
	r.t.Helper()
	c := r.base
	c.Worker = &WorkerConfig{OwnerIdentity: testOwner, OwnerKey: r.ownerKey, ServiceKey: r.emu.Emulator.ServiceKey(), Identities: r.ids}
	if edit != nil {
		edit(c.Worker)
	}
	return mustOpen(r.t, &Main{Config: c})
}

// serve opens a serve role whose webhook takes username and password; edit,
// when given, changes its config first.
func (r *roleSetup) serve(username, password string, edit ...func(*Config)) *Main {
	r.t.Helper()
	c := r.base
	c.Serve = serveConfig(r.ids, r.jwt, username, password)
	for _, e := range edit {
		e(&c)
	}
	return mustOpen(r.t, &Main{Config: c})
}

// group returns what the emulator shows of guid's Virgil group, and the
// status it answered with.
func (r *roleSetup) group(guid string) (groupView, int, error) {
	var v groupView
	code, err := getJSON(r.emu.VirgilURL+"/_emulator/groups/"+r.ids.Group(guid)+"?owner="+testOwner, &v)
	return v, code, err
}

// testJWT makes a Virgil application for a test, with ids the command's
// settings accept too.
func testJWT(t *testing.T) *virgil.JWTGenerator {
	t.Helper()
	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &virgil.JWTGenerator{AppID: "a1b2c3d4e5f60718293a4b5c6d7e8f90", AppKeyID: "0123456789abcdef0123456789abcdef", AppKey: appKey}
}

// serveConfig is a serve role on a free port that trusts the uid header.
func serveConfig(ids *groupsync.Identities, jwt *virgil.JWTGenerator, username, password string) *webhook.Config {
	return &webhook.Config{Addr: "127.0.0.1:0", Username: username, Password: password, AppID: exampleAppID,
		Identities: ids, ClientAuth: webhook.ClientAuthTrustHeader, Tokens: webhook.VirgilTokens{Generator: jwt}}
}

// waitReady waits until the HTTP server at httpURL answers /readyz with 200
// and, when body is not nil, decodes the answer into it and accepts it only
// when ok (if not nil) says so.
func waitReady(t *testing.T, httpURL string, body any, ok func() error) {
	t.Helper()
	testkit.EventuallyErr(t, 30*time.Second, "/readyz", func() error {
		code, err := getJSON(httpURL+"/readyz", body)
		switch {
		case err != nil:
			return err
		case code != http.StatusOK:
			return fmt.Errorf("status %d", code)
		case ok != nil:
			return ok()
		}
		return nil
	})
}

// TestServeAndWorkerInProcess runs the emulator, serve and worker roles as
// three Mains in the test process, on free ports, against an embedded NATS.
func TestServeAndWorkerInProcess(t *testing.T) {
	r := newRoleSetup(t, "the job key of the roles test, 32+ bytes")
	r.worker(nil)
	serve := r.serve("cometchat", "webhook password", func(c *Config) {
		c.Console = &ConsoleConfig{Console: console.Config{Addr: "127.0.0.1:0", Username: "ops", Password: "the console's password"}}
	})
	httpURL := "http://" + serve.HTTPAddr

	waitReady(t, httpURL, nil, nil)
	body, err := os.ReadFile("../../testdata/cometchat/group_created.json")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, httpURL+webhook.PathWebhook, bytes.NewReader(body))
	req.SetBasicAuth("cometchat", "webhook password")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook answered %d", resp.StatusCode)
	}
	testkit.EventuallyErr(t, 30*time.Second, "the worker creates the group", func() error {
		v, code, err := r.group("project-falcon")
		if err == nil && (code != http.StatusOK || !slices.Contains(v.Participants, testOwner)) {
			err = fmt.Errorf("status %d, view %+v", code, v)
		}
		return err
	})

	checkHistory(t, r.nats.URL(), "project-falcon")
	checkServeConsole(t, serve, "project-falcon")

	if err := serve.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get("http://" + serve.ConsoleAddr + "/"); err == nil {
		t.Error("the console still answers after Close")
	}
	if _, err := http.Get(httpURL + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after Close")
	}
}

// TestReadyzFailsWhenVirgilIsDown checks that readiness asks Virgil through
// the virgil client: a serve role pointed at a closed port is not ready.
func TestReadyzFailsWhenVirgilIsDown(t *testing.T) {
	jwt := testJWT(t)
	serve := mustOpen(t, &Main{Config: Config{
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
		NATS:   NATSConfig{URL: natstest.Run(t).URL()},
		Virgil: VirgilConfig{APIURL: "http://127.0.0.1:1", JWT: jwt},
		Serve:  serveConfig(mustIdentities(t, "identity secret of the test", ""), jwt, "u", "p"),
	}})
	resp, err := http.Get("http://" + serve.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !strings.Contains(buf.String(), "virgil") {
		t.Fatalf("/readyz with Virgil down = %d %s, want an error naming virgil", resp.StatusCode, buf.String())
	}
}

// TestCloseRunsClosersInReverse checks Main.Close's order, its joined
// errors, and that a second Close returns the first one's result.
func TestCloseRunsClosersInReverse(t *testing.T) {
	var order []string
	m := &Main{Config: Config{Logger: zerolog.Nop(), ShutdownTimeout: time.Second}}
	errB := errors.New("b failed")
	for _, name := range []string{"a", "b", "c"} {
		m.onClose(name, func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("closer %s got no grace deadline", name)
			}
			order = append(order, name)
			if name == "b" {
				return errB
			}
			return nil
		})
	}
	err := m.Close()
	if want := []string{"c", "b", "a"}; !slices.Equal(order, want) {
		t.Errorf("Close ran %v, want %v", order, want)
	}
	if !errors.Is(err, errB) {
		t.Errorf("Close() = %v, want it to wrap %v", err, errB)
	}
	if again := m.Close(); again != err || len(order) != 3 {
		t.Errorf("second Close() = %v and ran closers again (%v)", again, order)
	}
}

// TestBoolFlagsWorkBare checks that boolean settings take a bare flag, as
// Go's flag package does, and still take an explicit value.
func TestBoolFlagsWorkBare(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want bool
	}{
		{nil, "", false},
		{[]string{"--pprof"}, "", true},
		{[]string{"-pprof"}, "", true},
		{[]string{"--pprof=false"}, "true", false},
		{[]string{"--pprof=true"}, "", true},
		{nil, "true", true},
	} {
		s := newSettings("worker", getenvOf([]string{"GROUPSYNC_PPROF=" + tc.env}), "pprof", "metrics-addr")
		if err := s.parse(append(tc.args, "--metrics-addr", "127.0.0.1:0"), &bytes.Buffer{}); err != nil {
			t.Fatalf("parse %v: %v", tc.args, err)
		}
		got, err := s.bool("pprof")
		if err != nil || got != tc.want {
			t.Errorf("pprof with %v and GROUPSYNC_PPROF=%q = %v, %v; want %v", tc.args, tc.env, got, err, tc.want)
		}
		if addr := s.mustStr("metrics-addr"); addr != "127.0.0.1:0" {
			t.Errorf("metrics-addr after %v = %q", tc.args, addr)
		}
	}
}

// checkHistory runs `groupsync history` on guid, a group just created, as
// JSON and as a table.
func checkHistory(t *testing.T, natsURL, guid string) {
	t.Helper()
	getenv := func(k string) string {
		if k == "GROUPSYNC_NATS_URL" {
			return natsURL
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	var recs []queue.AuditRecord
	// The worker appends to the audit trail after the job's changes are
	// visible in Virgil, so the record may lag the group by a moment.
	testkit.EventuallyErr(t, 30*time.Second, "the audit trail records the create", func() error {
		out.Reset()
		errb.Reset()
		if code := run(ctx, []string{"history", strings.ToUpper(guid), "--json"}, getenv, &out, &errb); code != 0 {
			return fmt.Errorf("history --json: exit %d: %s", code, errb.String())
		}
		recs = nil
		if err := json.Unmarshal(out.Bytes(), &recs); err != nil {
			return fmt.Errorf("history --json: %v\n%s", err, out.String())
		}
		if len(recs) == 0 || recs[0].Action != "create" || recs[0].GUID != guid || recs[0].JobID == "" || recs[0].Trigger != "group_created" {
			return fmt.Errorf("history of %s = %+v, want its create first", guid, recs)
		}
		return nil
	})
	out.Reset()
	if code := run(ctx, []string{"history", guid}, getenv, &out, &errb); code != 0 {
		t.Fatalf("history: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "APPLIED AT") || !strings.Contains(out.String(), recs[0].JobID) {
		t.Fatalf("history table lacks the create job:\n%s", out.String())
	}
	out.Reset()
	if code := run(ctx, []string{"history", "no-such-group"}, getenv, &out, &errb); code != 0 || !strings.Contains(out.String(), "no changes recorded") {
		t.Fatalf("history of an unknown group: exit %d, %q", code, out.String())
	}
	if code := run(ctx, []string{"history"}, getenv, &out, &errb); code != 2 {
		t.Fatalf("history without a group: exit %d, want 2", code)
	}
}

// checkServeConsole checks serve's console: it shows guid's state from the
// store and says Virgil is not configured (serve holds no owner key); its
// requests are counted on serve's /metrics.
func checkServeConsole(t *testing.T, serve *Main, guid string) {
	t.Helper()
	base := "http://" + serve.ConsoleAddr
	get := func(path string, auth bool, v any) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept", "application/json")
		if auth {
			req.SetBasicAuth("ops", "the console's password")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("console GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		if v != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatalf("console GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	if code := get("/", false, nil); code != http.StatusUnauthorized {
		t.Errorf("console without credentials = %d, want 401", code)
	}
	var g inspect.GroupReport
	if code := get("/groups/"+guid, true, &g); code != http.StatusOK {
		t.Fatalf("console GET /groups/%s = %d", guid, code)
	}
	if !g.Store.Read || len(g.Store.Participants)+len(g.Store.Pending) == 0 || g.Virgil.Read || g.Virgil.Note != inspect.NotConfigured || len(g.History) == 0 {
		t.Errorf("serve's console shows %+v; want the stored members, the history, and Virgil not configured", g)
	}
	var ov inspect.Overview
	if code := get("/", true, &ov); code != http.StatusOK || len(ov.Partitions) != 2 {
		t.Errorf("console overview = %d %+v, want 2 partitions", code, ov)
	}
	resp, err := http.Get("http://" + serve.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if !strings.Contains(b.String(), `groupsync_console_requests_total{page="group",status="200"} 1`) || !strings.Contains(b.String(), "groupsync_console_failed_logins_total 0") {
		t.Errorf("serve's /metrics lacks the console's requests")
	}
}
