package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/webhook"
)

// TestWebhookQueuesEveryDelivery: every example is stored as a job whose id
// starts with the event's content key, and so is every further delivery of
// it (a CometChat retry, or the same event reformatted): each delivery is a
// job of its own, and the worker's planner tells repeats apart
// (docs/convergence.md).
func TestWebhookQueuesEveryDelivery(t *testing.T) {
	_, b := setup(t)
	wantBySubject := map[string]uint64{}
	var total uint64
	for _, name := range exampleNames(t) {
		body := readExample(t, name)
		want, err := groupsync.NewJob(body, time.Now())
		if err != nil {
			t.Fatalf("NewJob(%s): %v", name, err)
		}
		key := groupsync.ContentKey(want.ID)
		subject := b.q.Subject(queue.Partition(want.Event.GUID, testPartns))

		var indented bytes.Buffer
		if err := json.Indent(&indented, body, "  ", "\t\t"); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for i, again := range [][]byte{body, body, indented.Bytes()} {
			r := post(t, b.url, again)
			id, _ := r.body["job_id"].(string)
			if r.status != http.StatusOK || groupsync.ContentKey(id) != key || id == key || seen[id] || r.body["duplicate"] != false {
				t.Fatalf("POST %s (delivery %d) = %d %s, want 200, a new job_id starting %s, duplicate false", name, i+1, r.status, r.raw, key)
			}
			seen[id] = true
			total++
			wantBySubject[subject]++

			job, msgID := b.lastJob(t, subject)
			if job.ID != id || msgID != id {
				t.Errorf("%s: stored job %s with Nats-Msg-Id %s on %s, want %s", name, job.ID, msgID, subject, id)
			}
			if job.Event.GUID != want.Event.GUID || job.Event.Action != want.Event.Action || groupsync.IdempotencyKey(job.Event) != key {
				t.Errorf("%s: stored event %+v, want %+v", name, job.Event, want.Event)
			}
		}
		got, bySubject := b.streamState(t)
		if got != total || bySubject[subject] != wantBySubject[subject] {
			t.Fatalf("after %s: %d jobs stored (%d on %s), want %d (%d)", name, got, bySubject[subject], subject, total, wantBySubject[subject])
		}
	}
	_, bySubject := b.streamState(t)
	for subject, n := range bySubject {
		if wantBySubject[subject] != n {
			t.Errorf("%d jobs on %s, want %d", n, subject, wantBySubject[subject])
		}
	}
}

// TestWebhookClampsFutureTimes: a forged updatedAt far in the future and a
// createdAt past the allowed skew are clamped before the job is stored,
// counted and logged; times within the skew stay.
func TestWebhookClampsFutureTimes(t *testing.T) {
	_, b := setup(t, func(c *webhook.Config) { c.MaxClockSkew = 2 * time.Minute })
	var msg map[string]any
	if err := json.Unmarshal(readExample(t, "group_member_kicked.json"), &msg); err != nil {
		t.Fatal(err)
	}
	group := msg["data"].(map[string]any)["group"].(map[string]any)
	now := time.Now().Unix()
	tests := []struct {
		name               string
		created, updated   int64
		wantCreated, wantU int64
		clamped            bool
	}{
		{"ForgedUpdatedAt", 1_718_000_000, 9_000_000_000_000_000, 1_718_000_000, 0, true},
		{"FutureCreatedAt", now + 3600, now, 0, now, true},
		{"WithinTheSkew", 1_718_000_000, now + 60, 1_718_000_000, now + 60, false},
	}
	clampedCount := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group["createdAt"], group["updatedAt"] = tt.created, tt.updated
			body, _ := json.Marshal(msg)
			if r := post(t, b.url, body); r.status != http.StatusOK {
				t.Fatalf("POST = %d %s", r.status, r.raw)
			}
			job, _ := b.lastJob(t, b.q.Subject(queue.Partition("project-falcon", testPartns)))
			if job.Event.CreatedAt != tt.wantCreated || job.Event.UpdatedAt != tt.wantU || job.Event.Clamped != tt.clamped {
				t.Errorf("stored event createdAt %d updatedAt %d clamped %v, want %d %d %v",
					job.Event.CreatedAt, job.Event.UpdatedAt, job.Event.Clamped, tt.wantCreated, tt.wantU, tt.clamped)
			}
			if tt.clamped {
				clampedCount++
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, b.url+webhook.PathMetrics, nil)
	r := do(t, req)
	if want := fmt.Sprintf(`groupsync_webhook_clamped_events_total{trigger="group_member_kicked"} %d`, clampedCount); !strings.Contains(r.raw, want) {
		t.Errorf("metrics lack %q", want)
	}
	logs := b.logs.String()
	if n := strings.Count(logs, "event times beyond the allowed clock skew clamped"); n != clampedCount {
		t.Errorf("%d clamping warnings logged, want %d:\n%s", n, clampedCount, logs)
	}
	if !strings.Contains(logs, "data.group.updatedAt=9000000000000000") {
		t.Errorf("the log does not say which time was clamped:\n%s", logs)
	}
}

