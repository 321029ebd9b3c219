package inspect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/redact"
	"github.com/groupsync/groupsync/virgil"
)

// GroupReport is what groupsync and Virgil know of one group.
type GroupReport struct {
	// GUID is the CometChat group id.
	GUID string `json:"guid"`
	// Store is the group's state in the worker store.
	Store StoredGroup `json:"store"`
	// Virgil is the group as Virgil holds it, read as the owner.
	Virgil VirgilGroup `json:"virgil"`
	// History is the group's last audit records, oldest first.
	History []queue.AuditRecord `json:"history"`
	// Older is the before of the next older page of the history
	// (Inspector.History), 0 when History begins with the oldest record
	// the trail kept.
	Older uint64 `json:"older,omitempty"`
	// Failed are the group's failed jobs, oldest first.
	Failed []queue.FailedJob `json:"failed"`
}

// StoredGroup is a group's state in the worker store.
type StoredGroup struct {
	// Read reports whether the store was read; Note says why not.
	Read bool   `json:"read"`
	Note string `json:"note,omitempty"`
	// Lifecycle is whether an event showed the group exists or was
	// deleted ("" when no event said).
	Lifecycle groupsync.Lifecycle `json:"lifecycle"`
	// Deleted is when the group was deleted, zero if not (or unknown).
	Deleted time.Time `json:"deleted,omitzero"`
	// Participants are the members given the group's key.
	Participants []Member `json:"participants"`
	// Pending are the members waiting for a (valid) Virgil card.
	Pending []Member `json:"pending"`
	// Removed are the users whose last event removed them.
	Removed []Member `json:"removed"`
}

// Member is one user of a group as the store remembers them.
type Member struct {
	// UID is the CometChat user id.
	UID string `json:"uid"`
	// At is the time of the event that decided the member, zero if the
	// event carried none.
	At time.Time `json:"at,omitzero"`
	// Seq is the stream sequence of the job that decided the member.
	Seq uint64 `json:"seq,omitempty"`
	// CardID is the Virgil card the member was last given the group's key
	// under, "" when unknown or not a participant.
	CardID string `json:"card_id,omitempty"`
	// PendingReason says why a pending member's card was refused, "" for
	// no card.
	PendingReason string `json:"pending_reason,omitempty"`
}

// VirgilGroup is a group as Virgil holds it, read as its owner.
type VirgilGroup struct {
	// Read reports whether Virgil was read; Note says why not ("not
	// configured", or the failure), or what could not be read besides
	// (the members' cards). Nothing below is set without Read.
	Read bool   `json:"read"`
	Note string `json:"note,omitempty"`
	// GroupID is the E3Kit group id (the group's Virgil identity).
	GroupID string `json:"group_id,omitempty"`
	// Exists reports whether the group has at least one epoch.
	Exists bool `json:"exists"`
	// Participants are the uids of the newest epoch's participants, owner
	// left out, sorted.
	Participants []string `json:"participants"`
	// Unknown are participants' Virgil identities that map to no user the
	// store or the audit trail names for this group (never guessed).
	Unknown []string `json:"unknown,omitempty"`
	// Epochs are the epochs Virgil keeps, ascending; Latest the newest.
	Epochs []uint32 `json:"epochs"`
	Latest uint32   `json:"latest"`
	// CardChanged are the stored participants whose current Virgil card
	// is not the one they were given the key under.
	CardChanged []CardChange `json:"card_changed,omitempty"`
	// Missing are the stored participants Virgil does not list; Extra the
	// Virgil participants the store does not hold as participants.
	Missing []string `json:"missing,omitempty"`
	Extra   []string `json:"extra,omitempty"`
}

// CardChange is a participant whose Virgil card changed.
type CardChange struct {
	// UID is the user.
	UID string `json:"uid"`
	// Stored is the card id the user was given the key under.
	Stored string `json:"stored"`
	// Current is the user's current card id, "" when they have none.
	Current string `json:"current"`
}

