package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/groupsync"
)

// Reasons Next gives when it dead-letters a message itself.
const (
	// ReasonMalformed is the dead-letter reason of a message whose body does
	// not decode as a Job with an ID.
	ReasonMalformed = "malformed job"
	// ReasonDeliveriesExhausted is the dead-letter reason of a job delivered
	// MaxDeliver times without being settled (the worker crashed or timed out
	// on its last attempt).
	ReasonDeliveriesExhausted = "delivery limit reached without a result"
)

// Delivery is one delivery of a job to a worker. Settle it exactly once with
// Ack, Nak, NakWithDelay or DeadLetter; InProgress may be called any number of
// times before. Until it is settled (or Config.AckWait passes without
// InProgress) its partition hands out nothing else.
type Delivery struct {
	// Job is the decoded job.
	Job groupsync.Job
	// Subject is the partition subject the job was published on.
	Subject string
	// Partition is the partition the job was delivered from.
	Partition int
	// StreamSeq is the job's sequence in the job stream.
	StreamSeq uint64
	// NumDelivered counts deliveries of this job, this one included (1 on
	// the first).
	NumDelivered uint64
	// Stored is when JetStream stored the job.
	Stored time.Time

	q   *Queue
	msg jetstream.Msg
	// ackAttempts counts the acknowledgements Ack sent.
	ackAttempts int
}

// LastAttempt reports whether this is the last delivery a worker gets
// (NumDelivered >= Queue.MaxDeliver()): a worker that fails now must
// DeadLetter the job rather than nak it.
func (d *Delivery) LastAttempt() bool {
	return d.NumDelivered >= uint64(d.q.cfg.MaxDeliver)
}

// Ack acknowledges the job and waits for JetStream to confirm, so the job is
// gone from the stream when Ack returns nil.
//
// Each attempt waits at most Config.AckTimeout. An attempt that times out or
// finds nobody answering (the consumer's leader died and another is being
// elected, or the connection is moving to another server) is sent again
// after a short jittered pause (100 ms, doubling up to 500 ms), so the new
// leader gets the acknowledgement as soon as it answers, until JetStream
// confirms, ctx ends, or Config.AckWait has passed since Ack began: by then
// JetStream hands the job out again anyway. Sending it again is harmless: a
// confirmation means the job is acknowledged, by this attempt or an earlier
// one. AckAttempts reports how many attempts were sent.
//
// Errors match ErrUnavailable when NATS could not confirm; the job is then
// redelivered after Config.AckWait, so a worker must recognise a job it
// already finished (docs/design.md, invariant 3).
func (d *Delivery) Ack(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.q.cfg.AckWait)
	defer cancel()
	pause := ackRetryInitial
	d.ackAttempts = 0
	for {
		d.ackAttempts++
		attempt, cancelAttempt := context.WithTimeout(ctx, d.q.cfg.AckTimeout)
		err := d.msg.DoubleAck(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		op := fmt.Sprintf("ack job %s (seq %d), %d attempts", d.Job.ID, d.StreamSeq, d.ackAttempts)
		if !retryableAck(err) || ctx.Err() != nil {
			return wrap(op, err)
		}
		wait := pause/2 + rand.N(pause/2+1)
		d.q.log.Debug().Err(err).Str("job_id", d.Job.ID).Uint64("stream_seq", d.StreamSeq).
			Int("attempt", d.ackAttempts).Dur("retry_in", wait).
			Msg("ack not confirmed, sending it again")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return wrap(op, err)
		case <-t.C:
		}
		pause = min(2*pause, ackRetryMax)
	}
}

// Bounds of the pause between two attempts of Ack, before jitter.
const (
	ackRetryInitial = 100 * time.Millisecond
	ackRetryMax     = 500 * time.Millisecond
)

// AckAttempts returns how many acknowledgements the last Ack sent: 1 when
// JetStream confirmed the first, more when attempts timed out or found no
// consumer leader. Call it after Ack has returned.
func (d *Delivery) AckAttempts() int {
	return d.ackAttempts
}

