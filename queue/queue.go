package queue

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// consumerPrefix starts the name of every partition consumer; partition p is
// consumed by "groupsync-p<p>" (two digits at least, "groupsync-p03").
const consumerPrefix = "groupsync-p"

// Queue is the JetStream side of groupsync: it publishes jobs onto partition
// subjects, hands them out one at a time per partition, and keeps the jobs that
// failed for good. Its methods are safe for concurrent use, and any number of
// Queues, in any number of processes, may share the same streams and consumers.
type Queue struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config
	log zerolog.Logger

	consumers []jetstream.Consumer

	// drains tracks the goroutines that nak messages arriving for a Next
	// whose context has ended.
	drains sync.WaitGroup
}

// Open provisions the streams and consumers described by cfg on nc and returns
// a Queue using them. Provisioning is idempotent (create or update): opening
// twice, from one process or many, changes nothing the second time.
//
// It creates or updates the job stream (file storage, work-queue retention,
// the duplicate window, subjects "<SubjectPrefix>.*", MaxJobs, MaxJobBytes and
// MaxJobAge with discard-new), one durable pull consumer per partition
// (explicit ack, one unacknowledged job at a time), and the dead-letter
// stream (file storage, limits retention, DeadLetterMaxAge,
// DeadLetterMaxJobs and DeadLetterMaxBytes with discard-new).
// Consumers left over from a larger partition count are kept, and a warning is
// logged for each that still holds jobs (see the package doc).
//
// Both streams get Config.Replicas; a live stream with another count is
// changed in place, and a count JetStream refuses makes Open fail with a
// *ReplicasError (matching ErrInvalidConfig).
//
// Open does not take ownership of nc; close it after the Queue. Errors from an
// unreachable NATS match ErrUnavailable; a bad cfg is reported before any I/O.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Queue, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, errors.New("queue: open: nil nats connection")
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("queue: open: %w", err)
	}
	q := &Queue{nc: nc, js: js, cfg: cfg, log: cfg.Logger}
	if err := q.provision(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) provision(ctx context.Context) error {
	if _, err := q.ensureStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.Stream,
		Description: "groupsync jobs, one subject per ordering partition",
		Subjects:    []string{q.cfg.SubjectPrefix + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     q.cfg.MaxJobs,
		MaxBytes:    q.cfg.MaxJobBytes,
		MaxAge:      q.cfg.MaxJobAge,
		Duplicates:  q.cfg.DuplicateWindow,
		Replicas:    q.cfg.Replicas,
	}); err != nil {
		return err
	}
	dlqDup := DefaultDuplicateWindow
	if dlqDup > q.cfg.DeadLetterMaxAge {
		dlqDup = q.cfg.DeadLetterMaxAge
	}
	if _, err := q.ensureStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.DeadLetterStream,
		Description: "groupsync jobs that failed for good",
		Subjects:    []string{q.cfg.DeadLetterSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     q.cfg.DeadLetterMaxJobs,
		MaxBytes:    q.cfg.DeadLetterMaxBytes,
		MaxAge:      q.cfg.DeadLetterMaxAge,
		Duplicates:  dlqDup,
		Replicas:    q.cfg.Replicas,
	}); err != nil {
		return err
	}
	q.consumers = make([]jetstream.Consumer, q.cfg.Partitions)
	for p := range q.cfg.Partitions {
		name := consumerName(p)
		c, err := q.js.CreateOrUpdateConsumer(ctx, q.cfg.Stream, jetstream.ConsumerConfig{
			Durable:       name,
			Description:   fmt.Sprintf("groupsync partition %d", p),
			FilterSubject: q.Subject(p),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       q.cfg.AckWait,
			// One delivery more than workers get: Next dead-letters a job
			// whose last delivery was never settled.
			MaxDeliver:    q.cfg.MaxDeliver + 1,
			MaxAckPending: 1,
			ReplayPolicy:  jetstream.ReplayInstantPolicy,
		})
		if err != nil {
			return wrap("provision consumer "+name, err)
		}
		q.consumers[p] = c
	}
	return q.checkLeftovers(ctx)
}

// checkLeftovers warns about partition consumers beyond the configured count
// that still hold jobs.
func (q *Queue) checkLeftovers(ctx context.Context) error {
	stream, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		return wrap("provision: stream "+q.cfg.Stream, err)
	}
	names := stream.ConsumerNames(ctx)
	var leftovers []string
	for name := range names.Name() {
		p, ok := parseConsumerName(name)
		if ok && p >= q.cfg.Partitions {
			leftovers = append(leftovers, name)
		}
	}
	if err := names.Err(); err != nil {
		return wrap("provision: list consumers", err)
	}
	for _, name := range leftovers {
		c, err := stream.Consumer(ctx, name)
		if err != nil {
			return wrap("provision: consumer "+name, err)
		}
		info := c.CachedInfo()
		if info.NumPending > 0 || info.NumAckPending > 0 {
			q.log.Warn().
				Str("consumer", name).
				Uint64("pending", info.NumPending).
				Int("ack_pending", info.NumAckPending).
				Int("partitions", q.cfg.Partitions).
				Msg("consumer of a former partition still holds jobs; run workers with the former partition count until it is empty")
		} else {
			q.log.Info().Str("consumer", name).Int("partitions", q.cfg.Partitions).
				Msg("consumer of a former partition is empty and unused")
		}
	}
	return nil
}

