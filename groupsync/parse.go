package groupsync

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits ParseWebhook enforces on a webhook body.
const (
	// MaxIDLen is the longest GUID, UID, app id, region or webhook id
	// accepted, in bytes. CometChat allows at most 100 characters for GUIDs
	// and UIDs and 50 for webhook ids.
	MaxIDLen = 100
	// MaxEventMembers is the most members one event may name. CometChat adds
	// at most 25 users per REST call and E3Kit groups hold at most 100
	// participants; the cap leaves room for a large group_created, which is
	// queued and then refused by the owner's participant limit as a failed
	// job that can be replayed once the group is smaller, while bounding
	// the work one body can cause. ParseWebhook stops decoding members at
	// the cap and reports a *TooManyMembersError for an event naming more.
	MaxEventMembers = 1000
)

// ErrTooManyMembers is matched (errors.Is) by every *TooManyMembersError.
var ErrTooManyMembers = errors.New("groupsync: event names too many members")

// TooManyMembersError reports a well-formed event that names more than
// MaxEventMembers members, so it can never be applied (nor replayed). ParseWebhook returns
// it with an Event that holds every field but Members, so the event can be
// identified (and recorded as failed) without decoding its members.
type TooManyMembersError struct {
	// Count is how many members data.members holds.
	Count int
}

// Error implements error.
func (e *TooManyMembersError) Error() string {
	return "groupsync: " + e.Message()
}

// Message is the error text without the package prefix.
func (e *TooManyMembersError) Message() string {
	return fmt.Sprintf("data.members names %d members, more than %d: far too many for an E3Kit group (at most 100 participants)",
		e.Count, MaxEventMembers)
}

// Is makes errors.Is(err, ErrTooManyMembers) true.
func (e *TooManyMembersError) Is(target error) bool { return target == ErrTooManyMembers }

// ErrUnknownTrigger is matched (errors.Is) by every *UnknownTriggerError:
// the body is a well-formed envelope whose trigger groupsync does not handle.
// The receiver acknowledges such a body without queueing anything.
var ErrUnknownTrigger = errors.New("groupsync: unknown trigger")

// UnknownTriggerError reports a trigger groupsync does not handle.
type UnknownTriggerError struct {
	// Trigger is the trigger as received (trimmed).
	Trigger string
}

// Error implements error.
func (e *UnknownTriggerError) Error() string {
	return fmt.Sprintf("groupsync: unknown trigger %q", e.Trigger)
}

// Is makes errors.Is(err, ErrUnknownTrigger) true.
func (e *UnknownTriggerError) Is(target error) bool { return target == ErrUnknownTrigger }

// ValidationError reports a webhook body that is malformed or lacks a key
// groupsync needs. Field is the JSON path of the offending key, such as
// "data.group.guid" ("body" when the body is not a JSON object).
type ValidationError struct {
	// Field is the JSON path of the missing or invalid key.
	Field string
	// Reason says what is wrong, such as "is required".
	Reason string
}

// Error implements error; the message names the field, as in
// "groupsync: data.group.guid is required".
func (e *ValidationError) Error() string {
	return "groupsync: " + e.Message()
}

// Message is the error text without the package prefix, such as
// "data.group.guid is required", for answers sent to the webhook's caller.
func (e *ValidationError) Message() string {
	return e.Field + " " + e.Reason
}

func invalid(field, reason string) *ValidationError {
	return &ValidationError{Field: field, Reason: reason}
}

// actions maps every trigger a webhook may carry to its Action (docs/design.md,
// "What each event means for the Virgil group").
var actions = map[Trigger]Action{
	TriggerGroupCreated:       ActionCreate,
	TriggerGroupUpdated:       ActionNone,
	TriggerGroupDeleted:       ActionDelete,
	TriggerMemberAdded:        ActionAdd,
	TriggerMemberJoined:       ActionAdd,
	TriggerMemberKicked:       ActionRemove,
	TriggerMemberRemoved:      ActionRemove,
	TriggerMemberBanned:       ActionRemove,
	TriggerMemberUnbanned:     ActionNone,
	TriggerMemberLeft:         ActionRemove,
	TriggerMemberScopeChanged: ActionEnsure,
	TriggerOwnerTransferred:   ActionEnsure,
}

