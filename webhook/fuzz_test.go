package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/webhook"
)

// memEnqueuer stores jobs in memory, reporting repeats as duplicates.
type memEnqueuer struct {
	mu   sync.Mutex
	jobs map[string]groupsync.Job
}

func (m *memEnqueuer) Enqueue(_ context.Context, job groupsync.Job) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs == nil {
		m.jobs = map[string]groupsync.Job{}
	}
	_, dup := m.jobs[job.ID]
	m.jobs[job.ID] = job
	return dup, nil
}

func (m *memEnqueuer) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.jobs)
}

// FuzzWebhookBody posts arbitrary bodies through the handler: it never
// panics, answers only the documented statuses, and queues a job exactly
// when it answers 200 with a job id.
func FuzzWebhookBody(f *testing.F) {
	for _, name := range exampleNames(f) {
		f.Add(readExample(f, name))
	}
	f.Add([]byte(`{"trigger":"before_message","appId":"` + appID + `"}`))
	f.Add([]byte(`{"trigger":"group_member_added","appId":"other","data":{}}`))
	f.Add([]byte(`{"trigger":"group_member_added","appId":"` + appID + `","data":{"group":{"guid":"g"},"members":{},"by":{"uid":"a"}}}`))
	f.Add([]byte(`[]`))
	f.Add(bytes.Repeat([]byte(" "), 3000))

	cfg := baseConfig(f, io.Discard)
	cfg.MaxBodyBytes = 2048
	enq := &memEnqueuer{}
	srv, err := webhook.New(cfg, enq)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	allowed := map[int]bool{
		http.StatusOK:                    true,
		http.StatusBadRequest:            true,
		http.StatusForbidden:             true,
		http.StatusRequestEntityTooLarge: true,
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, webhook.PathWebhook, bytes.NewReader(body))
		req.SetBasicAuth(webhookUser, webhookPass)
		req.Header.Set("Content-Type", "application/json")
		before := enq.count()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d (%s) for body %q", rec.Code, rec.Body.String(), body)
		}
		var ans map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
			t.Fatalf("answer %q is not a JSON object: %v", rec.Body.String(), err)
		}
		jobID, isJob := ans["job_id"].(string)
		if rec.Code != http.StatusOK && (isJob || ans["error"] == nil) {
			t.Fatalf("status %d with answer %s", rec.Code, rec.Body.String())
		}
		if rec.Code == http.StatusOK && !isJob && ans["ignored"] == nil {
			t.Fatalf("200 without job_id or ignored: %s", rec.Body.String())
		}
		if isJob {
			enq.mu.Lock()
			job, ok := enq.jobs[jobID]
			enq.mu.Unlock()
			if !ok || job.Event.GUID == "" || job.Event.AppID != appID {
				t.Fatalf("answered job %s but queued %+v (found %v)", jobID, job, ok)
			}
		} else if after := enq.count(); after != before {
			t.Fatalf("queued a job (%d -> %d) while answering %d %s", before, after, rec.Code, rec.Body.String())
		}
	})
}
