package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
)

// ReasonUnconfirmed starts the dead-letter reason of a membership change
// that needed checking with CometChat (it was stored around a loss of the
// store's data) when the pool has no Reconciler.
const ReasonUnconfirmed = "unconfirmed after a loss of the store's data"

// ReasonNoReconciler is the warning of a pool without a Reconciler, logged at
// start and reported by Degraded.
const ReasonNoReconciler = "no CometChat API key: reconcile jobs, and membership changes after a loss of the store's data, cannot be checked with CometChat and are dead-lettered"

// errUnconfirmed is the cause of dead-lettering such a change.
var errUnconfirmed = errors.New(ReasonUnconfirmed)

// MemberCounter is implemented by a Reconciler that can read a group's
// member count alone, so that groups past E3Kit's limit fail before their
// members are paged.
type MemberCounter interface {
	// MemberCount returns how many members the group has, and exists false
	// when the group no longer exists in CometChat.
	MemberCount(ctx context.Context, guid string) (n int, exists bool, err error)
}

// lossState is what a pool knows of the store's marker.
type lossState struct {
	mu     sync.Mutex
	known  bool      // mark was checked against the store (and Meta)
	mark   string    // the store's marker
	lossAt time.Time // when a loss of the store's data was detected, zero if never
}

func newMark() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// checkStore compares the store's marker with the one the pool knows. A
// marker that vanished or changed means the store lost its data: the pool
// writes a new one, records the loss in Meta (or adopts the loss another
// worker recorded), and from then on checks the membership changes of jobs
// stored until LossWindow after it with CometChat. The first call also
// tells a new store (no marker, none recorded) from a lost one (none, but
// one recorded in Meta).
func (p *Pool) checkStore(ctx context.Context) error {
	mark, err := p.store.Marker(ctx)
	if err != nil {
		return err
	}
	p.loss.mu.Lock()
	defer p.loss.mu.Unlock()
	if p.loss.known && mark != "" && mark == p.loss.mark {
		return nil
	}
	var rec StoreEpoch
	var recorded bool
	if p.cfg.Meta != nil {
		if rec, recorded, err = p.cfg.Meta.StoreEpoch(ctx); err != nil {
			return err
		}
	}
	lost := p.loss.known || (recorded && rec.Marker != mark)
	if mark == "" {
		if mark, err = p.store.InitMarker(ctx, newMark()); err != nil {
			return err
		}
	}
	switch {
	case recorded && rec.Marker == mark:
		// Known to the workers already: a loss another worker recorded, or
		// none at all.
		p.loss.lossAt = rec.LossAt
		if lost && !rec.LossAt.IsZero() {
			p.lossFound(rec.LossAt)
		}
	case lost:
		now := time.Now()
		if p.cfg.Meta != nil {
			if err := p.cfg.Meta.SetStoreEpoch(ctx, StoreEpoch{Marker: mark, LossAt: now}); err != nil {
				return err
			}
		}
		p.loss.lossAt = now
		p.lossFound(now)
	case p.cfg.Meta != nil:
		if err := p.cfg.Meta.SetStoreEpoch(ctx, StoreEpoch{Marker: mark}); err != nil {
			return err
		}
	}
	p.loss.known, p.loss.mark = true, mark
	return nil
}

func (p *Pool) lossFound(at time.Time) {
	p.metrics.losses.Inc()
	p.log.Error().Time("loss_at", at).Time("check_until", at.Add(p.cfg.LossWindow)).Bool("checked_with_cometchat", p.cfg.Reconciler != nil).
		Msg("the store lost its data: membership changes of jobs stored until check_until are checked with CometChat")
}

// guarded reports whether a job stored at stored may predate a loss of the
// store's data, so its membership changes must be checked with CometChat.
func (p *Pool) guarded(stored time.Time) bool {
	p.loss.mu.Lock()
	defer p.loss.mu.Unlock()
	return !p.loss.lossAt.IsZero() && stored.Before(p.loss.lossAt.Add(p.cfg.LossWindow))
}

// LossAt returns when the pool last found the store's data lost (zero if
// never).
func (p *Pool) LossAt() time.Time {
	p.loss.mu.Lock()
	defer p.loss.mu.Unlock()
	return p.loss.lossAt
}

// Degraded returns why the pool works with less safety than it should, for
// readiness reports; nil when nothing is missing.
func (p *Pool) Degraded() []string {
	if p.cfg.Reconciler == nil {
		return []string{ReasonNoReconciler}
	}
	return nil
}

// needsConfirm reports whether plan changes membership on the word of an
// event (not a reconcile, not a card check).
func needsConfirm(job groupsync.Job, plan groupsync.Plan) bool {
	if job.Event.Trigger == groupsync.TriggerCardCheck || plan.Reconcile {
		return false
	}
	for _, s := range plan.Steps {
		switch s.Op {
		case groupsync.OpCreate, groupsync.OpAdd, groupsync.OpEnsure, groupsync.OpRemove:
			return true
		}
	}
	return false
}

// confirm limits the plan of a job stored around a loss of the store's data
// to what CometChat confirms.
func (p *Pool) confirm(ctx context.Context, d *queue.Delivery, next groupsync.GroupState, plan groupsync.Plan) (groupsync.GroupState, groupsync.Plan, error) {
	if p.cfg.Reconciler == nil {
		return next, plan, groupsync.Permanent(errUnconfirmed)
	}
	snap, err := p.snapshot(ctx, d.Job.Event.GUID)
	if err != nil {
		return next, plan, fmt.Errorf("worker: confirm with CometChat: %w", err)
	}
	next, plan, dropped := groupsync.Confirm(next, plan, snap, d.StreamSeq)
	log := loggerFrom(ctx)
	if len(dropped) > 0 {
		p.metrics.confirms.WithLabelValues("dropped").Add(float64(len(dropped)))
		log.Warn().Strs("dropped", dropped).Msg("changes CometChat does not confirm after a loss of the store's data, skipped")
	} else {
		p.metrics.confirms.WithLabelValues("confirmed").Inc()
	}
	return next, plan, nil
}

// snapshot reads a group's membership from CometChat: its member count first
// when the Reconciler can, failing for good past E3Kit's limit without paging
// the members.
func (p *Pool) snapshot(ctx context.Context, guid string) (groupsync.Snapshot, error) {
	log := loggerFrom(ctx)
	snap := groupsync.Snapshot{GUID: guid, At: time.Now().Unix()}
	if mc, ok := p.cfg.Reconciler.(MemberCounter); ok {
		var n int
		err := p.retry(ctx, log, "read CometChat member count", func() error {
			var err error
			n, snap.Exists, err = mc.MemberCount(ctx, guid)
			return err
		})
		if err != nil {
			return snap, err
		}
		if !snap.Exists {
			return snap, nil
		}
		if n > virgil.MaxParticipants-1 {
			return snap, groupsync.Permanent(fmt.Errorf("worker: group %s has %d members in CometChat, more than an E3Kit group holds (%d participants, the owner included): %w",
				guid, n, virgil.MaxParticipants, virgil.ErrTooManyParticipants))
		}
	}
	snap.At = time.Now().Unix()
	err := p.retry(ctx, log, "read CometChat members", func() error {
		var err error
		snap.Members, snap.Exists, err = p.cfg.Reconciler.Members(ctx, guid)
		return err
	})
	return snap, err
}

// loggerFrom returns the job's logger carried by ctx.
func loggerFrom(ctx context.Context) zerolog.Logger { return *zerolog.Ctx(ctx) }
