package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/groupsync"
)

// Headers of a dead letter. The body of a dead letter is the job's body as it
// was queued, byte for byte.
const (
	// HeaderReason is why the job failed.
	HeaderReason = "Groupsync-Reason"
	// HeaderSubject is the partition subject the job was on.
	HeaderSubject = "Groupsync-Subject"
	// HeaderAttempts is how many deliveries the job had (NumDelivered).
	HeaderAttempts = "Groupsync-Attempts"
	// HeaderJobID is the job ID (for a malformed job, its Nats-Msg-Id).
	HeaderJobID = "Groupsync-Job-Id"
	// HeaderTrigger is the CometChat trigger of the job, when known.
	HeaderTrigger = "Groupsync-Trigger"
	// HeaderGUID is the group id of the job, when known.
	HeaderGUID = "Groupsync-Guid"
	// HeaderFailedAt is when the job was dead-lettered, RFC 3339 in UTC.
	HeaderFailedAt = "Groupsync-Failed-At"
	// HeaderStreamSeq is the job's sequence in the job stream.
	HeaderStreamSeq = "Groupsync-Stream-Seq"
	// HeaderMembers is how many members the event named, on a job refused
	// at intake.
	HeaderMembers = "Groupsync-Members"
	// HeaderRefused is "true" on a job refused at intake (RecordRefused):
	// it was never queued, and cannot be replayed.
	HeaderRefused = "Groupsync-Refused"
)

// maxHeaderValue caps a header value, so an enormous error message cannot
// make the dead letter too big to store.
const maxHeaderValue = 2048

// FailedJob is a dead-lettered job, as listed for operators
// (`groupsync jobs failed --json`).
type FailedJob struct {
	// ID is the job ID; Retry takes it.
	ID string `json:"id"`
	// Trigger is the CometChat trigger, empty for a malformed job.
	Trigger string `json:"trigger"`
	// GUID is the CometChat group id, empty for a malformed job.
	GUID string `json:"guid"`
	// Error is the reason the job was dead-lettered.
	Error string `json:"error"`
	// Attempts is how many deliveries the job had.
	Attempts int `json:"attempts"`
	// FailedAt is when the job was dead-lettered.
	FailedAt time.Time `json:"failed_at"`
	// Subject is the partition subject the job was on.
	Subject string `json:"subject"`
	// Seq is the dead letter's sequence in the dead-letter stream.
	Seq uint64 `json:"dlq_seq"`
	// Members is how many members the event named, for a job refused at
	// intake (0 otherwise).
	Members int `json:"members,omitempty"`
	// Refused reports a job refused at intake (too big to apply): it was
	// never queued and Retry will not replay it; repair the group with
	// reconcile once the cause is fixed, then purge it.
	Refused bool `json:"refused,omitempty"`
}

type deadLetterInfo struct {
	jobID     string
	trigger   string
	guid      string
	subject   string
	streamSeq uint64
	attempts  uint64
	reason    string
}

// deadLetter stores msg's body with info in the dead-letter stream, then
// terminates msg.
func (q *Queue) deadLetter(ctx context.Context, msg jetstream.Msg, info deadLetterInfo) error {
	if info.jobID == "" {
		info.jobID = fmt.Sprintf("%s-%d", q.cfg.Stream, info.streamSeq)
	}
	failedAt := now().UTC()
	hdr := nats.Header{}
	setHeader(hdr, HeaderReason, info.reason)
	setHeader(hdr, HeaderSubject, info.subject)
	setHeader(hdr, HeaderAttempts, strconv.FormatUint(info.attempts, 10))
	setHeader(hdr, HeaderJobID, info.jobID)
	setHeader(hdr, HeaderTrigger, info.trigger)
	setHeader(hdr, HeaderGUID, info.guid)
	setHeader(hdr, HeaderFailedAt, failedAt.Format(time.RFC3339Nano))
	setHeader(hdr, HeaderStreamSeq, strconv.FormatUint(info.streamSeq, 10))
	// The body's signature stays with it, so a retry queues it as signed
	// (or as unsigned) as it was.
	if sig := msg.Headers().Get(HeaderSignature); sig != "" {
		hdr.Set(HeaderSignature, sig)
	}
	dl := &nats.Msg{Subject: q.cfg.DeadLetterSubject, Data: msg.Data(), Header: hdr}

	op := fmt.Sprintf("dead-letter job %s (seq %d)", info.jobID, info.streamSeq)
	if err := q.connected(); err != nil {
		return wrap(op, err)
	}
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	// One dead letter per stored job, even if this is called again after a
	// failed Term.
	msgID := fmt.Sprintf("%s:%d", q.cfg.Stream, info.streamSeq)
	ack, err := q.js.PublishMsg(ctx, dl, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(q.cfg.DeadLetterStream))
	if err != nil {
		return wrap(op, err)
	}
	if err := msg.Term(); err != nil {
		return wrap(op+": term", err)
	}
	q.log.Error().
		Str("job_id", info.jobID).
		Str("group_id", info.guid).
		Str("trigger", info.trigger).
		Str("subject", info.subject).
		Uint64("stream_seq", info.streamSeq).
		Uint64("attempts", info.attempts).
		Uint64("dlq_seq", ack.Sequence).
		Str("reason", info.reason).
		Msg("job dead-lettered")
	return nil
}

