package worker

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// Auditor keeps the audit trail of the changes the pool applied to Virgil
// (*queue.Audit implements it).
type Auditor interface {
	// Append stores the records of one job, in order. Appending the same
	// job's records again shortly after stores them once.
	Append(ctx context.Context, recs []queue.AuditRecord) error
}

// Epochs is implemented by Virgil ports that can tell a group's newest
// epoch (*VirgilGroups); the audit records carry it when they can.
type Epochs interface {
	// Epoch returns the newest epoch of guid; exists is false when the
	// group does not exist in Virgil. A port that read or wrote the group
	// at or after since (the job's own steps, under its lease) answers
	// from that without asking Virgil again.
	Epoch(ctx context.Context, guid string, since time.Time) (epoch uint32, exists bool, err error)
}

// Epoch implements Epochs.
func (g *VirgilGroups) Epoch(ctx context.Context, guid string, since time.Time) (uint32, bool, error) {
	if epoch, exists, ok := g.owner.KnownEpoch(g.ids.Group(guid), since); ok {
		return epoch, exists, nil
	}
	st, err := g.owner.State(ctx, g.ids.Group(guid))
	if err != nil {
		return 0, false, classify("read state of", guid, err)
	}
	return st.Latest, st.Exists, nil
}

// auditRecords lists the changes plan applied, one record per member and
// step (none for a step without members but a delete), with the pending
// members of next marked; a retain step is one record, and only when it
// removed participants (unknown of them).
func auditRecords(job groupsync.Job, seq uint64, plan groupsync.Plan, next groupsync.GroupState, worker string, epoch *uint32, at time.Time, unknown int) []queue.AuditRecord {
	base := queue.AuditRecord{
		GUID: job.Event.GUID, Trigger: string(job.Event.Trigger), By: job.Event.By,
		JobID: job.ID, StreamSeq: seq, Epoch: epoch, Worker: worker, AppliedAt: at.UTC(),
	}
	if t := eventTime(job.Event); t != 0 {
		base.EventAt = time.Unix(t, 0).UTC()
	}
	var recs []queue.AuditRecord
	for _, s := range plan.Steps {
		if s.Op == groupsync.OpRetain {
			if unknown > 0 {
				r := base
				r.Action, r.Unknown = string(s.Op), unknown
				recs = append(recs, r)
			}
			continue
		}
		if len(s.UIDs) == 0 {
			if s.Op == groupsync.OpDelete || s.Op == groupsync.OpCreate {
				r := base
				r.Action = string(s.Op)
				recs = append(recs, r)
			}
			continue
		}
		for _, uid := range s.UIDs {
			r := base
			r.Action, r.UID = string(s.Op), uid
			if m := next.Members[uid]; m.Stamp.Seq == seq && m.Stamp.At != 0 {
				r.EventAt = time.Unix(m.Stamp.At, 0).UTC()
			}
			switch s.Op {
			case groupsync.OpCreate, groupsync.OpAdd, groupsync.OpEnsure:
				if m := next.Members[uid]; m.In && m.Pending {
					r.Pending, r.PendingReason = true, m.PendingReason
				}
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// eventTime is the event's time in CometChat's body, 0 if unknown: the
// group's updatedAt, else for a creation its createdAt. A member's record
// takes the time that decided the member instead when the job decided it.
func eventTime(ev groupsync.Event) int64 {
	if ev.UpdatedAt != 0 {
		return ev.UpdatedAt
	}
	if ev.Action == groupsync.ActionCreate {
		return ev.CreatedAt
	}
	return 0
}

// audit appends the changes of a committed job to the audit trail. The
// changes are applied and committed by then, so a failure is logged, not
// retried by redelivery.
func (p *Pool) audit(ctx context.Context, d *queue.Delivery, plan groupsync.Plan, next groupsync.GroupState, since time.Time, unknown int, log zerolog.Logger) {
	if p.cfg.Audit == nil || len(plan.Steps) == 0 {
		return
	}
	var epoch *uint32
	if e, ok := p.v.(Epochs); ok {
		if n, exists, err := e.Epoch(ctx, d.Job.Event.GUID, since); err == nil && exists {
			epoch = &n
		} else if err != nil {
			log.Warn().Err(err).Msg("reading the group's epoch for the audit trail failed")
		}
	}
	recs := auditRecords(d.Job, d.StreamSeq, plan, next, p.cfg.WorkerID, epoch, time.Now(), unknown)
	err := p.retry(ctx, log, "audit append", func() error { return p.cfg.Audit.Append(ctx, recs) })
	if err != nil {
		p.metrics.audits.WithLabelValues("failed").Inc()
		log.Error().Err(err).Int("records", len(recs)).Msg("appending the job's changes to the audit trail failed")
		return
	}
	p.metrics.audits.WithLabelValues("appended").Inc()
}