// Group reports what the store, Virgil, the audit trail and the dead
// letters hold about group guid. Virgil is read only when configured; a
// failed read is reported in VirgilGroup.Note, not returned, unless nothing
// else knows the group (Virgil might: the error is returned). A group none
// of them knows is an error matching ErrNotFound; errors of the other parts
// are returned wrapped.
func (in *Inspector) Group(ctx context.Context, guid string) (GroupReport, error) {
	g, err := in.gather(ctx, guid, in.cfg.HistoryLimit)
	if err != nil {
		return GroupReport{}, err
	}
	return g.report, nil
}

// gathered is a group's report and the raw parts it was built from.
type gathered struct {
	report GroupReport
	state  groupsync.GroupState
	vstate *virgil.GroupState // nil: not read
}

// HistoryPage is one page of a group's audit trail.
type HistoryPage struct {
	// GUID is the CometChat group id.
	GUID string `json:"guid"`
	// Before is the audit sequence the page ends below, 0 for the newest
	// page.
	Before uint64 `json:"before,omitempty"`
	// History is the page: the last Config.HistoryLimit records of the
	// group below Before, oldest first.
	History []queue.AuditRecord `json:"history"`
	// Older is the Before of the next older page, 0 when this one begins
	// with the oldest record the trail kept.
	Older uint64 `json:"older,omitempty"`
}

// History returns a page of group guid's audit trail: the last
// Config.HistoryLimit records below the audit sequence before (0: the
// newest), oldest first, with the before of the next older page. Following
// Older from before 0 gives pages that never overlap and together hold
// every record the trail kept. A page without records is no error: the
// group may be known elsewhere, or its records aged out.
func (in *Inspector) History(ctx context.Context, guid string, before uint64) (HistoryPage, error) {
	guid, err := normalGUID(guid)
	if err != nil {
		return HistoryPage{}, err
	}
	p := HistoryPage{GUID: guid, Before: before}
	if p.History, p.Older, err = in.historyPage(ctx, guid, before, in.cfg.HistoryLimit); err != nil {
		return HistoryPage{}, err
	}
	return p, nil
}

// historyPage reads the last limit audit records of guid below before (0:
// the newest), oldest first and never nil, and the before of the next
// older page (0: none).
func (in *Inspector) historyPage(ctx context.Context, guid string, before uint64, limit int) ([]queue.AuditRecord, uint64, error) {
	hist, older, err := in.cfg.Audit.HistoryBefore(ctx, guid, before, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("inspect: group %s: read the audit trail: %w", guid, err)
	}
	if hist == nil {
		hist = []queue.AuditRecord{}
	}
	if older {
		return hist, hist[0].Seq, nil
	}
	return hist, 0, nil
}

// normalGUID is guid as groupsync keys it: trimmed and lower case; an empty
// one matches ErrNotFound.
func normalGUID(guid string) (string, error) {
	guid = strings.ToLower(strings.TrimSpace(guid))
	if guid == "" {
		return "", fmt.Errorf("inspect: group: empty group id: %w", ErrNotFound)
	}
	return guid, nil
}

func (in *Inspector) gather(ctx context.Context, guid string, limit int) (gathered, error) {
	guid, err := normalGUID(guid)
	if err != nil {
		return gathered{}, err
	}
	g := gathered{report: GroupReport{GUID: guid, History: []queue.AuditRecord{}, Failed: []queue.FailedJob{}}}
	r := &g.report
	known := false
	if in.cfg.Store == nil {
		r.Store.Note = NotConfigured
	} else {
		st, version, err := in.cfg.Store.Group(ctx, guid)
		if err != nil {
			return gathered{}, fmt.Errorf("inspect: group %s: read the store: %w", guid, err)
		}
		g.state = st
		r.Store = storedGroup(st)
		known = known || version != 0 || st.Lifecycle != groupsync.LifecycleUnknown || len(st.Members) > 0
	}
	if r.History, r.Older, err = in.historyPage(ctx, guid, 0, limit); err != nil {
		return gathered{}, err
	}
	known = known || len(r.History) > 0
	failed, err := in.cfg.Queue.Failed(ctx)
	if err != nil {
		return gathered{}, fmt.Errorf("inspect: group %s: read the failed jobs: %w", guid, err)
	}
	for _, f := range failed {
		if f.GUID == guid {
			r.Failed = append(r.Failed, f)
		}
	}
	known = known || len(r.Failed) > 0
	var verr error
	g.vstate, verr = in.readVirgil(ctx, guid, g.state, r.History, &r.Virgil)
	known = known || g.vstate != nil && g.vstate.Exists
	if !known && verr != nil {
		// Virgil may hold the group: it cannot be called unknown.
		return gathered{}, fmt.Errorf("inspect: group %s: nothing in the store, the audit trail or the failed jobs, and Virgil could not be read: %w", guid, verr)
	}
	if !known {
		return gathered{}, fmt.Errorf("inspect: group %s: nothing in the store, the audit trail, Virgil or the failed jobs: %w", guid, ErrNotFound)
	}
	return g, nil
}

