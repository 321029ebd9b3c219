package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
)

// devInstance is a running `groupsync dev` and what its dev.json says.
type devInstance struct {
	proc *process
	info devInfo
	dir  string
}

// startDev runs `groupsync dev` on dir with free ports: the binary when
// binary is true, else in the test process.
func startDev(t *testing.T, dir string, binary bool, env ...string) *devInstance {
	t.Helper()
	os.Remove(filepath.Join(dir, "dev.json"))
	args := []string{"dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
		"--emulator-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0", "--nats-port", "-1", "--partitions", "4"}
	start := startInProcess
	if binary {
		start = startBinary
	}
	return awaitDev(t, start(t, env, args...), dir)
}

// awaitDev waits until the dev process p has written dir/dev.json, failing
// the test if p exits first.
func awaitDev(t *testing.T, p *process, dir string) *devInstance {
	t.Helper()
	d := &devInstance{proc: p, dir: dir}
	testkit.AwaitJSONFile(t, 60*time.Second, "dev.json written", filepath.Join(dir, "dev.json"), &d.info, p.exited, func() string {
		return fmt.Sprintf("dev exited: %v\nstderr:\n%s", p.err, p.stderr.String())
	})
	return d
}

func (d *devInstance) postWebhook(t *testing.T, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.info.HTTPURL+d.info.Webhook.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(d.info.Webhook.Username, d.info.Webhook.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post webhook: %v", err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// groupIdentity asks the client API for the Virgil identity of guid.
func (d *devInstance) groupIdentity(t *testing.T, guid string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.info.HTTPURL+"/v1/get-identities", strings.NewReader(`{"guids":["`+guid+`"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(d.info.ClientUIDHeader, "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("get-identities: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		GroupIdentities []map[string]string `json:"groupIdentities"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.GroupIdentities) != 1 {
		t.Fatalf("get-identities answer %v, %v", out, err)
	}
	return out.GroupIdentities[0][guid]
}

type groupView struct {
	Participants []string `json:"participants"`
	Epochs       []string `json:"epochs"`
}

func (d *devInstance) group(groupID string) (groupView, int, error) {
	var v groupView
	code, err := getJSON(d.info.VirgilAPIURL+"/_emulator/groups/"+groupID+"?owner="+d.info.OwnerIdentity, &v)
	return v, code, err
}

func TestDevEndToEndAndRestart(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, true)

	for name, u := range map[string]string{"http": d.info.HTTPURL, "virgil": d.info.VirgilAPIURL, "nats": d.info.NATSURL} {
		if !strings.Contains(u, "127.0.0.1:") {
			t.Errorf("dev.json %s url %q is not a bound loopback address", name, u)
		}
	}
	waitReady(t, d.info.HTTPURL, nil, nil)

	checkDevCORS(t, d)

	body, err := os.ReadFile("../../testdata/cometchat/group_created.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, out := d.postWebhook(t, body); code != http.StatusOK {
		t.Fatalf("example webhook answered %d %s", code, out)
	}
	groupID := d.groupIdentity(t, "project-falcon")
	testkit.EventuallyErr(t, 30*time.Second, "group appears in the emulator", func() error {
		v, code, err := d.group(groupID)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !slices.Contains(v.Participants, d.info.OwnerIdentity) {
			return fmt.Errorf("status %d, view %+v", code, v)
		}
		return nil
	})
	d.proc.stop(t)
	checkDevFileModes(t, dir)

	// A second start on the same folder keeps the group, the credentials and
	// the queue; it reads the files the first start wrote, whose modes it
	// checks (and would refuse if group or others could read them).
	d2 := startDev(t, dir, true)
	if d2.info.Webhook.Password != d.info.Webhook.Password || d2.info.Virgil.AppKey != d.info.Virgil.AppKey ||
		d2.info.Console.Password != d.info.Console.Password || d.info.Console.Password == "" {
		t.Error("restart made new credentials instead of reusing the data dir's")
	}
	if got := d2.groupIdentity(t, "project-falcon"); got != groupID {
		t.Errorf("group identity changed across restart: %s, then %s", groupID, got)
	}
	v, code, err := d2.group(groupID)
	if err != nil || code != http.StatusOK || !slices.Contains(v.Participants, d.info.OwnerIdentity) {
		t.Fatalf("after restart the emulator has group %s: status %d, view %+v, err %v", groupID, code, v, err)
	}
	// The same webhook again is a duplicate job or, past the window, a job
	// that changes nothing: no new epoch.
	if code, out := d2.postWebhook(t, body); code != http.StatusOK {
		t.Fatalf("repeated webhook answered %d %s", code, out)
	}
	testkit.WaitStreamEmpty(t, time.Minute, d2.info.NATSURL, queue.DefaultStream)
	if again, code, err := d2.group(groupID); err != nil || code != http.StatusOK || len(again.Epochs) != len(v.Epochs) {
		t.Errorf("after the repeated webhook the group has epochs %v (status %d, %v), want %v", again.Epochs, code, err, v.Epochs)
	}
	d2.proc.stop(t)
	for _, secret := range []string{d.info.Webhook.Password, d.info.Virgil.AppKey, readDevSecrets(t, dir).JobKey, d.info.Console.Password} {
		for _, out := range []string{d.proc.stderr.String(), d2.proc.stderr.String()} {
			if strings.Contains(out, secret) {
				t.Error("a secret from dev.json appears in the logs")
			}
		}
	}
}

// bigGroupBody is a group_created webhook with n members.
func bigGroupBody(guid string, n int, createdAt int64) []byte {
	members := map[string]any{}
	for i := range n {
		uid := fmt.Sprintf("member-%03d", i)
		members[uid] = map[string]any{"uid": uid, "name": uid}
	}
	b, _ := json.Marshal(map[string]any{
		"trigger": "group_created",
		"appId":   exampleAppID,
		"region":  "eu",
		"webhook": "groupsync",
		"data": map[string]any{
			"group":   map[string]any{"guid": guid, "name": guid, "type": "private", "owner": "member-000", "createdAt": createdAt, "membersCount": n},
			"members": members,
		},
	})
	return b
}

func kickBody(guid, uid string, createdAt, at int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"trigger": "group_member_kicked",
		"appId":   exampleAppID,
		"data": map[string]any{
			"group":   map[string]any{"guid": guid, "createdAt": createdAt, "updatedAt": at},
			"members": map[string]any{uid: map[string]any{"uid": uid}},
			"by":      map[string]any{"uid": "member-000"},
		},
	})
	return b
}