// KnownTrigger reports whether a webhook with trigger t is handled by
// ParseWebhook (the CometChat group triggers; never the internal triggers).
func KnownTrigger(t Trigger) bool {
	_, ok := actions[t]
	return ok
}

// needsBy lists the triggers whose body must name the actor (data.by.uid).
var needsBy = map[Trigger]bool{
	TriggerMemberAdded:        true,
	TriggerMemberKicked:       true,
	TriggerMemberBanned:       true,
	TriggerMemberUnbanned:     true,
	TriggerMemberScopeChanged: true,
}

// wire types: the parts of the CometChat envelope groupsync reads, decoded
// in one pass. Unknown fields are ignored; scalar fields never fail the
// decoding (a string of the wrong type is flagged and reported by field
// name, an optional number of the wrong type counts as absent).

type wireEnvelope struct {
	Trigger wireString `json:"trigger"`
	Data    *wireData  `json:"data"`
	AppID   wireString `json:"appId"`
	Region  wireString `json:"region"`
	Webhook wireString `json:"webhook"`
}

type wireData struct {
	Group   *wireGroup  `json:"group"`
	Members wireMembers `json:"members"`
	By      *wireMember `json:"by"`
}

type wireGroup struct {
	GUID         wireString `json:"guid"`
	Owner        wireString `json:"owner"`
	OldOwner     wireString `json:"oldOwner"`
	CreatedAt    looseInt   `json:"createdAt"`
	UpdatedAt    looseInt   `json:"updatedAt"`
	MembersCount looseInt   `json:"membersCount"`
}

type wireMember struct {
	UID      wireString `json:"uid"`
	Scope    wireString `json:"scope"`
	OldScope wireString `json:"oldScope"`
	JoinedAt looseInt   `json:"joinedAt"`
}

// wireString is an optional JSON string; bad records a value of another
// type, so the error can name the field.
type wireString struct {
	v   string
	bad bool
}

func (s *wireString) UnmarshalJSON(b []byte) error {
	*s = wireString{}
	switch {
	case len(b) == 0 || string(b) == "null":
		return nil
	case b[0] != '"' || len(b) < 2:
		s.bad = true
		return nil
	}
	// Fast path: no escapes (the input was validated as JSON already).
	if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		s.v = string(inner)
		return nil
	}
	if err := json.Unmarshal(b, &s.v); err != nil {
		*s = wireString{bad: true}
	}
	return nil
}

// wireMembers is data.members: an object keyed by UID or, leniently, an
// array of user objects. A shape error is kept in err, with its field.
// Decoding streams over the entries and stops at MaxEventMembers: past the
// cap, the rest is only counted (into count), never decoded.
type wireMembers struct {
	entries []wireMemberEntry
	count   int // entries in the body, also those past the cap
	err     *ValidationError
}

type wireMemberEntry struct {
	key string
	m   *wireMember
}

func (w *wireMembers) UnmarshalJSON(b []byte) error {
	*w = wireMembers{}
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] != '{' && b[0] != '[' {
		w.err = invalid("data.members", "must be an object keyed by uid")
		return nil
	}
	object := b[0] == '{'
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		w.err = invalid("data.members", "must hold user objects")
		return nil
	}
	for dec.More() {
		if len(w.entries) == MaxEventMembers {
			w.count = countEntries(b)
			w.entries = nil
			w.err = tooManyMembers()
			return nil
		}
		var e wireMemberEntry
		field := "data.members"
		if object {
			tok, err := dec.Token()
			key, ok := tok.(string)
			if err != nil || !ok {
				w.err = invalid("data.members", "must hold user objects")
				return nil
			}
			e.key = key
			field = "data.members." + strings.ToLower(strings.TrimSpace(key))
		}
		if err := dec.Decode(&e.m); err != nil {
			if object {
				w.err = invalid(field, "must be an object")
			} else {
				w.err = invalid(field, "must hold user objects")
			}
			return nil
		}
		w.entries = append(w.entries, e)
	}
	w.count = len(w.entries)
	return nil
}