func TestWebhookRejects(t *testing.T) {
	_, b := setup(t, func(c *webhook.Config) {
		c.MaxBodyBytes = 4096
		c.WebhookID = "groupsync"
	})
	added := readExample(t, "group_member_added.json")
	mutate := func(fn func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(added, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	group := func(m map[string]any) map[string]any { return m["data"].(map[string]any)["group"].(map[string]any) }
	padded := mutate(func(m map[string]any) { m["padding"] = strings.Repeat("x", 5000) })

	tests := []struct {
		name    string
		body    []byte
		prepare func(*http.Request)
		status  int
		message string // part of the "error" field
	}{
		{"MissingAuth", added, func(r *http.Request) { r.Header.Del("Authorization") }, http.StatusUnauthorized, "unauthorized"},
		{"WrongPassword", added, func(r *http.Request) { r.SetBasicAuth(webhookUser, webhookPass+"x") }, http.StatusUnauthorized, "unauthorized"},
		{"WrongUser", added, func(r *http.Request) { r.SetBasicAuth("someone", webhookPass) }, http.StatusUnauthorized, "unauthorized"},
		{"BearerInsteadOfBasic", added, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+webhookPass) }, http.StatusUnauthorized, "unauthorized"},
		{"WrongAppID", mutate(func(m map[string]any) { m["appId"] = "another-app" }), nil, http.StatusForbidden, "appId"},
		{"WrongWebhookID", mutate(func(m map[string]any) { m["webhook"] = "other-hook" }), nil, http.StatusForbidden, "webhook"},
		{"NoWebhookID", mutate(func(m map[string]any) { delete(m, "webhook") }), nil, http.StatusForbidden, "webhook"},
		{"TextPlain", added, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, http.StatusUnsupportedMediaType, "application/json"},
		{"NoContentType", added, func(r *http.Request) { r.Header.Del("Content-Type") }, http.StatusUnsupportedMediaType, "application/json"},
		{"Oversize", padded, nil, http.StatusRequestEntityTooLarge, "larger than"},
		{"OversizeChunked", padded, func(r *http.Request) { r.ContentLength = -1; r.Body = io.NopCloser(bytes.NewReader(padded)) }, http.StatusRequestEntityTooLarge, "larger than"},
		{"MalformedJSON", added[:len(added)-3], nil, http.StatusBadRequest, "body"},
		{"MissingGUID", mutate(func(m map[string]any) { delete(group(m), "guid") }), nil, http.StatusBadRequest, "data.group.guid is required"},
		{"EmptyMembers", mutate(func(m map[string]any) { m["data"].(map[string]any)["members"] = map[string]any{} }), nil, http.StatusBadRequest, "data.members"},
		{"MissingAppID", mutate(func(m map[string]any) { delete(m, "appId") }), nil, http.StatusBadRequest, "appId is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := webhookRequest(t, b.url, tt.body)
			if tt.prepare != nil {
				tt.prepare(req)
			}
			r := do(t, req)
			if r.status != tt.status {
				t.Fatalf("POST = %d %s, want %d", r.status, r.raw, tt.status)
			}
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, tt.message) {
				t.Errorf("error = %q, want it to mention %q", msg, tt.message)
			}
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without Basic WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
			}
			if n, _ := b.streamState(t); n != 0 {
				t.Errorf("%d jobs stored after a rejected webhook, want 0", n)
			}
		})
	}

	// The same body with accepted variations is stored.
	for _, ct := range []string{"Application/JSON", "application/json; charset=utf-8", "APPLICATION/json;charset=UTF-8"} {
		req := webhookRequest(t, b.url, added)
		req.Header.Set("Content-Type", ct)
		if r := do(t, req); r.status != http.StatusOK {
			t.Errorf("Content-Type %q: %d %s, want 200", ct, r.status, r.raw)
		}
	}
	if n, _ := b.streamState(t); n != 3 {
		t.Errorf("%d jobs stored, want 3 (one per delivery)", n)
	}
}

