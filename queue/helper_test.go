package queue_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

// externalURLEnv names a NATS server to run the tests against instead of an
// embedded one, such as the machine's nats-server 2.9:
//
//	GROUPSYNC_TEST_NATS_URL=nats://127.0.0.1:4222 go test ./queue
//
// Each test then uses streams and subjects of its own and deletes them at the
// end. Tests that restart the server always use an embedded one.
const externalURLEnv = "GROUPSYNC_TEST_NATS_URL"

// testKey signs the jobs of the tests; testAppID is their CometChat app.
var (
	testKey   = queue.JobKey("queue-test-job-key-0123456789abcdef")
	testAppID = "app"
)

// testBundle holds what a test needs besides the Queue under test.
type testBundle struct {
	srv *natstest.Server // nil against an external server
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg queue.Config
}

// setup opens a Queue on a fresh embedded JetStream (or on the external
// server named by GROUPSYNC_TEST_NATS_URL), with short fetch waits. mod
// adjusts the Config before Open.
func setup(t *testing.T, mod ...func(*queue.Config)) (*queue.Queue, *testBundle) {
	t.Helper()
	b := &testBundle{}
	cfg := queue.Config{
		FetchWait: 200 * time.Millisecond,
		Logger:    testLogger(t),
		JobKey:    testKey,
		AppID:     testAppID,
	}
	if url := os.Getenv(externalURLEnv); url != "" {
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		t.Cleanup(nc.Close)
		b.nc = nc
		suffix := randomSuffix(t)
		cfg.Stream = "GSTEST_" + strings.ToUpper(suffix)
		cfg.DeadLetterStream = cfg.Stream + "_DLQ"
		cfg.SubjectPrefix = "gstest." + suffix + ".jobs"
		cfg.DeadLetterSubject = "gstest." + suffix + ".dlq"
	} else {
		b.srv = natstest.Run(t)
		b.nc = natstest.Connect(t, b.srv)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	b.js = js
	for _, m := range mod {
		m(&cfg)
	}
	q := mustOpen(t, b.nc, cfg)
	b.cfg = q.Config()
	if b.srv == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, s := range []string{b.cfg.Stream, b.cfg.DeadLetterStream} {
				if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Errorf("delete stream %s: %v", s, err)
				}
			}
		})
	}
	return q, b
}

// mustOpen opens a Queue with cfg on nc and closes it when the test ends.
func mustOpen(t *testing.T, nc *nats.Conn, cfg queue.Config) *queue.Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t))
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newJob returns a job for group guid with the given id.
func newJob(id, guid string) groupsync.Job {
	return groupsync.Job{
		ID: id,
		Event: groupsync.Event{
			Trigger:      groupsync.TriggerMemberAdded,
			Action:       groupsync.ActionAdd,
			AppID:        testAppID,
			GUID:         guid,
			Members:      []groupsync.Member{{UID: "alice"}},
			MembersCount: 2,
		},
		ReceivedAt: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	}
}

// guidOnPartition returns a group id that falls on partition p of n, other
// than those in avoid.
func guidOnPartition(t *testing.T, p, n int, avoid ...string) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		g := "group-" + strings.Repeat("x", i%3) + hex.EncodeToString([]byte{byte(i >> 16), byte(i >> 8), byte(i)})
		if queue.Partition(g, n) != p {
			continue
		}
		taken := false
		for _, a := range avoid {
			taken = taken || a == g
		}
		if !taken {
			return g
		}
	}
	t.Fatalf("no group id found for partition %d of %d", p, n)
	return ""
}

func mustPublish(t *testing.T, q *queue.Queue, job groupsync.Job) queue.PublishResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := q.Publish(ctx, job)
	if err != nil {
		t.Fatalf("Publish(%s): %v", job.ID, err)
	}
	return res
}

// mustNext returns the next delivery of partition p, failing the test if none
// comes within 10 seconds.
func mustNext(t *testing.T, q *queue.Queue, p int) *queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := q.Next(ctx, p)
	if err != nil {
		t.Fatalf("Next(%d): %v", p, err)
	}
	return d
}

// mustNotNext fails the test if partition p hands out a job within wait.
func mustNotNext(t *testing.T, q *queue.Queue, p int, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d, err := q.Next(ctx, p)
	if err == nil {
		t.Fatalf("Next(%d) = job %s (delivery %d), want no job", p, d.Job.ID, d.NumDelivered)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next(%d) error = %v, want context.DeadlineExceeded", p, err)
	}
}

func mustAck(t *testing.T, d *queue.Delivery) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("Ack(%s): %v", d.Job.ID, err)
	}
}

func mustFailed(t *testing.T, q *queue.Queue) []queue.FailedJob {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	failed, err := q.Failed(ctx)
	if err != nil {
		t.Fatalf("Failed: %v", err)
	}
	return failed
}

// streamMsgs returns the number of messages stored in stream.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("Stream(%s): %v", stream, err)
	}
	return s.CachedInfo().State.Msgs
}
