package worker_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil/interop"
)

// newE3KitEnv returns a new env and the official E3Kit client (Node) on its
// emulator, with tokens of its application. It skips the test in -short
// mode.
func newE3KitEnv(t *testing.T) (*env, *interop.Driver) {
	t.Helper()
	if testing.Short() {
		t.Skip("E3Kit interop skipped in -short mode")
	}
	e := newEnv(t, envOptions{})
	return e, interop.Start(t, interop.Config{
		APIURL: e.url,
		App:    &interop.App{AppID: e.gen.AppID, AppKeyID: e.gen.AppKeyID, AppKey: e.gen.AppKey.MarshalPKCS8Base64()},
	})
}

// TestOfficialE3KitMembersFollowTheGroup: official E3Kit clients (Node)
// load the groups the pool keeps, read each other, lose access when kicked,
// and a member who registers late joins through UserSeen.
func TestOfficialE3KitMembersFollowTheGroup(t *testing.T) {
	e, d := newE3KitEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, uid := range []string{"alice", "bob", "carol", "dave"} {
		_, err := d.Init(ctx, uid, interop.UserOptions{Identity: e.ids.User(uid)})
		must(err)
	}
	for _, uid := range []string{"alice", "bob", "carol"} {
		must(d.Register(ctx, uid))
	}
	p, _ := e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "e3kit-room", created: 1_718_000_000}
	group := e.ids.Group(g.guid)
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob", "carol", "dave")))
	e.waitMembers(g.guid, "alice", "bob", "carol")

	sorted := func(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }
	for _, uid := range []string{"alice", "bob", "carol"} {
		got, err := d.LoadGroup(ctx, uid, group, ownerID)
		must(err)
		if want := e.want("alice", "bob", "carol"); !slices.Equal(sorted(got), want) {
			t.Fatalf("%s loadGroup participants [%s], want [%s]", uid, e.names(sorted(got)), e.names(want))
		}
	}
	cipher, err := d.Encrypt(ctx, "alice", group, "hello team")
	must(err)
	for _, uid := range []string{"bob", "carol"} {
		if plain, err := d.Decrypt(ctx, uid, group, cipher, e.ids.User("alice")); err != nil || plain != "hello team" {
			t.Fatalf("%s decrypt = %q, %v", uid, plain, err)
		}
	}

	// Carol is kicked: the others move to a new epoch she cannot read.
	e.publish(job(g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, g.created+10, "carol")))
	e.waitMembers(g.guid, "alice", "bob")
	_, err = d.Update(ctx, "alice", group)
	must(err)
	_, err = d.Update(ctx, "bob", group)
	must(err)
	secret, err := d.Encrypt(ctx, "bob", group, "after carol")
	must(err)
	if plain, err := d.Decrypt(ctx, "alice", group, secret, e.ids.User("bob")); err != nil || plain != "after carol" {
		t.Fatalf("alice decrypt after the kick = %q, %v", plain, err)
	}
	_, _ = d.Update(ctx, "carol", group)
	if plain, err := d.Decrypt(ctx, "carol", group, secret, e.ids.User("bob")); err == nil {
		t.Fatalf("kicked carol decrypted %q", plain)
	}

	// Dave, pending since the creation, registers and becomes a participant.
	must(p.UserSeen(ctx, "dave"))
	must(d.Register(ctx, "dave"))
	e.waitMembers(g.guid, "alice", "bob", "dave")
	_, err = d.LoadGroup(ctx, "dave", group, ownerID)
	must(err)
	_, err = d.Update(ctx, "bob", group)
	must(err)
	latest, err := d.Encrypt(ctx, "bob", group, "welcome dave")
	must(err)
	if plain, err := d.Decrypt(ctx, "dave", group, latest, e.ids.User("bob")); err != nil || plain != "welcome dave" {
		t.Fatalf("dave decrypt = %q, %v", plain, err)
	}
}

// TestOfficialE3KitMemberAddedBack: carol is added, kicked and added again
// with identical add bodies (CometChat's carry no time), then banned,
// unbanned and added again. Official E3Kit clients judge: after each re-add
// carol decrypts what alice encrypts in the group's newest epoch, after each
// removal she cannot.
func TestOfficialE3KitMemberAddedBack(t *testing.T) {
	e, d := newE3KitEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, uid := range []string{"alice", "bob", "carol"} {
		_, err := d.Init(ctx, uid, interop.UserOptions{Identity: e.ids.User(uid)})
		must(err)
		must(d.Register(ctx, uid))
	}
	e.startPool(e.poolConfig(), nil, nil, nil)
	g := evt{guid: "e3kit-added-back", created: time.Now().Unix() - 60}
	group := e.ids.Group(g.guid)
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob")))
	e.waitMembers(g.guid, "alice", "bob")
	_, err := d.LoadGroup(ctx, "alice", group, ownerID)
	must(err)

	// carolReads: alice moves to the newest epoch and encrypts; carol
	// decrypts it (want true) or cannot (want false).
	n := 0
	carolReads := func(want bool) {
		t.Helper()
		n++
		text := fmt.Sprintf("message %d", n)
		_, err := d.Update(ctx, "alice", group)
		must(err)
		cipher, err := d.Encrypt(ctx, "alice", group, text)
		must(err)
		if want {
			_, err := d.LoadGroup(ctx, "carol", group, ownerID)
			must(err)
		} else {
			_, _ = d.Update(ctx, "carol", group)
		}
		plain, err := d.Decrypt(ctx, "carol", group, cipher, e.ids.User("alice"))
		switch {
		case want && (err != nil || plain != text):
			t.Fatalf("carol decrypts %q: %q, %v; want the text", text, plain, err)
		case !want && err == nil:
			t.Fatalf("removed carol decrypted %q", plain)
		}
	}
	added := g.ev(groupsync.TriggerMemberAdded, groupsync.ActionAdd, 0, "carol")
	added.By = "alice"
	removal := func(trig groupsync.Trigger) groupsync.Event {
		ev := g.ev(trig, groupsync.ActionRemove, time.Now().Unix(), "carol")
		ev.By = "alice"
		return ev
	}

	e.publish(job(added))
	e.waitMembers(g.guid, "alice", "bob", "carol")
	carolReads(true)

	e.publish(job(removal(groupsync.TriggerMemberKicked)))
	e.waitMembers(g.guid, "alice", "bob")
	carolReads(false)
	e.publish(job(added)) // the same body as the first add
	e.waitMembers(g.guid, "alice", "bob", "carol")
	carolReads(true)

	e.publish(job(removal(groupsync.TriggerMemberBanned)))
	e.waitMembers(g.guid, "alice", "bob")
	carolReads(false)
	unbanned := g.ev(groupsync.TriggerMemberUnbanned, groupsync.ActionNone, time.Now().Unix(), "carol")
	unbanned.By = "alice"
	e.publish(job(unbanned), job(added))
	e.waitMembers(g.guid, "alice", "bob", "carol")
	carolReads(true)
}
