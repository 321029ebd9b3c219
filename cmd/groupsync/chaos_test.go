package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/worker/redistest"
)

var (
	chaosEvents = flag.Int("chaos.events", 120, "membership events the chaos run posts")
	chaosGroups = flag.Int("chaos.groups", 5, "groups the chaos run changes")
)

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// chaos is a groupsync deployment of separate processes: NATS (in the test
// process, restartable), redis-server, the emulator, serve and workers.
type chaos struct {
	t         testing.TB
	nats      *natstest.Server
	redis     *redistest.Server
	env       []string
	httpURL   string
	virgilURL string
	workers   []*process
	procs     []*process
	ids       *groupsync.Identities
	secrets   []string
	appKey    *virgil.PrivateKey
	appID     string
	appKeyID  string
}

const chaosPassword = "chaospassword0123456789"

func startChaos(t testing.TB, workers int) *chaos {
	dir := t.TempDir()
	c := &chaos{t: t, nats: natstest.Run(t), redis: redistest.Start(t)}
	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ownerKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ownerFile := filepath.Join(dir, "owner.key")
	if err := os.WriteFile(ownerFile, []byte(ownerKey.MarshalPKCS8Base64()), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := randomHex(32)
	c.ids, _ = groupsync.NewIdentities([]byte(secret), "")
	c.appKey, c.appID, c.appKeyID = appKey, randomHex(16), randomHex(16)
	emuAddr, httpAddr := freeAddr(t), freeAddr(t)
	c.virgilURL, c.httpURL = "http://"+emuAddr, "http://"+httpAddr
	c.secrets = []string{appKey.MarshalPKCS8Base64(), ownerKey.MarshalPKCS8Base64(), secret, chaosPassword}
	c.env = []string{
		"GROUPSYNC_NATS_URL=" + c.nats.URL(), "GROUPSYNC_REDIS_URL=" + c.redis.URL(), "GROUPSYNC_PARTITIONS=4",
		"GROUPSYNC_VIRGIL_API_URL=" + c.virgilURL, "GROUPSYNC_VIRGIL_APP_ID=" + c.appID,
		"GROUPSYNC_VIRGIL_APP_KEY_ID=" + c.appKeyID, "GROUPSYNC_VIRGIL_APP_KEY=" + appKey.MarshalPKCS8Base64(),
		"GROUPSYNC_OWNER_KEY_FILE=" + ownerFile, "GROUPSYNC_IDENTITY_SECRET=" + secret,
		"GROUPSYNC_WEBHOOK_USERNAME=cometchat", "GROUPSYNC_WEBHOOK_PASSWORD=" + chaosPassword,
		"GROUPSYNC_COMETCHAT_APP_ID=" + exampleAppID, "GROUPSYNC_CLIENT_AUTH=trust-header",
		"GROUPSYNC_LOG_LEVEL=debug", "GROUPSYNC_SHUTDOWN_TIMEOUT=5s",
	}
	c.procs = append(c.procs, startBinary(t, append(c.env, "GROUPSYNC_HTTP_ADDR="+emuAddr, "GROUPSYNC_DATA_DIR="+filepath.Join(dir, "emu")), "emulator"))
	emu := c.procs[0]
	eventually(t, 30*time.Second, "emulator up", func() error {
		if _, err := getJSON(c.virgilURL+"/healthz", nil); err != nil {
			return fmt.Errorf("%v\nemulator output:\n%s", err, emu.stderr.String())
		}
		return nil
	})
	c.procs = append(c.procs, startBinary(t, append(c.env, "GROUPSYNC_HTTP_ADDR="+httpAddr), "serve"))
	for range workers {
		c.startWorker()
	}
	eventually(t, 60*time.Second, "serve ready", func() error {
		code, err := getJSON(c.httpURL+"/readyz", nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	return c
}

func (c *chaos) startWorker() {
	p := startBinary(c.t, c.env, "worker")
	c.workers = append(c.workers, p)
	c.procs = append(c.procs, p)
}

// registerUser publishes a Virgil card for uid, as the user's E3Kit client
// would on its first login.
func (c *chaos) registerUser(ctx context.Context, uid string) {
	identity := c.ids.User(uid)
	gen := &virgil.JWTGenerator{AppID: c.appID, AppKeyID: c.appKeyID, AppKey: c.appKey}
	client := virgil.NewClient(c.virgilURL, gen.Source(identity))
	key, err := virgil.GenerateKey()
	if err != nil {
		c.t.Fatal(err)
	}
	raw, err := virgil.NewRawCard(key, identity, "", time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := client.PublishCard(ctx, raw); err != nil {
		c.t.Fatalf("publish card of %s: %v", uid, err)
	}
}

// post delivers a webhook like CometChat with retries on: again after a
// non-2xx answer, a few times. It reports whether it was answered 200.
func (c *chaos) post(body []byte, auth bool) (int, bool) {
	status := 0
	for attempt := 0; attempt < 20; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, c.httpURL+"/webhooks/cometchat", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth {
			req.SetBasicAuth("cometchat", chaosPassword)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
			if status == http.StatusOK || !auth {
				return status, status == http.StatusOK
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return status, false
}

func memberEvent(trigger, guid string, uids []string, createdAt, updatedAt int64) []byte {
	members := map[string]any{}
	for _, u := range uids {
		members[u] = map[string]any{"uid": u, "name": u}
	}
	group := map[string]any{"guid": guid, "name": guid, "type": "private", "owner": "owner-" + guid, "createdAt": createdAt}
	data := map[string]any{"group": group, "members": members}
	if trigger != "group_created" {
		group["updatedAt"] = updatedAt
		data["by"] = map[string]any{"uid": "owner-" + guid}
	}
	b, _ := json.Marshal(map[string]any{"trigger": trigger, "appId": exampleAppID, "region": "eu", "webhook": "groupsync", "data": data})
	return b
}

// TestChaosShort runs membership events through separate serve and worker
// processes while it kills a worker, restarts NATS and Redis and makes
// Virgil fail, then checks that nothing acknowledged was lost and that every
// group converged to its final membership.
func TestChaosShort(t *testing.T) {
	c := startChaos(t, 2)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))

	users := make([]string, 12)
	for i := range users {
		users[i] = fmt.Sprintf("user-%02d", i)
		c.registerUser(ctx, users[i])
	}

	// Authentication cannot be bypassed.
	probe := memberEvent("group_created", "auth-probe-group", []string{"user-00"}, 1718000000, 0)
	if code, _ := c.post(probe, false); code != http.StatusUnauthorized {
		t.Errorf("webhook without credentials answered %d, want 401", code)
	}
	for _, bad := range []string{"cometchat:", "cometchat:" + chaosPassword[:10], "cometchat:" + chaosPassword + "x", ":" + chaosPassword} {
		req, _ := http.NewRequest(http.MethodPost, c.httpURL+"/webhooks/cometchat", bytes.NewReader(probe))
		req.Header.Set("Content-Type", "application/json")
		user, pass, _ := strings.Cut(bad, ":")
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("webhook with partial or wrong credentials answered %d, want 401", resp.StatusCode)
		}
	}

	const createdAt = 1718000000
	groups := make([]string, *chaosGroups)
	final := map[string]map[string]bool{}
	accepted, sent := 0, 0
	for i := range groups {
		groups[i] = fmt.Sprintf("chaos-group-%02d", i)
		initial := []string{users[i%len(users)], users[(i+1)%len(users)]}
		final[groups[i]] = map[string]bool{initial[0]: true, initial[1]: true}
		sent++
		if _, ok := c.post(memberEvent("group_created", groups[i], initial, createdAt, 0), true); ok {
			accepted++
		}
	}
	var history [][]byte
	for n := 0; n < *chaosEvents; n++ {
		switch n {
		case *chaosEvents / 5:
			t.Log("killing a worker with SIGKILL and starting another")
			_ = c.workers[0].cmd.Process.Signal(syscall.SIGKILL)
			c.startWorker()
		case 2 * *chaosEvents / 5:
			t.Log("Virgil answers 503 to every third request for 3 s")
			c.fault(`{"status":503,"every":3,"for":"3s"}`)
		case 3 * *chaosEvents / 5:
			t.Log("restarting NATS")
			c.nats.Restart()
		case 4 * *chaosEvents / 5:
			t.Log("Virgil answers 429 with Retry-After and slowly for 3 s; Redis restarts empty")
			c.fault(`{"status":429,"retry_after":"1s","every":2,"delay":"50ms","for":"3s"}`)
			c.redis.Kill()
			c.redis.Restart()
		}
		g := groups[rng.IntN(len(groups))]
		u := users[rng.IntN(len(users))]
		trigger := "group_member_added"
		if final[g][u] {
			trigger = []string{"group_member_kicked", "group_member_left", "group_member_banned"}[rng.IntN(3)]
		} else if rng.IntN(2) == 0 {
			trigger = "group_member_joined"
		}
		body := memberEvent(trigger, g, []string{u}, createdAt, createdAt+int64(10*(n+1)))
		final[g][u] = strings.HasSuffix(trigger, "added") || strings.HasSuffix(trigger, "joined")
		sent++
		if _, ok := c.post(body, true); ok {
			accepted++
		}
		history = append(history, body)
		// CometChat's retries: an event already delivered comes again.
		if rng.IntN(8) == 0 && len(history) > 1 {
			sent++
			if _, ok := c.post(history[rng.IntN(len(history))], true); ok {
				accepted++
			}
		}
	}

	expected := func(g string) []string {
		want := []string{c.ids.Owner()}
		for u, in := range final[g] {
			if in {
				want = append(want, c.ids.User(u))
			}
		}
		sort.Strings(want)
		return want
	}
	diverged := map[string]string{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		clear(diverged)
		for _, g := range groups {
			var v groupView
			code, err := getJSON(c.virgilURL+"/_emulator/groups/"+c.ids.Group(g)+"?owner="+c.ids.Owner(), &v)
			got := slices.Clone(v.Participants)
			sort.Strings(got)
			if err != nil || code != http.StatusOK || !slices.Equal(got, expected(g)) {
				diverged[g] = fmt.Sprintf("status %d err %v: got %v, want %v", code, err, got, expected(g))
			}
		}
		if len(diverged) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	code, stdout, stderr := runBinary(t, c.env, "jobs", "failed", "--json")
	var failed []json.RawMessage
	if code != 0 || json.Unmarshal([]byte(stdout), &failed) != nil {
		t.Fatalf("jobs failed: exit %d %s %s", code, stdout, stderr)
	}
	lost := 0
	if len(failed) == 0 {
		lost = len(diverged)
	}
	fmt.Printf("chaos: events sent %d, accepted %d, applied %d, dead-lettered %d, lost %d, groups diverged %d\n",
		sent, accepted, accepted-len(failed), len(failed), lost, len(diverged))
	if accepted != sent {
		t.Errorf("%d of %d webhooks were never answered 200 despite retries", sent-accepted, sent)
	}
	for g, why := range diverged {
		t.Errorf("group %s diverged: %s", g, why)
	}
	if len(failed) != 0 {
		t.Errorf("%d jobs dead-lettered during transient faults: %s", len(failed), stdout)
	}

	for _, p := range c.procs {
		if p.running() {
			_ = p.cmd.Process.Signal(syscall.SIGINT)
		}
	}
	for _, p := range c.procs {
		if p.running() {
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
		logs := p.stdout.String() + p.stderr.String()
		for _, s := range c.secrets {
			if strings.Contains(logs, s) {
				t.Errorf("a secret appears in the output of groupsync %v", p.cmd.Args[1:])
			}
		}
		if strings.Contains(logs, "eyJ") {
			t.Errorf("something shaped like a JWT appears in the output of groupsync %v", p.cmd.Args[1:])
		}
	}
}

func (c *chaos) fault(body string) {
	resp, err := http.Post(c.virgilURL+"/_emulator/fault", "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatalf("set emulator fault: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.t.Fatalf("set emulator fault: status %d", resp.StatusCode)
	}
}
