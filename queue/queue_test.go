package queue_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

// enqueuer is the webhook package's Enqueuer, restated: *queue.Queue must
// satisfy it.
type enqueuer interface {
	Enqueue(ctx context.Context, job groupsync.Job) (duplicate bool, err error)
}

var _ enqueuer = (*queue.Queue)(nil)

func TestOpenIsIdempotent(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	snapshot := func() string {
		t.Helper()
		s, err := b.js.Stream(ctx, b.cfg.Stream)
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		var out strings.Builder
		fmt.Fprintf(&out, "stream %+v created %v\n", s.CachedInfo().Config, s.CachedInfo().Created)
		for p := range 4 {
			c, err := s.Consumer(ctx, fmt.Sprintf("groupsync-p%02d", p))
			if err != nil {
				t.Fatalf("Consumer(%d): %v", p, err)
			}
			fmt.Fprintf(&out, "consumer %+v created %v\n", c.CachedInfo().Config, c.CachedInfo().Created)
		}
		d, err := b.js.Stream(ctx, b.cfg.DeadLetterStream)
		if err != nil {
			t.Fatalf("Stream(dlq): %v", err)
		}
		fmt.Fprintf(&out, "dlq %+v created %v\n", d.CachedInfo().Config, d.CachedInfo().Created)
		return out.String()
	}
	before := snapshot()
	mustOpen(t, b.nc, b.cfg)
	if after := snapshot(); after != before {
		t.Errorf("second Open changed the provisioning:\nbefore: %s\nafter:  %s", before, after)
	}

	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	if sc.Retention != jetstream.WorkQueuePolicy || sc.Storage != jetstream.FileStorage ||
		sc.Duplicates != 2*time.Minute || len(sc.Subjects) != 1 || sc.Subjects[0] != b.cfg.SubjectPrefix+".*" {
		t.Errorf("job stream config = %+v, want work queue, file, 2m window, %s.*", sc, b.cfg.SubjectPrefix)
	}
	d, err := b.js.Stream(ctx, b.cfg.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	dc := d.CachedInfo().Config
	if dc.Retention != jetstream.LimitsPolicy || dc.Storage != jetstream.FileStorage || dc.MaxAge != 30*24*time.Hour {
		t.Errorf("dead-letter stream config = %+v, want limits, file, 30 days", dc)
	}
	for p := range 4 {
		c, err := s.Consumer(ctx, fmt.Sprintf("groupsync-p%02d", p))
		if err != nil {
			t.Fatal(err)
		}
		cc := c.CachedInfo().Config
		if cc.FilterSubject != q.Subject(p) || cc.MaxAckPending != 1 || cc.AckPolicy != jetstream.AckExplicitPolicy ||
			cc.Durable == "" || cc.MaxDeliver != q.MaxDeliver()+1 {
			t.Errorf("consumer %d config = %+v, want durable, filter %s, explicit ack, 1 pending", p, cc, q.Subject(p))
		}
	}
	if _, err := s.Consumer(ctx, "groupsync-p04"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("Consumer(groupsync-p04) error = %v, want not found", err)
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  queue.Config
	}{
		{"StreamWithDot", queue.Config{Stream: "A.B"}},
		{"SameStreams", queue.Config{Stream: "X", DeadLetterStream: "X"}},
		{"WildcardPrefix", queue.Config{SubjectPrefix: "jobs.*"}},
		{"EmptyToken", queue.Config{SubjectPrefix: "jobs..x"}},
		{"DeadLettersUnderJobs", queue.Config{SubjectPrefix: "a.jobs", DeadLetterSubject: "a.jobs.dlq"}},
		{"NegativePartitions", queue.Config{Partitions: -1}},
		{"TooManyPartitions", queue.Config{Partitions: queue.MaxPartitions + 1}},
		{"NegativeMaxDeliver", queue.Config{MaxDeliver: -3}},
		{"NegativeAckWait", queue.Config{AckWait: -time.Second}},
		{"TinyFetchWait", queue.Config{FetchWait: time.Millisecond}},
		{"SixReplicas", queue.Config{Replicas: 6}},
		{"NegativeMaxJobs", queue.Config{MaxJobs: -2}},
		{"NegativeDeadLetterMaxBytes", queue.Config{DeadLetterMaxBytes: -5}},
		{"NegativeMaxJobAge", queue.Config{MaxJobAge: -time.Hour}},
		{"FillThresholdAboveOne", queue.Config{FillThreshold: 1.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A nil connection proves validation happens before any I/O.
			q, err := queue.Open(context.Background(), nil, tt.cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "queue: config: ") {
				t.Errorf("Open(%+v) = %v, %v; want a config error", tt.cfg, q, err)
			}
		})
	}
}

// TestOpenReportsEveryInvalidField checks that a config with several
// mistakes is refused with all of them, not only the first.
func TestOpenReportsEveryInvalidField(t *testing.T) {
	t.Parallel()
	cfg := queue.Config{Stream: "A.B", Partitions: -1, MaxDeliver: -3, Replicas: 6}
	_, err := queue.Open(context.Background(), nil, cfg)
	if !errors.Is(err, queue.ErrInvalidConfig) {
		t.Fatalf("Open(%+v) = %v, want ErrInvalidConfig", cfg, err)
	}
	for _, field := range []string{"Stream", "Partitions", "MaxDeliver", "Replicas"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("Open(%+v) = %v, which does not name %s", cfg, err, field)
		}
	}

	// The job keys, the audit trail's config and the NATS connection's
	// are checked the same way.
	keys := queue.Config{JobKey: queue.JobKey("short"), PreviousJobKey: queue.JobKey("shorter")}
	_, err = queue.Open(context.Background(), nil, keys)
	wantAll(t, "Open with short keys", err, "JobKey has 5 bytes", "PreviousJobKey has 7 bytes")
	_, err = queue.OpenAudit(context.Background(), nil, queue.AuditConfig{Stream: "A.B", MaxAge: time.Second, Replicas: 6})
	wantAll(t, "OpenAudit", err, "Stream", "MaxAge", "Replicas")
	_, err = queue.Connect(queue.ConnectConfig{URL: "http://nats:4222", Token: "tok", CredsFile: "/nonexistent/x.creds"})
	wantAll(t, "Connect", err, "scheme", "more than one way", "creds file")
}