func storedGroup(st groupsync.GroupState) StoredGroup {
	sg := StoredGroup{Read: true, Lifecycle: st.Lifecycle, Participants: []Member{}, Pending: []Member{}, Removed: []Member{}}
	if st.Lifecycle == groupsync.LifecycleDeleted && st.Deleted.At != 0 {
		sg.Deleted = time.Unix(st.Deleted.At, 0).UTC()
	}
	uids := make([]string, 0, len(st.Members))
	for uid := range st.Members {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		m := st.Members[uid]
		mb := Member{UID: uid, Seq: m.Stamp.Seq, CardID: m.CardID, PendingReason: m.PendingReason}
		if m.Stamp.At != 0 {
			mb.At = time.Unix(m.Stamp.At, 0).UTC()
		}
		switch {
		case !m.In:
			mb.CardID, mb.PendingReason = "", ""
			sg.Removed = append(sg.Removed, mb)
		case m.Pending:
			sg.Pending = append(sg.Pending, mb)
		default:
			sg.Participants = append(sg.Participants, mb)
		}
	}
	return sg
}

// readVirgil fills v with the group as Virgil holds it and returns the raw
// state; nil when Virgil was not read (v.Note says why), with the error of
// a failed read.
func (in *Inspector) readVirgil(ctx context.Context, guid string, st groupsync.GroupState, hist []queue.AuditRecord, v *VirgilGroup) (*virgil.GroupState, error) {
	if in.cfg.Virgil == nil {
		v.Note = NotConfigured
		return nil, nil
	}
	ids := in.cfg.Identities
	v.GroupID = ids.Group(guid)
	vs, err := in.cfg.Virgil.State(ctx, v.GroupID)
	if err != nil {
		err = redact.Error(err)
		v.Note = "read failed: " + err.Error()
		return nil, err
	}
	v.Read, v.Exists, v.Epochs, v.Latest = true, vs.Exists, vs.Epochs, vs.Latest
	v.Participants = []string{}
	if v.Epochs == nil {
		v.Epochs = []uint32{}
	}
	// Map identities back through every uid this group is known to have
	// had; anything else stays an identity.
	back := map[string]string{}
	for uid := range st.Members {
		back[ids.User(uid)] = uid
	}
	for _, r := range hist {
		for _, uid := range []string{r.UID, r.By} {
			if uid != "" {
				back[ids.User(uid)] = uid
			}
		}
	}
	inVirgil := map[string]bool{}
	for _, id := range vs.Members(ids.Owner()) {
		if uid, ok := back[id]; ok {
			v.Participants = append(v.Participants, uid)
			inVirgil[uid] = true
		} else {
			v.Unknown = append(v.Unknown, id)
		}
	}
	sort.Strings(v.Participants)
	sort.Strings(v.Unknown)
	var withCard []string
	for _, uid := range st.Current() {
		m := st.Members[uid]
		if m.Pending {
			if inVirgil[uid] {
				v.Extra = append(v.Extra, uid)
			}
			continue
		}
		if !inVirgil[uid] && st.Lifecycle != groupsync.LifecycleDeleted {
			v.Missing = append(v.Missing, uid)
		}
		if m.CardID != "" {
			withCard = append(withCard, uid)
		}
	}
	for _, uid := range v.Participants {
		if m, ok := st.Members[uid]; !ok || !m.In || st.Lifecycle == groupsync.LifecycleDeleted {
			v.Extra = append(v.Extra, uid)
		}
	}
	sort.Strings(v.Extra)
	v.Extra = slices.Compact(v.Extra)
	if len(withCard) > 0 {
		cards, err := in.cfg.Virgil.CardIDs(ctx, ids.Users(withCard))
		if err != nil {
			v.Note = "cards not read: " + redact.Text(err.Error())
		} else {
			for _, uid := range withCard {
				stored, current := st.Members[uid].CardID, cards[ids.User(uid)]
				if current != stored {
					v.CardChanged = append(v.CardChanged, CardChange{UID: uid, Stored: stored, Current: current})
				}
			}
		}
	}
	return &vs, nil
}

