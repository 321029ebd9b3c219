package virgil

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Owner defaults and limits.
const (
	// DefaultOwnerIdentity is the Virgil identity that owns the groups.
	DefaultOwnerIdentity = "2137f9ef75295ea"
	// MaxParticipants is E3Kit's participant limit, owner included.
	MaxParticipants = 100
	// searchChunk is the number of identities per card search.
	searchChunk = MaxSearchIdentities
	// pushAttempts bounds the retries of a push that raced another writer.
	pushAttempts = 3
	// DefaultParallelism is how many epochs an add shares at once.
	DefaultParallelism = 8
)

// Errors of the owner operations.
var (
	// ErrGroupNotFound: the group has no epochs (Add, Remove, ReAdd).
	ErrGroupNotFound = errors.New("virgil: group not found")
	// ErrTooManyParticipants: the group would exceed MaxParticipants; match
	// with errors.Is, read the numbers with errors.As(*TooManyParticipantsError).
	ErrTooManyParticipants = errors.New("virgil: too many group participants")
	// ErrOwnerCardMismatch: the owner identity has cards, none of them with
	// the owner's key (the key changed; the card must be rotated first).
	ErrOwnerCardMismatch = errors.New("virgil: owner identity has cards for another key")
	// ErrInvalidTicket: a group entry does not decrypt or verify with the
	// owner key, or holds another group's epoch.
	ErrInvalidTicket = errors.New("virgil: invalid group ticket")
)

// TooManyParticipantsError reports a group that would exceed MaxParticipants.
type TooManyParticipantsError struct {
	// Group is the group id.
	Group string
	// Count is the number of participants the operation would lead to,
	// owner included.
	Count int
}

// Error implements error.
func (e *TooManyParticipantsError) Error() string {
	return fmt.Sprintf("virgil: group %q would have %d participants, more than %d", e.Group, e.Count, MaxParticipants)
}

// Is matches ErrTooManyParticipants.
func (e *TooManyParticipantsError) Is(target error) bool { return target == ErrTooManyParticipants }

// GroupState is the Virgil view of a group, read as its owner.
type GroupState struct {
	// Exists reports whether the group has at least one epoch.
	Exists bool
	// GroupID is the E3Kit group id; Path its Keyknox path (session id, hex).
	GroupID, Path string
	// Participants are the identities of the newest epoch, owner included,
	// without duplicates: what members see as group.participants.
	Participants []string
	// Epochs are the epoch numbers, ascending.
	Epochs []uint32
	// Latest is the newest epoch (valid when Exists).
	Latest uint32
}

// Members returns Participants without the owner identity.
func (s *GroupState) Members(owner string) []string {
	out := make([]string, 0, len(s.Participants))
	for _, p := range s.Participants {
		if p != owner {
			out = append(out, p)
		}
	}
	return out
}

// Owner performs the group operations of an E3Kit group initiator, as a
// server. Every operation is convergent: repeating it, or running it again
// after it stopped halfway (crash, timeout), leads to the same Virgil state
// as running it once. Operations on one group must not run concurrently
// (pushes that race are detected and retried, but removals are not
// serializable against adds); different groups are independent. Owner is
// safe for concurrent use on different groups.
type Owner struct {
	client     *Client
	key        *PrivateKey
	identity   string
	crypto     Crypto
	serviceKey *PublicKey
	now        func() time.Time
	parallel   int
	verified   *memo[[32]byte, bool] // digests of cards whose service signature verified
	seen       *epochNotes           // newest epoch per group, as last read or written
}

// OwnerOption configures an Owner.
type OwnerOption func(*Owner)

// WithServiceKey makes the Owner require and verify the Cards service
// ("virgil") signature of every card with key (ServiceKeyFor chooses it).
// A member whose cards lack a valid one is never given a ticket: it is
// left pending, with the reason in Shared.Refused. Without this option only
// self signatures are checked.
func WithServiceKey(key *PublicKey) OwnerOption { return func(o *Owner) { o.serviceKey = key } }