// retryableAck reports whether an acknowledgement that failed with err may
// succeed when sent again: it timed out, nobody answered, or the connection
// is between servers. A closed connection never recovers.
func retryableAck(err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) {
		return false
	}
	return isUnavailable(err)
}

// Nak hands the job back for immediate redelivery (for example on shutdown).
// It does not wait for a confirmation.
func (d *Delivery) Nak() error {
	if err := d.msg.Nak(); err != nil {
		return wrap(fmt.Sprintf("nak job %s (seq %d)", d.Job.ID, d.StreamSeq), err)
	}
	return nil
}

// NakWithDelay hands the job back to be redelivered after delay, for
// transient failures. The job keeps its place: its partition hands out nothing
// else until the redelivery (see the package doc on ordering), so keep delays
// short. It does not wait for a confirmation.
func (d *Delivery) NakWithDelay(delay time.Duration) error {
	if err := d.msg.NakWithDelay(delay); err != nil {
		return wrap(fmt.Sprintf("nak job %s (seq %d)", d.Job.ID, d.StreamSeq), err)
	}
	return nil
}

// InProgress tells JetStream the job is still being worked on, restarting its
// Config.AckWait. It does not wait for a confirmation.
func (d *Delivery) InProgress() error {
	if err := d.msg.InProgress(); err != nil {
		return wrap(fmt.Sprintf("in progress job %s (seq %d)", d.Job.ID, d.StreamSeq), err)
	}
	return nil
}

// DeadLetter moves the job to the dead-letter stream with reason (one line;
// line breaks are replaced), then terminates the delivery so it is never
// redelivered. The dead letter is stored before the job is removed: if
// DeadLetter fails the job stays in the job stream and is redelivered, and a
// second DeadLetter of the same delivery within two minutes is de-duplicated.
// Errors match ErrUnavailable when NATS cannot be reached.
func (d *Delivery) DeadLetter(ctx context.Context, reason string) error {
	return d.q.deadLetter(ctx, d.msg, deadLetterInfo{
		jobID:     d.Job.ID,
		trigger:   string(d.Job.Event.Trigger),
		guid:      d.Job.Event.GUID,
		subject:   d.Subject,
		streamSeq: d.StreamSeq,
		attempts:  d.NumDelivered,
		reason:    reason,
	})
}

// Next waits for the next job of partition p and returns its delivery. While a
// delivery of p is unsettled, Next(ctx, p) in any process waits, which gives
// one job at a time per partition; different partitions are independent.
//
// Next hands out only authenticated jobs: signed (HeaderSignature) with
// Config.JobKey or Config.PreviousJobKey, and of the app Config.AppID. It
// dead-letters by itself, and skips, any other message (reason
// ReasonUnauthenticated), a message that does not decode as a job (reason
// ReasonMalformed) and a job whose deliveries are exhausted
// (ReasonDeliveriesExhausted). Without Config.JobKey or Config.AppID it
// takes nothing and returns an error matching ErrNoJobKey.
//
// It returns ctx's error (wrapped) when ctx ends; a message arriving just after
// that is handed back with a nak in the background (see Close). It returns an
// error matching ErrInvalidPartition for p outside [0, Partitions), and one
// matching ErrUnavailable when NATS cannot be reached; callers back off and call
// again.
func (q *Queue) Next(ctx context.Context, p int) (*Delivery, error) {
	if p < 0 || p >= q.cfg.Partitions {
		return nil, fmt.Errorf("%w: %d (partitions: %d)", ErrInvalidPartition, p, q.cfg.Partitions)
	}
	if err := q.CheckJobAuth(); err != nil {
		return nil, fmt.Errorf("queue: next on partition %d: %w", p, err)
	}
	c := q.consumers[p]
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("queue: next on partition %d: %w", p, err)
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(q.cfg.FetchWait))
		if err != nil {
			return nil, wrap(fmt.Sprintf("next on partition %d", p), err)
		}
		var msg jetstream.Msg
		select {
		case m, ok := <-batch.Messages():
			if !ok {
				if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
					return nil, wrap(fmt.Sprintf("next on partition %d", p), err)
				}
				continue
			}
			msg = m
			if ctx.Err() != nil {
				// The caller is gone: hand the job back at once.
				_ = msg.Nak()
				return nil, fmt.Errorf("queue: next on partition %d: %w", p, ctx.Err())
			}
		case <-ctx.Done():
			q.drain(batch)
			return nil, fmt.Errorf("queue: next on partition %d: %w", p, ctx.Err())
		}
		d, err := q.delivery(ctx, p, msg)
		if err != nil {
			return nil, err
		}
		if d != nil {
			return d, nil
		}
	}
}

