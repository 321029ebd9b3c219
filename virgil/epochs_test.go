package virgil_test

import (
	"context"
	"testing"
	"time"
)

// TestOwnerKnownEpoch: the Owner remembers the newest epoch it wrote or read
// for a group, so a caller that just changed the group need not read it
// again; what it knows matches what Virgil holds after each change, and
// nothing older than the caller's since is answered.
func TestOwnerKnownEpoch(t *testing.T) {
	ob := setupOwner(t)
	ctx := context.Background()
	const group = "cometchat-guid-known-epoch"
	ob.register(t, "alice-uid")
	ob.register(t, "bob-uid")

	check := func(step string, since time.Time) {
		t.Helper()
		epoch, exists, ok := ob.owner.KnownEpoch(group, since)
		if !ok {
			t.Fatalf("after %s: no known epoch", step)
		}
		st, err := ob.owner.State(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if exists != st.Exists || (exists && epoch != st.Latest) {
			t.Fatalf("after %s: known epoch %d (exists %v), Virgil holds %d (exists %v)", step, epoch, exists, st.Latest, st.Exists)
		}
	}

	before := time.Now()
	if _, _, ok := ob.owner.KnownEpoch(group, before); ok {
		t.Fatal("an epoch is known of a group never seen")
	}
	if _, err := ob.owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid"}); err != nil {
		t.Fatal(err)
	}
	check("create", before)
	since := time.Now()
	if err := ob.owner.Remove(ctx, group, []string{"bob-uid"}); err != nil {
		t.Fatal(err)
	}
	// Remove writes epoch 1; the add below pushes epochs 1 and then 0 to
	// bob, and the newest known must stay 1.
	check("remove", since)
	since = time.Now()
	if _, err := ob.owner.AddMembers(ctx, group, []string{"bob-uid"}); err != nil {
		t.Fatal(err)
	}
	check("add", since)
	if epoch, _, _ := ob.owner.KnownEpoch(group, since); epoch != 1 {
		t.Fatalf("known epoch after remove and add = %d, want 1", epoch)
	}
	since = time.Now()
	if err := ob.owner.Delete(ctx, group); err != nil {
		t.Fatal(err)
	}
	check("delete", since)
	if _, _, ok := ob.owner.KnownEpoch(group, time.Now().Add(time.Second)); ok {
		t.Fatal("a note older than since was answered")
	}
}