// setHeader sets a one-line, bounded header value; empty values are left out.
func setHeader(h nats.Header, key, value string) {
	if value == "" {
		return
	}
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, value)
	if len(value) > maxHeaderValue {
		value = value[:maxHeaderValue]
	}
	h.Set(key, value)
}

// deadLetter is a stored dead letter.
type deadLetter struct {
	FailedJob
	data      []byte
	signature string
}

// Failed lists the dead-lettered jobs, oldest first. A job dead-lettered twice
// appears twice. Errors match ErrUnavailable when NATS cannot be reached.
func (q *Queue) Failed(ctx context.Context) ([]FailedJob, error) {
	dls, err := q.deadLetters(ctx)
	if err != nil {
		return nil, err
	}
	jobs := make([]FailedJob, len(dls))
	for i, dl := range dls {
		jobs[i] = dl.FailedJob
	}
	return jobs, nil
}

// deadLetters reads the whole dead-letter stream through an ephemeral
// consumer.
func (q *Queue) deadLetters(ctx context.Context) ([]deadLetter, error) {
	const op = "list dead letters"
	if err := q.connected(); err != nil {
		return nil, wrap(op, err)
	}
	s, err := q.js.Stream(ctx, q.cfg.DeadLetterStream)
	if err != nil {
		return nil, wrap(op, err)
	}
	state := s.CachedInfo().State
	dls := []deadLetter{}
	if state.Msgs == 0 {
		return dls, nil
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "groupsync dead-letter listing",
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	})
	if err != nil {
		return nil, wrap(op, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.cfg.PublishTimeout)
		defer cancel()
		if err := s.DeleteConsumer(ctx, c.CachedInfo().Name); err != nil {
			q.log.Debug().Err(err).Msg("ephemeral dead-letter consumer not deleted; it expires by itself")
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, wrap(op, err)
		}
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return nil, wrap(op, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			dls = append(dls, parseDeadLetter(m.Headers(), m.Data(), meta.Sequence.Stream))
			if meta.NumPending == 0 || meta.Sequence.Stream >= state.LastSeq {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, wrap(op, err)
		}
		if done || n == 0 {
			return dls, nil
		}
	}
}

func parseDeadLetter(h nats.Header, data []byte, seq uint64) deadLetter {
	attempts, _ := strconv.Atoi(h.Get(HeaderAttempts))
	members, _ := strconv.Atoi(h.Get(HeaderMembers))
	failedAt, _ := time.Parse(time.RFC3339Nano, h.Get(HeaderFailedAt))
	return deadLetter{
		FailedJob: FailedJob{
			ID:       h.Get(HeaderJobID),
			Trigger:  h.Get(HeaderTrigger),
			GUID:     h.Get(HeaderGUID),
			Error:    h.Get(HeaderReason),
			Attempts: attempts,
			FailedAt: failedAt,
			Subject:  h.Get(HeaderSubject),
			Seq:      seq,
			Members:  members,
			Refused:  h.Get(HeaderRefused) == "true",
		},
		data:      slices.Clone(data),
		signature: h.Get(HeaderSignature),
	}
}