// countEntries counts the members of the JSON object or array b (valid
// JSON, as checked by json.Unmarshal before it calls UnmarshalJSON) without
// allocating: the commas at depth one, outside strings, plus one.
func countEntries(b []byte) int {
	depth, n, inString, empty := 0, 0, false, true
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			if depth == 1 {
				empty = false
			}
		case '{', '[':
			if depth == 1 {
				empty = false
			}
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				n++
			}
		case ' ', '\t', '\r', '\n':
		default:
			if depth == 1 {
				empty = false
			}
		}
	}
	if empty {
		return 0
	}
	return n + 1
}

func tooManyMembers() *ValidationError {
	return invalid("data.members", fmt.Sprintf("names more than %d members", MaxEventMembers))
}

// looseInt decodes an optional integer leniently: a JSON number (integral or
// not) or a string holding one; anything else, or null, is "absent".
type looseInt struct {
	v  int64
	ok bool
}

func (n *looseInt) UnmarshalJSON(b []byte) error {
	*n = looseInt{}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil
		}
		b = []byte(strings.TrimSpace(s))
	}
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*n = looseInt{v: v, ok: true}
		return nil
	}
	if f, err := strconv.ParseFloat(string(b), 64); err == nil && f >= -9e15 && f <= 9e15 {
		*n = looseInt{v: int64(f), ok: true}
	}
	return nil
}

// checkID enforces the limits on ids: at most MaxIDLen bytes of printable
// ASCII without whitespace.
func checkID(field, s string) *ValidationError {
	if len(s) > MaxIDLen {
		return invalid(field, fmt.Sprintf("is longer than %d characters", MaxIDLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return invalid(field, "must be printable ASCII without spaces")
		}
	}
	return nil
}

// decodeID returns an optional id, trimmed, lower-cased when lower is set,
// and checked against the limits.
func decodeID(field string, w wireString, lower bool) (string, *ValidationError) {
	if w.bad {
		return "", invalid(field, "must be a string")
	}
	s := strings.TrimSpace(w.v)
	if lower {
		s = strings.ToLower(s)
	}
	if verr := checkID(field, s); verr != nil {
		return "", verr
	}
	return s, nil
}

// ParseWebhook decodes and normalises a CometChat "Webhooks" (v2) body
// {trigger, data, appId, region, webhook} into an Event.
//
// Decoding is lenient: unknown fields are ignored, optional numbers of the
// wrong type count as absent, and data.members may be an object keyed by UID
// (CometChat's shape) or an array of user objects. Normalisation trims every
// id, lower-cases the GUID and the UIDs (as CometChat does on creation),
// sorts the members by UID and drops duplicates. The Action follows
// docs/design.md's table; group_member_removed is treated as a kick; a ban or
// unban whose members include the actor (data.by.uid) becomes
// ActionReconcile, because CometChat is known to put the actor there
// (docs/cometchat-webhooks.md §4).
//
// Errors:
//   - a *ValidationError when the body is not a JSON object or lacks a key
//     docs/cometchat-webhooks.md §6 requires (trigger, appId, data.group.guid; non-empty
//     data.members for group_member_*; data.by.uid for added, kicked, banned,
//     unbanned and scope_changed; data.group.owner and data.group.oldOwner
//     for group_owner_transferred), or when an id breaks the limits (at most
//     MaxIDLen bytes of printable ASCII without spaces);
//   - a *TooManyMembersError (matching ErrTooManyMembers) for an event naming
//     more than MaxEventMembers members, with the Event filled in but for
//     its Members;
//   - an *UnknownTriggerError (matching ErrUnknownTrigger) for a well-formed
//     envelope whose trigger groupsync does not handle.
//
// On error the returned Event still holds the envelope fields that decoded
// (Trigger, AppID, Region, Webhook), so a caller can check the app id before
// reporting the error. ParseWebhook is safe for concurrent use.
func ParseWebhook(body []byte) (Event, error) {
	ev := Event{MembersCount: -1}
	var env wireEnvelope
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ev, invalid("body", "must be a JSON object")
	}
	// Only the object-typed fields (data, data.group, data.by) can fail with
	// a type error; json keeps decoding the rest, so it is reported after
	// the envelope checks.
	var typeErr *ValidationError
	if err := json.Unmarshal(trimmed, &env); err != nil {
		var ute *json.UnmarshalTypeError
		if !errors.As(err, &ute) {
			return ev, invalid("body", "is not valid JSON")
		}
		typeErr = invalid(ute.Field, "must be an object")
	}

	// The envelope fields first, so they are available even on error.
	trigger, tErr := decodeID("trigger", env.Trigger, false)
	ev.Trigger = Trigger(trigger)
	appID, aErr := decodeID("appId", env.AppID, false)
	ev.AppID = appID
	region, rErr := decodeID("region", env.Region, false)
	ev.Region = region
	webhook, wErr := decodeID("webhook", env.Webhook, false)
	ev.Webhook = webhook
	for _, verr := range []*ValidationError{tErr, aErr, rErr, wErr} {
		if verr != nil {
			return ev, verr
		}
	}
	if ev.Trigger == "" {
		return ev, invalid("trigger", "is required")
	}
	if ev.AppID == "" {
		return ev, invalid("appId", "is required")
	}
	action, ok := actions[ev.Trigger]
	if !ok {
		return ev, &UnknownTriggerError{Trigger: trigger}
	}
	ev.Action = action
	if typeErr != nil {
		return ev, typeErr
	}
	full, verr := parseData(ev, env.Data)
	if verr != nil {
		if env.Data != nil && env.Data.Members.count > MaxEventMembers && verr.Field == "data.members" && full.GUID != "" {
			return full, &TooManyMembersError{Count: env.Data.Members.count}
		}
		return ev, verr
	}
	return full, nil
}

