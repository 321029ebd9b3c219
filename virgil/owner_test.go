package virgil_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil"
)

const ownerID = virgil.DefaultOwnerIdentity

// ownerBundle is an Owner against a Virgil server with member helpers.
type ownerBundle struct {
	faults  *faults
	url     string
	gen     *virgil.JWTGenerator
	service *virgil.PrivateKey
	owner   *virgil.Owner
	key     *virgil.PrivateKey
}

func setupOwner(t testing.TB) *ownerBundle {
	t.Helper()
	kf := loadKeys(t)
	b := setupJWT(t, time.Now())
	b.gen.Now = nil
	service, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, fl, url := newEmulator(t, b.gen, service)
	ob := &ownerBundle{faults: fl, url: url, gen: b.gen, service: service, key: mustKey(t, kf, "owner")}
	ob.owner = virgil.NewOwner(ob.client(ownerID), ob.key, "", virgil.WithServiceKey(service.Public()))
	if _, err := ob.owner.EnsureCard(context.Background()); err != nil {
		t.Fatalf("EnsureCard: %v", err)
	}
	return ob
}

func (ob *ownerBundle) client(identity string) *virgil.Client {
	return virgil.NewClient(ob.url, ob.gen.Source(identity))
}

// member simulates an E3Kit group member.
type member struct {
	identity string
	key      *virgil.PrivateKey
	client   *virgil.Client
	cardID   string
}

