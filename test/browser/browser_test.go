package browser

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// E3Kit's GroupErrorCode values the test expects (docs/virgil-protocol.md
// section 8.2).
const (
	groupErrorIsOutdated = 10
	groupErrorNoAccess   = 11
)

// user is a CometChat user of the web app, in one page (browser tab).
type user struct {
	uid      string
	identity string
	page     *page
}

func (u *user) String() string { return u.uid + " (e3kit-browser " + u.page.version + ")" }

// initUser starts the user's EThree in the page; its token comes from
// groupsync's GET /v1/virgil-jwt.
func initUser(t *testing.T, pg *page, uid string) (u *user, hasLocalKey bool) {
	t.Helper()
	var res struct {
		Identity    string `json:"identity"`
		HasLocalKey bool   `json:"hasLocalKey"`
	}
	pg.mustRun(t, "init", map[string]any{"uid": uid}, &res)
	if len(res.Identity) != 32 {
		t.Fatalf("%s: E3Kit identity %q is not groupsync's 32-character identity of the uid", uid, res.Identity)
	}
	return &user{uid: uid, identity: res.Identity, page: pg}, res.HasLocalKey
}

// register signs a new user up with E3Kit (publishes its card).
func register(t *testing.T, pg *page, uid string) *user {
	t.Helper()
	u, hasKey := initUser(t, pg, uid)
	if hasKey {
		t.Fatalf("%s: a fresh profile already holds a private key", u)
	}
	pg.mustRun(t, "register", map[string]any{"uid": uid}, nil)
	return u
}

// loadGroup loads the group as u and returns its participants.
func (u *user) loadGroup(t *testing.T, guid string) []string {
	t.Helper()
	var res struct {
		Participants []string `json:"participants"`
	}
	u.page.mustRun(t, "loadGroup", map[string]any{"uid": u.uid, "guid": guid}, &res)
	return res.Participants
}

func (u *user) update(t *testing.T, guid string) ([]string, *jsError) {
	t.Helper()
	var res struct {
		Participants []string `json:"participants"`
	}
	err := u.page.run(t, "update", map[string]any{"uid": u.uid, "guid": guid}, &res)
	return res.Participants, err
}

func (u *user) encrypt(t *testing.T, guid, text string) string {
	t.Helper()
	var cipher string
	u.page.mustRun(t, "encrypt", map[string]any{"uid": u.uid, "guid": guid, "text": text}, &cipher)
	if cipher == "" || strings.Contains(cipher, text) {
		t.Fatalf("%s: group.encrypt gave %q", u, cipher)
	}
	return cipher
}

func (u *user) decrypt(t *testing.T, guid, cipher string, sender *user) (string, *jsError) {
	t.Helper()
	var text string
	err := u.page.run(t, "decrypt", map[string]any{"uid": u.uid, "guid": guid, "cipher": cipher, "sender": sender.uid}, &text)
	return text, err
}

// mustRead requires u to decrypt cipher from sender as want.
func (u *user) mustRead(t *testing.T, guid, cipher string, sender *user, want string) {
	t.Helper()
	got, err := u.decrypt(t, guid, cipher, sender)
	if err != nil {
		t.Fatalf("%s cannot decrypt %s's message in %s: %v", u, sender, guid, err)
	}
	if got != want {
		t.Fatalf("%s decrypted %s's message as %q, want %q", u, sender, got, want)
	}
}

// identities returns the users' Virgil identities.
func identities(users ...*user) []string {
	out := make([]string, 0, len(users))
	for _, u := range users {
		out = append(out, u.identity)
	}
	return out
}

