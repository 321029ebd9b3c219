package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/worker"
)

// TestEveryActionReachesVirgil sends every CometChat trigger through the
// queue and checks the Virgil group after each.
func TestEveryActionReachesVirgil(t *testing.T) {
	for _, kv := range []bool{false, true} {
		name := "Redis"
		if kv {
			name = "KV"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{kv: kv})
			e.register("alice", "bob", "carol", "dave")
			e.startPool(e.poolConfig(), nil, nil, nil)
			g := evt{guid: "project-falcon", created: 1_718_000_000}
			T := g.created

			e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
			e.waitMembers(g.guid, "alice", "bob")

			e.publish(job(g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, "carol")))
			e.waitMembers(g.guid, "alice", "bob", "carol")

			e.publish(job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, T+20, "dave")))
			v := e.waitMembers(g.guid, "alice", "bob", "carol", "dave")
			if len(v.Epochs) != 1 {
				t.Fatalf("epochs after adds = %v, want one (adds share the epoch)", v.Epochs)
			}

			e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, T+30, "bob")))
			e.waitMembers(g.guid, "alice", "carol", "dave")
			e.publish(job(g.ev(groupsync.TriggerMemberBanned, groupsync.ActionRemove, T+40, "carol")))
			e.waitMembers(g.guid, "alice", "dave")
			e.publish(job(g.ev(groupsync.TriggerMemberLeft, groupsync.ActionRemove, T+50, "dave")))
			v = e.waitMembers(g.guid, "alice")
			if len(v.Epochs) != 4 {
				t.Fatalf("epochs after three removals = %v, want 4", v.Epochs)
			}

			// No key change: unban, update, scope change of a member, owner
			// transfer to a member.
			e.publish(
				job(g.ev(groupsync.TriggerMemberUnbanned, groupsync.ActionNone, T+60, "carol")),
				job(g.ev(groupsync.TriggerGroupUpdated, groupsync.ActionNone, T+61)),
				job(g.ev(groupsync.TriggerMemberScopeChanged, groupsync.ActionEnsure, T+62, "alice")),
			)
			transfer := g.ev(groupsync.TriggerOwnerTransferred, groupsync.ActionEnsure, T+63)
			transfer.Owner, transfer.OldOwner = "alice", "bob"
			e.publish(job(transfer))
			e.waitSettled()
			v = e.waitMembers(g.guid, "alice")
			if len(v.Epochs) != 4 {
				t.Fatalf("epochs after no-change events = %v, want 4", v.Epochs)
			}

			// Owner transfer to someone not in the Virgil group makes them a
			// participant.
			transfer = g.ev(groupsync.TriggerOwnerTransferred, groupsync.ActionEnsure, T+70)
			transfer.Owner, transfer.OldOwner = "bob", "alice"
			e.publish(job(transfer))
			e.waitMembers(g.guid, "alice", "bob")

			e.publish(job(g.ev(groupsync.TriggerGroupDeleted, groupsync.ActionDelete, T+80)))
			e.waitDeleted(g.guid)
			// A late add of the deleted group changes nothing.
			e.publish(job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, T+75, "carol")))
			e.waitSettled()
			if v, ok := e.view(g.guid); ok {
				t.Fatalf("late join brought the deleted group back: %v", v)
			}
		})
	}
}

// TestDuplicatesChangeNothing: a copy of a job that JetStream did not
// de-duplicate reaches the worker, which acknowledges it without calling
// Virgil, and so does a CometChat retry (another job of the same event),
// which the planner finds repeating the event that decided its members;
// Virgil keeps its epochs.
func TestDuplicatesChangeNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob", "carol")
	cv := &countingVirgil{EncryptedGroups: e.groups}
	e.startPool(e.poolConfig(), nil, nil, cv)
	g := evt{guid: "dup-group", created: 1_718_000_000}
	jobs := []groupsync.Job{
		job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob", "carol")),
		job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, g.created+10, "bob")),
	}
	e.publish(jobs...)
	v := e.waitMembers(g.guid, "alice", "carol")
	e.waitSettled()
	calls := cv.total()
	for _, j := range jobs {
		e.publish(j) // same Nats-Msg-Id: dropped by JetStream
		e.publishCopy(j)
		e.publish(job(j.Event)) // a CometChat retry: another job, the same event
	}
	e.waitSettled()
	after := e.waitMembers(g.guid, "alice", "carol")
	if len(after.Epochs) != len(v.Epochs) {
		t.Fatalf("epochs after duplicates = %v, want %v", after.Epochs, v.Epochs)
	}
	if got := cv.total(); got != calls {
		t.Fatalf("duplicates made %d Virgil calls, want none", got-calls)
	}
}

// TestReorderedEventsConverge: a kick stored before the (older) add it
// follows, as after a CometChat retry, leaves the member out.
func TestReorderedEventsConverge(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "reordered", created: 1_718_000_000}
	e.publish(
		job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, g.created+30, "bob")),
		job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")),
		job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, g.created+20, "bob")),
	)
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
}

