package queue

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults for the zero-value fields of Config.
const (
	DefaultStream            = "GROUPSYNC"
	DefaultDeadLetterStream  = "GROUPSYNC_DLQ"
	DefaultSubjectPrefix     = "groupsync.jobs"
	DefaultDeadLetterSubject = "groupsync.dlq"
	DefaultPartitions        = 16
	DefaultDuplicateWindow   = 2 * time.Minute
	DefaultAckWait           = 10 * time.Second
	DefaultMaxDeliver        = 50
	DefaultDeadLetterMaxAge  = 30 * 24 * time.Hour
	DefaultReplicas          = 1
	DefaultPublishTimeout    = 5 * time.Second
	DefaultAckTimeout        = time.Second
	DefaultFetchWait         = 5 * time.Second
	// DefaultMaxJobs bounds the job stream's messages: a million jobs, far
	// more than any backlog workers can still catch up on.
	DefaultMaxJobs = 1_000_000
	// DefaultMaxJobBytes bounds the job stream's size (1 GiB; a job is
	// about 0.5 to 10 KiB).
	DefaultMaxJobBytes = 1 << 30
	// DefaultDeadLetterMaxJobs bounds the dead-letter stream's messages.
	DefaultDeadLetterMaxJobs = 100_000
	// DefaultDeadLetterMaxBytes bounds the dead-letter stream's size (256 MiB).
	DefaultDeadLetterMaxBytes = 256 << 20
	// DefaultFillThreshold is the fill (of messages or bytes) of either
	// stream above which CheckFill reports the queue as filling up.
	DefaultFillThreshold = 0.9
)

// MaxPartitions is the largest Config.Partitions accepted.
const MaxPartitions = 1024