// parseData normalises and validates data into ev.
func parseData(ev Event, data *wireData) (Event, *ValidationError) {
	if data == nil || data.Group == nil {
		return ev, invalid("data.group.guid", "is required")
	}
	g := data.Group
	var verr *ValidationError
	if ev.GUID, verr = decodeID("data.group.guid", g.GUID, true); verr != nil {
		return ev, verr
	}
	if ev.GUID == "" {
		return ev, invalid("data.group.guid", "is required")
	}
	if ev.Owner, verr = decodeID("data.group.owner", g.Owner, true); verr != nil {
		return ev, verr
	}
	if ev.OldOwner, verr = decodeID("data.group.oldOwner", g.OldOwner, true); verr != nil {
		return ev, verr
	}
	if g.CreatedAt.ok {
		ev.CreatedAt = g.CreatedAt.v
	}
	if g.UpdatedAt.ok {
		ev.UpdatedAt = g.UpdatedAt.v
	}
	if g.MembersCount.ok && g.MembersCount.v >= 0 && g.MembersCount.v <= 1<<31-1 {
		ev.MembersCount = int(g.MembersCount.v)
	}
	if data.By != nil {
		if ev.By, verr = decodeID("data.by.uid", data.By.UID, true); verr != nil {
			return ev, verr
		}
	}
	if ev.Members, verr = parseMembers(data.Members); verr != nil {
		return ev, verr
	}

	// Keys required per trigger (docs/cometchat-webhooks.md §6).
	if strings.HasPrefix(string(ev.Trigger), "group_member_") && len(ev.Members) == 0 {
		return ev, invalid("data.members", "must name at least one member")
	}
	if needsBy[ev.Trigger] && ev.By == "" {
		return ev, invalid("data.by.uid", "is required")
	}
	if ev.Trigger == TriggerOwnerTransferred {
		if ev.Owner == "" {
			return ev, invalid("data.group.owner", "is required")
		}
		if ev.OldOwner == "" {
			return ev, invalid("data.group.oldOwner", "is required")
		}
	}

	// The live bug of docs/cometchat-webhooks.md §4: a ban or unban naming its actor as the
	// member cannot be trusted.
	if (ev.Trigger == TriggerMemberBanned || ev.Trigger == TriggerMemberUnbanned) && ev.By != "" {
		for _, m := range ev.Members {
			if m.UID == ev.By {
				ev.Action = ActionReconcile
				break
			}
		}
	}
	return ev, nil
}

