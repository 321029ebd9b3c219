package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/groupsync"
)

// PublishResult is what JetStream answered to a Publish.
type PublishResult struct {
	// Seq is the stream sequence of the job; for a duplicate, the sequence of
	// the first copy.
	Seq uint64
	// Duplicate reports that the same job ID was published within the
	// duplicate window and this copy was dropped.
	Duplicate bool
	// Partition is the partition the job went to.
	Partition int
}

// Publish queues job on the partition of its group (job.Event.GUID) and waits
// for JetStream to store it. The body is the job as JSON, signed with
// Config.JobKey (HeaderSignature), and the Nats-Msg-Id is job.ID, so a
// second publish of the same job within the duplicate window is dropped by
// JetStream and reported with Duplicate set. A job without an app id gets
// Config.AppID.
//
// Publish waits until ctx ends, or Config.PublishTimeout when ctx has no
// deadline. It returns an error matching ErrNoJobKey without Config.JobKey,
// one matching ErrInvalidJob for a job without an ID or of another app id
// than Config.AppID, and one matching ErrUnavailable when NATS is not connected, does not
// answer in time or has no stream listening; only a nil error means the job is
// stored. It is safe for concurrent use.
func (q *Queue) Publish(ctx context.Context, job groupsync.Job) (PublishResult, error) {
	if job.ID == "" {
		return PublishResult{}, fmt.Errorf("%w: empty id (group %q)", ErrInvalidJob, job.Event.GUID)
	}
	if len(q.cfg.JobKey) == 0 {
		return PublishResult{}, fmt.Errorf("%w: publish job %s", ErrNoJobKey, job.ID)
	}
	switch {
	case job.Event.AppID == "":
		job.Event.AppID = q.cfg.AppID
	case q.cfg.AppID != "" && job.Event.AppID != q.cfg.AppID:
		return PublishResult{}, fmt.Errorf("%w: job %s is for app %q, this queue serves %q", ErrInvalidJob, job.ID, job.Event.AppID, q.cfg.AppID)
	}
	body, err := json.Marshal(job)
	if err != nil {
		return PublishResult{}, fmt.Errorf("queue: publish job %s: encode: %w", job.ID, err)
	}
	p := Partition(job.Event.GUID, q.cfg.Partitions)
	msg := &nats.Msg{Subject: q.Subject(p), Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderSignature, q.cfg.JobKey.Sign(body))
	ack, err := q.publish(ctx, msg, job.ID)
	if err != nil {
		return PublishResult{}, wrap("publish job "+job.ID, err)
	}
	return PublishResult{Seq: ack.Sequence, Duplicate: ack.Duplicate, Partition: p}, nil
}

// Enqueue is Publish for callers that only need to know whether the job was a
// duplicate; it satisfies the webhook package's Enqueuer. Errors are those of
// Publish.
func (q *Queue) Enqueue(ctx context.Context, job groupsync.Job) (duplicate bool, err error) {
	res, err := q.Publish(ctx, job)
	return res.Duplicate, err
}

// publish sends msg with the given Nats-Msg-Id into the job stream and waits
// for the PubAck.
func (q *Queue) publish(ctx context.Context, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	if err := q.connected(); err != nil {
		return nil, err
	}
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	return q.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(msgID),
		jetstream.WithExpectStream(q.cfg.Stream))
}