// MemberReport explains one user's place in a group.
type MemberReport struct {
	// GUID and UID name the group and the user.
	GUID string `json:"guid"`
	UID  string `json:"uid"`
	// Sentence says in one plain sentence, with its evidence, why the user
	// is or is not a participant (groupsync.ExplainMember).
	Sentence string `json:"sentence"`
	// Stored is the user's state in the store, nil when no event about
	// them reached groupsync (or the store lost it).
	Stored *groupsync.MemberState `json:"stored"`
	// Lifecycle is the group's stored lifecycle.
	Lifecycle groupsync.Lifecycle `json:"lifecycle"`
	// Last is the last audit record about the user, nil when none.
	Last *queue.AuditRecord `json:"last"`
	// InVirgil reports whether Virgil lists the user as a participant, nil
	// when Virgil was not read (VirgilNote says why).
	InVirgil   *bool  `json:"in_virgil"`
	VirgilNote string `json:"virgil_note,omitempty"`
	// CardChanged is set when the user's Virgil card is not the one they
	// were given the key under.
	CardChanged *CardChange `json:"card_changed,omitempty"`
	// Failed are the group's failed jobs.
	Failed []queue.FailedJob `json:"failed"`
}

// Explain says why user uid is or is not a participant of group guid, with
// the evidence: the stored state, the last change about them in the audit
// trail, and whether Virgil lists them (when Virgil is configured and could
// be read). It needs the store. A group groupsync knows nothing of matches
// ErrNotFound; a user the group knows nothing of is explained as such.
func (in *Inspector) Explain(ctx context.Context, guid, uid string) (MemberReport, error) {
	uid = strings.ToLower(strings.TrimSpace(uid))
	if uid == "" {
		return MemberReport{}, errors.New("inspect: explain: empty user id")
	}
	if in.cfg.Store == nil {
		return MemberReport{}, errors.New("inspect: explain: the store is not configured: without it nothing can be said")
	}
	g, err := in.gather(ctx, guid, explainHistoryLimit)
	if err != nil {
		return MemberReport{}, err
	}
	r := MemberReport{GUID: g.report.GUID, UID: uid, Lifecycle: g.state.Lifecycle, Failed: g.report.Failed, VirgilNote: g.report.Virgil.Note}
	if m, ok := g.state.Members[uid]; ok {
		r.Stored = &m
	}
	facts := groupsync.MemberFacts{UID: uid, Group: g.state}
	for i := len(g.report.History) - 1; i >= 0; i-- {
		if rec := g.report.History[i]; rec.UID == uid {
			r.Last = &rec
			facts.Last = &groupsync.Change{Op: groupsync.Op(rec.Action), Trigger: groupsync.Trigger(rec.Trigger), By: rec.By, At: rec.EventAt, JobID: rec.JobID}
			break
		}
	}
	if g.vstate != nil {
		listed := g.vstate.Exists && slices.Contains(g.vstate.Participants, in.cfg.Identities.User(uid))
		r.InVirgil, facts.InVirgil = &listed, &listed
	}
	for _, c := range g.report.Virgil.CardChanged {
		if c.UID == uid {
			r.CardChanged = &c
		}
	}
	r.Sentence = groupsync.ExplainMember(facts)
	return r, nil
}