// parseMembers normalises data.members: sorted by UID without duplicates.
func parseMembers(w wireMembers) ([]Member, *ValidationError) {
	if w.err != nil {
		return nil, w.err
	}
	if len(w.entries) == 0 {
		return nil, nil
	}
	members := make([]Member, 0, len(w.entries))
	for _, e := range w.entries {
		key := strings.ToLower(strings.TrimSpace(e.key))
		field := "data.members"
		if key != "" {
			field = "data.members." + key
			if verr := checkID(field, key); verr != nil {
				return nil, invalid("data.members", "has a key that is not a valid uid")
			}
		}
		var wm wireMember
		if e.m != nil {
			wm = *e.m
		}
		uid, verr := decodeID(field+".uid", wm.UID, true)
		if verr != nil {
			return nil, verr
		}
		switch {
		case uid == "" && key == "":
			return nil, invalid("data.members", "has a member without uid")
		case uid == "":
			uid = key
		case key != "" && uid != key:
			return nil, invalid(field+".uid", "differs from its key")
		}
		m := Member{UID: uid}
		if m.Scope, verr = decodeID(field+".scope", wm.Scope, true); verr != nil {
			return nil, verr
		}
		if m.OldScope, verr = decodeID(field+".oldScope", wm.OldScope, true); verr != nil {
			return nil, verr
		}
		if wm.JoinedAt.ok {
			m.JoinedAt = wm.JoinedAt.v
		}
		members = append(members, m)
	}
	return normaliseMembers(members), nil
}

