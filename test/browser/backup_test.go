package browser

import (
	"net/http/httptest"
	"testing"
)

// backupMessage is a group message written before the backup and who wrote it.
type backupMessage struct {
	cipher, text string
	sender       *user
}

// testKeyBackup backs the keys of users up with E3Kit (Pythia BrainKey and
// Keyknox), restores them on a fresh browser profile, where they read the
// group's earlier messages, changes the password there and restores again
// on another fresh profile with the new password only.
func testKeyBackup(t *testing.T, b *browser, site *httptest.Server, d *dev, guid string, users []*user, earlier []backupMessage) {
	password := func(u *user, n int) string { return "correct horse battery staple " + u.uid + string(rune('0'+n)) }
	for _, u := range users {
		u.page.mustRun(t, "backup", map[string]any{"uid": u.uid, "password": password(u, 1)}, nil)
	}

	// restoreOn opens the user's E3Kit version on a fresh profile, checks
	// that the wrong password is refused and that the right one brings the
	// key back, and reads the earlier messages with it.
	restoreOn := func(prof *profile, name string, u *user, wrong, right string) *user {
		t.Helper()
		pg := prof.open(t, name+"-"+u.page.version, site.URL, u.page.version, d)
		r, hasKey := initUser(t, pg, u.uid)
		if hasKey {
			t.Fatalf("%s: a fresh profile already holds %s's key", name, u.uid)
		}
		if r.identity != u.identity {
			t.Fatalf("%s: %s has identity %s, was %s", name, u.uid, r.identity, u.identity)
		}
		if err := pg.run(t, "restore", map[string]any{"uid": u.uid, "password": wrong}, nil); err == nil {
			t.Fatalf("%s: %s restored the key with a wrong password", name, r)
		} else if err.Name != "WrongKeyknoxPasswordError" {
			t.Fatalf("%s: %s restoring with a wrong password: %v, want WrongKeyknoxPasswordError", name, r, err)
		}
		pg.mustRun(t, "restore", map[string]any{"uid": u.uid, "password": right}, nil)
		r.loadGroup(t, guid)
		for _, m := range earlier {
			r.mustRead(t, guid, m.cipher, m.sender, m.text)
		}
		return r
	}

	second := b.freshProfile(t)
	for _, u := range users {
		r := restoreOn(second, "second-profile", u, password(u, 2), password(u, 1))
		r.page.mustRun(t, "changePassword", map[string]any{"uid": u.uid, "oldPassword": password(u, 1), "newPassword": password(u, 2)}, nil)
	}
	third := b.freshProfile(t)
	for _, u := range users {
		restoreOn(third, "third-profile", u, password(u, 1), password(u, 2))
	}
}