// TestWebhookOversizeCountedAndLogged: a body one byte over the default
// limit (1 MiB) is answered 413, whether it declares its length or is
// chunked, and each refusal is counted (outcome too_large) and logged once
// as a warning with the limit and the peer's address, never the body. A
// body of exactly the limit is taken.
func TestWebhookOversizeCountedAndLogged(t *testing.T) {
	_, b := setup(t)
	const marker = "BODY-CONTENT-MUST-NOT-BE-LOGGED"
	sized := func(n int) []byte {
		var m map[string]any
		if err := json.Unmarshal(readExample(t, "group_created.json"), &m); err != nil {
			t.Fatal(err)
		}
		m["padding"] = marker
		base, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m["padding"] = marker + strings.Repeat("x", n-len(base))
		out, err := json.Marshal(m)
		if err != nil || len(out) != n {
			t.Fatalf("body of %d bytes, want %d (%v)", len(out), n, err)
		}
		return out
	}
	if r := post(t, b.url, sized(webhook.DefaultMaxBodyBytes)); r.status != http.StatusOK {
		t.Fatalf("POST of exactly %d bytes = %d %s, want 200", webhook.DefaultMaxBodyBytes, r.status, r.raw)
	}
	over := sized(webhook.DefaultMaxBodyBytes + 1)
	declared := webhookRequest(t, b.url, over)
	chunked := webhookRequest(t, b.url, over)
	chunked.ContentLength = -1
	chunked.Body = io.NopCloser(bytes.NewReader(over))
	for _, req := range []*http.Request{declared, chunked} {
		if r := do(t, req); r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST of %d bytes (content length %d) = %d %s, want 413", len(over), req.ContentLength, r.status, r.raw)
		}
	}
	metrics := do(t, mustRequest(t, http.MethodGet, b.url+webhook.PathMetrics))
	if want := `groupsync_webhook_requests_total{outcome="too_large",trigger="none"} 2`; !strings.Contains(metrics.raw, want) {
		t.Errorf("metrics lack %q", want)
	}
	logs := b.logs.String()
	var warnings []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "over the size limit") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 2 {
		t.Fatalf("%d size-limit warnings logged, want 2:\n%s", len(warnings), logs)
	}
	for _, w := range warnings {
		if !strings.Contains(w, `"level":"warn"`) || !strings.Contains(w, fmt.Sprintf(`"max_body_bytes":%d`, webhook.DefaultMaxBodyBytes)) ||
			!strings.Contains(w, `"remote_addr":"127.0.0.1:`) {
			t.Errorf("warning %s: want level warn, the limit and the remote address", w)
		}
	}
	if !strings.Contains(warnings[0], fmt.Sprintf(`"content_length":%d`, len(over))) {
		t.Errorf("warning %s: want the declared content length", warnings[0])
	}
	if strings.Contains(logs, marker) {
		t.Errorf("the log holds body content:\n%s", logs)
	}
}