func TestFailedJobListedAndRetried(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, false)
	env := []string{"GROUPSYNC_NATS_URL=" + d.info.NATSURL, "GROUPSYNC_PARTITIONS=4"}

	// 101 members plus the owner cannot be an E3Kit group: the job fails for
	// good and waits for an operator.
	const guid = "too-big-group"
	if code, out := d.postWebhook(t, bigGroupBody(guid, 101, 1718000000)); code != http.StatusOK {
		t.Fatalf("webhook answered %d %s", code, out)
	}
	var failed []struct {
		ID       string `json:"id"`
		Trigger  string `json:"trigger"`
		GUID     string `json:"guid"`
		Error    string `json:"error"`
		Attempts int    `json:"attempts"`
	}
	testkit.EventuallyErr(t, 60*time.Second, "job listed by jobs failed --json", func() error {
		code, stdout, stderr := runInProcess(t, env, "jobs", "failed", "--json")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, stderr)
		}
		if err := json.Unmarshal([]byte(stdout), &failed); err != nil {
			return fmt.Errorf("decode %q: %v", stdout, err)
		}
		if len(failed) != 1 {
			return fmt.Errorf("%d failed jobs", len(failed))
		}
		return nil
	})
	if f := failed[0]; f.GUID != guid || f.Trigger != "group_created" || f.Error == "" || f.Attempts < 1 {
		t.Fatalf("failed job = %+v, want the group_created of %s with a reason", f, guid)
	}
	if !strings.Contains(strings.ToLower(failed[0].Error), "participant") {
		t.Errorf("reason %q does not say the group has too many participants", failed[0].Error)
	}
	code, stdout, _ := runInProcess(t, env, "jobs", "failed")
	if code != 0 || !strings.Contains(stdout, failed[0].ID) {
		t.Errorf("jobs failed table (exit %d) lacks the job id:\n%s", code, stdout)
	}

	// The cause goes away: two members are kicked in CometChat.
	for i, uid := range []string{"member-099", "member-100"} {
		if code, out := d.postWebhook(t, kickBody(guid, uid, 1718000000, 1718000100+int64(i))); code != http.StatusOK {
			t.Fatalf("kick answered %d %s", code, out)
		}
	}
	if code, stdout, stderr := runInProcess(t, env, "jobs", "retry", failed[0].ID); code != 0 || !strings.Contains(stdout, "retried 1") {
		t.Fatalf("jobs retry: exit %d\n%s%s", code, stdout, stderr)
	}
	ids, err := groupsync.NewIdentities([]byte(readSecret(t, dir)), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			_, out, _ := runInProcess(t, env, "jobs", "failed")
			t.Logf("jobs failed:\n%s\ndev log:\n%s", out, d.proc.stderr.String())
		}
	})
	testkit.EventuallyErr(t, 60*time.Second, "replayed job creates the group", func() error {
		v, code, err := d.group(ids.Group(guid))
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("status %d, %v", code, err)
		}
		if !slices.Contains(v.Participants, d.info.OwnerIdentity) {
			return fmt.Errorf("view %+v", v)
		}
		return nil
	})
	code, stdout, _ = runInProcess(t, env, "jobs", "failed", "--json")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("after the replay jobs failed --json = %q (exit %d), want []", stdout, code)
	}
	d.proc.stop(t)
}

