package groupsync

import "sort"

// Lifecycle is what groupsync knows of a group's existence.
type Lifecycle string

// The lifecycles of a group.
const (
	// LifecycleUnknown: no event has said whether the group exists (a new
	// group, or stored state that was lost).
	LifecycleUnknown Lifecycle = ""
	// LifecycleExists: an event showed the group exists.
	LifecycleExists Lifecycle = "exists"
	// LifecycleDeleted: the group was deleted. The state is a tombstone that
	// keeps late events of the same incarnation from bringing it back.
	LifecycleDeleted Lifecycle = "deleted"
)

// Stamp orders the events that decide a member's fate. At is the event's
// time in Unix seconds as CometChat wrote it in the body (0 when the body
// carries none); Seq is the job's stream sequence, the order in which the
// queue stored the event.
type Stamp struct {
	// At is the event time in Unix seconds, 0 if unknown.
	At int64 `json:"at,omitempty"`
	// Seq is the stream sequence of the job that carried the event.
	Seq uint64 `json:"seq,omitempty"`
	// Recv is when groupsync last received the event (Event.Received), 0
	// if unknown. After orders it against a read of CometChat (Snapshot)
	// by it: an event received before the read is older than the read.
	Recv int64 `json:"recv,omitempty"`
	// Untimed reports that the event carried no time: At, when set, is
	// that of an earlier decision to the same effect, kept because the
	// member has been on that side since then at least.
	Untimed bool `json:"untimed,omitempty"`
	// UntimedRecv is when groupsync last received an event without a time
	// to the same effect (0: none since the member last changed side).
	UntimedRecv int64 `json:"untimed_recv,omitempty"`
	// Snapshot reports a decision read from CometChat's REST API (a
	// reconcile): At is then the time of the read on groupsync's clock.
	Snapshot bool `json:"snapshot,omitempty"`
}

// eventAt is the time the stamped event itself carried, 0 if none.
func (s Stamp) eventAt() int64 {
	if s.Untimed {
		return 0
	}
	return s.At
}

// IsZero reports whether s is the zero Stamp (no event decided yet).
func (s Stamp) IsZero() bool { return s.At == 0 && s.Seq == 0 }

// After reports whether an event stamped s happened after one stamped o.
// An event received before a snapshot was read (Recv) is older than the
// snapshot, whatever time it carries; one without a time received since is
// newer. When both times are known and differ they decide; otherwise (a
// time is missing, or both fall in the same second) the stream sequence
// does. A stamp is never After itself, so a duplicate of the event that
// decided a member changes nothing.
func (s Stamp) After(o Stamp) bool {
	// An event received before a read of CometChat happened before it,
	// whatever time it carries (CometChat's clock may run ahead of
	// groupsync's by up to the allowed skew): the read already shows it.
	switch {
	case readOf(o, s):
		if shownBy(s, o) {
			return false
		}
		if s.At == 0 {
			// Received since, or in the same second (the read may not show
			// it), and without a time to order it by: later.
			return true
		}
	case readOf(s, o):
		if shownBy(o, s) {
			return true
		}
		if o.At == 0 {
			// Received since, without a time: later, as above.
			return false
		}
	}
	if s.At != 0 && o.At != 0 && s.At != o.At {
		return s.At > o.At
	}
	if s.Seq != o.Seq {
		return s.Seq > o.Seq
	}
	// Same sequence (the same job), or both unsequenced: the later time, if
	// any, wins; equal stamps are not After each other.
	return s.At > o.At
}

// readOf reports whether r is a read of CometChat and e an event received
// at a known time, so that the read's time orders e's receipt.
func readOf(r, e Stamp) bool { return r.Snapshot && !e.Snapshot && r.At != 0 && e.Recv != 0 }

// shownBy reports whether the read r shows the event e: e was received before
// the read, or in its second and stored before the read's job (jobs of a
// group run in stream order, so it was applied before the read was made).
func shownBy(e, r Stamp) bool {
	return e.Recv < r.At || e.Recv == r.At && e.Seq != 0 && e.Seq < r.Seq
}