// mustRequest builds a request without a body.
func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestWebhookIgnoresUnknownTrigger(t *testing.T) {
	_, b := setup(t)
	for _, trigger := range []string{"before_message", "after_message", string(groupsync.TriggerReconcile), string(groupsync.TriggerCardCheck)} {
		body := []byte(`{"trigger":"` + trigger + `","appId":"` + appID + `","data":{"message":{"id":"1"}},"webhook":"groupsync"}`)
		r := post(t, b.url, body)
		if r.status != http.StatusOK || r.body["ignored"] != trigger {
			t.Errorf("POST %s = %d %s, want 200 {\"ignored\": %q}", trigger, r.status, r.raw, trigger)
		}
	}
	// Another app's body is refused even with an unknown trigger.
	r := post(t, b.url, []byte(`{"trigger":"before_message","appId":"other","data":{}}`))
	if r.status != http.StatusForbidden {
		t.Errorf("unknown trigger of another app = %d %s, want 403", r.status, r.raw)
	}
	if n, _ := b.streamState(t); n != 0 {
		t.Errorf("%d jobs stored for ignored triggers, want 0", n)
	}
}

func TestWebhookNATSDownThenBack(t *testing.T) {
	_, b := setup(t, func(c *webhook.Config) { c.RetryAfter = 7 * time.Second })
	body := readExample(t, "group_member_kicked.json")

	b.nats.Shutdown()
	r := post(t, b.url, body)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "7" {
		t.Fatalf("POST with NATS down = %d (Retry-After %q) %s, want 503 with Retry-After 7", r.status, r.header.Get("Retry-After"), r.raw)
	}

	b.nats.Restart()
	// CometChat retries; the receiver stores the job as soon as the client
	// has reconnected.
	var last response
	testkit.Eventually(t, 15*time.Second, "retried delivery accepted", func() bool {
		last = post(t, b.url, body)
		return last.status == http.StatusOK
	})
	if last.body["duplicate"] != false {
		t.Errorf("retried delivery = %s, want duplicate false (the failed one stored nothing)", last.raw)
	}
	if n, _ := b.streamState(t); n != 1 {
		t.Fatalf("%d jobs stored after the retry, want 1", n)
	}
	want, _ := groupsync.NewJob(body, time.Now())
	job, _ := b.lastJob(t, b.q.Subject(queue.Partition(want.Event.GUID, testPartns)))
	if groupsync.ContentKey(job.ID) != groupsync.ContentKey(want.ID) || job.ID != last.body["job_id"] {
		t.Errorf("stored job %s, want the job %v answered, of content key %s", job.ID, last.body["job_id"], groupsync.ContentKey(want.ID))
	}
}

// stuckEnqueuer never acknowledges and ignores its context until released.
type stuckEnqueuer struct{ release chan struct{} }

func (s stuckEnqueuer) Enqueue(context.Context, groupsync.Job) (bool, error) {
	<-s.release
	return false, nil
}

