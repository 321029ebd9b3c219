package interop_test

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/interop"
)

// TestOwnerRotateWithE3KitMembers: after the owner's key is rotated (what
// `groupsync owner rotate` runs: virgil.Owner.RotateKey over every group,
// then the new card checked), official E3Kit members load every group with
// the owner's new card, read the messages of every epoch from before the
// rotation, write and read new ones, and follow the changes the owner makes
// with the new key.
func TestOwnerRotateWithE3KitMembers(t *testing.T) {
	app := startVectorApp(t)
	d := app.driver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	o := app.goOwner(ctx, t)
	for _, id := range []string{alice, bob, carol} {
		must("register "+id, d.Register(ctx, id))
	}
	sorted := func(s ...string) []string {
		s = slices.Clone(s)
		sort.Strings(s)
		return s
	}
	load := func(step, user, group string, want ...string) {
		t.Helper()
		p, err := d.LoadGroup(ctx, user, group, owner)
		if err != nil {
			t.Fatalf("%s: %s loadGroup %s: %v", step, user, group, err)
		}
		if got := sorted(p...); !slices.Equal(got, sorted(want...)) {
			t.Fatalf("%s: %s sees %v in %s, want %v", step, user, got, group, sorted(want...))
		}
	}
	read := func(step, user, group, cipher, sender, want string) {
		t.Helper()
		text, err := d.Decrypt(ctx, user, group, cipher, sender)
		if err != nil || text != want {
			t.Fatalf("%s: %s decrypts %q from %s in %s = %q, %v", step, user, want, sender, group, text, err)
		}
	}

	// Before: group A has two epochs (carol was removed), group B one.
	const groupA, groupB = "rotated-group-0001", "rotated-group-0002"
	_, err := o.CreateGroup(ctx, groupA, []string{alice, bob, carol})
	must("create A", err)
	_, err = o.CreateGroup(ctx, groupB, []string{bob, carol})
	must("create B", err)
	load("before", alice, groupA, owner, alice, bob, carol)
	a0, err := d.Encrypt(ctx, alice, groupA, "A, epoch 0")
	must("encrypt a0", err)
	must("remove carol from A", o.Remove(ctx, groupA, []string{carol}))
	load("before", alice, groupA, owner, alice, bob)
	a1, err := d.Encrypt(ctx, alice, groupA, "A, epoch 1")
	must("encrypt a1", err)
	load("before", bob, groupB, owner, bob, carol)
	b0, err := d.Encrypt(ctx, bob, groupB, "B, epoch 0")
	must("encrypt b0", err)

	newKey, err := virgil.GenerateKey()
	must("new key", err)
	rotated, err := o.RotateKey(ctx, newKey, []string{groupA, groupB})
	must("rotate", err)
	_, err = rotated.EnsureCard(ctx)
	must("new owner card", err)

	// Every member loads every group afresh, with the owner's new card, and
	// reads the history.
	load("after", alice, groupA, owner, alice, bob)
	load("after", bob, groupA, owner, alice, bob)
	load("after", bob, groupB, owner, bob, carol)
	load("after", carol, groupB, owner, bob, carol)
	read("after", bob, groupA, a0, alice, "A, epoch 0")
	read("after", bob, groupA, a1, alice, "A, epoch 1")
	read("after", alice, groupA, a1, alice, "A, epoch 1")
	read("after", carol, groupB, b0, bob, "B, epoch 0")

	// Messages written after the rotation.
	a2, err := d.Encrypt(ctx, bob, groupA, "A, after rotation")
	must("encrypt a2", err)
	read("after", alice, groupA, a2, bob, "A, after rotation")
	b1, err := d.Encrypt(ctx, carol, groupB, "B, after rotation")
	must("encrypt b1", err)
	read("after", bob, groupB, b1, carol, "B, after rotation")

	// The owner changes groups with the new key: carol back into A (she gets
	// every epoch, made before the rotation too), then out of B.
	_, err = rotated.AddMembers(ctx, groupA, []string{carol})
	must("add carol to A", err)
	load("re-added", carol, groupA, owner, alice, bob, carol)
	read("re-added", carol, groupA, a0, alice, "A, epoch 0")
	read("re-added", carol, groupA, a1, alice, "A, epoch 1")
	read("re-added", carol, groupA, a2, bob, "A, after rotation")
	must("remove carol from B", rotated.Remove(ctx, groupB, []string{carol}))
	_, err = d.Update(ctx, carol, groupB)
	if interop.GroupCode(err) != interop.NoAccess {
		t.Fatalf("carol updates B after removal: %v, want %s", err, interop.NoAccess)
	}
	load("removed", bob, groupB, owner, bob)
	b2, err := d.Encrypt(ctx, bob, groupB, "B, without carol")
	must("encrypt b2", err)
	read("removed", bob, groupB, b0, bob, "B, epoch 0")
	read("removed", bob, groupB, b2, bob, "B, without carol")

	// The old key no longer opens the tickets.
	if _, err := o.State(ctx, groupA); err == nil {
		t.Error("the old owner key still opens group A's tickets")
	}
}
