package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
)

// publishRaw stores body on partition p as someone with NATS access but
// not necessarily the job key would: with the signature sig (none when
// empty).
func publishRaw(t *testing.T, b *testBundle, q *queue.Queue, p int, id string, body []byte, sig string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := &nats.Msg{Subject: q.Subject(p), Data: body, Header: nats.Header{}}
	if sig != "" {
		msg.Header.Set(queue.HeaderSignature, sig)
	}
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

func jobBody(t *testing.T, id, guid, appID string) []byte {
	t.Helper()
	j := newJob(id, guid)
	j.Event.AppID = appID
	body, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestUnauthenticatedJobsAreDeadLettered: Next hands out only jobs signed
// with an accepted key and of the configured app; everything else goes to
// the dead letters with ReasonUnauthenticated.
func TestUnauthenticatedJobsAreDeadLettered(t *testing.T) {
	t.Parallel()
	previous := queue.JobKey("the-previous-job-key-0123456789abcdef")
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 1; c.PreviousJobKey = previous })
	g := "group-auth"
	wrongKey := queue.JobKey("not-the-job-key-at-all-0123456789abcdef")
	forged := jobBody(t, "forged", g, testAppID)
	tampered := jobBody(t, "tampered", g, testAppID)
	goodSig := testKey.Sign(tampered)
	tampered = []byte(strings.Replace(string(tampered), "alice", "mallory", 1))
	cases := []struct {
		id   string
		body []byte
		sig  string
	}{
		{"unsigned", jobBody(t, "unsigned", g, testAppID), ""},
		{"wrong-key", jobBody(t, "wrong-key", g, testAppID), wrongKey.Sign(forged)},
		{"tampered", tampered, goodSig},
		{"garbage-signature", jobBody(t, "garbage-signature", g, testAppID), "hmac-sha256=zz"},
		{"foreign-app", jobBody(t, "foreign-app", g, "other-app"), ""},
	}
	for _, c := range cases {
		sig := c.sig
		if c.id == "foreign-app" {
			sig = testKey.Sign(c.body) // signed, but for another app
		}
		publishRaw(t, b, q, 0, c.id, c.body, sig)
	}
	prevBody := jobBody(t, "previous-key", g, testAppID)
	publishRaw(t, b, q, 0, "previous-key", prevBody, previous.Sign(prevBody))
	mustPublish(t, q, newJob("current-key", g))

	for _, want := range []string{"previous-key", "current-key"} {
		d := mustNext(t, q, 0)
		if d.Job.ID != want {
			t.Fatalf("Next = %s, want %s (every unauthenticated job skipped)", d.Job.ID, want)
		}
		mustAck(t, d)
	}
	failed := mustFailed(t, q)
	if len(failed) != len(cases) {
		t.Fatalf("Failed = %+v, want the %d unauthenticated jobs", failed, len(cases))
	}
	for i, f := range failed {
		if f.ID != cases[i].id || f.Error != queue.ReasonUnauthenticated {
			t.Errorf("Failed()[%d] = %s %q, want %s %q", i, f.ID, f.Error, cases[i].id, queue.ReasonUnauthenticated)
		}
	}

	// Retrying them does not launder them: they come back to the dead
	// letters, not to a worker.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := q.RetryAll(ctx); n != len(cases) || err != nil {
		t.Fatalf("RetryAll = %d, %v; want %d, nil", n, err, len(cases))
	}
	mustNotNext(t, q, 0, 500*time.Millisecond)
	testkit.Eventually(t, 10*time.Second, "retried unauthenticated jobs dead-lettered again", func() bool {
		return len(mustFailed(t, q)) == len(cases)
	})
}

