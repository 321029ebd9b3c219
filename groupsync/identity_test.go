package groupsync_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/groupsync/groupsync/groupsync"
)

func mustIdentities(tb testing.TB, secret string) *groupsync.Identities {
	tb.Helper()
	m, err := groupsync.NewIdentities([]byte(secret), "")
	if err != nil {
		tb.Fatalf("NewIdentities: %v", err)
	}
	return m
}

func TestIdentitiesDeterministicAndSeparate(t *testing.T) {
	a := mustIdentities(t, "0123456789abcdef-secret")
	b := mustIdentities(t, "0123456789abcdef-secret")
	other := mustIdentities(t, "another-secret-of-16+")
	printable := regexp.MustCompile(`^[0-9a-f]{32}$`)

	for _, name := range []string{"alice", "project-falcon", "x", "a-very-long-group-guid-with-dashes_and_underscores"} {
		if a.User(name) != b.User(name) || a.Group(name) != b.Group(name) {
			t.Errorf("mapping of %q differs between two Identities with the same secret", name)
		}
		if a.User(name) == a.Group(name) {
			t.Errorf("User(%q) == Group(%q) = %s: namespaces not separate", name, name, a.User(name))
		}
		if a.User(name) == other.User(name) {
			t.Errorf("User(%q) is the same under another secret", name)
		}
		for _, id := range []string{a.User(name), a.Group(name)} {
			if !printable.MatchString(id) {
				t.Errorf("identity %q of %q is not 32 lowercase hex characters", id, name)
			}
			if id == a.Owner() {
				t.Errorf("identity of %q equals the owner identity", name)
			}
		}
	}
	if a.User("alice") == a.User("bob") {
		t.Error("distinct users map to one identity")
	}
	if got := a.Owner(); got != groupsync.DefaultOwnerIdentity {
		t.Errorf("Owner() = %q, want %q", got, groupsync.DefaultOwnerIdentity)
	}
	if got := a.Users([]string{"alice", "bob"}); len(got) != 2 || got[0] != a.User("alice") || got[1] != a.User("bob") {
		t.Errorf("Users(alice, bob) = %v", got)
	}
}

func TestNewIdentitiesRefusesWeakSecret(t *testing.T) {
	if _, err := groupsync.NewIdentities([]byte("short"), ""); !errors.Is(err, groupsync.ErrWeakIdentitySecret) {
		t.Fatalf("NewIdentities(short secret) error = %v, want ErrWeakIdentitySecret", err)
	}
	if _, err := groupsync.NewIdentities([]byte("0123456789abcdef"), "0123456789abcdef0123456789abcdef"); err == nil {
		t.Fatal("NewIdentities accepted an owner identity shaped like a mapped identity")
	}
}