// wantAll checks that err is a config error naming every one of wants.
func wantAll(t *testing.T, what string, err error, wants ...string) {
	t.Helper()
	if !errors.Is(err, queue.ErrInvalidConfig) {
		t.Fatalf("%s = %v, want ErrInvalidConfig", what, err)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s = %v, which does not name %s", what, err, w)
		}
	}
}

func TestPartition(t *testing.T) {
	t.Parallel()
	// Golden values: changing the hash would move every group to another
	// partition, breaking per-group order across an upgrade.
	golden := []struct {
		guid string
		n    int
		want int
	}{
		{"", 16, 5},
		{"group-1", 16, 6},
		{"cometchat-guid-1", 16, 7},
		{"supergroup", 16, 7},
		{"supergroup", 1, 0},
		{"supergroup", 7, 3},
		{"supergroup", 0, 0},
		// FNV-1a 32 reference vectors: "a" is 0xe40c292c, "foobar" 0xbf9cf968.
		{"a", 1<<31 - 1, 0xe40c292c - (1<<31 - 1)},
		{"foobar", 1<<31 - 1, 0xbf9cf968 - (1<<31 - 1)},
	}
	for _, g := range golden {
		if got := queue.Partition(g.guid, g.n); got != g.want {
			t.Errorf("Partition(%q, %d) = %d, want %d", g.guid, g.n, got, g.want)
		}
	}
	seen := map[int]int{}
	for i := range 1000 {
		guid := fmt.Sprintf("g%d", i)
		p := queue.Partition(guid, 16)
		if p < 0 || p >= 16 {
			t.Fatalf("Partition(%q, 16) = %d, out of range", guid, p)
		}
		if again := queue.Partition(guid, 16); again != p {
			t.Fatalf("Partition(%q, 16) = %d then %d", guid, p, again)
		}
		seen[p]++
	}
	for p := range 16 {
		if seen[p] < 20 {
			t.Errorf("partition %d got %d of 1000 groups, want a fair share", p, seen[p])
		}
	}
}