// TestPendingMemberBecomesParticipant: a member without a card is kept
// pending and becomes a participant soon after registering.
func TestPendingMemberBecomesParticipant(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	p, _ := e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "pending-group", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "newbie")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
	ctx := context.Background()
	eventually(t, 5*time.Second, func() (bool, string) {
		uids, err := e.store.PendingUsers(ctx)
		return err == nil && len(uids) == 1 && uids[0] == "newbie", "pending users " + join(uids)
	})

	// The user fetches a token (UserSeen), then publishes a card.
	if err := p.UserSeen(ctx, "newbie"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.register("newbie")
	e.waitMembers(g.guid, "alice", "newbie")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("pending member became a participant after %s, want within 10 s", d)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		uids, err := e.store.PendingUsers(ctx)
		return err == nil && len(uids) == 0, "pending users " + join(uids)
	})
}

// TestSweepFinishesPendingAdds: without UserSeen, the periodic sweep
// finishes the add.
func TestSweepFinishesPendingAdds(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	cfg := e.poolConfig()
	cfg.SweepInterval = 200 * time.Millisecond
	e.startPool(cfg, nil, nil, nil)
	g := evt{guid: "sweep-group", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "quiet")))
	e.waitSettled()
	e.waitMembers(g.guid, "alice")
	e.register("quiet")
	e.waitMembers(g.guid, "alice", "quiet")
}

// TestChangedCardIsReAdded: a member whose card changed gets every epoch
// again under the new key, in all their groups.
func TestChangedCardIsReAdded(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice", "bob")
	p, _ := e.startPool(e.poolConfig(), nil, nil, nil)
	g1 := evt{guid: "card-one", created: 1_718_000_000}
	g2 := evt{guid: "card-two", created: 1_718_000_000}
	e.publish(
		job(g1.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")),
		job(g2.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "bob")),
	)
	e.waitMembers(g1.guid, "alice", "bob")
	e.waitMembers(g2.guid, "bob")
	e.waitSettled()
	ctx := context.Background()
	for _, g := range []string{g1.guid, g2.guid} {
		if err := e.canRead(ctx, "bob", g); err != nil {
			t.Fatalf("bob cannot read %s before rotating: %v", g, err)
		}
	}
	e.register("bob") // new key, card replacing the old one
	for _, g := range []string{g1.guid, g2.guid} {
		if err := e.canRead(ctx, "bob", g); err == nil {
			t.Fatalf("bob reads %s with his new key before any re-add: the test cannot tell", g)
		}
	}
	if err := p.UserSeen(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{g1.guid, g2.guid} {
		eventually(t, 10*time.Second, func() (bool, string) {
			err := e.canRead(ctx, "bob", g)
			return err == nil, "bob cannot read " + g + " with his new key: " + errString(err)
		})
	}
	e.waitMembers(g1.guid, "alice", "bob")
}

// canRead pulls every epoch of guid as uid and opens it with uid's current
// key, as E3Kit's loadGroup does.
func (e *env) canRead(ctx context.Context, uid, guid string) error {
	e.mu.Lock()
	m := e.users[uid]
	e.mu.Unlock()
	path, err := virgil.SessionPath(e.ids.Group(guid))
	if err != nil {
		return err
	}
	keys, err := m.client.KeyknoxKeys(ctx, virgil.GroupSessionsRoot, path, ownerID)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("no epochs")
	}
	cards, err := m.client.SearchCards(ctx, []string{ownerID})
	if err != nil {
		return err
	}
	if len(cards) == 0 {
		return errors.New("owner has no card")
	}
	for _, k := range keys {
		entry, err := m.client.KeyknoxPull(ctx, virgil.GroupSessionsRoot, path, k, ownerID)
		if err != nil {
			return err
		}
		if len(entry.Value) == 0 {
			return errors.New("no copy of epoch " + k)
		}
		if _, err := virgil.DecryptThenVerify(entry.Meta, entry.Value, m.key, cards[0].PublicKey); err != nil {
			return err
		}
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func join(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

// TestMemberAddedBackRegainsAccess: carol is added, kicked and added again
// by bodies without updatedAt, so the two adds are identical; then banned,
// unbanned and added again. After each re-add she reads the group's newest
// epoch, after each removal she cannot, and CometChat's retries of the last
// add change nothing. With a CometChat reader the worker checks each re-add
// with CometChat (docs/convergence.md); without one it applies it.
func TestMemberAddedBackRegainsAccess(t *testing.T) {
	for _, withCometChat := range []bool{false, true} {
		name := "WithoutCometChat"
		if withCometChat {
			name = "WithCometChat"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.register("alice", "bob", "carol")
			cfg := e.poolConfig()
			cc := &fakeCometChat{groups: map[string][]string{}}
			if withCometChat {
				cfg.Reconciler = cc
			}
			cv := &countingVirgil{EncryptedGroups: e.groups}
			e.startPool(cfg, nil, nil, cv)
			// Times as CometChat writes them: now. (A reconcile stamps what it
			// reads with the time it read it, so later events must be later.)
			g := evt{guid: "added-back", created: time.Now().Unix() - 60}
			now := func() int64 { return time.Now().Unix() }
			truth := func(uids ...string) {
				cc.mu.Lock()
				cc.groups[g.guid] = uids
				cc.mu.Unlock()
			}
			ctx := context.Background()
			reads := func(uid string, want bool) {
				t.Helper()
				eventually(t, 20*time.Second, func() (bool, string) {
					err := e.canReadNewest(ctx, uid, g.guid)
					return (err == nil) == want, fmt.Sprintf("%s reads the newest epoch: %v, want %v", uid, errString(err), want)
				})
			}
			added := g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, "carol")
			added.By = "alice"
			truth("alice", "bob")
			e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
			e.waitMembers(g.guid, "alice", "bob")

			truth("alice", "bob", "carol")
			e.publish(job(added))
			e.waitMembers(g.guid, "alice", "bob", "carol")
			reads("carol", true)

			truth("alice", "bob")
			kicked := g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, now(), "carol")
			kicked.By = "alice"
			e.publish(job(kicked))
			e.waitMembers(g.guid, "alice", "bob")
			reads("carol", false)

			truth("alice", "bob", "carol")
			e.publish(job(added)) // the very same body as the first add
			e.waitMembers(g.guid, "alice", "bob", "carol")
			reads("carol", true)

			truth("alice", "bob")
			banned := g.ev(groupsync.TriggerMemberBanned, groupsync.ActionRemove, now(), "carol")
			banned.By = "alice"
			e.publish(job(banned))
			e.waitMembers(g.guid, "alice", "bob")
			reads("carol", false)
			unbanned := g.ev(groupsync.TriggerMemberUnbanned, groupsync.ActionNone, now(), "carol")
			unbanned.By = "alice"
			e.publish(job(unbanned))

			truth("alice", "bob", "carol")
			e.publish(job(added))
			e.waitMembers(g.guid, "alice", "bob", "carol")
			reads("carol", true)
			e.waitSettled()

			// CometChat's retries of the last add (+10 s, +30 s).
			v := e.waitMembers(g.guid, "alice", "bob", "carol")
			calls := cv.total()
			e.publish(job(added), job(added))
			e.waitSettled()
			if after := e.waitMembers(g.guid, "alice", "bob", "carol"); len(after.Epochs) != len(v.Epochs) {
				t.Fatalf("epochs after retries = %v, want %v", after.Epochs, v.Epochs)
			}
			// Without CometChat the last add decided carol and its retries
			// repeat it. With CometChat the reconcile decided her, so a
			// retry is an add of a member, which changes nothing in Virgil.
			if got := cv.total(); got != calls && !withCometChat {
				t.Fatalf("retries made %d Virgil calls, want none", got-calls)
			}
		})
	}
}

