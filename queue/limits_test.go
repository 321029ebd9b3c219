package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
)

func TestStreamLimitsAreProvisioned(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []struct {
		stream      string
		msgs, bytes int64
		age         time.Duration
	}{
		{b.cfg.Stream, queue.DefaultMaxJobs, queue.DefaultMaxJobBytes, 0},
		{b.cfg.DeadLetterStream, queue.DefaultDeadLetterMaxJobs, queue.DefaultDeadLetterMaxBytes, queue.DefaultDeadLetterMaxAge},
	} {
		s, err := b.js.Stream(ctx, want.stream)
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		if c.Discard != jetstream.DiscardNew || c.MaxMsgs != want.msgs || c.MaxBytes != want.bytes || c.MaxAge != want.age {
			t.Errorf("stream %s: discard %v, max msgs %d, bytes %d, age %v; want discard new, %d, %d, %v",
				want.stream, c.Discard, c.MaxMsgs, c.MaxBytes, c.MaxAge, want.msgs, want.bytes, want.age)
		}
	}
}

// TestFullJobStreamRefusesNewJobs: past the fill threshold CheckFill fails
// with a reason; at the limit Publish fails with ErrFull and every job
// already stored is still handed out.
func TestFullJobStreamRefusesNewJobs(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.Partitions = 1; c.MaxJobs = 3; c.FillThreshold = 0.6 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mustPublish(t, q, newJob("job-1", "group-a"))
	if err := q.CheckFill(ctx); err != nil {
		t.Fatalf("CheckFill at 1 of 3 = %v, want nil", err)
	}
	mustPublish(t, q, newJob("job-2", "group-a"))
	err := q.CheckFill(ctx)
	var fe *queue.FillError
	if !errors.As(err, &fe) || errors.Is(err, queue.ErrFull) || !strings.Contains(fe.Reason(), "2 of 3 messages") {
		t.Fatalf("CheckFill at 2 of 3 = %v, want a *FillError (not full) naming 2 of 3 messages", err)
	}
	mustPublish(t, q, newJob("job-3", "group-a"))
	if err := q.CheckFill(ctx); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("CheckFill at 3 of 3 = %v, want ErrFull", err)
	}
	_, err = q.Publish(ctx, newJob("job-4", "group-a"))
	if !errors.Is(err, queue.ErrFull) || errors.Is(err, queue.ErrUnavailable) {
		t.Fatalf("Publish into a full stream = %v, want ErrFull", err)
	}
	// A duplicate of a stored job is still answered as one.
	if res, err := q.Publish(ctx, newJob("job-3", "group-a")); err != nil || !res.Duplicate {
		t.Errorf("Publish(duplicate) into a full stream = %+v, %v, want a duplicate", res, err)
	}
	for i := 1; i <= 3; i++ {
		d := mustNext(t, q, 0)
		if want := fmt.Sprintf("job-%d", i); d.Job.ID != want {
			t.Fatalf("Next = %s, want %s (old jobs are kept)", d.Job.ID, want)
		}
		mustAck(t, d)
	}
	testkit.Eventually(t, 10*time.Second, "room in the stream", func() bool { return q.CheckFill(ctx) == nil })
	mustPublish(t, q, newJob("job-4", "group-a"))
}

func TestFullJobStreamRefusesBytes(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.MaxJobBytes = 4096 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := func(id string) groupsync.Job {
		j := newJob(id, "group-b")
		for i := range 40 {
			j.Event.Members = append(j.Event.Members, groupsync.Member{UID: fmt.Sprintf("member-with-a-long-uid-%03d", i)})
		}
		return j
	}
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		_, err = q.Publish(ctx, big(fmt.Sprintf("big-%d", i)))
	}
	if !errors.Is(err, queue.ErrFull) {
		t.Fatalf("Publish past MaxJobBytes = %v, want ErrFull", err)
	}
}

// TestFullDeadLetterStreamKeepsTheJob: a dead letter the full dead-letter
// stream refuses leaves the job in the job stream.
func TestFullDeadLetterStreamKeepsTheJob(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 1; c.DeadLetterMaxJobs = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mustPublish(t, q, newJob("first", "group-c"))
	mustPublish(t, q, newJob("second", "group-c"))
	if err := mustNext(t, q, 0).DeadLetter(ctx, "bad"); err != nil {
		t.Fatalf("DeadLetter(first) = %v", err)
	}
	d := mustNext(t, q, 0)
	if err := d.DeadLetter(ctx, "bad too"); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("DeadLetter into a full stream = %v, want ErrFull", err)
	}
	if n := streamMsgs(t, b.js, b.cfg.Stream); n != 1 {
		t.Errorf("job stream holds %d jobs, want the refused dead letter's job", n)
	}
	if f := mustFailed(t, q); len(f) != 1 || f[0].ID != "first" {
		t.Errorf("Failed = %+v, want only the first", f)
	}
}