func consumerName(p int) string {
	return fmt.Sprintf("%s%02d", consumerPrefix, p)
}

func parseConsumerName(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, consumerPrefix)
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(rest)
	if err != nil || p < 0 {
		return 0, false
	}
	return p, true
}

// Partition maps a group id onto one of n partitions: FNV-1a (32 bits) of the
// guid, modulo n. It is stable across processes, versions and restarts. It
// returns 0 when n < 1.
func Partition(guid string, n int) int {
	if n < 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(guid)) // never fails
	return int(h.Sum32() % uint32(n))
}

// Subject returns the subject of partition p, "<SubjectPrefix>.<p>".
func (q *Queue) Subject(p int) string {
	return q.cfg.SubjectPrefix + "." + strconv.Itoa(p)
}

// Partitions returns the configured number of partitions; valid partitions for
// Next are 0 to Partitions()-1.
func (q *Queue) Partitions() int {
	return q.cfg.Partitions
}

// MaxDeliver returns how many deliveries a worker gets for one job
// (Config.MaxDeliver). See Delivery.LastAttempt.
func (q *Queue) MaxDeliver() int {
	return q.cfg.MaxDeliver
}

// Config returns the configuration in use, defaults filled in.
func (q *Queue) Config() Config {
	return q.cfg
}

// Close waits for the background naks of messages that arrived after a Next
// had given up (at most Config.FetchWait plus a second). It does not close the
// NATS connection. Call it once every Next has returned.
func (q *Queue) Close() error {
	q.drains.Wait()
	return nil
}

// Ping checks that NATS is connected and that the job stream answers, for
// readiness probes. Errors match ErrUnavailable when NATS cannot be reached.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.connected(); err != nil {
		return wrap("ping", err)
	}
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	if _, err := q.js.Stream(ctx, q.cfg.Stream); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// PartitionStats describes the backlog of one partition.
type PartitionStats struct {
	// Partition is the partition number.
	Partition int `json:"partition"`
	// Pending is the number of jobs not yet delivered.
	Pending uint64 `json:"pending"`
	// InFlight is the number of jobs delivered and not yet settled (0 or 1).
	InFlight int `json:"in_flight"`
	// Redelivered is the number of in-flight jobs delivered more than once.
	Redelivered int `json:"redelivered"`
}

// Stats is a snapshot of the queue, for metrics and the command line.
type Stats struct {
	// Jobs is the number of jobs stored in the job stream.
	Jobs uint64 `json:"jobs"`
	// Partitions has one entry per configured partition, in order.
	Partitions []PartitionStats `json:"partitions"`
	// DeadLetters is the number of jobs in the dead-letter stream.
	DeadLetters uint64 `json:"dead_letters"`
	// Oldest is when the oldest job still in the job stream (waiting or
	// running) was stored; zero when the stream is empty.
	Oldest time.Time `json:"oldest,omitzero"`
}

// Stats reads the current backlog of every partition and the dead-letter
// count. Errors match ErrUnavailable when NATS cannot be reached.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	var st Stats
	s, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		return Stats{}, wrap("stats", err)
	}
	st.Jobs = s.CachedInfo().State.Msgs
	if st.Jobs > 0 {
		// Work-queue retention: settled jobs are gone, so the first stored
		// message is the oldest job not settled yet.
		st.Oldest = s.CachedInfo().State.FirstTime
	}
	st.Partitions = make([]PartitionStats, q.cfg.Partitions)
	for p, c := range q.consumers {
		info, err := c.Info(ctx)
		if err != nil {
			return Stats{}, wrap("stats: consumer "+consumerName(p), err)
		}
		st.Partitions[p] = PartitionStats{
			Partition:   p,
			Pending:     info.NumPending,
			InFlight:    info.NumAckPending,
			Redelivered: info.NumRedelivered,
		}
	}
	dlq, err := q.js.Stream(ctx, q.cfg.DeadLetterStream)
	if err != nil {
		return Stats{}, wrap("stats", err)
	}
	st.DeadLetters = dlq.CachedInfo().State.Msgs
	return st, nil
}

// connected returns nats.ErrDisconnected (or ErrConnectionClosed) when nc is
// not connected right now, so callers fail fast instead of waiting for a
// timeout.
func (q *Queue) connected() error {
	switch q.nc.Status() {
	case nats.CONNECTED, nats.DRAINING_SUBS:
		return nil
	case nats.CLOSED:
		return nats.ErrConnectionClosed
	default:
		return nats.ErrDisconnected
	}
}

// withTimeout applies Config.PublishTimeout to ctx when it has no deadline.
func (q *Queue) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, q.cfg.PublishTimeout)
}

// now is the clock of failed-at stamps.
var now = time.Now