// TestRetryKeepsSignature: a retried job is queued with the signature it
// had (re-signed with the current key when an accepted key made it), so it
// is applied after a key rotation too.
func TestRetryKeepsSignature(t *testing.T) {
	t.Parallel()
	oldKey := queue.JobKey("the-old-job-key-0123456789abcdef-0123")
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 1; c.JobKey = oldKey })
	mustPublish(t, q, newJob("rotated", "g"))
	d := mustNext(t, q, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.DeadLetter(ctx, "virgil down"); err != nil {
		t.Fatal(err)
	}
	// Rotate once: the new queue signs with testKey and still accepts
	// oldKey. Its Retry re-signs with testKey.
	cfg := b.cfg
	cfg.JobKey, cfg.PreviousJobKey = testKey, oldKey
	q2 := mustOpen(t, b.nc, cfg)
	if n, err := q2.Retry(ctx, "rotated"); n != 1 || err != nil {
		t.Fatalf("Retry = %d, %v", n, err)
	}
	// Rotate again: oldKey is no longer accepted, testKey is.
	cfg.JobKey, cfg.PreviousJobKey = queue.JobKey("a-third-job-key-0123456789abcdef-0123"), testKey
	q3 := mustOpen(t, b.nc, cfg)
	d = mustNext(t, q3, 0)
	if d.Job.ID != "rotated" {
		t.Fatalf("Next = %s, want rotated", d.Job.ID)
	}
	mustAck(t, d)
}

func TestJobKeyRequired(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.JobKey, c.AppID = nil, "" })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := q.Publish(ctx, newJob("j", "g")); !errors.Is(err, queue.ErrNoJobKey) {
		t.Errorf("Publish without a key = %v, want ErrNoJobKey", err)
	}
	if _, err := q.Next(ctx, 0); !errors.Is(err, queue.ErrNoJobKey) {
		t.Errorf("Next without a key = %v, want ErrNoJobKey", err)
	}
	if err := q.CheckJobAuth(); !errors.Is(err, queue.ErrNoJobKey) {
		t.Errorf("CheckJobAuth without a key = %v, want ErrNoJobKey", err)
	}
	// Dead letters can be handled without a key.
	if _, err := q.Failed(ctx); err != nil {
		t.Errorf("Failed without a key = %v", err)
	}
}

func TestNextNeedsAppID(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.AppID = "" })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := q.Next(ctx, 0); !errors.Is(err, queue.ErrNoJobKey) {
		t.Errorf("Next without an app id = %v, want ErrNoJobKey", err)
	}
}

func TestPublishStampsAppID(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.Partitions = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	foreign := newJob("foreign", "g")
	foreign.Event.AppID = "other-app"
	if _, err := q.Publish(ctx, foreign); !errors.Is(err, queue.ErrInvalidJob) {
		t.Errorf("Publish(job of another app) = %v, want ErrInvalidJob", err)
	}
	bare := newJob("bare", "g")
	bare.Event.AppID = ""
	mustPublish(t, q, bare)
	d := mustNext(t, q, 0)
	if d.Job.ID != "bare" || d.Job.Event.AppID != testAppID {
		t.Errorf("Next = %s of app %q, want bare of %q", d.Job.ID, d.Job.Event.AppID, testAppID)
	}
	mustAck(t, d)
}

func TestJobKeyConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  queue.Config
	}{
		{"ShortKey", queue.Config{JobKey: queue.JobKey("short")}},
		{"ShortPrevious", queue.Config{JobKey: testKey, PreviousJobKey: queue.JobKey("short")}},
		{"PreviousAlone", queue.Config{PreviousJobKey: testKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := queue.Open(context.Background(), nil, tt.cfg); !errors.Is(err, queue.ErrInvalidConfig) {
				t.Errorf("Open(%s) = %v, want ErrInvalidConfig", tt.name, err)
			}
		})
	}
}

func TestJobKeyRedacted(t *testing.T) {
	key, err := queue.GenerateJobKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(key) < queue.MinJobKeyLen {
		t.Fatalf("GenerateJobKey made %d bytes, want at least %d", len(key), queue.MinJobKeyLen)
	}
	cfg := queue.Config{JobKey: key, PreviousJobKey: key}
	j, _ := json.Marshal(cfg)
	for _, out := range []string{fmt.Sprint(key), fmt.Sprintf("%v %+v %#v %s %x", cfg, cfg, cfg, key, key), string(j)} {
		if strings.Contains(out, string(key)) || strings.Contains(out, fmt.Sprintf("%x", []byte(key))) {
			t.Errorf("printed config holds the key: %s", out)
		}
	}
}