func TestPublish(t *testing.T) {
	t.Parallel()
	q, b := setup(t)
	t.Run("SubjectIsThePartitionOfTheGroup", func(t *testing.T) {
		if got, want := q.Subject(3), b.cfg.SubjectPrefix+".3"; got != want {
			t.Errorf("Subject(3) = %q, want %q", got, want)
		}
		job := newJob("job-subject", "group-1")
		res := mustPublish(t, q, job)
		want := queue.Partition("group-1", b.cfg.Partitions)
		if res.Partition != want || res.Duplicate || res.Seq == 0 {
			t.Errorf("Publish = %+v, want partition %d, not duplicate, a sequence", res, want)
		}
		d := mustNext(t, q, want)
		if d.Subject != q.Subject(want) || d.Partition != want || d.StreamSeq != res.Seq || d.NumDelivered != 1 {
			t.Errorf("delivery = subject %s partition %d seq %d delivered %d; want %s, %d, %d, 1",
				d.Subject, d.Partition, d.StreamSeq, d.NumDelivered, q.Subject(want), want, res.Seq)
		}
		gotJSON, _ := json.Marshal(d.Job)
		wantJSON, _ := json.Marshal(job)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("delivered job = %s, want %s", gotJSON, wantJSON)
		}
		mustAck(t, d)
	})
	t.Run("DuplicateWithinWindowIsStoredOnce", func(t *testing.T) {
		before := streamMsgs(t, b.js, b.cfg.Stream)
		job := newJob("job-dup", "group-dup")
		first := mustPublish(t, q, job)
		second := mustPublish(t, q, job)
		if first.Duplicate || !second.Duplicate || second.Seq != first.Seq {
			t.Errorf("Publish twice = %+v then %+v, want the second a duplicate of the first", first, second)
		}
		dup, err := q.Enqueue(context.Background(), job)
		if err != nil || !dup {
			t.Errorf("Enqueue(same job) = %v, %v; want true, nil", dup, err)
		}
		if got := streamMsgs(t, b.js, b.cfg.Stream); got != before+1 {
			t.Errorf("stream holds %d messages, want %d", got, before+1)
		}
	})
	t.Run("JobWithoutIDIsRejected", func(t *testing.T) {
		_, err := q.Publish(context.Background(), newJob("", "g"))
		if !errors.Is(err, queue.ErrInvalidJob) {
			t.Errorf("Publish(no id) error = %v, want ErrInvalidJob", err)
		}
	})
}

func TestOneJobAtATimePerPartition(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 4 })
	g1 := guidOnPartition(t, 1, 4)
	g1b := guidOnPartition(t, 1, 4, g1)
	g2 := guidOnPartition(t, 2, 4)
	mustPublish(t, q, newJob("a1", g1))
	mustPublish(t, q, newJob("a2", g1b))
	mustPublish(t, q, newJob("b1", g2))

	// A second Queue on its own connection plays a second worker process.
	var q2 *queue.Queue
	if b.srv != nil {
		q2 = mustOpen(t, natstest.Connect(t, b.srv), b.cfg)
	} else {
		q2 = mustOpen(t, b.nc, b.cfg)
	}

	first := mustNext(t, q, 1)
	if first.Job.ID != "a1" {
		t.Fatalf("Next(1) = %s, want a1 (publish order)", first.Job.ID)
	}
	mustNotNext(t, q, 1, 500*time.Millisecond)
	mustNotNext(t, q2, 1, 500*time.Millisecond)

	other := mustNext(t, q2, 2)
	if other.Job.ID != "b1" {
		t.Errorf("Next(2) = %s, want b1", other.Job.ID)
	}
	mustAck(t, other)

	mustAck(t, first)
	second := mustNext(t, q2, 1)
	if second.Job.ID != "a2" {
		t.Errorf("Next(1) after ack = %s, want a2", second.Job.ID)
	}
	mustAck(t, second)
	mustNotNext(t, q, 1, 300*time.Millisecond)
}

