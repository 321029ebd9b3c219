package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/webhook"
)

func TestWebhookQueuesEveryExampleOnce(t *testing.T) {
	_, b := setup(t)
	wantBySubject := map[string]uint64{}
	var total uint64
	for _, name := range exampleNames(t) {
		body := readExample(t, name)
		want, err := groupsync.NewJob(body, time.Now())
		if err != nil {
			t.Fatalf("NewJob(%s): %v", name, err)
		}
		subject := b.q.Subject(queue.Partition(want.Event.GUID, testPartns))

		r := post(t, b.url, body)
		if r.status != http.StatusOK || r.body["job_id"] != want.ID || r.body["duplicate"] != false {
			t.Fatalf("POST %s = %d %s, want 200 job_id %s duplicate false", name, r.status, r.raw, want.ID)
		}
		total++
		wantBySubject[subject]++

		job, msgID := b.lastJob(t, subject)
		if job.ID != want.ID || msgID != want.ID {
			t.Errorf("%s: stored job %s with Nats-Msg-Id %s on %s, want %s", name, job.ID, msgID, subject, want.ID)
		}
		if job.Event.GUID != want.Event.GUID || job.Event.Action != want.Event.Action || job.BodySHA256 != want.BodySHA256 {
			t.Errorf("%s: stored event %+v, want %+v", name, job.Event, want.Event)
		}

		// The same body again, and the same event reformatted: duplicates.
		var indented bytes.Buffer
		if err := json.Indent(&indented, body, "  ", "\t\t"); err != nil {
			t.Fatal(err)
		}
		for _, again := range [][]byte{body, indented.Bytes()} {
			r := post(t, b.url, again)
			if r.status != http.StatusOK || r.body["job_id"] != want.ID || r.body["duplicate"] != true {
				t.Errorf("POST %s again = %d %s, want 200 job_id %s duplicate true", name, r.status, r.raw, want.ID)
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
	if n, _ := b.streamState(t); n != 1 {
		t.Errorf("%d jobs stored, want 1", n)
	}
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
	eventually(t, 15*time.Second, "retried delivery accepted", func() bool {
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
	if job.ID != want.ID {
		t.Errorf("stored job %s, want %s", job.ID, want.ID)
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
	cfg := baseConfig(t, &logBuffer{})
	cfg.PublishTimeout = 50 * time.Millisecond
	_, b := startServer(t, cfg, enq, &testBundle{})
	r := post(t, b.url, readExample(t, "group_created.json"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "10" {
		t.Fatalf("POST with a stuck queue = %d (Retry-After %q) %s, want 503 with Retry-After 10", r.status, r.header.Get("Retry-After"), r.raw)
	}
}

func TestWebhookMethodNotAllowed(t *testing.T) {
	cfg := baseConfig(t, &logBuffer{})
	_, b := startServer(t, cfg, stuckEnqueuer{}, &testBundle{})
	req, _ := http.NewRequest(http.MethodGet, b.url+webhook.PathWebhook, nil)
	if r := do(t, req); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET %s = %d, want 405", webhook.PathWebhook, r.status)
	}
}
