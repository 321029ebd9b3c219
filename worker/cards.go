package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/groupsync/groupsync/groupsync"
)

// cardBatch bounds the identities of one card search.
const cardBatch = 50

// UserSeen tells the pool that user uid just fetched a Virgil token, so a
// card may appear (first login) or change (new key) shortly. It schedules
// checks of the user's groups after Config.CheckInitial, then backing off up
// to Config.CheckMax, Config.CheckAttempts times; a check that finds the
// card of a pending member, or a card different from the one a participant
// was given tickets under, queues a job that finishes the add or re-adds
// them. Checks are shared by every pool on the same store. Safe for
// concurrent use, also before Run.
func (p *Pool) UserSeen(ctx context.Context, uid string) error {
	return ScheduleUserCheck(ctx, p.store, uid, p.cfg.CheckInitial)
}

// ScheduleUserCheck is UserSeen for processes without a Pool (an HTTP
// server sharing the workers' store): it makes uid's card check due after
// delay (DefaultCheckInitial when zero); any pool on the same store runs it.
func ScheduleUserCheck(ctx context.Context, s CheckSchedule, uid string, delay time.Duration) error {
	if uid == "" {
		return nil
	}
	if delay <= 0 {
		delay = DefaultCheckInitial
	}
	if err := s.ScheduleCheck(ctx, Check{UID: uid}, time.Now().Add(delay)); err != nil {
		return fmt.Errorf("worker: user seen: %w", err)
	}
	return nil
}

// checkDelay is the wait before check number attempt (0 first).
func (p *Pool) checkDelay(attempt int) time.Duration {
	d := p.cfg.CheckInitial
	for i := 0; i < attempt && d < p.cfg.CheckMax; i++ {
		d *= 2
	}
	return min(d, p.cfg.CheckMax)
}

// checkLoop runs due checks and the periodic sweep of pending members until
// ctx ends.
func (p *Pool) checkLoop(ctx context.Context) {
	poll := time.NewTicker(p.cfg.CheckPoll)
	defer poll.Stop()
	var sweep <-chan time.Time
	if p.cfg.SweepInterval > 0 {
		t := time.NewTicker(p.cfg.SweepInterval)
		defer t.Stop()
		sweep = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			p.runDueChecks(ctx)
		case <-sweep:
			p.Sweep(ctx)
		}
	}
}

func (p *Pool) runDueChecks(ctx context.Context) {
	checks, err := p.store.DueChecks(ctx, time.Now(), 100)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("reading due card checks failed")
		}
		return
	}
	for _, c := range checks {
		more, err := p.checkUsers(ctx, []string{c.UID})
		if err != nil {
			p.log.Warn().Err(err).Str("uid", c.UID).Int("attempt", c.Attempt).Msg("card check failed")
			more = true
		}
		if !more || c.Attempt+1 >= p.cfg.CheckAttempts {
			continue
		}
		next := Check{UID: c.UID, Attempt: c.Attempt + 1}
		if err := p.store.ScheduleCheck(ctx, next, time.Now().Add(p.checkDelay(next.Attempt))); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Str("uid", c.UID).Msg("rescheduling card check failed")
		}
	}
}

// Sweep checks every member pending in some group at once, and queues the
// jobs that finish their adds. The pool runs it every Config.SweepInterval.
func (p *Pool) Sweep(ctx context.Context) {
	uids, err := p.store.PendingUsers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("reading pending members failed")
		}
		return
	}
	for len(uids) > 0 && ctx.Err() == nil {
		n := min(len(uids), cardBatch)
		if _, err := p.checkUsers(ctx, uids[:n]); err != nil {
			p.log.Warn().Err(err).Int("users", n).Msg("sweep of pending members failed")
		}
		uids = uids[n:]
	}
}

// checkUsers compares the users' current cards with their groups' index
// entries and queues a card-check job per group that needs one. more
// reports whether any of the users is in a group (further checks may find
// something).
func (p *Pool) checkUsers(ctx context.Context, uids []string) (more bool, err error) {
	groups := make(map[string]map[string]groupsync.IndexEntry, len(uids))
	var withGroups []string
	for _, uid := range uids {
		g, err := p.store.UserGroups(ctx, uid)
		if err != nil {
			return true, err
		}
		if len(g) > 0 {
			groups[uid] = g
			withGroups = append(withGroups, uid)
		}
	}
	if len(withGroups) == 0 {
		return false, nil
	}
	cards, err := p.v.CardIDs(ctx, withGroups)
	if err != nil {
		p.metrics.checks.WithLabelValues("failed").Inc()
		return true, fmt.Errorf("worker: card check: %w", err)
	}
	for _, uid := range withGroups {
		card := cards[uid]
		if card == "" {
			p.metrics.checks.WithLabelValues("no_card").Inc()
			continue
		}
		guids := make([]string, 0, len(groups[uid]))
		for g := range groups[uid] {
			guids = append(guids, g)
		}
		sort.Strings(guids)
		queued := false
		for _, guid := range guids {
			e := groups[uid][guid]
			var action groupsync.Action
			switch {
			case e.Pending:
				action = groupsync.ActionEnsure
			case e.CardID != "" && e.CardID != card:
				action = groupsync.ActionReAdd
			default:
				continue
			}
			if err := p.queueCardCheck(ctx, guid, uid, card, action); err != nil {
				return true, err
			}
			queued = true
		}
		label := "unchanged"
		if queued {
			label = "queued"
		}
		p.metrics.checks.WithLabelValues(label).Inc()
	}
	return true, nil
}

// CardCheckJob returns the job that finishes a pending add (ActionEnsure) or
// re-adds a member under a new card (ActionReAdd). Its ID depends on the
// group, the user, the action and the card, so the same finding queued by
// several checks or processes runs once.
func CardCheckJob(guid, uid, cardID string, action groupsync.Action) groupsync.Job {
	h := sha256.Sum256([]byte("card-check\x00" + string(action) + "\x00" + guid + "\x00" + uid + "\x00" + cardID))
	return groupsync.Job{
		ID: "card-" + hex.EncodeToString(h[:16]),
		Event: groupsync.Event{
			Trigger: groupsync.TriggerCardCheck, Action: action, GUID: guid,
			Members: []groupsync.Member{{UID: uid}}, MembersCount: -1,
		},
		ReceivedAt: time.Now().UTC(),
	}
}

func (p *Pool) queueCardCheck(ctx context.Context, guid, uid, card string, action groupsync.Action) error {
	job := CardCheckJob(guid, uid, card, action)
	res, err := p.q.Publish(ctx, job)
	if err != nil {
		return fmt.Errorf("worker: queue card check of %s in %s: %w", uid, guid, err)
	}
	p.log.Info().Str("uid", uid).Str("group_id", guid).Str("action", string(action)).Str("job_id", job.ID).
		Bool("duplicate", res.Duplicate).Msg("card check queued a job")
	return nil
}