func TestTwoQueuesShareEveryJobOnce(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 2 })
	var q2 *queue.Queue
	if b.srv != nil {
		q2 = mustOpen(t, natstest.Connect(t, b.srv), b.cfg)
	} else {
		q2 = mustOpen(t, b.nc, b.cfg)
	}
	const jobs = 40
	want := map[string]bool{}
	for i := range jobs {
		id := fmt.Sprintf("job-%02d", i)
		want[id] = true
		mustPublish(t, q, newJob(id, fmt.Sprintf("group-%d", i%7)))
	}
	var mu sync.Mutex
	got := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, qq := range []*queue.Queue{q, q2} {
		for p := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					d, err := qq.Next(ctx, p)
					if err != nil {
						if !errors.Is(err, context.Canceled) {
							errs <- err
						}
						return
					}
					mu.Lock()
					got[d.Job.ID]++
					mu.Unlock()
					if err := d.Ack(ctx); err != nil && !errors.Is(err, context.Canceled) {
						errs <- err
						return
					}
				}
			}()
		}
	}
	testkit.Eventually(t, 10*time.Second, "every job delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == jobs
	})
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("worker: %v", err)
	}
	for id, n := range got {
		if !want[id] || n != 1 {
			t.Errorf("job %s delivered %d times, want once", id, n)
		}
	}
}

func TestNakWithDelay(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.Partitions = 2 })
	g := guidOnPartition(t, 0, 2)
	mustPublish(t, q, newJob("slow", g))
	mustPublish(t, q, newJob("fast", g))

	d := mustNext(t, q, 0)
	if d.Job.ID != "slow" || d.NumDelivered != 1 || d.LastAttempt() {
		t.Fatalf("Next = %s delivery %d (last %v), want slow delivery 1", d.Job.ID, d.NumDelivered, d.LastAttempt())
	}
	if err := d.NakWithDelay(3 * time.Second); err != nil {
		t.Fatalf("NakWithDelay: %v", err)
	}
	// The delayed job keeps its place: the partition waits for it, and the
	// later job comes after its redelivery.
	mustNotNext(t, q, 0, 500*time.Millisecond)
	again := mustNext(t, q, 0)
	if again.Job.ID != "slow" || again.NumDelivered != 2 {
		t.Fatalf("redelivery = %s delivery %d, want slow delivery 2", again.Job.ID, again.NumDelivered)
	}
	if err := again.InProgress(); err != nil {
		t.Errorf("InProgress: %v", err)
	}
	mustAck(t, again)
	next := mustNext(t, q, 0)
	if next.Job.ID != "fast" || next.NumDelivered != 1 {
		t.Fatalf("Next after the redelivery = %s delivery %d, want fast delivery 1", next.Job.ID, next.NumDelivered)
	}
	mustAck(t, next)
	mustNotNext(t, q, 0, 300*time.Millisecond)
}

func TestNextHandsBackWhatArrivesAfterCancel(t *testing.T) {
	t.Parallel()
	// A 30s ack wait: the job must come back through the background nak,
	// long before the ack wait would release it.
	q, b := setup(t, func(c *queue.Config) {
		c.Partitions = 1
		c.FetchWait = 2 * time.Second
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx, 0)
		done <- err
	}()
	// Cancel once the pull request is waiting on the server, then publish
	// while the abandoned request is still open there.
	cons, err := b.js.Consumer(context.Background(), b.cfg.Stream, "groupsync-p00")
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "pull request waiting", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next(canceled) error = %v, want context.Canceled", err)
	}
	mustPublish(t, q, newJob("late", "g"))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	d, err := q.Next(ctx2, 0)
	if err != nil {
		t.Fatalf("Next after cancel: %v (job stuck behind an abandoned fetch?)", err)
	}
	if d.Job.ID != "late" {
		t.Errorf("Next = %s, want late", d.Job.ID)
	}
	mustAck(t, d)
}