// canReadNewest pulls the newest epoch of guid as uid and opens it with
// uid's current key: what a member needs to read new messages.
func (e *env) canReadNewest(ctx context.Context, uid, guid string) error {
	e.mu.Lock()
	m := e.users[uid]
	e.mu.Unlock()
	path, err := virgil.SessionPath(e.ids.Group(guid))
	if err != nil {
		return err
	}
	v, ok := e.view(guid)
	if !ok || len(v.Epochs) == 0 {
		return errors.New("no group")
	}
	newest := v.Epochs[len(v.Epochs)-1]
	cards, err := m.client.SearchCards(ctx, []string{ownerID})
	if err != nil {
		return err
	}
	if len(cards) == 0 {
		return errors.New("owner has no card")
	}
	entry, err := m.client.KeyknoxPull(ctx, virgil.GroupSessionsRoot, path, newest, ownerID)
	if err != nil {
		return err
	}
	if len(entry.Value) == 0 {
		return errors.New("no copy of the newest epoch " + newest)
	}
	_, err = virgil.DecryptThenVerify(entry.Meta, entry.Value, m.key, cards[0].PublicKey)
	return err
}

// TestRefusedCardKeepsMemberPending: a member whose card lacks a valid
// Virgil signature (here: made by another service key than the owner
// expects) gets no ticket and stays pending with the reason in the group's
// state; a member of the same event without a card has no reason.
func TestRefusedCardKeepsMemberPending(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.register("alice")
	other, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	owner := virgil.NewOwner(e.client(ownerID), e.ownerKey, ownerID, virgil.WithServiceKey(other.Public()))
	e.startPool(e.poolConfig(), nil, nil, worker.NewVirgilGroups(owner, e.ids))
	g := evt{guid: "refused-group", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "newbie")))
	e.waitSettled()
	e.waitMembers(g.guid)
	st, _, err := e.store.Group(context.Background(), g.guid)
	if err != nil {
		t.Fatal(err)
	}
	alice, newbie := st.Members["alice"], st.Members["newbie"]
	if !alice.Pending || !strings.Contains(alice.PendingReason, "no valid Virgil") || alice.CardID != "" {
		t.Errorf("alice = %+v, want pending with the refusal as reason", alice)
	}
	if !newbie.Pending || newbie.PendingReason != "" {
		t.Errorf("newbie = %+v, want pending without a reason", newbie)
	}
}
