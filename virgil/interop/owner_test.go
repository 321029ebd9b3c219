package interop_test

import (
	"context"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil/interop"
)

// TestGoOwnerWithE3KitMembers has the project's virgil.Owner own the group
// while official E3Kit clients are the members: they must load the group,
// read its history and follow every change.
func TestGoOwnerWithE3KitMembers(t *testing.T) {
	app := startVectorApp(t)
	d := app.driver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	o := app.goOwner(ctx, t)
	for _, id := range []string{alice, bob, carol} {
		must(d.Register(ctx, id))
	}
	const group = "go-owned-group-0001"
	sorted := func(s []string) []string {
		s = append([]string(nil), s...)
		sort.Strings(s)
		return s
	}
	wantMembers := func(step, user string, want ...string) {
		t.Helper()
		p, err := d.LoadGroup(ctx, user, group, owner)
		if err != nil {
			t.Fatalf("%s: %s loadGroup: %v", step, user, err)
		}
		if got := sorted(p); !reflect.DeepEqual(got, sorted(want)) {
			t.Fatalf("%s: %s sees %v, want %v", step, user, got, sorted(want))
		}
	}
	wantCode := func(step string, err error, code interop.GroupErrorCode) {
		t.Helper()
		if interop.GroupCode(err) != code {
			t.Fatalf("%s: got %v, want %s", step, err, code)
		}
	}

	res, err := o.CreateGroup(ctx, group, []string{alice, bob})
	pending := res.Pending
	must(err)
	if len(pending) != 0 {
		t.Fatalf("pending %v", pending)
	}
	wantMembers("create", alice, owner, alice, bob)
	wantMembers("create", bob, owner, alice, bob)
	c0, err := d.Encrypt(ctx, alice, group, "hello from epoch 0")
	must(err)

	_, err = o.AddMembers(ctx, group, []string{carol})
	must(err)
	p, err := d.Update(ctx, alice, group)
	must(err)
	if !reflect.DeepEqual(sorted(p), sorted([]string{owner, alice, bob, carol})) {
		t.Fatalf("alice after add: %v", p)
	}
	wantMembers("add", carol, owner, alice, bob, carol)
	text, err := d.Decrypt(ctx, carol, group, c0, alice)
	must(err)
	if text != "hello from epoch 0" {
		t.Fatalf("carol read %q", text)
	}

	must(o.Remove(ctx, group, []string{bob}))
	_, err = d.Update(ctx, bob, group)
	wantCode("remove", err, interop.NoAccess)
	_, err = d.Update(ctx, alice, group)
	must(err)
	c1, err := d.Encrypt(ctx, alice, group, "after bob left")
	must(err)
	_, err = d.Decrypt(ctx, bob, group, c1, alice)
	wantCode("bob reads epoch 1", err, interop.GroupIsOutdated)
	wantMembers("remove", carol, owner, alice, carol)

	must(d.Cleanup(ctx, carol))
	must(d.RotatePrivateKey(ctx, carol))
	_, err = d.LoadGroup(ctx, carol, group, owner)
	wantCode("rotated", err, interop.RemoteGroupNotFound)
	must(o.ReAdd(ctx, group, []string{carol}))
	wantMembers("reAdd", carol, owner, alice, carol)
	text, err = d.Decrypt(ctx, carol, group, c1, alice)
	must(err)
	if text != "after bob left" {
		t.Fatalf("carol read %q", text)
	}

	must(o.Delete(ctx, group))
	_, err = d.Update(ctx, alice, group)
	wantCode("delete", err, interop.NoAccess)
}