func (ob *ownerBundle) register(t testing.TB, identity string) *member {
	t.Helper()
	key, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	m := &member{identity: identity, key: key, client: ob.client(identity)}
	rc, err := virgil.NewRawCard(key, identity, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.PublishCard(context.Background(), rc); err != nil {
		t.Fatalf("publish card of %s: %v", identity, err)
	}
	m.cardID = rc.ID()
	return m
}

// rotate replaces the member's key and card, as rotatePrivateKey does.
func (m *member) rotate(t testing.TB) {
	t.Helper()
	key, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := virgil.NewRawCard(key, m.identity, m.cardID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.PublishCard(context.Background(), rc); err != nil {
		t.Fatalf("rotate card of %s: %v", m.identity, err)
	}
	m.key, m.cardID = key, rc.ID()
}

// Member-side outcomes, named after E3Kit's GroupErrorCode.
var (
	errNoAccess            = errors.New("NoAccess (11)")
	errRemoteGroupNotFound = errors.New("RemoteGroupNotFound (3)")
)

// view is what a member's loadGroup sees.
type view struct {
	participants []string
	epochKeys    map[uint32][]byte
}

// load does what E3Kit's loadGroup does: search the owner card, list the
// keys, pull and open every ticket with the member key and the owner card.
func (m *member) load(t testing.TB, groupID string) (*view, error) {
	t.Helper()
	ctx := context.Background()
	cards, err := m.client.SearchCards(ctx, []string{ownerID})
	if err != nil {
		t.Fatal(err)
	}
	cards = virgil.LinkCards(cards)
	if len(cards) != 1 {
		t.Fatalf("owner has %d cards", len(cards))
	}
	path, _ := virgil.SessionPath(groupID)
	sid, _ := virgil.SessionID(groupID)
	keys, err := m.client.KeyknoxKeys(ctx, virgil.GroupSessionsRoot, path, ownerID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		return nil, errNoAccess
	}
	v := &view{epochKeys: map[uint32][]byte{}}
	latest := -1
	for _, k := range keys {
		e, err := m.client.KeyknoxPull(ctx, virgil.GroupSessionsRoot, path, k, ownerID)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := virgil.DecryptThenVerify(e.Meta, e.Value, m.key, cards[0].PublicKey)
		if errors.Is(err, virgil.ErrRecipientNotFound) || e.Empty() {
			return nil, errRemoteGroupNotFound
		}
		if err != nil {
			t.Fatalf("%s opens epoch %s: %v", m.identity, k, err)
		}
		msg, err := virgil.ParseEpochMessage(plain)
		if err != nil || !bytes.Equal(msg.SessionID, sid) || strconv.Itoa(int(msg.Epoch)) != k {
			t.Fatalf("%s: epoch %s holds %v, %v", m.identity, k, msg, err)
		}
		v.epochKeys[msg.Epoch] = msg.Key
		if int(msg.Epoch) > latest {
			latest, v.participants = int(msg.Epoch), slices.Clone(e.Identities)
		}
	}
	if len(v.participants) < 1 || len(v.participants) > 100 {
		t.Fatalf("%s sees %d participants", m.identity, len(v.participants))
	}
	return v, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// expectView asserts that m loads the group with the given participants and
// reads exactly the given epochs.
func expectView(t *testing.T, m *member, groupID string, participants []string, epochs ...uint32) *view {
	t.Helper()
	v, err := m.load(t, groupID)
	if err != nil {
		t.Fatalf("%s loads %s: %v", m.identity, groupID, err)
	}
	if !sameSet(v.participants, participants) {
		t.Errorf("%s sees participants %v, want %v", m.identity, v.participants, participants)
	}
	var got []uint32
	for e := range v.epochKeys {
		got = append(got, e)
	}
	slices.Sort(got)
	if !slices.Equal(got, epochs) {
		t.Errorf("%s reads epochs %v, want %v", m.identity, got, epochs)
	}
	return v
}

// expectViewLoose asserts that m loads the group and returns what it sees.
func expectViewLoose(t *testing.T, m *member, groupID string) *view {
	t.Helper()
	v, err := m.load(t, groupID)
	if err != nil {
		t.Fatalf("%s loads %s: %v", m.identity, groupID, err)
	}
	return v
}

func keysOf(m map[uint32][]byte) []uint32 {
	var out []uint32
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func expectLoadError(t *testing.T, m *member, groupID string, want error) {
	t.Helper()
	if _, err := m.load(t, groupID); !errors.Is(err, want) {
		t.Fatalf("%s loads %s: %v, want %v", m.identity, groupID, err, want)
	}
}

func TestOwnerEnsureCard(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	id1, err := ob.owner.EnsureCard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := ob.owner.EnsureCard(ctx)
	if err != nil || id2 != id1 {
		t.Fatalf("EnsureCard again = %s, %v; want %s", id2, err, id1)
	}
	if n := len(mustSearch(t, &member{client: ob.client(ownerID)}, ownerID)); n != 1 {
		t.Errorf("owner has %d cards, want 1", n)
	}
	other, _ := virgil.GenerateKey()
	o2 := virgil.NewOwner(ob.client(ownerID), other, ownerID)
	if _, err := o2.EnsureCard(ctx); !errors.Is(err, virgil.ErrOwnerCardMismatch) {
		t.Errorf("EnsureCard(other key) = %v, want ErrOwnerCardMismatch", err)
	}
	if o2.Identity() != ownerID || virgil.NewOwner(nil, other, "").Identity() != virgil.DefaultOwnerIdentity {
		t.Error("NewOwner does not default the identity")
	}
}

func TestOwnerLifecycle(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const group = "cometchat-guid-supergroup-42"
	alice, bob, carol := ob.register(t, "alice-uid"), ob.register(t, "bob-uid"), ob.register(t, "carol-uid")

	// Create with a member that has no card yet.
	res, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid", "dave-uid", "alice-uid", ownerID})
	pending := res.Pending
	if err != nil || !slices.Equal(pending, []string{"dave-uid"}) {
		t.Fatalf("Create = %v, %v; want pending [dave-uid]", pending, err)
	}
	v0 := expectView(t, alice, group, []string{ownerID, "alice-uid", "bob-uid"}, 0)
	expectView(t, bob, group, []string{ownerID, "alice-uid", "bob-uid"}, 0)
	expectLoadError(t, carol, group, errNoAccess)
	st, err := ob.owner.State(ctx, group)
	if err != nil || !st.Exists || !slices.Equal(st.Epochs, []uint32{0}) || !sameSet(st.Participants, []string{ownerID, "alice-uid", "bob-uid"}) {
		t.Fatalf("State = %+v, %v", st, err)
	}
	if !sameSet(st.Members(ownerID), []string{"alice-uid", "bob-uid"}) {
		t.Errorf("Members = %v", st.Members(ownerID))
	}

	// Create again converges: no new epoch, the key stays.
	if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid"}); err != nil {
		t.Fatalf("Create again: %v", err)
	}
	v := expectView(t, alice, group, []string{ownerID, "alice-uid", "bob-uid"}, 0)
	if !bytes.Equal(v.epochKeys[0], v0.epochKeys[0]) {
		t.Error("Create again changed the epoch key")
	}

	// Add carol; dave registers and is added too.
	dave := ob.register(t, "dave-uid")
	if res, err := ob.owner.AddMembers(ctx, group, []string{"carol-uid", "dave-uid"}); err != nil || len(res.Pending) != 0 {
		t.Fatalf("Add = %v, %v", pending, err)
	}
	all := []string{ownerID, "alice-uid", "bob-uid", "carol-uid", "dave-uid"}
	for _, m := range []*member{alice, bob, carol, dave} {
		expectView(t, m, group, all, 0)
	}
	before := ob.faults.count()
	if _, err := ob.owner.AddMembers(ctx, group, []string{"carol-uid"}); err != nil {
		t.Fatal(err)
	}
	if pushes := ob.faults.count() - before; pushes > 4 { // search, keys, pull (state), pull: no push
		t.Errorf("repeated Add made %d requests", pushes)
	}

	// Remove bob: new epoch for the others, bob loses access.
	if err := ob.owner.Remove(ctx, group, []string{"bob-uid"}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	rest := []string{ownerID, "alice-uid", "carol-uid", "dave-uid"}
	va := expectView(t, alice, group, rest, 0, 1)
	vc := expectView(t, carol, group, rest, 0, 1)
	if !bytes.Equal(va.epochKeys[1], vc.epochKeys[1]) || bytes.Equal(va.epochKeys[1], va.epochKeys[0]) {
		t.Error("epoch 1 keys differ between members or equal epoch 0")
	}
	expectLoadError(t, bob, group, errNoAccess)
	if err := ob.owner.Remove(ctx, group, []string{"bob-uid"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := ob.owner.State(ctx, group); !slices.Equal(st.Epochs, []uint32{0, 1}) {
		t.Errorf("repeated Remove: epochs %v, want [0 1]", st.Epochs)
	}

	// Carol's key changes: she cannot read until re-added.
	oldCard := carol.cardID
	carol.rotate(t)
	expectLoadError(t, carol, group, errRemoteGroupNotFound)
	ids, err := ob.owner.CardIDs(ctx, []string{"carol-uid", "alice-uid", "nobody-uid"})
	if err != nil || ids["carol-uid"] != carol.cardID || ids["carol-uid"] == oldCard || ids["alice-uid"] != alice.cardID || len(ids) != 2 {
		t.Fatalf("CardIDs = %v, %v", ids, err)
	}
	if err := ob.owner.ReAdd(ctx, group, []string{"carol-uid"}); err != nil {
		t.Fatalf("ReAdd: %v", err)
	}
	vc = expectView(t, carol, group, rest, 0, 1)
	if !bytes.Equal(vc.epochKeys[1], va.epochKeys[1]) {
		t.Error("re-added carol reads another epoch 1 key")
	}
	expectView(t, alice, group, rest, 0, 1)

	// Delete: nobody has access any more; deleting again succeeds.
	if err := ob.owner.Delete(ctx, group); err != nil {
		t.Fatal(err)
	}
	expectLoadError(t, alice, group, errNoAccess)
	if err := ob.owner.Delete(ctx, group); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
	if st, err := ob.owner.State(ctx, group); err != nil || st.Exists {
		t.Errorf("State after Delete = %+v, %v", st, err)
	}
}

func TestOwnerResumesAfterCrash(t *testing.T) {
	ctx := context.Background()
	t.Run("RemoveStoppedAfterNewEpoch", func(t *testing.T) {
		ob := setupOwner(t)
		const group = "crash-remove-group"
		alice, bob := ob.register(t, "alice-uid"), ob.register(t, "bob-uid")
		if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid"}); err != nil {
			t.Fatal(err)
		}
		ob.faults.setFail(func(path string, _ []byte) bool { return path == "/keyknox/v2/reset" })
		err := ob.owner.Remove(ctx, group, []string{"bob-uid"})
		if err == nil || !virgil.Retryable(err) {
			t.Fatalf("Remove with failing resets = %v, want a retryable error", err)
		}
		// Bob still reads epoch 0 but never got epoch 1.
		if v, err := bob.load(t, group); !errors.Is(err, errRemoteGroupNotFound) && (err != nil || v.epochKeys[1] != nil) {
			t.Fatalf("bob after the crash: %v, %v", v, err)
		}
		ob.faults.setFail(nil)
		if err := ob.owner.Remove(ctx, group, []string{"bob-uid"}); err != nil {
			t.Fatalf("resumed Remove: %v", err)
		}
		expectView(t, alice, group, []string{ownerID, "alice-uid"}, 0, 1)
		expectLoadError(t, bob, group, errNoAccess)
		if st, _ := ob.owner.State(ctx, group); !slices.Equal(st.Epochs, []uint32{0, 1}) {
			t.Errorf("epochs %v after resumed Remove, want [0 1]", st.Epochs)
		}
	})
	t.Run("AddStoppedHalfway", func(t *testing.T) {
		ob := setupOwner(t)
		const group = "crash-add-group-1"
		alice := ob.register(t, "alice-uid")
		ob.register(t, "bob-uid")
		if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid"}); err != nil {
			t.Fatal(err)
		}
		if err := ob.owner.Remove(ctx, group, []string{"bob-uid"}); err != nil {
			t.Fatal(err)
		}
		carol := ob.register(t, "carol-uid")
		// The push of epoch 0 fails: epoch 1 (newest, done first) is shared.
		ob.faults.setFail(func(path string, body []byte) bool {
			return path == "/keyknox/v2/push" && bytes.Contains(body, []byte(`"key":"0"`))
		})
		if _, err := ob.owner.AddMembers(ctx, group, []string{"carol-uid"}); err == nil {
			t.Fatal("Add with a failing push = nil error")
		}
		// Carol already loads the group and reads the current epoch.
		expectView(t, carol, group, []string{ownerID, "alice-uid", "carol-uid"}, 1)
		ob.faults.setFail(nil)
		if _, err := ob.owner.AddMembers(ctx, group, []string{"carol-uid"}); err != nil {
			t.Fatal(err)
		}
		expectView(t, carol, group, []string{ownerID, "alice-uid", "carol-uid"}, 0, 1)
		expectView(t, alice, group, []string{ownerID, "alice-uid", "carol-uid"}, 0, 1)
	})
	t.Run("AddLongHistoryFailsInTheMiddle", func(t *testing.T) {
		ob := setupOwner(t)
		const group = "crash-add-history"
		alice := ob.register(t, "alice-uid")
		var users []string
		for i := range 20 {
			users = append(users, ob.register(t, fmt.Sprintf("user-%02d", i)).identity)
		}
		if _, err := ob.owner.CreateGroup(ctx, group, append([]string{"alice-uid"}, users...)); err != nil {
			t.Fatal(err)
		}
		var all []uint32
		for i, u := range users {
			if err := ob.owner.Remove(ctx, group, []string{u}); err != nil {
				t.Fatal(err)
			}
			all = append(all, uint32(i))
		}
		all = append(all, 20)
		carol := ob.register(t, "carol-uid")
		// Two old epochs fail while the others are shared several at a time.
		ob.faults.setFail(func(path string, body []byte) bool {
			return path == "/keyknox/v2/push" && (bytes.Contains(body, []byte(`"key":"7"`)) || bytes.Contains(body, []byte(`"key":"13"`)))
		})
		if _, err := ob.owner.AddMembers(ctx, group, []string{"carol-uid"}); err == nil {
			t.Fatal("Add with failing pushes = nil error")
		}
		v := expectViewLoose(t, carol, group)
		if v.epochKeys[20] == nil || v.epochKeys[7] != nil || v.epochKeys[13] != nil {
			t.Fatalf("carol after the failed add reads epochs %v; want 20, not 7 or 13", keysOf(v.epochKeys))
		}
		ob.faults.setFail(nil)
		if _, err := ob.owner.AddMembers(ctx, group, []string{"carol-uid"}); err != nil {
			t.Fatal(err)
		}
		expectView(t, carol, group, []string{ownerID, "alice-uid", "carol-uid"}, all...)
		expectView(t, alice, group, []string{ownerID, "alice-uid", "carol-uid"}, all...)
	})
	t.Run("CreateAnswerLost", func(t *testing.T) {
		ob := setupOwner(t)
		const group = "crash-create-group"
		alice := ob.register(t, "alice-uid")
		ob.register(t, "bob-uid")
		if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid"}); err != nil {
			t.Fatal(err)
		}
		// The retried create carries one more member: it converges to add.
		if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid"}); err != nil {
			t.Fatal(err)
		}
		expectView(t, alice, group, []string{ownerID, "alice-uid", "bob-uid"}, 0)
	})
}

func TestOwnerRefuses(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("member-%03d", i)
	}
	_, err := ob.owner.CreateGroup(ctx, "big-group-0001", many)
	var tm *virgil.TooManyParticipantsError
	if !errors.Is(err, virgil.ErrTooManyParticipants) || !errors.As(err, &tm) || tm.Count != 101 || tm.Group != "big-group-0001" {
		t.Fatalf("Create(100 members) = %v, want TooManyParticipantsError{Count: 101}", err)
	}
	for _, id := range many[:99] {
		ob.register(t, id)
	}
	if res, err := ob.owner.CreateGroup(ctx, "big-group-0001", many[:99]); err != nil || len(res.Pending) != 0 {
		t.Fatalf("CreateGroup(99 members) = %v, %v", res, err)
	}
	if _, err := ob.owner.AddMembers(ctx, "big-group-0001", []string{"one-too-many"}); !errors.Is(err, virgil.ErrTooManyParticipants) {
		t.Fatalf("Add(100th member) = %v, want ErrTooManyParticipants", err)
	}
	for _, g := range []string{"", "short", "123456789"} {
		if _, err := ob.owner.CreateGroup(ctx, g, nil); !errors.Is(err, virgil.ErrGroupIDTooShort) {
			t.Errorf("Create(%q) = %v, want ErrGroupIDTooShort", g, err)
		}
		if err := ob.owner.Delete(ctx, g); !errors.Is(err, virgil.ErrGroupIDTooShort) {
			t.Errorf("Delete(%q) = %v, want ErrGroupIDTooShort", g, err)
		}
	}
	const missing = "no-such-group-here"
	if _, err := ob.owner.AddMembers(ctx, missing, []string{"a-uid"}); !errors.Is(err, virgil.ErrGroupNotFound) {
		t.Errorf("Add(missing group) = %v, want ErrGroupNotFound", err)
	}
	if err := ob.owner.Remove(ctx, missing, []string{"a-uid"}); !errors.Is(err, virgil.ErrGroupNotFound) {
		t.Errorf("Remove(missing group) = %v, want ErrGroupNotFound", err)
	}
	if err := ob.owner.ReAdd(ctx, missing, []string{"a-uid"}); !errors.Is(err, virgil.ErrGroupNotFound) {
		t.Errorf("ReAdd(missing group) = %v, want ErrGroupNotFound", err)
	}
	for _, id := range []string{"", "jürgen", "tab\tuser"} {
		if _, err := ob.owner.CreateGroup(ctx, "valid-group-id", []string{id}); !errors.Is(err, virgil.ErrInvalidIdentity) {
			t.Errorf("Create(member %q) = %v, want ErrInvalidIdentity", id, err)
		}
	}
	for _, err := range []error{virgil.ErrGroupNotFound, virgil.ErrTooManyParticipants, tm} {
		if !strings.HasPrefix(err.Error(), "virgil: ") {
			t.Errorf("%q lacks the virgil: prefix", err)
		}
	}
}

func TestOwnerRejectsForeignTickets(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const group = "tampered-group-01"
	ob.register(t, "alice-uid")
	if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid"}); err != nil {
		t.Fatal(err)
	}
	// Another key owning the same identity cannot read the tickets.
	other, _ := virgil.GenerateKey()
	impostor := virgil.NewOwner(ob.client(ownerID), other, ownerID)
	if _, err := impostor.State(ctx, group); !errors.Is(err, virgil.ErrInvalidTicket) {
		t.Fatalf("State with another key = %v, want ErrInvalidTicket", err)
	}
}