// Config configures a Queue. Zero fields take the defaults named in their
// docs; Open fills them in, then validates the result.
type Config struct {
	// Stream is the JetStream stream carrying jobs (default "GROUPSYNC").
	// It has work-queue retention: a job is removed once acknowledged or
	// terminated.
	Stream string
	// DeadLetterStream is the stream holding jobs that failed for good
	// (default "GROUPSYNC_DLQ"), with limits retention and DeadLetterMaxAge.
	DeadLetterStream string
	// SubjectPrefix is the prefix of the partition subjects (default
	// "groupsync.jobs"); partition p is "<SubjectPrefix>.<p>" and the stream
	// captures "<SubjectPrefix>.*".
	SubjectPrefix string
	// DeadLetterSubject is the subject dead letters are published on
	// (default "groupsync.dlq"). It must not fall under SubjectPrefix.
	DeadLetterSubject string
	// Partitions is the number of ordering partitions (default 16, at most
	// MaxPartitions). A group's jobs always land on the same partition and
	// each partition hands out one job at a time. All processes sharing a
	// stream must use the same count; see the package doc on changing it.
	Partitions int
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id to drop
	// a second publish of the same job (default 2 minutes; CometChat retries
	// within 30 seconds).
	DuplicateWindow time.Duration
	// AckWait is how long a delivered job may stay unacknowledged before
	// JetStream redelivers it (default 10 seconds). Long jobs call
	// Delivery.InProgress to extend it. It is also how long the job of a
	// worker that died holds up its partition.
	AckWait time.Duration
	// MaxDeliver is how many deliveries a worker gets for one job (default
	// 50). A worker that fails on the delivery for which
	// Delivery.LastAttempt reports true must dead-letter the job. The
	// consumers allow one delivery more, which Next uses to dead-letter a job
	// whose last delivery was never settled (the worker crashed or timed out),
	// so no job is ever left stuck in the stream.
	MaxDeliver int
	// DeadLetterMaxAge is how long dead letters are kept (default 30 days).
	DeadLetterMaxAge time.Duration
	// MaxJobs and MaxJobBytes bound the job stream (defaults
	// DefaultMaxJobs and DefaultMaxJobBytes; -1 for no limit). A full stream
	// refuses new jobs (Publish fails with ErrFull) rather than dropping old
	// ones.
	MaxJobs, MaxJobBytes int64
	// MaxJobAge, when positive, is how long a job may wait in the job
	// stream before JetStream drops it. The default, 0, keeps jobs until
	// they are applied or dead-lettered: an accepted job is a promise.
	MaxJobAge time.Duration
	// DeadLetterMaxJobs and DeadLetterMaxBytes bound the dead-letter stream
	// (defaults DefaultDeadLetterMaxJobs and DefaultDeadLetterMaxBytes; -1
	// for no limit). A full dead-letter stream refuses new dead letters:
	// the failed job then stays in the job stream, redelivered later.
	DeadLetterMaxJobs, DeadLetterMaxBytes int64
	// FillThreshold is the fill of either stream, from 0 to 1, above which
	// CheckFill fails (default DefaultFillThreshold), so that readiness
	// degrades before the streams refuse work.
	FillThreshold float64
	// Replicas is the replica count of both streams (1 to 5; 3 on a
	// clustered JetStream). Open changes the streams of a live deployment
	// to it in place; see ReplicasError for when JetStream refuses. Zero
	// keeps the count a live stream has and creates new streams with
	// DefaultReplicas, so a process that was not told the count (a one-off
	// command) never changes it.
	Replicas int
	// JobKey signs every job Publish queues and verifies every job Next hands
	// out (HMAC-SHA256, at least MinJobKeyLen bytes; see HeaderSignature).
	// Without it Publish and Next refuse to work (ErrNoJobKey); listing,
	// retrying and purging dead letters need no key.
	JobKey JobKey
	// PreviousJobKey is a second key Next accepts but nothing signs with,
	// so the key can be rotated without stopping anything (see the package
	// doc). Empty: only JobKey is accepted.
	PreviousJobKey JobKey
	// AppID is the CometChat app id of this deployment. Publish stamps it
	// on a job without one and refuses a job of another app (ErrInvalidJob);
	// Next dead-letters a job of another app as ReasonUnauthenticated, and
	// refuses to work without AppID.
	AppID string
	// PublishTimeout bounds Publish, Ping and the other calls to JetStream
	// when the caller's context has no deadline (default 5 seconds).
	PublishTimeout time.Duration
	// AckTimeout bounds one attempt of Delivery.Ack to have JetStream
	// confirm an acknowledgement (default 1 second); Ack sends it again
	// after an attempt that timed out or found no consumer leader, within
	// AckWait. Well under AckWait, so that a new consumer leader elected
	// after a node died gets the acknowledgement soon after it answers.
	AckTimeout time.Duration
	// FetchWait is how long one pull request of Next waits on the server
	// before Next asks again (default 5 seconds). It also bounds how long a
	// message that arrives just after Next's context ended waits before it is
	// handed back with a nak.
	FetchWait time.Duration
	// Logger receives the queue's logs. The zero value logs nothing.
	Logger zerolog.Logger
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = DefaultDeadLetterStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.DeadLetterSubject == "" {
		c.DeadLetterSubject = DefaultDeadLetterSubject
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.FetchWait == 0 {
		c.FetchWait = DefaultFetchWait
	}
	if c.MaxJobs == 0 {
		c.MaxJobs = DefaultMaxJobs
	}
	if c.MaxJobBytes == 0 {
		c.MaxJobBytes = DefaultMaxJobBytes
	}
	if c.DeadLetterMaxJobs == 0 {
		c.DeadLetterMaxJobs = DefaultDeadLetterMaxJobs
	}
	if c.DeadLetterMaxBytes == 0 {
		c.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	if c.FillThreshold == 0 {
		c.FillThreshold = DefaultFillThreshold
	}
	return c
}

// validate reports every invalid field of a defaulted Config, joined.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, s := range []struct{ field, name string }{
		{"Stream", c.Stream},
		{"DeadLetterStream", c.DeadLetterStream},
	} {
		if err := checkStream(s.name); err != nil {
			bad("%s %q: %v", s.field, s.name, err)
		}
	}
	if c.Stream == c.DeadLetterStream {
		bad("Stream and DeadLetterStream are both %q", c.Stream)
	}
	for _, s := range []struct{ field, subject string }{
		{"SubjectPrefix", c.SubjectPrefix},
		{"DeadLetterSubject", c.DeadLetterSubject},
	} {
		if err := checkSubject(s.subject); err != nil {
			bad("%s %q: %w", s.field, s.subject, err)
		}
	}
	if c.DeadLetterSubject == c.SubjectPrefix || strings.HasPrefix(c.DeadLetterSubject, c.SubjectPrefix+".") {
		bad("DeadLetterSubject %q falls under SubjectPrefix %q", c.DeadLetterSubject, c.SubjectPrefix)
	}
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		bad("Partitions %d: want 1 to %d", c.Partitions, MaxPartitions)
	}
	if c.MaxDeliver < 1 {
		bad("MaxDeliver %d: want at least 1", c.MaxDeliver)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("Replicas %d: want 1 to 5 (0: keep)", c.Replicas)
	}
	errs = append(errs, c.validateKeys()...)
	for _, d := range []struct {
		field string
		d     time.Duration
	}{
		{"DuplicateWindow", c.DuplicateWindow},
		{"AckWait", c.AckWait},
		{"DeadLetterMaxAge", c.DeadLetterMaxAge},
		{"PublishTimeout", c.PublishTimeout},
		{"AckTimeout", c.AckTimeout},
	} {
		if d.d < 0 {
			bad("%s %v: must be positive", d.field, d.d)
		}
	}
	for _, l := range []struct {
		field string
		n     int64
	}{
		{"MaxJobs", c.MaxJobs},
		{"MaxJobBytes", c.MaxJobBytes},
		{"DeadLetterMaxJobs", c.DeadLetterMaxJobs},
		{"DeadLetterMaxBytes", c.DeadLetterMaxBytes},
	} {
		if l.n < -1 {
			bad("%s %d: want a positive limit or -1 for none", l.field, l.n)
		}
	}
	if c.MaxJobAge < 0 {
		bad("MaxJobAge %v: must not be negative", c.MaxJobAge)
	}
	if c.FillThreshold <= 0 || c.FillThreshold > 1 {
		bad("FillThreshold %v: want more than 0 and at most 1", c.FillThreshold)
	}
	if c.FetchWait < 100*time.Millisecond {
		bad("FetchWait %v: want at least 100ms", c.FetchWait)
	}
	if len(errs) > 0 {
		return invalidf("queue: config: %v", errors.Join(errs...))
	}
	return nil
}

// checkStream accepts a JetStream stream name: not empty, and without
// whitespace or the characters NATS reserves in names.
func checkStream(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") {
		return errors.New("a stream name cannot be empty or contain whitespace, '.', '*', '>', '/' or '\\'")
	}
	return nil
}

// checkSubject accepts literal subjects of non-empty dot-separated tokens.
func checkSubject(s string) error {
	if strings.ContainsAny(s, " \t\r\n*>") {
		return fmt.Errorf("subject cannot contain whitespace or wildcards")
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("empty subject token")
		}
	}
	return nil
}