// normaliseMembers sorts members by UID (then by the other fields, so the
// result does not depend on input order) and keeps the first of each UID.
func normaliseMembers(members []Member) []Member {
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i], members[j]
		if a.UID != b.UID {
			return a.UID < b.UID
		}
		if a.Scope != b.Scope {
			return a.Scope > b.Scope // a member with a scope before one without
		}
		if a.OldScope != b.OldScope {
			return a.OldScope > b.OldScope
		}
		return a.JoinedAt > b.JoinedAt
	})
	out := members[:0]
	for i, m := range members {
		if i > 0 && m.UID == out[len(out)-1].UID {
			continue
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// keyVersion starts the input of every idempotency key, so a change of the
// key's recipe never collides with keys made by an older one.
const keyVersion = "groupsync.idempotency.v1"

// IdempotencyKey returns the content key of e (docs/cometchat-webhooks.md §4): the hex
// SHA-256 of an unambiguous, length-prefixed encoding of the app id, webhook
// id, trigger, GUID, the sorted member UIDs with their scope and former
// scope, the actor, the group's createdAt and updatedAt and, for an
// ownership transfer, the new and former owner.
//
// CometChat sends no event id, so two deliveries of the same event (its
// retries at +10 s and +30 s) get the same key however the JSON is formatted
// or the members are ordered, while events differing in any of those fields
// get different keys. Two distinct events can share a key, though: adding
// carol, kicking her and adding her again gives two group_member_added
// bodies without updatedAt that are identical. The key therefore never
// drops a job on its own: the planner compares it with the key of the event
// that decided each member (docs/convergence.md). IdempotencyKey is a pure
// function of its argument.
func IdempotencyKey(e Event) string {
	h := sha256.New()
	var buf []byte
	put := func(name, value string) {
		buf = buf[:0]
		buf = append(buf, name...)
		buf = append(buf, '=')
		buf = strconv.AppendInt(buf, int64(len(value)), 10)
		buf = append(buf, ':')
		buf = append(buf, value...)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	put("version", keyVersion)
	put("app", e.AppID)
	put("webhook", e.Webhook)
	put("trigger", string(e.Trigger))
	put("guid", e.GUID)
	members := append([]Member(nil), e.Members...)
	members = normaliseMembers(members)
	put("members", strconv.Itoa(len(members)))
	for _, m := range members {
		put("uid", m.UID)
		put("scope", m.Scope)
		put("old_scope", m.OldScope)
	}
	put("by", e.By)
	put("created_at", strconv.FormatInt(e.CreatedAt, 10))
	put("updated_at", strconv.FormatInt(e.UpdatedAt, 10))
	if e.Trigger == TriggerOwnerTransferred {
		put("owner", e.Owner)
		put("old_owner", e.OldOwner)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewJob parses body with ParseWebhook and returns the Job to queue: its ID
// is IdempotencyKey of the event, a dot and 16 random hex digits, so every
// delivery is a job of its own and only the planner decides whether it
// repeats an event already applied (docs/convergence.md); BodySHA256 is the
// hex SHA-256 of body, ReceivedAt now in UTC and Event.Received now in Unix
// seconds. The event's times are not
// clamped: see Job.ClampTimes. Its errors are those of ParseWebhook,
// unchanged.
//
// For a *TooManyMembersError the Job is filled in all the same (its Event
// without Members, its ID made from the key of that event), so that the
// caller can record it as failed.
func NewJob(body []byte, now time.Time) (Job, error) {
	ev, err := ParseWebhook(body)
	if err != nil && !errors.Is(err, ErrTooManyMembers) {
		return Job{Event: ev}, err
	}
	sum := sha256.Sum256(body)
	ev.Received = now.Unix()
	return Job{
		ID:         JobID(IdempotencyKey(ev)),
		Event:      ev,
		BodySHA256: hex.EncodeToString(sum[:]),
		ReceivedAt: now.UTC(),
	}, err
}

// JobID returns a job id for a delivery of the event with content key key:
// the key, a dot and 16 random hex digits.
func JobID(key string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return key + "." + hex.EncodeToString(b[:])
}

// ContentKey returns the content key part of a job id made by JobID (the
// whole id when it has no random part).
func ContentKey(jobID string) string {
	key, _, _ := strings.Cut(jobID, ".")
	return key
}

// ClampTimes makes sure no time of the job's event lies beyond
// j.ReceivedAt plus maxSkew: each such time (the group's createdAt and
// updatedAt, a member's joinedAt) is set to 0, as if the body had not
// carried it, and Event.Clamped is set. A time that far ahead is forged or
// broken, and one left in place would outrank every later event of the
// member or make every later event of the group look like one of an earlier
// incarnation; clamping it to the limit itself would still let it outrank
// genuine events for maxSkew. An event without a time is ordered by the
// queue. ClampTimes returns what it clamped, as "field=value" strings for the
// log; nil when nothing was.
func (j *Job) ClampTimes(maxSkew time.Duration) []string {
	limit := j.ReceivedAt.Add(maxSkew).Unix()
	var clamped []string
	clamp := func(field string, v *int64) {
		if *v > limit {
			clamped = append(clamped, field+"="+strconv.FormatInt(*v, 10))
			*v = 0
		}
	}
	ev := &j.Event
	clamp("data.group.createdAt", &ev.CreatedAt)
	clamp("data.group.updatedAt", &ev.UpdatedAt)
	if len(ev.Members) > 0 {
		members := append([]Member(nil), ev.Members...)
		for i := range members {
			clamp("data.members."+members[i].UID+".joinedAt", &members[i].JoinedAt)
		}
		ev.Members = members
	}
	if len(clamped) > 0 {
		ev.Clamped = true
	}
	return clamped
}