// WithCrypto sets the key id scheme and randomness of tickets; the scheme
// must match the members' clients (default KeyIDSHA512).
func WithCrypto(c Crypto) OwnerOption { return func(o *Owner) { o.crypto = c } }

// WithParallelism sets how many epochs Add and ReAdd share at once (default
// DefaultParallelism; 1 shares them one after the other). Every epoch is one
// pull and one push, so a group with a long history is added to in about
// epochs/n round trips.
func WithParallelism(n int) OwnerOption {
	return func(o *Owner) { o.parallel = max(1, n) }
}

// WithClock sets the clock used for the owner card's created_at.
func WithClock(now func() time.Time) OwnerOption { return func(o *Owner) { o.now = now } }

// NewOwner returns an Owner that acts as identity (DefaultOwnerIdentity when
// empty) with key, through c. c's tokens must be for the same identity.
func NewOwner(c *Client, key *PrivateKey, identity string, opts ...OwnerOption) *Owner {
	if identity == "" {
		identity = DefaultOwnerIdentity
	}
	o := &Owner{client: c, key: key, identity: identity, now: time.Now, parallel: DefaultParallelism, verified: &memo[[32]byte, bool]{}, seen: &epochNotes{}}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Identity returns the owner identity.
func (o *Owner) Identity() string { return o.identity }

// EnsureCard makes sure the owner identity has a card for the owner key and
// returns its id. It publishes one when the identity has no card, never a
// second one; ErrOwnerCardMismatch when the identity's cards hold another key.
func (o *Owner) EnsureCard(ctx context.Context) (string, error) {
	if err := ValidateIdentity(o.identity); err != nil {
		return "", fmt.Errorf("virgil: owner card: %w", err)
	}
	cards, err := o.client.SearchCards(ctx, []string{o.identity})
	if err != nil {
		return "", fmt.Errorf("virgil: owner card: %w", err)
	}
	cards = LinkCards(cards)
	for _, c := range cards {
		if c.PublicKey.Equal(o.key.Public()) {
			return c.ID, nil
		}
	}
	if len(cards) > 0 {
		return "", fmt.Errorf("virgil: owner card of %q: %w", o.identity, ErrOwnerCardMismatch)
	}
	raw, err := NewRawCard(o.key, o.identity, "", o.now())
	if err != nil {
		return "", err
	}
	stored, err := o.client.PublishCard(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("virgil: owner card: %w", err)
	}
	return stored.ID(), nil
}

// memberCards holds the current card keys of identities.
type memberCards struct {
	keys    map[string][]*PublicKey // every unlinked card of the identity
	current map[string]*Card        // the newest unlinked card
	refused map[string]string       // why an identity's cards were refused
}

// cardsOf searches the cards of ids, links chains, verifies signatures and
// returns the keys of every identity that has a card. A card whose service
// signature does not verify is left out as if it did not exist, and the
// reason is kept in refused for identities left without any card.
func (o *Owner) cardsOf(ctx context.Context, ids []string) (*memberCards, error) {
	mc := &memberCards{keys: map[string][]*PublicKey{}, current: map[string]*Card{}, refused: map[string]string{}}
	for start := 0; start < len(ids); start += searchChunk {
		chunk := ids[start:min(start+searchChunk, len(ids))]
		cards, err := o.client.SearchCards(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, c := range LinkCards(cards) {
			if err := o.verify(c); err != nil {
				mc.refused[c.Identity] = fmt.Sprintf("card %s refused: no valid Virgil (Cards service) signature", c.ID)
				continue
			}
			mc.keys[c.Identity] = append(mc.keys[c.Identity], c.PublicKey)
			if cur := mc.current[c.Identity]; cur == nil || c.CreatedAt.After(cur.CreatedAt) ||
				(c.CreatedAt.Equal(cur.CreatedAt) && c.ID > cur.ID) {
				mc.current[c.Identity] = c
			}
		}
	}
	for id := range mc.refused {
		if len(mc.keys[id]) > 0 {
			delete(mc.refused, id)
		}
	}
	return mc, nil
}

// refusedOf returns the reasons of the identities of pending whose cards
// were refused.
func (mc *memberCards) refusedOf(pending []string) map[string]string {
	out := map[string]string{}
	for _, id := range pending {
		if r, ok := mc.refused[id]; ok {
			out[id] = r
		}
	}
	return out
}

// verify checks c's service signature once per served card bytes.
func (o *Owner) verify(c *Card) error {
	if o.serviceKey == nil {
		return nil
	}
	var zero [32]byte
	if c.digest != zero {
		if ok, _ := o.verified.get(c.digest); ok {
			return nil
		}
	}
	if err := c.Verify(o.serviceKey); err != nil {
		return err
	}
	if c.digest != zero {
		o.verified.put(c.digest, true)
	}
	return nil
}

// split returns the identities of ids that have a card and those that do
// not (pending), in the order of ids.
func (mc *memberCards) split(ids []string) (ready, pending []string) {
	for _, id := range ids {
		if len(mc.keys[id]) > 0 {
			ready = append(ready, id)
		} else {
			pending = append(pending, id)
		}
	}
	return ready, pending
}

// recipients returns the owner key followed by the card keys of ids. An
// identity with several unlinked cards gets a copy for each key, so the
// member can read the ticket with whichever key it holds.
func (o *Owner) recipients(mc *memberCards, ids []string) []*PublicKey {
	out := []*PublicKey{o.key.Public()}
	for _, id := range ids {
		out = append(out, mc.keys[id]...)
	}
	return out
}

// CardIDs returns the current card id of each identity that has a card (the
// newest when an identity has several unlinked cards). Comparing them with
// the ids seen at the last add tells which members need ReAdd.
func (o *Owner) CardIDs(ctx context.Context, identities []string) (map[string]string, error) {
	ids, err := o.normalize(identities)
	if err != nil {
		return nil, err
	}
	mc, err := o.cardsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	return mc.cardIDs(ids), nil
}

// cardIDs returns the current card id of each of ids that has a card.
func (mc *memberCards) cardIDs(ids []string) map[string]string {
	out := make(map[string]string, len(ids))
	for _, id := range ids {
		if c := mc.current[id]; c != nil {
			out[id] = c.ID
		}
	}
	return out
}

// normalize validates identities and returns them without duplicates and
// without the owner, in their first order.
func (o *Owner) normalize(identities []string) ([]string, error) {
	seen := make(map[string]bool, len(identities))
	out := make([]string, 0, len(identities))
	for _, id := range identities {
		if err := ValidateIdentity(id); err != nil {
			return nil, err
		}
		if id == o.identity || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out, nil
}

// group validates a group id and returns its Keyknox path.
func (o *Owner) group(groupID string, members []string) (path string, ids []string, err error) {
	path, err = SessionPath(groupID)
	if err != nil {
		return "", nil, err
	}
	ids, err = o.normalize(members)
	if err != nil {
		return "", nil, fmt.Errorf("virgil: group %q: %w", groupID, err)
	}
	return path, ids, nil
}

// ticket is one decrypted epoch entry.
type ticket struct {
	epoch      uint32
	msg        *EpochMessage
	identities []string
	hash       string
}

// epochs lists the group's epochs, ascending.
func (o *Owner) epochs(ctx context.Context, path string) ([]uint32, error) {
	keys, err := o.client.KeyknoxKeys(ctx, GroupSessionsRoot, path, o.identity)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(keys))
	for _, k := range keys {
		e, err := strconv.ParseUint(k, 10, 32)
		if err != nil || strconv.FormatUint(e, 10) != k {
			return nil, fmt.Errorf("virgil: group %s: key %q is not an epoch: %w", path, k, ErrInvalidTicket)
		}
		out = append(out, uint32(e))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// pull reads and opens the owner's copy of an epoch; nil when it is gone.
func (o *Owner) pull(ctx context.Context, path string, sessionID []byte, epoch uint32) (*ticket, error) {
	e, err := o.client.KeyknoxPull(ctx, GroupSessionsRoot, path, strconv.FormatUint(uint64(epoch), 10), o.identity)
	if err != nil {
		return nil, err
	}
	if e.Empty() {
		return nil, nil
	}
	return o.open(e, path, sessionID, epoch)
}

// open decrypts and checks the owner's copy e of an epoch.
func (o *Owner) open(e *KeyknoxEntry, path string, sessionID []byte, epoch uint32) (*ticket, error) {
	plain, err := o.crypto.DecryptThenVerify(e.Meta, e.Value, o.key, o.key.Public())
	if err != nil {
		return nil, fmt.Errorf("virgil: group %s epoch %d: %w: %w", path, epoch, ErrInvalidTicket, err)
	}
	msg, err := ParseEpochMessage(plain)
	if err != nil {
		return nil, fmt.Errorf("virgil: group %s epoch %d: %w: %w", path, epoch, ErrInvalidTicket, err)
	}
	if msg.Epoch != epoch || string(msg.SessionID) != string(sessionID) {
		return nil, fmt.Errorf("virgil: group %s: entry %d holds epoch %d of session %x: %w", path, epoch, msg.Epoch, msg.SessionID, ErrInvalidTicket)
	}
	return &ticket{epoch: epoch, msg: msg, identities: dedupe(e.Identities), hash: e.Hash}, nil
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// push encrypts msg for the owner and the card keys of ids and pushes it
// with identities, using previous as the previous hash.
func (o *Owner) push(ctx context.Context, path string, msg *EpochMessage, identities []string, mc *memberCards, keyIDs []string, previous string) error {
	meta, value, err := o.crypto.SignThenEncrypt(msg.Marshal(), o.key, o.recipients(mc, keyIDs))
	if err != nil {
		return err
	}
	_, err = o.client.KeyknoxPush(ctx, KeyknoxPush{
		Root: GroupSessionsRoot, Path: path, Key: strconv.FormatUint(uint64(msg.Epoch), 10),
		Identities: identities, Meta: meta, Value: value, PreviousHash: previous,
	})
	if err == nil {
		o.seen.wrote(path, msg.Epoch, o.now())
	}
	return err
}

// State reads the group as its owner: its epochs and the participants of the
// newest one. A group without epochs has Exists false.
func (o *Owner) State(ctx context.Context, groupID string) (GroupState, error) {
	path, err := SessionPath(groupID)
	if err != nil {
		return GroupState{}, err
	}
	st, _, err := o.state(ctx, groupID, path)
	if err != nil {
		return GroupState{}, fmt.Errorf("virgil: state of group %q: %w", groupID, err)
	}
	return st, nil
}

func (o *Owner) state(ctx context.Context, groupID, path string) (GroupState, *ticket, error) {
	st := GroupState{GroupID: groupID, Path: path}
	sid, _ := SessionID(groupID)
	for attempt := 0; attempt < pushAttempts; attempt++ {
		epochs, err := o.epochs(ctx, path)
		if err != nil {
			return st, nil, err
		}
		if len(epochs) == 0 {
			o.seen.read(path, 0, false, o.now())
			return st, nil, nil
		}
		latest := epochs[len(epochs)-1]
		t, err := o.pull(ctx, path, sid, latest)
		if err != nil {
			return st, nil, err
		}
		if t == nil {
			continue // deleted meanwhile: list again
		}
		st.Exists, st.Epochs, st.Latest, st.Participants = true, epochs, latest, t.identities
		o.seen.read(path, latest, true, o.now())
		return st, t, nil
	}
	return st, nil, fmt.Errorf("virgil: group %s keeps changing", path)
}

func (o *Owner) checkCount(groupID string, n int) error {
	if n > MaxParticipants {
		return &TooManyParticipantsError{Group: groupID, Count: n}
	}
	return nil
}

// Shared is the outcome of giving members access to a group.
type Shared struct {
	// Pending are the members without a card, left out.
	Pending []string
	// Refused gives, for the members of Pending whose only cards were
	// refused (no valid Cards service signature), the reason; members
	// without any card are absent.
	Refused map[string]string
	// CardIDs maps each member given access to its current card id (the
	// newest of its unlinked cards), read by the same search that gave the
	// keys the tickets were encrypted to.
	CardIDs map[string]string
}

// CreateGroup creates the group with the owner and members as participants
// (epoch 0). Members without a card are skipped and returned in Pending; the
// card ids of the others are in CardIDs. More than MaxParticipants-1 members
// (pending ones included) are refused with *TooManyParticipantsError. When
// the group already exists, CreateGroup converges to AddMembers(members).
func (o *Owner) CreateGroup(ctx context.Context, groupID string, members []string) (Shared, error) {
	path, ids, err := o.group(groupID, members)
	if err != nil {
		return Shared{}, err
	}
	if err := o.checkCount(groupID, 1+len(ids)); err != nil {
		return Shared{}, err
	}
	mc, err := o.cardsOf(ctx, ids)
	if err != nil {
		return Shared{}, fmt.Errorf("virgil: create group %q: %w", groupID, err)
	}
	ready, pending := mc.split(ids)
	sid, _ := SessionID(groupID)
	msg, err := NewEpochMessage(sid, 0, o.crypto.Rand)
	if err != nil {
		return Shared{}, err
	}
	err = o.push(ctx, path, msg, append([]string{o.identity}, ready...), mc, ready, "")
	if errors.Is(err, ErrInvalidPreviousHash) {
		return o.AddMembers(ctx, groupID, members) // exists already
	}
	if err != nil {
		return Shared{}, fmt.Errorf("virgil: create group %q: %w", groupID, err)
	}
	return Shared{Pending: pending, Refused: mc.refusedOf(pending), CardIDs: mc.cardIDs(ready)}, nil
}

// AddMembers gives members access to every epoch of the group, newest
// first, so an interrupted AddMembers already lets them load the group and
// read current messages and a repeated one completes the history. Members
// without a card are skipped and returned in Pending; the card ids of the
// others are in CardIDs. ErrGroupNotFound when the group has no epochs;
// *TooManyParticipantsError when the current participants plus the new
// members (pending ones included) would exceed MaxParticipants.
func (o *Owner) AddMembers(ctx context.Context, groupID string, members []string) (Shared, error) {
	return o.share(ctx, groupID, members, false)
}

// ReAdd re-encrypts every epoch of the group for members under their current
// cards (after a member's key changed), removing their old copies first.
// Members are given every epoch even where they were not listed (so an
// interrupted ReAdd converges when repeated): call it for current members
// only. Members without a card are skipped. ErrGroupNotFound when the group
// has no epochs.
func (o *Owner) ReAdd(ctx context.Context, groupID string, members []string) error {
	_, err := o.share(ctx, groupID, members, true)
	return err
}

func (o *Owner) share(ctx context.Context, groupID string, members []string, replace bool) (Shared, error) {
	op := "add to"
	if replace {
		op = "re-add to"
	}
	path, ids, err := o.group(groupID, members)
	if err != nil {
		return Shared{}, err
	}
	st, _, err := o.state(ctx, groupID, path)
	if err != nil {
		return Shared{}, fmt.Errorf("virgil: %s group %q: %w", op, groupID, err)
	}
	if !st.Exists {
		return Shared{}, fmt.Errorf("virgil: %s group %q: %w", op, groupID, ErrGroupNotFound)
	}
	count := len(st.Participants)
	for _, id := range ids {
		if !slices.Contains(st.Participants, id) {
			count++
		}
	}
	if !slices.Contains(st.Participants, o.identity) {
		count++
	}
	if err := o.checkCount(groupID, count); err != nil {
		return Shared{}, err
	}
	mc, err := o.cardsOf(ctx, ids)
	if err != nil {
		return Shared{}, fmt.Errorf("virgil: %s group %q: %w", op, groupID, err)
	}
	ready, pending := mc.split(ids)
	if len(ready) == 0 {
		return Shared{Pending: pending, Refused: mc.refusedOf(pending), CardIDs: map[string]string{}}, nil
	}
	sid, _ := SessionID(groupID)
	// The newest epoch first and on its own, so an interrupted add already
	// lets the members load the group; then the history, several at a time.
	newest := st.Epochs[len(st.Epochs)-1]
	err = o.shareEpoch(ctx, path, sid, newest, ready, mc, replace)
	if err == nil {
		err = o.forEach(ctx, st.Epochs[:len(st.Epochs)-1], func(ctx context.Context, epoch uint32) error {
			return o.shareEpoch(ctx, path, sid, epoch, ready, mc, replace)
		})
	}
	if err != nil {
		return Shared{}, fmt.Errorf("virgil: %s group %q: %w", op, groupID, err)
	}
	return Shared{Pending: pending, Refused: mc.refusedOf(pending), CardIDs: mc.cardIDs(ready)}, nil
}

// forEach runs fn for every epoch, newest first, at most o.parallel at a
// time, and returns the first error (the others are cancelled).
func (o *Owner) forEach(ctx context.Context, epochs []uint32, fn func(context.Context, uint32) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	for i := len(epochs) - 1; i >= 0; i-- {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(epoch uint32) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, epoch); err != nil {
				cancel(err)
			}
		}(epochs[i])
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// shareEpoch gives ids access to one epoch; with replace, their existing
// copies are reset and replaced.
func (o *Owner) shareEpoch(ctx context.Context, path string, sid []byte, epoch uint32, ids []string, mc *memberCards, replace bool) error {
	key := strconv.FormatUint(uint64(epoch), 10)
	for attempt := 1; ; attempt++ {
		e, err := o.client.KeyknoxPull(ctx, GroupSessionsRoot, path, key, o.identity)
		if err != nil {
			return err
		}
		if e.Empty() {
			return nil // the epoch was deleted meanwhile
		}
		need := ids
		if !replace {
			need = nil
			for _, id := range ids {
				if !slices.Contains(e.Identities, id) {
					need = append(need, id)
				}
			}
		}
		if len(need) == 0 {
			return nil // nothing to decrypt for
		}
		t, err := o.open(e, path, sid, epoch)
		if err != nil {
			return err
		}
		if replace {
			for _, id := range need {
				if !slices.Contains(t.identities, id) {
					continue
				}
				if _, err := o.client.KeyknoxReset(ctx, KeyknoxReset{Root: GroupSessionsRoot, Path: path, Key: key, Identity: id}); err != nil {
					return err
				}
			}
		}
		err = o.push(ctx, path, t.msg, need, mc, need, t.hash)
		if errors.Is(err, ErrInvalidPreviousHash) && attempt < pushAttempts {
			continue // another writer changed the entry: read it again
		}
		return err
	}
}

// Remove takes members out of the group: it first writes a new epoch for the
// remaining participants, then revokes the removed members' access to every
// epoch, so they never receive the new key. Repeating it, or resuming it
// after it stopped between the two steps, converges. The owner is never
// removed. Remaining participants without a card any more are left out of the
// new epoch (Add them again once they have one). ErrGroupNotFound when the
// group has no epochs.
func (o *Owner) Remove(ctx context.Context, groupID string, members []string) error {
	path, ids, err := o.group(groupID, members)
	if err != nil {
		return err
	}
	return o.remove(ctx, groupID, path, ids, nil)
}

// remove is Remove of the normalized identities ids from the group at path;
// read, when not nil, is the group's state as the caller just read it, used
// instead of reading it again (an epoch written meanwhile by another writer
// makes the push fail and the group be read again).
func (o *Owner) remove(ctx context.Context, groupID, path string, ids []string, read *GroupState) error {
	sid, _ := SessionID(groupID)
	for attempt := 1; ; attempt++ {
		var st GroupState
		var err error
		if read != nil && attempt == 1 {
			st = *read
		} else if st, _, err = o.state(ctx, groupID, path); err != nil {
			return fmt.Errorf("virgil: remove from group %q: %w", groupID, err)
		}
		if !st.Exists {
			return fmt.Errorf("virgil: remove from group %q: %w", groupID, ErrGroupNotFound)
		}
		var gone, keep []string
		for _, p := range st.Participants {
			switch {
			case p == o.identity:
			case slices.Contains(ids, p):
				gone = append(gone, p)
			default:
				keep = append(keep, p)
			}
		}
		if len(gone) == 0 {
			break
		}
		mc, err := o.cardsOf(ctx, keep)
		if err != nil {
			return fmt.Errorf("virgil: remove from group %q: %w", groupID, err)
		}
		ready, _ := mc.split(keep)
		msg, err := NewEpochMessage(sid, st.Latest+1, o.crypto.Rand)
		if err != nil {
			return err
		}
		err = o.push(ctx, path, msg, append([]string{o.identity}, ready...), mc, ready, "")
		if errors.Is(err, ErrInvalidPreviousHash) && attempt < pushAttempts {
			continue // another writer made that epoch: read the group again
		}
		if err != nil {
			return fmt.Errorf("virgil: remove from group %q: new epoch: %w", groupID, err)
		}
		break
	}
	for _, id := range ids {
		if _, err := o.client.KeyknoxReset(ctx, KeyknoxReset{Root: GroupSessionsRoot, Path: path, Identity: id}); err != nil {
			return fmt.Errorf("virgil: remove from group %q: revoke %q: %w", groupID, id, err)
		}
	}
	return nil
}

// Retain removes every participant of the group but the owner and keep, as
// Remove does, and returns the identities it removed (nil when the group
// already held no one else). It never adds anyone: members of keep who are
// not participants stay out. A missing group has nobody to remove and
// succeeds.
//
// The identities that still have access to the epoch before the newest and
// are not kept are removed too: a Retain (or Remove) that stopped after the
// new epoch, before revoking the removed members' access to the earlier
// ones, left them there and out of the newest, so repeating Retain resumes
// it, as repeating Remove does.
func (o *Owner) Retain(ctx context.Context, groupID string, keep []string) ([]string, error) {
	keep, err := o.normalize(keep)
	if err != nil {
		return nil, fmt.Errorf("virgil: retain in group %q: %w", groupID, err)
	}
	path, err := SessionPath(groupID)
	if err != nil {
		return nil, err
	}
	st, _, err := o.state(ctx, groupID, path)
	if err != nil {
		return nil, fmt.Errorf("virgil: retain in group %q: %w", groupID, err)
	}
	holders := st.Participants
	if n := len(st.Epochs); n > 1 {
		sid, _ := SessionID(groupID)
		prev, err := o.pull(ctx, path, sid, st.Epochs[n-2])
		if err != nil {
			return nil, fmt.Errorf("virgil: retain in group %q: %w", groupID, err)
		}
		if prev != nil {
			holders = append(slices.Clone(holders), prev.identities...)
		}
	}
	var gone []string
	for _, p := range holders {
		if p != o.identity && !slices.Contains(keep, p) && !slices.Contains(gone, p) {
			gone = append(gone, p)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := o.remove(ctx, groupID, path, gone, &st); err != nil {
		if errors.Is(err, ErrGroupNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return gone, nil
}

// Delete deletes every epoch of the group. Deleting a missing group succeeds.
func (o *Owner) Delete(ctx context.Context, groupID string) error {
	path, err := SessionPath(groupID)
	if err != nil {
		return err
	}
	if _, err := o.client.KeyknoxReset(ctx, KeyknoxReset{Root: GroupSessionsRoot, Path: path}); err != nil {
		return fmt.Errorf("virgil: delete group %q: %w", groupID, err)
	}
	o.seen.read(path, 0, false, o.now())
	return nil
}