// drain naks, in the background, whatever an abandoned fetch still receives,
// so the partition is not blocked until AckWait.
func (q *Queue) drain(batch jetstream.MessageBatch) {
	q.drains.Add(1)
	go func() {
		defer q.drains.Done()
		for m := range batch.Messages() {
			if err := m.Nak(); err != nil {
				q.log.Warn().Err(err).Str("subject", m.Subject()).Msg("nak of a late message failed; it is redelivered after the ack wait")
			}
		}
	}()
}

// delivery turns msg into a Delivery, or dead-letters it and returns nil, nil.
func (q *Queue) delivery(ctx context.Context, p int, msg jetstream.Msg) (*Delivery, error) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to settle.
		q.log.Error().Err(err).Int("partition", p).Msg("message without jetstream metadata skipped")
		return nil, nil
	}
	d := &Delivery{
		Subject:      msg.Subject(),
		Partition:    p,
		StreamSeq:    meta.Sequence.Stream,
		NumDelivered: meta.NumDelivered,
		Stored:       meta.Timestamp,
		q:            q,
		msg:          msg,
	}
	info := deadLetterInfo{
		subject:   d.Subject,
		streamSeq: d.StreamSeq,
		attempts:  d.NumDelivered,
	}
	authentic := q.authentic(msg.Data(), msg.Headers().Get(HeaderSignature))
	err = json.Unmarshal(msg.Data(), &d.Job)
	malformed := err != nil || d.Job.ID == ""
	if !authentic || (!malformed && d.Job.Event.AppID != q.cfg.AppID) {
		// Whatever the body says is unverified: it only labels the dead
		// letter for operators.
		info.jobID = d.Job.ID
		if info.jobID == "" {
			info.jobID = msg.Headers().Get(jetstream.MsgIDHeader)
		}
		info.trigger = string(d.Job.Event.Trigger)
		info.guid = d.Job.Event.GUID
		info.reason = ReasonUnauthenticated
		why := "no valid signature"
		if authentic {
			why = "signed for another app id"
		}
		q.log.Error().Int("partition", p).Uint64("stream_seq", d.StreamSeq).Str("why", why).
			Msg("unauthenticated job, dead-lettering it unapplied")
	} else if malformed {
		info.jobID = msg.Headers().Get(jetstream.MsgIDHeader)
		info.reason = ReasonMalformed
		if err == nil {
			err = errors.New("empty job id")
		}
		q.log.Error().Err(err).Int("partition", p).Uint64("stream_seq", d.StreamSeq).
			Msg("malformed job, dead-lettering it")
	} else if meta.NumDelivered > uint64(q.cfg.MaxDeliver) {
		info.jobID = d.Job.ID
		info.trigger = string(d.Job.Event.Trigger)
		info.guid = d.Job.Event.GUID
		info.attempts = uint64(q.cfg.MaxDeliver)
		info.reason = ReasonDeliveriesExhausted
	} else {
		return d, nil
	}
	if err := q.deadLetter(ctx, msg, info); err != nil {
		// Try again soon rather than after the ack wait.
		_ = msg.NakWithDelay(time.Second)
		return nil, err
	}
	return nil, nil
}