// FailedJobBody returns the latest dead letter of job id and its body as it
// was queued, byte for byte (a job refused at intake has its envelope only).
// The body is the job's JSON, or the bytes of a malformed message: callers
// that show it must redact it first. The body's signature is never
// returned. An unknown id is a *JobNotFoundError (it matches
// ErrJobNotFound); errors match ErrUnavailable when NATS cannot be reached.
func (q *Queue) FailedJobBody(ctx context.Context, id string) (FailedJob, []byte, error) {
	dls, err := q.deadLetters(ctx)
	if err != nil {
		return FailedJob{}, nil, err
	}
	for i := len(dls) - 1; i >= 0; i-- {
		if dls[i].ID == id {
			return dls[i].FailedJob, dls[i].data, nil
		}
	}
	return FailedJob{}, nil, &JobNotFoundError{IDs: []string{id}}
}

// Retry puts the named dead-lettered jobs back on their partition subjects
// and removes them from the dead-letter stream, each only after JetStream
// stored its copy. A job dead-lettered more than once is retried once, from
// its latest dead letter, and all its dead letters are removed. The copy's
// Nats-Msg-Id is "<id>:retry:<dlq seq>": it never collides with the original
// within the duplicate window, and retrying the same dead letter twice (after
// an interrupted Retry) queues it once.
//
// The copy is the job's body byte for byte, with the signature it was
// queued with: Retry never vouches for a job itself, so a job dead-lettered
// as ReasonUnauthenticated comes back to the dead letters. A job whose
// signature a key of this Queue verifies is signed again with
// Config.JobKey, so jobs signed with a key being rotated out stay valid.
//
// If any id is unknown, Retry retries nothing and returns a *JobNotFoundError
// naming every unknown id (it matches ErrJobNotFound). It returns how many
// jobs were put back; on another error, some may have been. Errors match
// ErrUnavailable when NATS cannot be reached.
func (q *Queue) Retry(ctx context.Context, ids ...string) (int, error) {
	dls, err := q.deadLetters(ctx)
	if err != nil {
		return 0, err
	}
	byID := map[string][]deadLetter{}
	for _, dl := range dls {
		byID[dl.ID] = append(byID[dl.ID], dl)
	}
	var unknown, refused []string
	var todo []string
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		all, ok := byID[id]
		switch {
		case !ok:
			unknown = append(unknown, id)
		case all[len(all)-1].Refused:
			refused = append(refused, id)
		default:
			todo = append(todo, id)
		}
	}
	if len(unknown) > 0 {
		return 0, &JobNotFoundError{IDs: unknown}
	}
	if len(refused) > 0 {
		return 0, &NotReplayableError{IDs: refused}
	}
	return q.retry(ctx, byID, todo)
}

// RetryAll retries every dead-lettered job, as Retry does. It returns how many
// jobs were put back.
func (q *Queue) RetryAll(ctx context.Context) (int, error) {
	dls, err := q.deadLetters(ctx)
	if err != nil {
		return 0, err
	}
	byID := map[string][]deadLetter{}
	var ids []string
	for _, dl := range dls {
		if _, ok := byID[dl.ID]; !ok {
			ids = append(ids, dl.ID)
		}
		byID[dl.ID] = append(byID[dl.ID], dl)
	}
	ids = slices.DeleteFunc(ids, func(id string) bool {
		all := byID[id]
		return all[len(all)-1].Refused
	})
	return q.retry(ctx, byID, ids)
}