func TestNextRejectsBadPartition(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.Partitions = 2 })
	for _, p := range []int{-1, 2} {
		if _, err := q.Next(context.Background(), p); !errors.Is(err, queue.ErrInvalidPartition) {
			t.Errorf("Next(%d) error = %v, want ErrInvalidPartition", p, err)
		}
	}
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 2 })
	g := guidOnPartition(t, 1, 2)
	job := newJob("doomed", g)
	job.Event.Trigger = groupsync.TriggerMemberKicked
	res := mustPublish(t, q, job)
	d := mustNext(t, q, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.DeadLetter(ctx, "group too large\nsecond line"); err != nil {
		t.Fatalf("DeadLetter: %v", err)
	}
	testkit.Eventually(t, 10*time.Second, "original removed from the job stream", func() bool {
		return streamMsgs(t, b.js, b.cfg.Stream) == 0
	})
	mustNotNext(t, q, 1, 300*time.Millisecond)

	dlq, err := b.js.Stream(ctx, b.cfg.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dlq.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg(dlq, 1): %v", err)
	}
	wantHeaders := map[string]string{
		queue.HeaderReason:    "group too large second line",
		queue.HeaderSubject:   q.Subject(1),
		queue.HeaderAttempts:  "1",
		queue.HeaderJobID:     "doomed",
		queue.HeaderTrigger:   "group_member_kicked",
		queue.HeaderGUID:      g,
		queue.HeaderStreamSeq: fmt.Sprint(res.Seq),
	}
	for k, v := range wantHeaders {
		if got := raw.Header.Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, raw.Header.Get(queue.HeaderFailedAt)); err != nil {
		t.Errorf("dead letter header %s = %q: %v", queue.HeaderFailedAt, raw.Header.Get(queue.HeaderFailedAt), err)
	}
	var body groupsync.Job
	if err := json.Unmarshal(raw.Data, &body); err != nil || body.ID != "doomed" {
		t.Errorf("dead letter body = %s (%v), want the job", raw.Data, err)
	}

	failed := mustFailed(t, q)
	if len(failed) != 1 {
		t.Fatalf("Failed = %+v, want one job", failed)
	}
	f := failed[0]
	if f.ID != "doomed" || f.Trigger != "group_member_kicked" || f.GUID != g || f.Error != "group too large second line" ||
		f.Attempts != 1 || f.Subject != q.Subject(1) || f.Seq != 1 || f.FailedAt.IsZero() {
		t.Errorf("Failed()[0] = %+v", f)
	}
	fj, data, err := q.FailedJobBody(ctx, "doomed")
	if err != nil || fj != f || !bytes.Equal(data, raw.Data) {
		t.Errorf("FailedJobBody(doomed) = %+v, %s, %v; want %+v and the job's body", fj, data, err, f)
	}
	if _, _, err := q.FailedJobBody(ctx, "nope"); !errors.Is(err, queue.ErrJobNotFound) {
		t.Errorf("FailedJobBody(nope) error = %v, want ErrJobNotFound", err)
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"id":`, `"trigger":`, `"guid":`, `"error":`, `"attempts":`, `"failed_at":`} {
		if !bytes.Contains(out, []byte(key)) {
			t.Errorf("FailedJob JSON %s lacks %s", out, key)
		}
	}
}

func TestRetryPurgeRoundTrip(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g0 := guidOnPartition(t, 0, 2)
	g1 := guidOnPartition(t, 1, 2)
	deadLetter := func(id, guid, reason string) {
		t.Helper()
		mustPublish(t, q, newJob(id, guid))
		d := mustNext(t, q, queue.Partition(guid, 2))
		if d.Job.ID != id {
			t.Fatalf("Next = %s, want %s", d.Job.ID, id)
		}
		if err := d.DeadLetter(ctx, reason); err != nil {
			t.Fatalf("DeadLetter(%s): %v", id, err)
		}
	}
	deadLetter("j1", g0, "first failure")
	deadLetter("j2", g1, "boom")

	t.Run("UnknownIDRetriesNothing", func(t *testing.T) {
		n, err := q.Retry(ctx, "j1", "nope", "nada")
		var nf *queue.JobNotFoundError
		if n != 0 || !errors.Is(err, queue.ErrJobNotFound) || !errors.As(err, &nf) ||
			strings.Join(nf.IDs, ",") != "nope,nada" || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("Retry(j1, nope, nada) = %d, %v; want 0 and a JobNotFoundError naming nope, nada", n, err)
		}
		if got := len(mustFailed(t, q)); got != 2 {
			t.Errorf("Failed has %d jobs after a refused Retry, want 2", got)
		}
	})

	t.Run("RetryOneDeliversItAgain", func(t *testing.T) {
		n, err := q.Retry(ctx, "j1")
		if n != 1 || err != nil {
			t.Fatalf("Retry(j1) = %d, %v; want 1, nil", n, err)
		}
		failed := mustFailed(t, q)
		if len(failed) != 1 || failed[0].ID != "j2" {
			t.Errorf("Failed after Retry(j1) = %+v, want only j2", failed)
		}
		d := mustNext(t, q, 0)
		if d.Job.ID != "j1" || d.NumDelivered != 1 || d.Subject != q.Subject(0) {
			t.Fatalf("Next = %s delivery %d on %s, want j1 delivery 1 on %s", d.Job.ID, d.NumDelivered, d.Subject, q.Subject(0))
		}
		// Dead-letter it a second time: Retry must take the latest.
		if err := d.DeadLetter(ctx, "second failure"); err != nil {
			t.Fatal(err)
		}
		failed = mustFailed(t, q)
		if len(failed) != 2 {
			t.Fatalf("Failed = %+v, want j2 and j1", failed)
		}
	})

	t.Run("RetryAllTakesLatestAndEmptiesTheDLQ", func(t *testing.T) {
		// A newer dead letter of j1, with another body: RetryAll must queue
		// this one, once, and drop both of j1's dead letters.
		body := []byte(`{"id":"j1","event":{"guid":"` + g0 + `","trigger":"group_created","app_id":"` + testAppID + `"}}`)
		if _, err := b.js.PublishMsg(ctx, &nats.Msg{
			Subject: b.cfg.DeadLetterSubject,
			Data:    body,
			Header: nats.Header{
				queue.HeaderJobID:     []string{"j1"},
				queue.HeaderReason:    []string{"newer copy"},
				queue.HeaderSubject:   []string{q.Subject(0)},
				queue.HeaderSignature: []string{testKey.Sign(body)},
			},
		}); err != nil {
			t.Fatal(err)
		}
		if got := len(mustFailed(t, q)); got != 3 {
			t.Fatalf("Failed has %d entries, want 3", got)
		}
		n, err := q.RetryAll(ctx)
		if n != 2 || err != nil {
			t.Fatalf("RetryAll = %d, %v; want 2, nil", n, err)
		}
		if failed := mustFailed(t, q); len(failed) != 0 {
			t.Errorf("Failed after RetryAll = %+v, want none", failed)
		}
		got := map[string]groupsync.Trigger{}
		for _, p := range []int{0, 1} {
			d := mustNext(t, q, p)
			got[d.Job.ID] = d.Job.Event.Trigger
			mustAck(t, d)
		}
		if len(got) != 2 || got["j1"] != groupsync.TriggerGroupCreated || got["j2"] != groupsync.TriggerMemberAdded {
			t.Errorf("redelivered after RetryAll = %v, want j1 (latest copy: group_created) and j2", got)
		}
		mustNotNext(t, q, 0, 300*time.Millisecond)
	})

	t.Run("Purge", func(t *testing.T) {
		deadLetter("j3", g0, "x")
		deadLetter("j4", g1, "y")
		n, err := q.Purge(ctx)
		if n != 2 || err != nil {
			t.Fatalf("Purge = %d, %v; want 2, nil", n, err)
		}
		if failed := mustFailed(t, q); len(failed) != 0 {
			t.Errorf("Failed after Purge = %+v", failed)
		}
		n, err = q.Purge(ctx)
		if n != 0 || err != nil {
			t.Errorf("Purge(empty) = %d, %v; want 0, nil", n, err)
		}
		if n, err := q.RetryAll(ctx); n != 0 || err != nil {
			t.Errorf("RetryAll(empty) = %d, %v; want 0, nil", n, err)
		}
	})
}

func TestMalformedMessageIsDeadLettered(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, body := range []string{`not json`, `{"event":{"guid":"g"}}`} {
		msg := &nats.Msg{Subject: q.Subject(0), Data: []byte(body), Header: nats.Header{}}
		msg.Header.Set(queue.HeaderSignature, testKey.Sign(msg.Data))
		if _, err := b.js.PublishMsg(ctx, msg,
			jetstream.WithMsgID(fmt.Sprintf("bad-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	mustPublish(t, q, newJob("good", guidOnPartition(t, 0, 2)))
	d := mustNext(t, q, 0)
	if d.Job.ID != "good" {
		t.Fatalf("Next = %s, want good (malformed skipped)", d.Job.ID)
	}
	mustAck(t, d)
	failed := mustFailed(t, q)
	if len(failed) != 2 {
		t.Fatalf("Failed = %+v, want the two malformed messages", failed)
	}
	for i, f := range failed {
		if f.ID != fmt.Sprintf("bad-%d", i) || f.Error != queue.ReasonMalformed || f.Subject != q.Subject(0) || f.Attempts != 1 {
			t.Errorf("Failed()[%d] = %+v, want bad-%d, %q", i, f, i, queue.ReasonMalformed)
		}
	}
}

func TestUnsettledLastDeliveryIsDeadLettered(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) {
		c.Partitions = 1
		c.MaxDeliver = 2
	})
	if q.MaxDeliver() != 2 {
		t.Fatalf("MaxDeliver() = %d, want 2", q.MaxDeliver())
	}
	mustPublish(t, q, newJob("crashy", "g"))
	for attempt := uint64(1); attempt <= 2; attempt++ {
		d := mustNext(t, q, 0)
		if d.NumDelivered != attempt || d.LastAttempt() != (attempt == 2) {
			t.Fatalf("delivery %d: NumDelivered %d, LastAttempt %v", attempt, d.NumDelivered, d.LastAttempt())
		}
		// A worker that dies leaves the delivery unsettled; Nak stands in
		// for the ack wait running out.
		if err := d.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	mustNotNext(t, q, 0, 500*time.Millisecond)
	testkit.Eventually(t, 10*time.Second, "dead letter", func() bool { return len(mustFailed(t, q)) == 1 })
	f := mustFailed(t, q)[0]
	if f.ID != "crashy" || f.Error != queue.ReasonDeliveriesExhausted || f.Attempts != 2 {
		t.Errorf("Failed()[0] = %+v, want crashy, %q, 2 attempts", f, queue.ReasonDeliveriesExhausted)
	}
}

func TestStatsAndPing(t *testing.T) {
	t.Parallel()
	q, _ := setup(t, func(c *queue.Config) { c.Partitions = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	g2 := guidOnPartition(t, 2, 3)
	mustPublish(t, q, newJob("s1", g2))
	mustPublish(t, q, newJob("s2", g2))
	mustPublish(t, q, newJob("s3", guidOnPartition(t, 0, 3)))
	d := mustNext(t, q, 2)
	if err := d.DeadLetter(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	d = mustNext(t, q, 2)
	var st queue.Stats
	testkit.Eventually(t, 10*time.Second, "stats", func() bool {
		var err error
		st, err = q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return st.Jobs == 2
	})
	want := []queue.PartitionStats{
		{Partition: 0, Pending: 1},
		{Partition: 1},
		{Partition: 2, InFlight: 1},
	}
	if fmt.Sprint(st.Partitions) != fmt.Sprint(want) || st.DeadLetters != 1 {
		t.Errorf("Stats = %+v, want partitions %v and 1 dead letter", st, want)
	}
	if st.Oldest.IsZero() || time.Since(st.Oldest) > time.Minute || time.Since(st.Oldest) < 0 {
		t.Errorf("Stats.Oldest = %v, want the storing time of job s2", st.Oldest)
	}
	mustAck(t, d)
	d = mustNext(t, q, 0)
	mustAck(t, d)
	testkit.Eventually(t, 10*time.Second, "empty stream", func() bool {
		var err error
		st, err = q.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return st.Jobs == 0
	})
	if !st.Oldest.IsZero() {
		t.Errorf("Stats.Oldest of an empty stream = %v, want zero", st.Oldest)
	}
}

func TestPartitionCountChange(t *testing.T) {
	t.Parallel()
	q, b := setup(t, func(c *queue.Config) { c.Partitions = 4 })
	mustPublish(t, q, newJob("stranded", guidOnPartition(t, 3, 4)))

	var logs bytes.Buffer
	fewer := b.cfg
	fewer.Partitions = 2
	fewer.Logger = zerolog.New(&logs)
	mustOpen(t, b.nc, fewer)
	levels := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var entry struct{ Level, Consumer string }
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		levels[entry.Consumer] = entry.Level
	}
	if levels["groupsync-p03"] != "warn" || levels["groupsync-p02"] != "info" {
		t.Errorf("Open with fewer partitions logged %s; want a warning for groupsync-p03 (holds a job), info for groupsync-p02", logs.String())
	}

	more := b.cfg
	more.Partitions = 8
	q8 := mustOpen(t, b.nc, more)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for p := range 8 {
		if _, err := s.Consumer(ctx, fmt.Sprintf("groupsync-p%02d", p)); err != nil {
			t.Errorf("consumer %d after raising the count: %v", p, err)
		}
	}
	// The stranded job is still delivered to a worker using the former count,
	// or the new one.
	d := mustNext(t, q8, 3)
	if d.Job.ID != "stranded" {
		t.Errorf("Next(3) = %s, want stranded", d.Job.ID)
	}
	mustAck(t, d)
}

func TestNATSRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv)
	cfg := queue.Config{Partitions: 2, FetchWait: 200 * time.Millisecond, Logger: testLogger(t), JobKey: testKey, AppID: testAppID}
	q := mustOpen(t, nc, cfg)
	g := guidOnPartition(t, 1, 2)
	for i := range 5 {
		mustPublish(t, q, newJob(fmt.Sprintf("before-%d", i), g))
	}
	for i := range 2 {
		d := mustNext(t, q, 1)
		if d.Job.ID != fmt.Sprintf("before-%d", i) {
			t.Fatalf("Next = %s, want before-%d", d.Job.ID, i)
		}
		mustAck(t, d)
	}

	srv.Shutdown()
	testkit.Eventually(t, 10*time.Second, "publish failing with ErrUnavailable", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := q.Publish(ctx, newJob("while-down", g))
		if err == nil {
			t.Fatalf("Publish succeeded while NATS is down")
		}
		return errors.Is(err, queue.ErrUnavailable)
	})
	if err := q.Ping(context.Background()); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Ping while down = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := q.Next(ctx, 1)
	cancel()
	if err == nil {
		t.Fatalf("Next succeeded while NATS is down")
	}

	srv.Restart()
	testkit.Eventually(t, 10*time.Second, "publish succeeding after restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := q.Publish(ctx, newJob("after", g))
		return err == nil
	})
	var got []string
	for range 4 {
		d := mustNext(t, q, 1)
		got = append(got, d.Job.ID)
		mustAck(t, d)
	}
	if want := "before-2 before-3 before-4 after"; strings.Join(got, " ") != want {
		t.Errorf("delivered after restart: %v, want %s", got, want)
	}
	mustNotNext(t, q, 1, 300*time.Millisecond)
}
