package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
)

// TestChaosShort runs about a minute of webhooks through separate serve and
// worker processes while workers are SIGKILLed, NATS and Redis restart (with
// CometChat's retries of events from before the loss still coming) and
// Virgil answers 5xx, 429 and slowly; some webhooks never come, and the
// scheduled reconcile must bring them in from the fake CometChat REST API.
// Nothing acknowledged may be lost and every group must end with exactly its
// final members. It also checks that
// webhook authentication cannot be bypassed and that no secret reaches any
// process's output.
func TestChaosShort(t *testing.T) {
	ctx := context.Background()
	c := startTestCluster(t, ClusterConfig{Workers: 2, Partitions: 4, LogLevel: "debug", NATSSyncAlways: true,
		CometChat: true, ReconcileInterval: 10 * time.Second})

	checkWebhookAuth(t, c)
	// An issued token is a secret too: fetch one as an E3Kit app would.
	req, _ := http.NewRequest(http.MethodGet, c.HTTPURL+"/v1/virgil-jwt", nil)
	req.Header.Set("X-CometChat-UID", "chaos-user-000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		VirgilToken string `json:"virgilToken"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.VirgilToken == "" {
		t.Fatalf("GET /v1/virgil-jwt: status %d, %v", resp.StatusCode, err)
	}
	c.AddSecret("issued JWT", tok.VirgilToken)

	rep, err := RunChaos(ctx, c, ChaosConfig{Duration: 32 * time.Second, Groups: 6, Users: 12, Rate: 8,
		Period: 3500 * time.Millisecond, Seed: uint64(time.Now().UnixNano()), Logf: t.Logf, Drain: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	t.Logf("webhook answers: %v", rep.Statuses)
	for _, f := range rep.Faults {
		t.Logf("fault injected: %s", f)
	}
	if rep.Accepted == 0 || rep.Reordered == 0 || rep.Duplicates == 0 || rep.RepeatedAdds == 0 || rep.Forged == 0 || rep.LostWebhooks == 0 {
		t.Errorf("the generator did not exercise the system: %s", rep.Summary())
	}
	if len(rep.Faults) < FaultKinds {
		t.Errorf("only %d faults were injected, want every one of the %d kinds: %v", len(rep.Faults), FaultKinds, rep.Faults)
	}
	checkVerdict(t, rep)

	// The checks can fail: an event accepted while no worker runs is
	// reported lost until a worker applies it.
	c.StopWorkers()
	if err := c.RegisterUsers(ctx, []string{"chaos-canary"}); err != nil {
		t.Fatal(err)
	}
	c.CometChat.SetGroup("chaos-canary-group", "chaos-canary")
	canary := newEvent("group_created", "chaos-canary-group", []string{"chaos-canary"}, 1718000000, 1718000000, 1718000000)
	canary.Accepted, canary.AcceptedAt = c.Poster(30 * time.Second).Post(canary.Body)
	if !canary.Accepted {
		t.Fatal("canary event not accepted")
	}
	if got, err := c.Check(ctx, []*Event{canary}); err != nil || got.Lost != 1 || got.Diverged != 1 {
		t.Errorf("with no worker running, the check reported %s (%v); want 1 lost and 1 diverged", got.Summary(), err)
	}
	if _, err := c.StartWorker(); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyErr(t, time.Minute, "canary applied", func() error {
		got, err := c.Check(ctx, []*Event{canary})
		if err == nil && (got.Lost != 0 || got.Diverged != 0) {
			err = fmt.Errorf("%s", got.Summary())
		}
		return err
	})

	// The auth probes must not have queued anything.
	if _, found, err := c.Group(http.DefaultClient, probeGroup); err != nil || found {
		t.Errorf("a webhook that failed authentication changed Virgil (found %v, %v)", found, err)
	}

	stopAndScanLogs(t, c)
}

// checkVerdict fails t for every way rep says the run went wrong: a fault
// that could not be injected, an event never answered 200, an accepted
// event lost, a group whose members diverged, a dead-lettered job (every
// fault of the runs is transient).
func checkVerdict(t *testing.T, rep Report) {
	t.Helper()
	for _, f := range rep.Faults {
		if strings.Contains(f, "failed:") {
			t.Errorf("fault injection failed: %s", f)
		}
	}
	if rep.Unaccepted > 0 {
		t.Errorf("%d events were never answered 200 despite retries", rep.Unaccepted)
	}
	if rep.Lost != 0 || rep.Unrepaired != 0 {
		t.Errorf("%d accepted events lost, %d dropped webhooks not reconciled:\n%s", rep.Lost, rep.Unrepaired, strings.Join(rep.Lapses, "\n"))
	}
	if rep.Diverged != 0 {
		t.Errorf("%d groups diverged:\n%s", rep.Diverged, strings.Join(rep.Divergence, "\n"))
	}
	if rep.DeadLettered != 0 || len(rep.Failed) != 0 {
		t.Errorf("jobs were dead-lettered during transient faults: %+v", rep.Failed)
	}
}

// keepEnv names a folder under which the tests' cluster folders (stores and
// process logs) are made and kept; without it they are removed at the test's
// end unless the test failed.
const keepEnv = "GROUPSYNC_CHAOS_KEEP"

// startTestCluster builds the binary and starts a cluster of cfg in a test
// folder (cfg's Binary, Dir and Logf are filled in); the test's end stops it.
func startTestCluster(t *testing.T, cfg ClusterConfig) *Cluster {
	t.Helper()
	cfg.Dir = testDir(t)
	bin, err := BuildBinary(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Binary, cfg.Logf = bin, t.Logf
	c, err := StartCluster(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// testDir makes the cluster folder of t: under $GROUPSYNC_CHAOS_KEEP, kept,
// or else in the system's temporary folder, removed at the end unless t
// failed, so that the process logs of a failed run can be read.
func testDir(t *testing.T) string {
	t.Helper()
	keep := os.Getenv(keepEnv)
	if keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatalf("%s: %v", keepEnv, err)
		}
	}
	dir, err := os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if keep != "" || t.Failed() {
			t.Logf("cluster folder and process logs kept in %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the cluster folder: %v", err)
		}
	})
	return dir
}

// stopAndScanLogs stops every process of c and fails t for each secret
// found in their output.
func stopAndScanLogs(t *testing.T, c *Cluster) {
	t.Helper()
	c.Stop()
	leaks, err := c.ScanLogs()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaks {
		t.Errorf("secret in a process log: %s", l)
	}
}

const probeGroup = "chaos-auth-probe"

// checkWebhookAuth posts a valid body with missing, wrong and partial
// credentials; every one must be answered 401.
func checkWebhookAuth(t *testing.T, c *Cluster) {
	t.Helper()
	p := c.Poster(0)
	pw := p.Password
	body := newEvent("group_created", probeGroup, []string{"chaos-user-000"}, 1718000000, 1718000000, 1718000000).Body
	cases := []struct {
		name, user, pass string
		auth             bool
	}{
		{"no Authorization header", "", "", false},
		{"empty user and password", "", "", true},
		{"right user, empty password", webhookUser, "", true},
		{"right user, password prefix", webhookUser, pw[:len(pw)/2], true},
		{"right user, password plus a byte", webhookUser, pw + "x", true},
		{"right user, wrong password", webhookUser, "not-the-password", true},
		{"empty user, right password", "", pw, true},
		{"wrong user, right password", webhookUser + "x", pw, true},
		{"user prefix, right password", webhookUser[:3], pw, true},
		{"password as user name", pw, webhookUser, true},
	}
	for _, tc := range cases {
		code, err := p.once(body, tc.user, tc.pass, tc.auth)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code != http.StatusUnauthorized {
			t.Errorf("webhook with %s answered %d, want 401", tc.name, code)
		}
	}
	for _, header := range []string{"Basic", "Basic !!!not-base64", "Bearer " + pw, "basic"} {
		req, _ := http.NewRequest(http.MethodPost, p.URL, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("webhook with Authorization %q answered %d, want 401", strings.Replace(header, pw, "<password>", 1), resp.StatusCode)
		}
	}
}