func TestWebhookPublishTimeout(t *testing.T) {
	enq := stuckEnqueuer{release: make(chan struct{})}
	t.Cleanup(func() { close(enq.release) })
	cfg := baseConfig(t, &testkit.Buffer{})
	cfg.PublishTimeout = 50 * time.Millisecond
	_, b := startServer(t, cfg, enq, &testBundle{})
	r := post(t, b.url, readExample(t, "group_created.json"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "10" {
		t.Fatalf("POST with a stuck queue = %d (Retry-After %q) %s, want 503 with Retry-After 10", r.status, r.header.Get("Retry-After"), r.raw)
	}
}

func TestWebhookMethodNotAllowed(t *testing.T) {
	cfg := baseConfig(t, &testkit.Buffer{})
	_, b := startServer(t, cfg, stuckEnqueuer{}, &testBundle{})
	req, _ := http.NewRequest(http.MethodGet, b.url+webhook.PathWebhook, nil)
	if r := do(t, req); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET %s = %d, want 405", webhook.PathWebhook, r.status)
	}
}

// membersBody returns the group_created example with n members.
func membersBody(tb testing.TB, n int, appID string) []byte {
	return membersBodyOf(tb, n, appID, "")
}

// membersBodyOf is membersBody for group guid ("" keeps the example's).
func membersBodyOf(tb testing.TB, n int, appID, guid string) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(readExample(tb, "group_created.json"), &m); err != nil {
		tb.Fatal(err)
	}
	members := make(map[string]any, n)
	for i := range n {
		members["u"+strconv.Itoa(i)] = map[string]any{}
	}
	m["data"].(map[string]any)["members"] = members
	if appID != "" {
		m["appId"] = appID
	}
	if guid != "" {
		m["data"].(map[string]any)["group"].(map[string]any)["guid"] = guid
	}
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestTooBigEventIsRecordedAsFailed: an event naming more members than an
// E3Kit group can hold is answered 200 and shows up as a failed job with
// its trigger, group and member count, once per CometChat retry; nothing
// is queued.
func TestTooBigEventIsRecordedAsFailed(t *testing.T) {
	_, b := setup(t)
	for _, n := range []int{groupsync.MaxEventMembers + 1, 80_000} {
		body := membersBodyOf(t, n, "", "group-of-"+strconv.Itoa(n))
		want, err := groupsync.NewJob(body, time.Now())
		if !errors.Is(err, groupsync.ErrTooManyMembers) {
			t.Fatalf("NewJob(%d members) = %v, want ErrTooManyMembers", n, err)
		}
		for i, dup := range []bool{false, true} {
			r := post(t, b.url, body)
			if r.status != http.StatusOK || groupsync.ContentKey(fmt.Sprint(r.body["job_id"])) != groupsync.ContentKey(want.ID) || r.body["duplicate"] != dup ||
				!strings.Contains(fmt.Sprint(r.body["refused"]), strconv.Itoa(n)+" members") {
				t.Fatalf("POST %d members #%d = %d %s, want 200 refused, duplicate %v", n, i+1, r.status, r.raw, dup)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		failed, err := b.q.Failed(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		f := failed[len(failed)-1]
		if groupsync.ContentKey(f.ID) != groupsync.ContentKey(want.ID) || f.Trigger != "group_created" || f.GUID != want.Event.GUID || f.Members != n || !f.Refused {
			t.Errorf("failed job = %+v, want %s of %s with %d members, refused", f, want.ID, want.Event.GUID, n)
		}
	}
	if total, _ := b.streamState(t); total != 0 {
		t.Errorf("%d jobs queued, want none", total)
	}
	// The app id is still checked first.
	if r := post(t, b.url, membersBody(t, 2*groupsync.MaxEventMembers, "someone-else")); r.status != http.StatusForbidden {
		t.Errorf("POST 2000 members of another app = %d %s, want 403", r.status, r.raw)
	}
}

// enqueueOnly is an Enqueuer without a FailedRecorder.
type enqueueOnly struct{}

func (enqueueOnly) Enqueue(context.Context, groupsync.Job) (bool, error) { return false, nil }

func TestTooBigEventWithoutRecorder(t *testing.T) {
	b := &testBundle{logs: &testkit.Buffer{}}
	cfg := baseConfig(t, b.logs)
	_, b = startServer(t, cfg, enqueueOnly{}, b)
	if r := post(t, b.url, membersBody(t, groupsync.MaxEventMembers+1, "")); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST 1001 members = %d %s, want 413", r.status, r.raw)
	}
}