func TestOwnerRotateKey(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const g1, g2 = "rotate-group-0001", "rotate-group-0002"
	alice, bob := ob.register(t, "alice-uid"), ob.register(t, "bob-uid")
	if _, err := ob.owner.CreateGroup(ctx, g1, []string{"alice-uid", "bob-uid"}); err != nil {
		t.Fatal(err)
	}
	if err := ob.owner.Remove(ctx, g1, []string{"bob-uid"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.owner.CreateGroup(ctx, g2, []string{"bob-uid"}); err != nil {
		t.Fatal(err)
	}
	before := expectView(t, alice, g1, []string{ownerID, "alice-uid"}, 0, 1)
	newKey, _ := virgil.GenerateKey()
	// The push of g2 fails: g1 is done, the card is published.
	ob.faults.setFail(func(path string, body []byte) bool {
		p2, _ := virgil.SessionPath(g2)
		return path == "/keyknox/v2/push" && bytes.Contains(body, []byte(p2))
	})
	if _, err := ob.owner.RotateKey(ctx, newKey, []string{g1, g2}); err == nil {
		t.Fatal("RotateKey with a failing push = nil error")
	}
	ob.faults.setFail(nil)
	next, err := ob.owner.RotateKey(ctx, newKey, []string{g1, g2})
	if err != nil {
		t.Fatalf("resumed RotateKey: %v", err)
	}
	after := expectView(t, alice, g1, []string{ownerID, "alice-uid"}, 0, 1)
	if !bytes.Equal(before.epochKeys[1], after.epochKeys[1]) {
		t.Error("RotateKey changed an epoch key")
	}
	expectView(t, bob, g2, []string{ownerID, "bob-uid"}, 0)
	expectLoadError(t, bob, g1, errNoAccess)
	if st, err := next.State(ctx, g1); err != nil || !slices.Equal(st.Epochs, []uint32{0, 1}) {
		t.Fatalf("State with the new key = %+v, %v", st, err)
	}
	if _, err := ob.owner.State(ctx, g1); !errors.Is(err, virgil.ErrInvalidTicket) {
		t.Errorf("State with the old key = %v, want ErrInvalidTicket", err)
	}
	if id, err := next.EnsureCard(ctx); err != nil || len(virgil.LinkCards(mustSearch(t, alice, ownerID))) != 1 {
		t.Errorf("EnsureCard after rotation = %s, %v", id, err)
	}
	if _, err := next.AddMembers(ctx, g1, []string{"bob-uid"}); err != nil {
		t.Fatal(err)
	}
	expectView(t, bob, g1, []string{ownerID, "alice-uid", "bob-uid"}, 0, 1)
}

func mustSearch(t *testing.T, m *member, id string) []*virgil.Card {
	t.Helper()
	cards, err := m.client.SearchCards(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	return cards
}

// TestOwnerSearchesInChunks: a group of 99 members needs two card searches,
// and the emulator refuses any search of more than MaxSearchIdentities, so
// the group is made only if the owner searches in chunks.
func TestOwnerSearchesInChunks(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const group = "cometchat-guid-large-group"
	var ids []string
	for i := range virgil.MaxParticipants - 1 {
		id := fmt.Sprintf("member-%02d", i)
		ids = append(ids, id)
		if i%2 == 0 { // half of them have a card
			ob.register(t, id)
		}
	}
	res, err := ob.owner.CreateGroup(ctx, group, ids)
	if err != nil {
		t.Fatalf("CreateGroup with %d members: %v", len(ids), err)
	}
	if len(res.Pending) != len(ids)/2 || len(res.CardIDs) != len(ids)-len(ids)/2 {
		t.Fatalf("CreateGroup = %d pending, %d with cards; want %d and %d", len(res.Pending), len(res.CardIDs), len(ids)/2, len(ids)-len(ids)/2)
	}
	if _, err := ob.client(ownerID).SearchCards(ctx, ids[:virgil.MaxSearchIdentities+1]); err == nil {
		t.Fatalf("a search of %d identities succeeded; the emulator must refuse it", virgil.MaxSearchIdentities+1)
	}
}

func TestOwnerRefusesCardsWithoutServiceSignature(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	alice := ob.register(t, "alice-identity")
	other, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The same emulator, seen by an owner that expects another service key:
	// every card's "virgil" signature is by the wrong key.
	strict := virgil.NewOwner(ob.client(ownerID), ob.key, "", virgil.WithServiceKey(other.Public()))
	const group = "refused-group-01"
	res, err := strict.CreateGroup(ctx, group, []string{alice.identity, "no-card-identity"})
	if err != nil {
		t.Fatalf("CreateGroup = %v", err)
	}
	if !slices.Equal(res.Pending, []string{alice.identity, "no-card-identity"}) {
		t.Errorf("CreateGroup pending = %v, want both members", res.Pending)
	}
	if r := res.Refused[alice.identity]; !strings.Contains(r, alice.cardID) || !strings.Contains(r, "Virgil") {
		t.Errorf("CreateGroup refused[alice] = %q, want the card id and the reason", r)
	}
	if _, ok := res.Refused["no-card-identity"]; ok {
		t.Errorf("CreateGroup refused a member without a card: %v", res.Refused)
	}
	if _, err := alice.load(t, group); !errors.Is(err, errNoAccess) {
		t.Errorf("alice loads the group = %v, want %v", err, errNoAccess)
	}
	if ids, err := strict.CardIDs(ctx, []string{alice.identity}); err != nil || len(ids) != 0 {
		t.Errorf("CardIDs = %v, %v, want none", ids, err)
	}
	res, err = strict.AddMembers(ctx, group, []string{alice.identity})
	if err != nil || !slices.Equal(res.Pending, []string{alice.identity}) || res.Refused[alice.identity] == "" {
		t.Errorf("AddMembers = %+v, %v, want alice pending and refused", res, err)
	}
	// With the right key the same card is accepted.
	res, err = ob.owner.AddMembers(ctx, group, []string{alice.identity})
	if err != nil || len(res.Pending) != 0 || len(res.Refused) != 0 {
		t.Fatalf("AddMembers with the emulator's key = %+v, %v", res, err)
	}
	if _, err := alice.load(t, group); err != nil {
		t.Errorf("alice loads the group after a valid add = %v", err)
	}
}

func TestServiceKeyFor(t *testing.T) {
	override, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		url      string
		override *virgil.PublicKey
		want     *virgil.PublicKey
	}{
		{"Virgil", "https://api.virgilsecurity.com", nil, virgil.VirgilCardsServiceKey()},
		{"VirgilTrailingSlash", "https://api.virgilsecurity.com/", nil, virgil.VirgilCardsServiceKey()},
		{"VirgilOverridden", "https://api.virgilsecurity.com", override.Public(), override.Public()},
		{"EmulatorWithKey", "http://127.0.0.1:8271", override.Public(), override.Public()},
		{"EmulatorWithoutKey", "http://127.0.0.1:8271", nil, nil},
		{"PlainHTTPVirgil", "http://api.virgilsecurity.com", nil, nil},
		{"LookAlike", "https://api.virgilsecurity.com.example.org", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := virgil.ServiceKeyFor(tc.url, tc.override)
			if tc.want == nil {
				if !errors.Is(err, virgil.ErrNoServiceKey) || got != nil {
					t.Fatalf("ServiceKeyFor(%q, nil) = %v, %v, want ErrNoServiceKey", tc.url, got, err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("ServiceKeyFor(%q) = %v, %v, want %v", tc.url, got, err, tc.want)
			}
		})
	}
}

func TestOwnerRetain(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const group = "cometchat-guid-retained-7"
	alice, bob, carol := ob.register(t, "alice-uid"), ob.register(t, "bob-uid"), ob.register(t, "carol-uid")
	dave := ob.register(t, "dave-uid")
	if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid", "carol-uid"}); err != nil {
		t.Fatal(err)
	}

	// Only alice (and dave, who is no participant) are to stay: bob and
	// carol leave, dave is not added.
	gone, err := ob.owner.Retain(ctx, group, []string{"alice-uid", "dave-uid"})
	if err != nil || !sameSet(gone, []string{"bob-uid", "carol-uid"}) {
		t.Fatalf("Retain = %v, %v; want [bob-uid carol-uid]", gone, err)
	}
	expectView(t, alice, group, []string{ownerID, "alice-uid"}, 0, 1)
	expectLoadError(t, bob, group, errNoAccess)
	expectLoadError(t, carol, group, errNoAccess)
	expectLoadError(t, dave, group, errNoAccess)

	// Nobody else left: no new epoch.
	if gone, err := ob.owner.Retain(ctx, group, []string{"alice-uid"}); err != nil || gone != nil {
		t.Fatalf("Retain again = %v, %v; want nothing removed", gone, err)
	}
	if st, _ := ob.owner.State(ctx, group); !slices.Equal(st.Epochs, []uint32{0, 1}) {
		t.Errorf("repeated Retain: epochs %v, want [0 1]", st.Epochs)
	}
	// Keeping nobody removes everyone but the owner.
	if gone, err := ob.owner.Retain(ctx, group, nil); err != nil || !slices.Equal(gone, []string{"alice-uid"}) {
		t.Fatalf("Retain(nobody) = %v, %v; want [alice-uid]", gone, err)
	}
	expectLoadError(t, alice, group, errNoAccess)

	if gone, err := ob.owner.Retain(ctx, "cometchat-guid-never-made", []string{"alice-uid"}); err != nil || gone != nil {
		t.Errorf("Retain(missing group) = %v, %v; want nothing, no error", gone, err)
	}
	if _, err := ob.owner.Retain(ctx, group, []string{""}); !errors.Is(err, virgil.ErrInvalidIdentity) {
		t.Errorf("Retain(invalid identity) = %v, want ErrInvalidIdentity", err)
	}
}

// TestOwnerRetainResumesAfterCrash: a Retain that stopped after the new
// epoch, before revoking the removed members' access to the earlier ones,
// is finished by the next Retain, as a resumed Remove is.
func TestOwnerRetainResumesAfterCrash(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const group = "crash-retain-group"
	alice, bob := ob.register(t, "alice-uid"), ob.register(t, "bob-uid")
	if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid"}); err != nil {
		t.Fatal(err)
	}
	ob.faults.setFail(func(path string, _ []byte) bool { return path == "/keyknox/v2/reset" })
	if _, err := ob.owner.Retain(ctx, group, []string{"alice-uid"}); err == nil || !virgil.Retryable(err) {
		t.Fatalf("Retain with failing resets = %v, want a retryable error", err)
	}
	ob.faults.setFail(nil)
	if _, err := ob.owner.Retain(ctx, group, []string{"alice-uid"}); err != nil {
		t.Fatalf("resumed Retain: %v", err)
	}
	expectView(t, alice, group, []string{ownerID, "alice-uid"}, 0, 1)
	expectLoadError(t, bob, group, errNoAccess)
	if st, _ := ob.owner.State(ctx, group); !slices.Equal(st.Epochs, []uint32{0, 1}) {
		t.Errorf("epochs %v after resumed Retain, want [0 1]", st.Epochs)
	}
}