// consoleDo sends a request to dev's web console with its credentials
// (none when anonymous), asking for JSON; it decodes a 200's body into v.
func (d *devInstance) consoleDo(t *testing.T, method, path string, form url.Values, anonymous bool, v any) (int, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, d.info.Console.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if !anonymous {
		req.SetBasicAuth(d.info.Console.Username, d.info.Console.Password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("console %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("console %s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// TestDevConsoleRetriesAFailedJob: dev serves the console on loopback with
// the credentials of dev.json; a job that failed for good is listed there,
// and once its cause is gone, retried from it.
func TestDevConsoleRetriesAFailedJob(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, false)
	if !strings.HasPrefix(d.info.Console.URL, "http://127.0.0.1:") || d.info.Console.Username == "" || len(d.info.Console.Password) < 12 {
		t.Fatalf("dev.json console = %+v, want a loopback URL and credentials", d.info.Console)
	}
	if !strings.Contains(d.proc.stdout.String(), d.info.Console.URL) {
		t.Errorf("the banner does not show the console's URL %s", d.info.Console.URL)
	}
	if code, _ := d.consoleDo(t, "GET", "/", nil, true, nil); code != http.StatusUnauthorized {
		t.Errorf("console without credentials = %d, want 401", code)
	}
	const guid = "too-big-for-the-console"
	if code, out := d.postWebhook(t, bigGroupBody(guid, 101, 1718000000)); code != http.StatusOK {
		t.Fatalf("webhook answered %d %s", code, out)
	}
	var list struct {
		Jobs []struct {
			ID   string `json:"id"`
			GUID string `json:"guid"`
		} `json:"jobs"`
	}
	var csrf string
	testkit.EventuallyErr(t, 60*time.Second, "failed job listed by the console", func() error {
		code, h := d.consoleDo(t, "GET", "/failed?group="+guid, nil, false, &list)
		if code != http.StatusOK || len(list.Jobs) != 1 {
			return fmt.Errorf("status %d, %d jobs", code, len(list.Jobs))
		}
		csrf = h.Get("X-CSRF-Token")
		return nil
	})
	for i, uid := range []string{"member-099", "member-100"} {
		if code, out := d.postWebhook(t, kickBody(guid, uid, 1718000000, 1718000100+int64(i))); code != http.StatusOK {
			t.Fatalf("kick answered %d %s", code, out)
		}
	}
	if code, _ := d.consoleDo(t, "POST", "/failed/retry", url.Values{"id": {list.Jobs[0].ID}}, false, nil); code != http.StatusForbidden {
		t.Errorf("retry without the CSRF token = %d, want 403", code)
	}
	var res struct {
		Retried int `json:"retried"`
	}
	if code, _ := d.consoleDo(t, "POST", "/failed/retry", url.Values{"id": {list.Jobs[0].ID}, "csrf": {csrf}}, false, &res); code != http.StatusOK || res.Retried != 1 {
		t.Fatalf("retry from the console = %d %+v, want retried 1", code, res)
	}
	ids, err := groupsync.NewIdentities([]byte(readSecret(t, dir)), "")
	if err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyErr(t, 60*time.Second, "retried job creates the group", func() error {
		v, code, err := d.group(ids.Group(guid))
		if err != nil || code != http.StatusOK || !slices.Contains(v.Participants, d.info.OwnerIdentity) {
			return fmt.Errorf("status %d, %v, view %+v", code, err, v)
		}
		return nil
	})
	if code, _ := d.consoleDo(t, "GET", "/failed?group="+guid, nil, false, &list); code != http.StatusOK || len(list.Jobs) != 0 {
		t.Errorf("after the retry the console lists %d failed jobs of the group (status %d), want none", len(list.Jobs), code)
	}
	// Dev's console reads Virgil as the owner: the group converged.
	testkit.EventuallyErr(t, 30*time.Second, "the console shows the group converged", func() error {
		var g inspect.GroupReport
		if code, _ := d.consoleDo(t, "GET", "/groups/"+guid, nil, false, &g); code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		// Its members have no Virgil card: all 99 are pending.
		if !g.Virgil.Read || !g.Virgil.Exists || len(g.Store.Pending) != 99 || len(g.Virgil.Missing)+len(g.Virgil.Extra) != 0 || len(g.Failed) != 0 {
			return fmt.Errorf("virgil exists %v, %d pending, missing %v, extra %v, note %q; %d failed", g.Virgil.Exists, len(g.Store.Pending), g.Virgil.Missing, g.Virgil.Extra, g.Virgil.Note, len(g.Failed))
		}
		return nil
	})
	var m inspect.MemberReport
	if code, _ := d.consoleDo(t, "GET", "/groups/"+guid+"/members/member-100", nil, false, &m); code != http.StatusOK || !strings.HasPrefix(m.Sentence, "member-100 is not a participant: kicked by member-000") {
		t.Errorf("console explains member-100: %d %q", code, m.Sentence)
	}
	d.proc.stop(t)
	if strings.Contains(d.proc.stderr.String(), d.info.Console.Password) {
		t.Error("the console's password appears in dev's log")
	}
}

func readSecret(t *testing.T, dir string) string {
	t.Helper()
	return readDevSecrets(t, dir).IdentitySecret
}

func readDevSecrets(t *testing.T, dir string) devSecrets {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s devSecrets
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.JobKey) < 32 {
		t.Fatalf("dev's secrets.json has a job key of %d characters", len(s.JobKey))
	}
	return s
}

func TestReconcileCreatesGroupsThatExistedBefore(t *testing.T) {
	cc := cometchattest.Start(t)
	cc.SetGroup("legacy-group-one", "alice", "bob")
	cc.SetGroup("legacy-group-two", "carol")
	cc.RateLimit(1) // the first REST call is refused with 429 and retried
	dir := t.TempDir()
	d := startDev(t, dir, false, "GROUPSYNC_COMETCHAT_API_KEY="+cc.APIKey, "GROUPSYNC_COMETCHAT_API_URL="+cc.URL())
	sec := readDevSecrets(t, dir)
	env := []string{"GROUPSYNC_NATS_URL=" + d.info.NATSURL, "GROUPSYNC_PARTITIONS=4",
		"GROUPSYNC_COMETCHAT_API_KEY=" + cc.APIKey, "GROUPSYNC_COMETCHAT_API_URL=" + cc.URL(),
		"GROUPSYNC_JOB_KEY=" + sec.JobKey, "GROUPSYNC_COMETCHAT_APP_ID=" + sec.CometChatAppID}
	code, stdout, stderr := runInProcess(t, env, "reconcile", "--all")
	if code != 0 || !strings.Contains(stdout, "queued 2 reconcile job(s)") {
		t.Fatalf("reconcile --all: exit %d\n%s%s", code, stdout, stderr)
	}
	ids, err := groupsync.NewIdentities([]byte(readSecret(t, dir)), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, guid := range []string{"legacy-group-one", "legacy-group-two"} {
		testkit.EventuallyErr(t, 60*time.Second, "reconcile creates "+guid, func() error {
			v, code, err := d.group(ids.Group(guid))
			if err != nil || code != http.StatusOK || !slices.Contains(v.Participants, d.info.OwnerIdentity) {
				return fmt.Errorf("status %d, view %+v, err %v", code, v, err)
			}
			return nil
		})
	}
	// Running it again is safe: nothing fails and no group changes epoch.
	before, _, err := d.group(ids.Group("legacy-group-one"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runInProcess(t, env, "reconcile", "legacy-group-one"); code != 0 {
		t.Fatalf("second reconcile: exit %d: %s", code, stderr)
	}
	testkit.WaitStreamEmpty(t, time.Minute, d.info.NATSURL, queue.DefaultStream)
	if after, _, err := d.group(ids.Group("legacy-group-one")); err != nil || len(after.Epochs) != len(before.Epochs) {
		t.Errorf("the second reconcile changed the group's epochs from %v to %v (%v)", before.Epochs, after.Epochs, err)
	}
	code, stdout, _ = runInProcess(t, env, "jobs", "failed", "--json")
	if code != 0 || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("jobs failed after reconcile = %q", stdout)
	}
	d.proc.stop(t)
}

// checkDevCORS: a page on another loopback origin may call dev's client API
// with the uid header (and a bearer token, as apps send one).
func checkDevCORS(t *testing.T, d *devInstance) {
	t.Helper()
	const origin = "http://127.0.0.1:41999"
	pre, err := http.NewRequest(http.MethodOptions, d.info.HTTPURL+"/v1/virgil-jwt", nil)
	if err != nil {
		t.Fatal(err)
	}
	pre.Header.Set("Origin", origin)
	pre.Header.Set("Access-Control-Request-Method", "GET")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,x-cometchat-uid")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
		!strings.Contains(allowed, "authorization") || !strings.Contains(allowed, "x-cometchat-uid") {
		t.Fatalf("dev preflight from %s = %d, Allow-Origin %q, Allow-Headers %q", origin, resp.StatusCode,
			resp.Header.Get("Access-Control-Allow-Origin"), allowed)
	}
	req, err := http.NewRequest(http.MethodGet, d.info.HTTPURL+"/v1/virgil-jwt", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set(d.info.ClientUIDHeader, "alice")
	req.Header.Set("Authorization", "Bearer alice_token")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("dev GET virgil-jwt from %s = %d, Allow-Origin %q", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("dev answers https://evil.example with Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
}