// RecordRefused stores job, which the intake refused to queue because it is
// too big to apply (members is how many members its event named), as a
// failed job with reason, so that operators see it in Failed. Only the
// job's envelope is kept: its members are dropped, so the record stays
// small. A record of a job with the same content key
// (groupsync.ContentKey of its ID) within the duplicate window, such as a
// CometChat retry, is stored once: duplicate reports it. Retry refuses such
// a job (*NotReplayableError) and RetryAll leaves it; Purge drops it.
// Errors match ErrFull when the dead-letter stream is full and
// ErrUnavailable when NATS cannot be reached.
func (q *Queue) RecordRefused(ctx context.Context, job groupsync.Job, members int, reason string) (duplicate bool, err error) {
	if job.ID == "" {
		return false, fmt.Errorf("%w: empty id (group %q)", ErrInvalidJob, job.Event.GUID)
	}
	op := "record refused job " + job.ID
	job.Event.Members = nil
	body, err := json.Marshal(job)
	if err != nil {
		return false, fmt.Errorf("queue: %s: encode: %w", op, err)
	}
	hdr := nats.Header{}
	setHeader(hdr, HeaderReason, reason)
	setHeader(hdr, HeaderAttempts, "0")
	setHeader(hdr, HeaderJobID, job.ID)
	setHeader(hdr, HeaderTrigger, string(job.Event.Trigger))
	setHeader(hdr, HeaderGUID, job.Event.GUID)
	setHeader(hdr, HeaderFailedAt, now().UTC().Format(time.RFC3339Nano))
	setHeader(hdr, HeaderMembers, strconv.Itoa(members))
	setHeader(hdr, HeaderRefused, "true")
	if err := q.connected(); err != nil {
		return false, wrap(op, err)
	}
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	dl := &nats.Msg{Subject: q.cfg.DeadLetterSubject, Data: body, Header: hdr}
	ack, err := q.js.PublishMsg(ctx, dl, jetstream.WithMsgID("refused:"+groupsync.ContentKey(job.ID)), jetstream.WithExpectStream(q.cfg.DeadLetterStream))
	if err != nil {
		return false, wrap(op, err)
	}
	q.log.Error().Str("job_id", job.ID).Str("group_id", job.Event.GUID).Str("trigger", string(job.Event.Trigger)).
		Int("members", members).Uint64("dlq_seq", ack.Sequence).Bool("duplicate", ack.Duplicate).Str("reason", reason).
		Msg("job refused at intake, recorded as failed")
	return ack.Duplicate, nil
}

func (q *Queue) retry(ctx context.Context, byID map[string][]deadLetter, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	s, err := q.js.Stream(ctx, q.cfg.DeadLetterStream)
	if err != nil {
		return 0, wrap("retry", err)
	}
	n := 0
	for _, id := range ids {
		all := byID[id]
		latest := all[len(all)-1] // listed in stream order
		msg := &nats.Msg{Subject: q.retrySubject(latest), Data: latest.data, Header: nats.Header{}}
		if q.authentic(latest.data, latest.signature) {
			msg.Header.Set(HeaderSignature, q.cfg.JobKey.Sign(latest.data))
		} else if latest.signature != "" {
			msg.Header.Set(HeaderSignature, latest.signature)
		}
		op := fmt.Sprintf("retry job %s (dlq seq %d)", id, latest.Seq)
		if _, err := q.publish(ctx, msg, fmt.Sprintf("%s:retry:%d", id, latest.Seq)); err != nil {
			return n, wrap(op, err)
		}
		for _, dl := range all {
			if err := s.DeleteMsg(ctx, dl.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
				return n, wrap(op+": remove dead letter", err)
			}
		}
		n++
		q.log.Info().Str("job_id", id).Str("group_id", latest.GUID).Str("subject", msg.Subject).
			Uint64("dlq_seq", latest.Seq).Msg("dead-lettered job queued again")
	}
	return n, nil
}

// retrySubject is the dead letter's original subject when it is a partition
// subject of the current configuration, else the partition of its group.
func (q *Queue) retrySubject(dl deadLetter) string {
	if rest, ok := strings.CutPrefix(dl.Subject, q.cfg.SubjectPrefix+"."); ok {
		if p, err := strconv.Atoi(rest); err == nil && p >= 0 && p < q.cfg.Partitions && q.Subject(p) == dl.Subject {
			return dl.Subject
		}
	}
	return q.Subject(Partition(dl.GUID, q.cfg.Partitions))
}

// Purge drops every dead letter stored when it starts and returns how many it
// dropped; dead letters added meanwhile are kept. Errors match ErrUnavailable
// when NATS cannot be reached.
func (q *Queue) Purge(ctx context.Context) (int, error) {
	const op = "purge dead letters"
	if err := q.connected(); err != nil {
		return 0, wrap(op, err)
	}
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	s, err := q.js.Stream(ctx, q.cfg.DeadLetterStream)
	if err != nil {
		return 0, wrap(op, err)
	}
	state := s.CachedInfo().State
	if state.Msgs == 0 {
		return 0, nil
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(state.LastSeq+1)); err != nil {
		return 0, wrap(op, err)
	}
	q.log.Info().Uint64("dead_letters", state.Msgs).Msg("dead letters purged")
	return int(state.Msgs), nil
}
