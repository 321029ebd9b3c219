package queue

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of AuditConfig.
const (
	DefaultAuditStream  = "GROUPSYNC_AUDIT"
	DefaultAuditSubject = "groupsync.audit"
	// DefaultAuditMaxAge is how long audit records are kept: 90 days.
	DefaultAuditMaxAge = 90 * 24 * time.Hour
	// DefaultHistoryLimit is how many records History returns when asked
	// for 0.
	DefaultHistoryLimit = 100
)

// AuditConfig configures the audit trail. Zero fields take the defaults
// named in their docs.
type AuditConfig struct {
	// Stream is the JetStream stream of the audit trail (default
	// "GROUPSYNC_AUDIT"), with limits retention: records stay until MaxAge,
	// whatever reads them.
	Stream string
	// SubjectPrefix starts the subjects of the records (default
	// "groupsync.audit"); a group's records are on
	// "<SubjectPrefix>.<base64url of the guid>", so one group's history is
	// read without scanning the others. It must not overlap the job or
	// dead-letter subjects.
	SubjectPrefix string
	// MaxAge is how long records are kept (default 90 days).
	MaxAge time.Duration
	// Replicas is the stream's replica count (use the job streams'
	// Config.Replicas); zero keeps the live stream's count, 1 for a new
	// stream.
	Replicas int
	// Timeout bounds each call when the caller's context has no deadline
	// (default DefaultPublishTimeout).
	Timeout time.Duration
	// ReadOnly opens the trail to read it without creating or changing the
	// stream (commands that only show history): a missing stream reads as
	// no records.
	ReadOnly bool
}

func (c AuditConfig) withDefaults() AuditConfig {
	if c.Stream == "" {
		c.Stream = DefaultAuditStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultAuditSubject
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultAuditMaxAge
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultPublishTimeout
	}
	return c
}

// validate reports every invalid field of a defaulted AuditConfig, joined.
func (c AuditConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := checkStream(c.Stream); err != nil {
		bad("Stream %q: %v", c.Stream, err)
	}
	if err := checkSubject(c.SubjectPrefix); err != nil {
		bad("SubjectPrefix %q: %v", c.SubjectPrefix, err)
	}
	if c.MaxAge < time.Minute {
		bad("MaxAge %v: want at least a minute", c.MaxAge)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		bad("Replicas %d: want 1 to 5 (0: keep)", c.Replicas)
	}
	if c.Timeout < 0 {
		bad("Timeout %v: must be positive", c.Timeout)
	}
	if len(errs) > 0 {
		return invalidf("queue: audit config: %v", errors.Join(errs...))
	}
	return nil
}

// AuditRecord is one change applied to a Virgil group, as the audit trail
// keeps it: one record per member and change (a group delete has no UID).
type AuditRecord struct {
	// GUID is the CometChat group id.
	GUID string `json:"guid"`
	// UID is the CometChat user the change concerns, "" for the whole group.
	UID string `json:"uid,omitempty"`
	// Action is the change applied to Virgil: create, add, ensure, remove,
	// delete, readd or retain (groupsync.Op).
	Action string `json:"action"`
	// Unknown counts, for a retain, the participants it removed that no
	// CometChat uid the job knew names (Virgil identities cannot be mapped
	// back to uids).
	Unknown int `json:"unknown,omitempty"`
	// Pending reports a member an add left out (no valid Virgil card yet):
	// the change did not give them the group's tickets.
	Pending bool `json:"pending,omitempty"`
	// PendingReason says why a pending member's card was refused, "" for
	// no card.
	PendingReason string `json:"pending_reason,omitempty"`
	// Trigger is the CometChat trigger of the event (or groupsync's own).
	Trigger string `json:"trigger"`
	// By is the CometChat uid that made the change, when the event names it.
	By string `json:"by,omitempty"`
	// EventAt is the event's time as CometChat wrote it, zero if unknown.
	EventAt time.Time `json:"event_at,omitzero"`
	// JobID is the job that applied the change.
	JobID string `json:"job_id"`
	// StreamSeq is the job's sequence in the job stream.
	StreamSeq uint64 `json:"stream_seq"`
	// Epoch is the group's newest Virgil epoch after the job (E3Kit counts
	// from 0), nil when unknown or the group no longer exists.
	Epoch *uint32 `json:"epoch,omitempty"`
	// Worker is the id of the worker process that applied it.
	Worker string `json:"worker"`
	// AppliedAt is when the job's changes were committed.
	AppliedAt time.Time `json:"applied_at"`
	// Seq is the record's sequence in the audit stream, set by History.
	Seq uint64 `json:"seq,omitempty"`
}

// Audit is the audit trail: an append-only JetStream stream of the changes
// workers applied to Virgil. It is safe for concurrent use.
type Audit struct {
	js  jetstream.JetStream
	cfg AuditConfig
}