func TestFillCollector(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.MaxJobs = 4 })
	mustPublish(t, q, newJob("one", "group-d"))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(q.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetValue() + "}"
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"groupsync_queue_stream_messages{" + b.cfg.Stream + "}":             1,
		"groupsync_queue_stream_messages{" + b.cfg.DeadLetterStream + "}":   0,
		"groupsync_queue_stream_max_messages{" + b.cfg.Stream + "}":         4,
		"groupsync_queue_stream_fill_ratio{" + b.cfg.Stream + "}":           0.25,
		"groupsync_queue_stream_fill_ratio{" + b.cfg.DeadLetterStream + "}": 0,
		"groupsync_queue_stream_max_bytes{" + b.cfg.DeadLetterStream + "}":  queue.DefaultDeadLetterMaxBytes,
		"groupsync_queue_fill_threshold":                                    queue.DefaultFillThreshold,
		"groupsync_queue_stream_info_up":                                    1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	// The job waiting was stored just now; the empty stream has no age.
	if age, ok := got["groupsync_queue_stream_oldest_age_seconds{"+b.cfg.Stream+"}"]; !ok || age <= 0 || age > 60 {
		t.Errorf("oldest age of the job stream = %v (present %v), want the age of the job just published", age, ok)
	}
	if age := got["groupsync_queue_stream_oldest_age_seconds{"+b.cfg.DeadLetterStream+"}"]; age != 0 {
		t.Errorf("oldest age of the empty dead-letter stream = %v, want 0", age)
	}
}

// TestRecordRefused: a job refused at intake is listed as failed with its
// member count, stored once per CometChat retry, and never replayed.
func TestRecordRefused(t *testing.T) {
	t.Parallel()
	q, b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	job := newJob("too-big", "group-e")
	job.Event.Trigger = groupsync.TriggerGroupCreated
	for i := range 101 {
		job.Event.Members = append(job.Event.Members, groupsync.Member{UID: fmt.Sprintf("u%03d", i)})
	}
	// Two deliveries of one event: ids with the same content key.
	for i, wantDup := range []bool{false, true} {
		job.ID = fmt.Sprintf("too-big.%016d", i)
		dup, err := q.RecordRefused(ctx, job, 100000, "data.members names more than 100 members")
		if err != nil || dup != wantDup {
			t.Fatalf("RecordRefused #%d = %v, %v, want duplicate %v", i+1, dup, err, wantDup)
		}
	}
	failed := mustFailed(t, q)
	if len(failed) != 1 {
		t.Fatalf("Failed = %+v, want one job", failed)
	}
	f := failed[0]
	if f.ID != "too-big.0000000000000000" || f.Trigger != "group_created" || f.GUID != "group-e" || f.Members != 100000 ||
		!f.Refused || f.Attempts != 0 || f.Error != "data.members names more than 100 members" || f.FailedAt.IsZero() {
		t.Errorf("Failed()[0] = %+v", f)
	}
	if n := streamMsgs(t, b.js, b.cfg.Stream); n != 0 {
		t.Errorf("job stream holds %d jobs, want none", n)
	}
	if _, err := q.Retry(ctx, f.ID); !errors.Is(err, queue.ErrNotReplayable) {
		t.Errorf("Retry(refused) = %v, want ErrNotReplayable", err)
	}
	if n, err := q.RetryAll(ctx); err != nil || n != 0 {
		t.Errorf("RetryAll = %d, %v, want 0 (refused jobs stay)", n, err)
	}
	if n := streamMsgs(t, b.js, b.cfg.Stream); n != 0 {
		t.Errorf("job stream holds %d jobs after retries, want none", n)
	}
	if len(mustFailed(t, q)) != 1 {
		t.Errorf("the refused job left the failed list")
	}
	if n, err := q.Purge(ctx); err != nil || n != 1 {
		t.Errorf("Purge = %d, %v, want 1", n, err)
	}
}
