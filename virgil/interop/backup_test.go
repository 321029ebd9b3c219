package interop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil/interop"
)

// wantE3KitError checks that err is the E3Kit error name.
func wantE3KitError(t *testing.T, err error, name string) {
	t.Helper()
	var e *interop.E3KitError
	if !errors.As(err, &e) || e.Name != name {
		t.Fatalf("got %v, want E3Kit %s", err, name)
	}
}

// TestE3KitKeyBackup runs E3Kit's key backup with the official client
// against the emulator (Pythia BrainKey and Keyknox v1): backup on one
// device, restore on fresh ones, a wrong password, changePassword, reset,
// and a named (Keyknox v2) backup; the restored user reads the group's
// earlier messages.
func TestE3KitKeyBackup(t *testing.T) {
	_, d, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const groupID = "backup-group-0001"
	for _, u := range []string{owner, alice, bob} {
		must(d.Register(ctx, u))
	}
	_, err := d.CreateGroup(ctx, owner, groupID, alice, bob)
	must(err)
	_, err = d.LoadGroup(ctx, alice, groupID, owner)
	must(err)
	fromOwner, err := d.Encrypt(ctx, owner, groupID, "before the backup, from the owner")
	must(err)
	fromAlice, err := d.Encrypt(ctx, alice, groupID, "before the backup, from alice")
	must(err)

	must(d.BackupPrivateKey(ctx, alice, "first password", ""))
	wantE3KitError(t, d.BackupPrivateKey(ctx, alice, "first password", ""), "CloudEntryExistsError")

	// A fresh device of alice: same identity, empty storage.
	device := func(name string) string {
		t.Helper()
		got, err := d.Init(ctx, name, interop.UserOptions{Identity: alice})
		must(err)
		if got != alice {
			t.Fatalf("device identity %q", got)
		}
		return name
	}
	readsHistory := func(user string) {
		t.Helper()
		_, err := d.LoadGroup(ctx, user, groupID, owner)
		must(err)
		for cipher, want := range map[string]struct{ sender, text string }{
			fromOwner: {owner, "before the backup, from the owner"},
			fromAlice: {alice, "before the backup, from alice"},
		} {
			got, err := d.Decrypt(ctx, user, groupID, cipher, want.sender)
			must(err)
			if got != want.text {
				t.Fatalf("%s decrypted %q, want %q", user, got, want.text)
			}
		}
	}

	second := device("alice-device-2")
	wantE3KitError(t, d.RestorePrivateKey(ctx, second, "not the password", ""), "WrongKeyknoxPasswordError")
	must(d.RestorePrivateKey(ctx, second, "first password", ""))
	readsHistory(second)
	// What the restored device writes, the first device reads.
	fromSecond, err := d.Encrypt(ctx, second, groupID, "from the restored device")
	must(err)
	if got, err := d.Decrypt(ctx, bob, groupID, fromSecond, alice); err == nil {
		t.Fatalf("bob has not loaded the group, yet decrypted %q", got)
	}
	_, err = d.LoadGroup(ctx, bob, groupID, owner)
	must(err)
	got, err := d.Decrypt(ctx, bob, groupID, fromSecond, alice)
	must(err)
	if got != "from the restored device" {
		t.Fatalf("bob decrypted %q", got)
	}

	wantE3KitError(t, d.ChangePassword(ctx, second, "not the password", "second password", ""), "WrongKeyknoxPasswordError")
	must(d.ChangePassword(ctx, second, "first password", "second password", ""))
	third := device("alice-device-3")
	wantE3KitError(t, d.RestorePrivateKey(ctx, third, "first password", ""), "WrongKeyknoxPasswordError")
	must(d.RestorePrivateKey(ctx, third, "second password", ""))
	readsHistory(third)

	must(d.ResetPrivateKeyBackup(ctx, third, ""))
	fourth := device("alice-device-4")
	wantE3KitError(t, d.RestorePrivateKey(ctx, fourth, "second password", ""), "PrivateKeyNoBackupError")

	// A named backup goes to Keyknox v2 (root "e3kit", path "backup").
	must(d.BackupPrivateKey(ctx, third, "named password", "laptop"))
	fifth := device("alice-device-5")
	// E3Kit 2.5.1 fails on a named backup that does not exist with a
	// TypeError of its own (it reads the empty Keyknox value).
	if err := d.RestorePrivateKey(ctx, fifth, "named password", "phone"); err == nil {
		t.Fatal("restored a named backup that does not exist")
	}
	must(d.RestorePrivateKey(ctx, fifth, "named password", "laptop"))
	readsHistory(fifth)
	must(d.ChangePassword(ctx, fifth, "named password", "new named password", "laptop"))
	must(d.ResetPrivateKeyBackup(ctx, fifth, "laptop"))
	if err := d.RestorePrivateKey(ctx, fourth, "new named password", "laptop"); err == nil {
		t.Fatal("restored a named backup after its reset")
	}
}