// OpenAudit creates or updates the audit stream on nc (file storage, limits
// retention, MaxAge, Replicas, a two-minute duplicate window) and returns
// the trail. A replica count JetStream refuses is a *ReplicasError.
func OpenAudit(ctx context.Context, nc *nats.Conn, cfg AuditConfig) (*Audit, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, errors.New("queue: open audit: nil nats connection")
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("queue: open audit: %w", err)
	}
	a := &Audit{js: js, cfg: cfg}
	if cfg.ReadOnly {
		return a, nil
	}
	ctx, cancel := a.withTimeout(ctx)
	defer cancel()
	// Zero keeps the live stream's count, as for the job streams.
	if cfg.Replicas, err = StreamReplicas(ctx, js, cfg.Stream, cfg.Replicas); err != nil {
		return nil, fmt.Errorf("queue: open audit: %w", err)
	}
	a.cfg.Replicas = cfg.Replicas
	dup := min(DefaultDuplicateWindow, cfg.MaxAge)
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "groupsync audit trail: every change applied to Virgil groups",
		Subjects:    []string{cfg.SubjectPrefix + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		Duplicates:  dup,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		if rerr := ReplicasRefused(cfg.Stream, cfg.Replicas, err); rerr != err {
			return nil, rerr
		}
		return nil, wrap("provision stream "+cfg.Stream, err)
	}
	return a, nil
}

// Config returns the configuration in use, defaults filled in.
func (a *Audit) Config() AuditConfig { return a.cfg }

// subject is the subject of guid's records.
func (a *Audit) subject(guid string) string {
	return a.cfg.SubjectPrefix + "." + base64.RawURLEncoding.EncodeToString([]byte(guid))
}

func (a *Audit) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, a.cfg.Timeout)
}

// Append stores recs, in order. A read-only trail refuses. Each record's Nats-Msg-Id is its job id,
// stream sequence and position, so appending the same job's records again
// within two minutes stores them once. Errors match ErrUnavailable when
// NATS cannot be reached.
func (a *Audit) Append(ctx context.Context, recs []AuditRecord) error {
	if a.cfg.ReadOnly {
		return errors.New("queue: audit: append to a trail opened read-only")
	}
	ctx, cancel := a.withTimeout(ctx)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(recs))
	for i, r := range recs {
		if r.GUID == "" {
			return fmt.Errorf("queue: audit: record %d has no group id", i)
		}
		r.Seq = 0
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("queue: audit: encode record: %w", err)
		}
		msg := &nats.Msg{Subject: a.subject(r.GUID), Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%d:%d", r.JobID, r.StreamSeq, i))
		f, err := a.js.PublishMsgAsync(msg)
		if err != nil {
			return wrap("audit append", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return wrap("audit append", err)
		case <-ctx.Done():
			return wrap("audit append", ctx.Err())
		}
	}
	return nil
}

// History returns the last limit records of guid (DefaultHistoryLimit when
// limit is 0 or less), oldest first, each with its Seq. A group without
// records has none.
func (a *Audit) History(ctx context.Context, guid string, limit int) ([]AuditRecord, error) {
	recs, _, err := a.HistoryBefore(ctx, guid, 0, limit)
	return recs, err
}

// HistoryBefore returns the last limit records of guid whose Seq is below
// before (0: no bound, as History), oldest first, each with its Seq, and
// whether the trail holds older records of guid: then the first record's
// Seq is the before of the next older page. Pages read so never overlap,
// and from before 0 to the last one without older records they hold every
// record of guid the trail kept. It reads the group's records from the
// oldest up to before.
func (a *Audit) HistoryBefore(ctx context.Context, guid string, before uint64, limit int) ([]AuditRecord, bool, error) {
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	ctx, cancel := a.withTimeout(ctx)
	defer cancel()
	subj := a.subject(guid)
	s, err := a.js.Stream(ctx, a.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && a.cfg.ReadOnly {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("audit history", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, false, wrap("audit history", err)
	}
	total := info.State.Subjects[subj]
	if total == 0 {
		return nil, false, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}})
	if err != nil {
		return nil, false, wrap("audit history", err)
	}
	ring := make([]AuditRecord, 0, min(uint64(limit), total))
	var read uint64
	// past: a record at or after before was read; older: a record was
	// dropped from the front of the ring.
	var past, older bool
	for read < total {
		// Ask for no more than remain: a fetch returns once it has as many
		// messages as it asked for, or at its MaxWait.
		batch, err := c.Fetch(int(min(256, total-read)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, false, wrap("audit history", err)
		}
		got := 0
		done := false
		for m := range batch.Messages() {
			got++
			read++
			var seq uint64
			md, err := m.Metadata()
			if err == nil {
				seq = md.Sequence.Stream
				done = md.NumPending == 0
			}
			if before != 0 && seq >= before {
				// Sequences ascend: no record of the page is left. The
				// rest of the batch is drained, not kept.
				past = true
				continue
			}
			var r AuditRecord
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				return nil, false, fmt.Errorf("queue: audit history: record of %s: %w", guid, err)
			}
			r.Seq = seq
			if len(ring) == limit {
				copy(ring, ring[1:])
				ring = ring[:limit-1]
				older = true
			}
			ring = append(ring, r)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, false, wrap("audit history", err)
		}
		if done || past {
			break
		}
		if got == 0 {
			if ctx.Err() != nil {
				return nil, false, wrap("audit history", ctx.Err())
			}
			// Records older than MaxAge may have gone since Info.
			break
		}
	}
	return ring, older, nil
}
