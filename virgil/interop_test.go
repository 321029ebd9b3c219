package virgil_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/interop"
)

// TestOwnerWithE3KitMembers has official E3Kit clients as the members of a
// group owned by virgil.Owner, against the emulator. Every operation is also
// interrupted once (the server fails part of it, as when a worker dies) and
// resumed by a fresh Owner; after each step the members' view is checked.
func TestOwnerWithE3KitMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Node.js E3Kit clients")
	}
	var jf jwtFile
	testkit.LoadVector(t, "jwt.json", &jf)
	kf := loadKeys(t)
	b := setupJWT(t, time.Now())
	b.gen.Now = nil
	service, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, fl, url := newEmulator(t, b.gen, service)
	d := interop.Start(t, interop.Config{
		APIURL: url,
		App:    &interop.App{AppID: jf.AppID, AppKeyID: jf.AppKeyID, AppKey: jf.AppKey},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ownerKey := mustKey(t, kf, "owner")
	// newOwner is a fresh process: the Owner keeps no state of its own.
	newOwner := func() *virgil.Owner {
		return virgil.NewOwner(virgil.NewClient(url, b.gen.Source(ownerID)), ownerKey, ownerID,
			virgil.WithServiceKey(service.Public()))
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const (
		group              = "interop-group-guid-0001"
		alice, bob         = "alice-uid", "bob-uid"
		carol, dave, erin  = "carol-uid", "dave-uid", "erin-uid"
		epochKeyPushPrefix = `"key":"`
	)
	failPush := func(key string) func(string, []byte) bool {
		return func(path string, body []byte) bool {
			return path == "/keyknox/v2/push" && bytes.Contains(body, []byte(epochKeyPushPrefix+key+`"`))
		}
	}
	sees := func(step, user string, p []string, err error, want ...string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %s: %v", step, user, err)
		}
		if !sameSet(p, want) {
			t.Fatalf("%s: %s sees %v, want %v", step, user, p, want)
		}
	}
	load := func(step, user string, want ...string) {
		t.Helper()
		p, err := d.LoadGroup(ctx, user, group, ownerID)
		sees(step, user, p, err, want...)
	}
	update := func(step, user string, want ...string) {
		t.Helper()
		p, err := d.Update(ctx, user, group)
		sees(step, user, p, err, want...)
	}
	wantCode := func(step string, err error, code interop.GroupErrorCode) {
		t.Helper()
		if interop.GroupCode(err) != code {
			t.Fatalf("%s: got %v, want %s", step, err, code)
		}
	}
	reads := func(step, user, cipher, want string) {
		t.Helper()
		text, err := d.Decrypt(ctx, user, group, cipher, alice)
		if err != nil || text != want {
			t.Fatalf("%s: %s decrypts %q, %v; want %q", step, user, text, err, want)
		}
	}

	o := newOwner()
	_, err = o.EnsureCard(ctx)
	must(err)
	for _, id := range []string{alice, bob, carol} {
		must(d.Register(ctx, id))
	}

	// Create: dave has no card yet and stays pending.
	res, err := o.CreateGroup(ctx, group, []string{alice, bob, dave})
	pending := res.Pending
	must(err)
	if !slices.Equal(pending, []string{dave}) {
		t.Fatalf("Create pending = %v, want [dave]", pending)
	}
	load("create", alice, ownerID, alice, bob)
	load("create", bob, ownerID, alice, bob)
	c0, err := d.Encrypt(ctx, alice, group, "epoch 0")
	must(err)
	reads("create", bob, c0, "epoch 0")

	// Remove bob, stopped after the new epoch: bob keeps epoch 0 only.
	fl.setFail(func(path string, _ []byte) bool { return path == "/keyknox/v2/reset" })
	if err := o.Remove(ctx, group, []string{bob}); err == nil {
		t.Fatal("Remove with failing resets = nil error")
	}
	fl.setFail(nil)
	update("remove stopped", alice, ownerID, alice)
	c1, err := d.Encrypt(ctx, alice, group, "epoch 1")
	must(err)
	_, err = d.Decrypt(ctx, bob, group, c1, alice)
	wantCode("bob reads epoch 1 after the stopped remove", err, interop.GroupIsOutdated)
	must(newOwner().Remove(ctx, group, []string{bob}))
	_, err = d.Update(ctx, bob, group)
	wantCode("remove resumed", err, interop.NoAccess)
	update("remove resumed", alice, ownerID, alice)

	// Add carol and the late dave, stopped after the newest epoch: they load
	// the group and read current messages; the resumed add gives history.
	must(d.Register(ctx, dave))
	fl.setFail(failPush("0"))
	if _, err := o.AddMembers(ctx, group, []string{carol, dave}); err == nil {
		t.Fatal("Add with a failing push = nil error")
	}
	fl.setFail(nil)
	load("add stopped", carol, ownerID, alice, carol, dave)
	reads("add stopped", carol, c1, "epoch 1")
	res, err = newOwner().AddMembers(ctx, group, []string{carol, dave})
	pending = res.Pending
	must(err)
	if len(pending) != 0 {
		t.Fatalf("Add pending = %v", pending)
	}
	for _, u := range []string{carol, dave} {
		load("add resumed", u, ownerID, alice, carol, dave)
		reads("add resumed", u, c0, "epoch 0")
		reads("add resumed", u, c1, "epoch 1")
	}
	update("add resumed", alice, ownerID, alice, carol, dave)

	// Carol's key changes; the owner notices through CardIDs and re-adds
	// her, once stopped halfway.
	before, err := o.CardIDs(ctx, []string{carol, dave})
	must(err)
	must(d.Cleanup(ctx, carol))
	must(d.RotatePrivateKey(ctx, carol))
	_, err = d.LoadGroup(ctx, carol, group, ownerID)
	wantCode("rotated", err, interop.RemoteGroupNotFound)
	after, err := o.CardIDs(ctx, []string{carol, dave})
	must(err)
	if after[carol] == before[carol] || after[dave] != before[dave] {
		t.Fatalf("CardIDs before %v, after %v: want only carol's to change", before, after)
	}
	fl.setFail(failPush("0"))
	if err := o.ReAdd(ctx, group, []string{carol}); err == nil {
		t.Fatal("ReAdd with a failing push = nil error")
	}
	fl.setFail(nil)
	must(newOwner().ReAdd(ctx, group, []string{carol}))
	load("re-add", carol, ownerID, alice, carol, dave)
	reads("re-add", carol, c0, "epoch 0")
	reads("re-add", carol, c1, "epoch 1")
	update("re-add", dave, ownerID, alice, carol, dave)

	// Create again (a redelivered group_created) converges to an add.
	must(d.Register(ctx, erin))
	_, err = newOwner().CreateGroup(ctx, group, []string{alice, erin})
	must(err)
	load("create again", erin, ownerID, alice, carol, dave, erin)
	st, err := o.State(ctx, group)
	must(err)
	if !slices.Equal(st.Epochs, []uint32{0, 1}) {
		t.Fatalf("epochs %v, want [0 1]", st.Epochs)
	}

	// Delete, twice.
	must(o.Delete(ctx, group))
	must(newOwner().Delete(ctx, group))
	for _, u := range []string{alice, carol, erin} {
		_, err = d.Update(ctx, u, group)
		wantCode("delete", err, interop.NoAccess)
	}
}