// MemberState is what groupsync knows about one user of a group.
type MemberState struct {
	// In reports whether the last event that decided the member made them
	// a member (added, joined, created with, ensured) rather than removed
	// them (kicked, banned, left, group deleted).
	In bool `json:"in"`
	// Stamp orders the event that decided In.
	Stamp Stamp `json:"stamp"`
	// Key is the start of the content key (IdempotencyKey) of the event
	// that decided In, "" when unknown. An event with the same key about
	// this member is a repeat of that event and changes nothing.
	Key string `json:"key,omitempty"`
	// Pending reports a member who had no Virgil card at the last add and is
	// therefore not a participant yet.
	Pending bool `json:"pending,omitempty"`
	// CardID is the id of the Virgil card the member was last given the
	// group's tickets under, "" when unknown.
	CardID string `json:"card_id,omitempty"`
	// PendingReason says why a pending member was left out when it is not
	// simply that they have no card yet (their card was refused); "" when
	// not pending or without a card.
	PendingReason string `json:"pending_reason,omitempty"`
}

// GroupState is what groupsync remembers about one CometChat group between
// events. It only sharpens ordering and de-duplication: losing it must never
// make a plan remove or add anyone an event did not name (docs/design.md,
// invariant 5). The zero value is the state of a group never seen.
type GroupState struct {
	// GUID is the CometChat group id.
	GUID string `json:"guid"`
	// Lifecycle is whether the group exists, is deleted, or is unknown.
	Lifecycle Lifecycle `json:"lifecycle,omitempty"`
	// Incarnation is the group's createdAt (Unix seconds), 0 if unknown. A
	// guid reused after a deletion has a later createdAt: a new incarnation.
	Incarnation int64 `json:"incarnation,omitempty"`
	// Deleted is the stamp of the deletion when Lifecycle is deleted.
	Deleted Stamp `json:"deleted,omitempty"`
	// Members holds every user an event decided, removed ones included (their
	// stamp filters late adds).
	Members map[string]MemberState `json:"members,omitempty"`
}

// Clone returns a deep copy of s.
func (s GroupState) Clone() GroupState {
	c := s
	if s.Members != nil {
		c.Members = make(map[string]MemberState, len(s.Members))
		for uid, m := range s.Members {
			c.Members[uid] = m
		}
	}
	return c
}

// Current returns the sorted uids of the members that are in the group
// (participants and pending ones).
func (s GroupState) Current() []string {
	var uids []string
	for uid, m := range s.Members {
		if m.In {
			uids = append(uids, uid)
		}
	}
	sort.Strings(uids)
	return uids
}

// PendingMembers returns the sorted uids of the members waiting for a Virgil
// card.
func (s GroupState) PendingMembers() []string {
	var uids []string
	for uid, m := range s.Members {
		if m.In && m.Pending {
			uids = append(uids, uid)
		}
	}
	sort.Strings(uids)
	return uids
}

// MarkPending records whether member uid, who is in the group, still waits
// for a Virgil card. It does nothing for a user who is not in the group.
func (s *GroupState) MarkPending(uid string, pending bool) {
	m, ok := s.Members[uid]
	if !ok || !m.In {
		return
	}
	m.Pending = pending
	if pending {
		m.CardID = ""
	} else {
		m.PendingReason = ""
	}
	s.Members[uid] = m
}

// MarkPendingReason records why member uid, who is pending, was left out
// ("" for no card). It does nothing for a user who is not pending.
func (s *GroupState) MarkPendingReason(uid, reason string) {
	m, ok := s.Members[uid]
	if !ok || !m.In || !m.Pending {
		return
	}
	m.PendingReason = reason
	s.Members[uid] = m
}

// MarkCard records the Virgil card id member uid was given the group's
// tickets under. It does nothing for a user who is not in the group.
func (s *GroupState) MarkCard(uid, cardID string) {
	m, ok := s.Members[uid]
	if !ok || !m.In {
		return
	}
	m.CardID = cardID
	if cardID != "" {
		m.Pending = false
		m.PendingReason = ""
	}
	s.Members[uid] = m
}

// IndexEntry is how a user's membership of one group appears in the user to
// groups index: pending (waiting for a card), or a participant with the card
// id last used ("" when unknown).
type IndexEntry struct {
	// In reports that the user is in the group; false entries are removed
	// from the index.
	In bool
	// Pending reports that the user waits for a Virgil card.
	Pending bool
	// CardID is the card id the user was last given tickets under.
	CardID string
}

// Index returns, for every user the state knows, the entry the user to
// groups index should hold for this group. Users with In false must be
// removed from the index.
func (s GroupState) Index() map[string]IndexEntry {
	idx := make(map[string]IndexEntry, len(s.Members))
	for uid, m := range s.Members {
		idx[uid] = IndexEntry{In: m.In && s.Lifecycle != LifecycleDeleted, Pending: m.Pending, CardID: m.CardID}
	}
	return idx
}