// groupIdentity asks groupsync's client API for the Virgil identity of guid.
func groupIdentity(t *testing.T, d *dev, guid string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.info.HTTPURL+"/v1/get-identities", strings.NewReader(`{"uids":[],"guids":["`+guid+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CometChat-UID", "browser-test")
	req.Header.Set("Authorization", "Bearer cometchat-auth-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		GroupIdentities []map[string]string `json:"groupIdentities"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.GroupIdentities) != 1 {
		t.Fatalf("get-identities of %s: status %d, %v, %v", guid, resp.StatusCode, body, err)
	}
	return body.GroupIdentities[0][guid]
}

func origin(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Scheme + "://" + u.Host
}

// TestE3KitBrowsers runs web apps built on e3kit-browser 2.5.5 and 3.0.5 in
// Chromium against a groupsync dev instance. The pages are served from an
// origin of their own and call groupsync's client API directly; the test
// plays CometChat and posts the group webhooks to groupsync.
func TestE3KitBrowsers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium against a dev instance")
	}
	chromium := chromiumPath(t)
	dists := bundles(t)
	d := startDev(t, groupsyncBinary(t))
	site := servePages(t, dists)
	if origin(t, site.URL) == origin(t, d.info.HTTPURL) || origin(t, site.URL) == origin(t, d.info.VirgilAPIURL) {
		t.Fatalf("the page's origin %s must differ from groupsync's %s and the Virgil emulator's %s", site.URL, d.info.HTTPURL, d.info.VirgilAPIURL)
	}
	b := startBrowser(t, chromium)
	prof := b.defaultProfile()
	v2 := prof.open(t, "tab-2.5.5", site.URL, "2.5.5", d)
	v3 := prof.open(t, "tab-3.0.5", site.URL, "3.0.5", d)

	const guid = "browser-group"
	const created = int64(1767225600)
	var alice, bob, carol, dave *user
	var m1, m2, m4 string
	ok := t.Run("mixed-version group created, added to and kicked from", func(t *testing.T) {
		// Users sign up with E3Kit: alice and bob on 2.5.5, carol and dave on 3.0.5.
		alice = register(t, v2, "alice")
		bob = register(t, v2, "bob")
		carol = register(t, v3, "carol")
		dave = register(t, v3, "dave")

		// CometChat: alice creates a group with bob and carol.
		d.groupCreated(t, guid, created, "alice", "alice", "bob", "carol")
		groupID := groupIdentity(t, d, guid)
		d.waitGroup(t, groupID, identities(alice, bob, carol)...)
		want := append([]string{d.info.OwnerIdentity}, identities(alice, bob, carol)...)
		for _, u := range []*user{alice, bob, carol} {
			if got := u.loadGroup(t, guid); !sameSet(got, want) {
				t.Fatalf("%s loaded participants %v, want %v", u, got, want)
			}
		}
		m1 = alice.encrypt(t, guid, "m1: hello from 2.5.5")
		bob.mustRead(t, guid, m1, alice, "m1: hello from 2.5.5")
		carol.mustRead(t, guid, m1, alice, "m1: hello from 2.5.5")
		m2 = carol.encrypt(t, guid, "m2: hello from 3.0.5")
		alice.mustRead(t, guid, m2, carol, "m2: hello from 3.0.5")
		bob.mustRead(t, guid, m2, carol, "m2: hello from 3.0.5")

		// CometChat: dave is added; he reads the group's history.
		d.memberAdded(t, guid, created, created+10, "alice", "dave")
		d.waitGroup(t, groupID, identities(alice, bob, carol, dave)...)
		dave.loadGroup(t, guid)
		dave.mustRead(t, guid, m1, alice, "m1: hello from 2.5.5")
		dave.mustRead(t, guid, m2, carol, "m2: hello from 3.0.5")

		// CometChat: carol is kicked. groupsync writes a new epoch without her.
		d.memberKicked(t, guid, created, created+20, "alice", "carol")
		view := d.waitGroup(t, groupID, identities(alice, bob, dave)...)
		if len(view.Epochs) != 2 {
			t.Fatalf("after the kick the group has epochs %v, want 2", view.Epochs)
		}
		want = append([]string{d.info.OwnerIdentity}, identities(alice, bob, dave)...)
		for _, u := range []*user{alice, bob, dave} {
			got, err := u.update(t, guid)
			if err != nil {
				t.Fatalf("%s: group.update after the kick: %v", u, err)
			}
			if !sameSet(got, want) {
				t.Fatalf("%s sees participants %v after the kick, want %v", u, got, want)
			}
		}
		m3 := alice.encrypt(t, guid, "m3: after the kick")
		bob.mustRead(t, guid, m3, alice, "m3: after the kick")
		dave.mustRead(t, guid, m3, alice, "m3: after the kick")
		m4 = dave.encrypt(t, guid, "m4: 3.0.5 in the new epoch")
		alice.mustRead(t, guid, m4, dave, "m4: 3.0.5 in the new epoch")
		bob.mustRead(t, guid, m4, dave, "m4: 3.0.5 in the new epoch")

		// The kicked member can neither read the new epoch nor follow the group.
		if _, err := carol.decrypt(t, guid, m3, alice); err == nil {
			t.Fatalf("%s, kicked, decrypted a message of the new epoch", carol)
		} else if err.GroupErrorCode != groupErrorIsOutdated {
			t.Fatalf("%s, kicked, decrypting the new epoch: %v, want GroupErrorCode %d (GroupIsOutdated)", carol, err, groupErrorIsOutdated)
		}
		if _, err := carol.update(t, guid); err == nil {
			t.Fatalf("%s, kicked, could still update the group", carol)
		} else if err.GroupErrorCode != groupErrorNoAccess {
			t.Fatalf("%s, kicked, group.update: %v, want GroupErrorCode %d (NoAccess)", carol, err, groupErrorNoAccess)
		}
	})
	if !ok {
		return
	}
	t.Run("key backup restored on fresh profiles, password changed", func(t *testing.T) {
		testKeyBackup(t, b, site, d, guid, []*user{alice, dave}, []backupMessage{
			{m1, "m1: hello from 2.5.5", alice},
			{m2, "m2: hello from 3.0.5", carol},
			{m4, "m4: 3.0.5 in the new epoch", dave},
		})
	})
}
