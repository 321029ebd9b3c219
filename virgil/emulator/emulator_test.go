package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

func TestNewValidates(t *testing.T) {
	k, _ := virgil.GenerateKey()
	for _, cfg := range []emulator.Config{
		{},
		{AppID: "a", AppKeyID: "k"},
		{AppID: "a", AppPublicKey: k.Public()},
		{AppID: "a", AppKeyID: "k", AppPublicKey: k.Public(), MoreAppKeys: map[string]*virgil.PublicKey{"x": nil}},
	} {
		if _, err := emulator.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an incomplete config", cfg)
		}
	}
	e, err := emulator.New(emulator.Config{AppID: "a", AppKeyID: "k", AppPublicKey: k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if e.ServiceKey() == nil {
		t.Fatal("no generated service key")
	}
}

// TestPersistence restarts the emulator on the same folder: cards, entries,
// hashes, replacement and revocation survive, and so does the generated
// service key.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *emulator.Config) { c.Dir = dir; c.ServiceKey = nil }
	f := newFixture(t, mod)
	aliceBody, aliceID := publishBody(t, f.keys["alice"], "alice-uid", "", f.now)
	wantOK(t, f.do("alice-uid", "POST", "/card/v5", aliceBody))
	rotBody, rotID := publishBody(t, f.keys["carol"], "alice-uid", aliceID, f.now.Add(time.Second))
	wantOK(t, f.do("alice-uid", "POST", "/card/v5", rotBody))
	bobBody, bobID := publishBody(t, f.keys["bob"], "bob-uid", "", f.now)
	wantOK(t, f.do("bob-uid", "POST", "/card/v5", bobBody))
	wantOK(t, f.do("bob-uid", "POST", "/card/v5/actions/revoke/"+bobID, "{}"))
	w := f.do("owner-id", "POST", "/keyknox/v2/push", pushBody("0", []string{"owner-id", "alice", "bob"}, "m", "v"))
	wantOK(t, w)
	hash := w.Header().Get("Virgil-Keyknox-Hash")
	wantOK(t, f.do("owner-id", "POST", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1","identity":"bob"}`))
	service := f.emu.ServiceKey()
	if err := f.emu.Close(); err != nil {
		t.Fatal(err)
	}
	wantError(t, f.do("alice-uid", "POST", "/card/v5/actions/search", `{"identities":["a"]}`), http.StatusServiceUnavailable, emulator.CodeUnavailable)
	if fi, err := os.Stat(filepath.Join(dir, "service-key.der")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("service key file: %v, %v", fi, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}

	g := newFixture(t, mod)
	if !g.emu.ServiceKey().Equal(service) {
		t.Error("service key changed across a restart")
	}
	if c, ok := g.emu.Card("alice-uid"); !ok || c.ID != rotID {
		t.Errorf("alice's card after restart: %v %v", c, ok)
	}
	if _, ok := g.emu.Card("bob-uid"); ok {
		t.Error("revocation lost")
	}
	w = g.do("bob-uid", "GET", "/card/v5/"+aliceID, "")
	wantOK(t, w)
	if w.Header().Get("X-Virgil-Is-Superseeded") != "true" {
		t.Error("replacement lost")
	}
	w = g.do("alice", "POST", "/keyknox/v2/pull", pullBody("0", "owner-id"))
	v := decodeValue(t, w)
	if string(*v.Meta) != "m" || w.Header().Get("Virgil-Keyknox-Hash") != hash || strings.Join(*v.Identities, ",") != "owner-id,alice" {
		t.Errorf("entry after restart: %s", w.Body.String())
	}
	if v := decodeValue(t, g.do("bob", "POST", "/keyknox/v2/pull", pullBody("0", "owner-id"))); len(*v.Meta) != 0 {
		t.Error("bob's revoked access came back")
	}
	// The hash still guards the entry.
	wantError(t, g.do("owner-id", "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m", "v")), 409, emulator.CodeInvalidPreviousHash)
	wantOK(t, g.do("owner-id", "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m", "v"), "Virgil-Keyknox-Previous-Hash", hash))

	// A corrupt state file is an error, not an empty emulator.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "state.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := appConfig(t, vectorNow)
	cfg.Dir = bad
	if _, err := emulator.New(cfg); err == nil {
		t.Error("New accepted a corrupt state file")
	}
}

// TestConcurrentPushesOneWins sends many pushes with the same previous hash
// at once: exactly one may win, the others get 50010.
func TestConcurrentPushesOneWins(t *testing.T) {
	f := newFixture(t, func(c *emulator.Config) { c.Dir = t.TempDir() })
	srv := httptest.NewServer(f.emu)
	t.Cleanup(srv.Close)
	w := f.do("owner-id", "POST", "/keyknox/v2/push", pushBody("0", []string{"owner-id"}, "m", "v"))
	wantOK(t, w)
	hash := w.Header().Get("Virgil-Keyknox-Hash")
	tok := f.token("owner-id")

	const n = 16
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/keyknox/v2/push",
				strings.NewReader(pushBody("0", []string{fmt.Sprintf("user-%d", i)}, "m", "v")))
			req.Header.Set("Authorization", "Virgil "+tok)
			req.Header.Set("Virgil-Keyknox-Previous-Hash", hash)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case 200:
			won++
		case 409:
		default:
			t.Errorf("status %d", s)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent pushes won, want exactly 1 (statuses %v)", won, statuses)
	}
}

// TestConcurrentOwnersWithClient drives the emulator with the project's own
// virgil.Client and virgil.Owner from several goroutines (run with -race).
func TestConcurrentOwnersWithClient(t *testing.T) {
	f := newFixture(t, func(c *emulator.Config) { c.Now = time.Now })
	f.gen.Now = time.Now
	srv := httptest.NewServer(f.emu)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	members := []string{"alice-uid", "bob-uid", "carol-uid"}
	for _, m := range members {
		key, _ := virgil.GenerateKey()
		c := virgil.NewClient(srv.URL, f.gen.Source(m))
		rc, err := virgil.NewRawCard(key, m, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PublishCard(ctx, rc); err != nil {
			t.Fatalf("publish %s: %v", m, err)
		}
	}
	const owners = 4
	var wg sync.WaitGroup
	for i := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("owner-%d", i)
			key, _ := virgil.GenerateKey()
			c := virgil.NewClient(srv.URL, f.gen.Source(id))
			o := virgil.NewOwner(c, key, id, virgil.WithServiceKey(f.emu.ServiceKey()))
			if _, err := o.EnsureCard(ctx); err != nil {
				t.Errorf("%s: ensure card: %v", id, err)
				return
			}
			group := fmt.Sprintf("concurrent-group-%d", i)
			if _, err := o.CreateGroup(ctx, group, members[:2]); err != nil {
				t.Errorf("%s: create: %v", id, err)
				return
			}
			if _, err := o.AddMembers(ctx, group, members[2:]); err != nil {
				t.Errorf("%s: add: %v", id, err)
				return
			}
			if err := o.Remove(ctx, group, []string{"bob-uid"}); err != nil {
				t.Errorf("%s: remove: %v", id, err)
			}
		}()
	}
	wg.Wait()
	for i := range owners {
		v, ok := f.emu.Group(fmt.Sprintf("owner-%d", i), fmt.Sprintf("concurrent-group-%d", i))
		if !ok {
			t.Errorf("group %d missing", i)
			continue
		}
		want := fmt.Sprintf("alice-uid,carol-uid,owner-%d", i)
		if got := strings.Join(v.Participants, ","); got != want || strings.Join(v.Epochs, ",") != "0,1" {
			t.Errorf("group %d: %+v, want participants %s and epochs 0,1", i, v, want)
		}
	}
}

func TestFaultInjection(t *testing.T) {
	var clock = vectorNow
	var mu sync.Mutex
	f := newFixture(t, func(c *emulator.Config) {
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	})
	search := func() *httptest.ResponseRecorder {
		return f.do("alice-uid", "POST", "/card/v5/actions/search", `{"identities":["a"]}`)
	}
	f.emu.SetFault(emulator.Fault{Status: 429, RetryAfter: 1500 * time.Millisecond, Every: 3})
	var got []int
	for range 6 {
		w := search()
		got = append(got, w.Code)
		if w.Code == 429 {
			if w.Header().Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q, want 2", w.Header().Get("Retry-After"))
			}
			if code, _ := apiError(t, w); code != emulator.CodeInjectedFault {
				t.Errorf("fault code %d", code)
			}
		}
	}
	if fmt.Sprint(got) != "[200 200 429 200 200 429]" {
		t.Errorf("statuses with Every=3: %v", got)
	}
	// Debug endpoints and preflights are not affected.
	f.emu.SetFault(emulator.Fault{Status: 503})
	wantOK(t, f.do("", "GET", "/_emulator/stats", ""))
	if w := f.do("", "OPTIONS", "/card/v5", ""); w.Code != 204 {
		t.Errorf("preflight under fault: %d", w.Code)
	}
	wantError(t, search(), 503, emulator.CodeInjectedFault)
	f.emu.ClearFault()
	wantOK(t, search())

	// Until: the fault ends by the emulator's clock.
	f.emu.SetFault(emulator.Fault{Status: 500, Until: vectorNow.Add(time.Minute)})
	wantError(t, search(), 500, emulator.CodeInjectedFault)
	mu.Lock()
	clock = vectorNow.Add(time.Minute)
	mu.Unlock()
	wantOK(t, search())

	// Set and clear over HTTP; delay-only faults pass the request through.
	w := f.do("", "POST", "/_emulator/fault", `{"status":502,"for":"10s","every":1}`)
	wantOK(t, w)
	wantError(t, search(), 502, emulator.CodeInjectedFault)
	wantOK(t, f.do("", "DELETE", "/_emulator/fault", ""))
	wantOK(t, search())
	wantOK(t, f.do("", "POST", "/_emulator/fault", `{"delay":"1ms"}`))
	wantOK(t, search())
	for _, bad := range []string{`{"status":200}`, `{"delay":"x"}`, `{"every":-1}`, `{`, `{"for":"-1s"}`} {
		wantError(t, f.do("", "POST", "/_emulator/fault", bad), 400, emulator.CodeInvalidJSON)
	}
	f.emu.ClearFault()

	var st emulator.Stats
	w = f.do("", "GET", "/_emulator/stats", "")
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st != f.emu.Stats() || st.Faults != 5 || st.Delayed != 1 || st.Requests != 13 {
		t.Errorf("stats %+v (method %+v), want 5 faults, 1 delayed, 13 requests", st, f.emu.Stats())
	}
}

func TestDebugAPIOffByDefault(t *testing.T) {
	f := newFixture(t, func(c *emulator.Config) { c.DebugAPI = false })
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/_emulator/stats", ""},
		{"POST", "/_emulator/fault", `{"status":500}`},
		{"DELETE", "/_emulator/fault", ""},
		{"GET", "/_emulator/cards/alice-uid", ""},
		{"GET", "/_emulator/groups/some-group-id", ""},
	} {
		wantError(t, f.do("", r.method, r.path, r.body), 404, emulator.CodeNotFound)
	}
	if st := f.emu.Stats(); st.Faults != 0 {
		t.Errorf("a fault was set through the disabled debug API: %+v", st)
	}
	wantOK(t, f.do("alice-uid", "POST", "/card/v5/actions/search", `{"identities":["a"]}`))
}

func TestServiceKeyIsPublished(t *testing.T) {
	f := newFixture(t, func(c *emulator.Config) { c.DebugAPI = false })
	w := f.do("", "GET", emulator.ServiceKeyPath, "")
	wantOK(t, w)
	var got emulator.ServiceKeyResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("GET %s: %v", emulator.ServiceKeyPath, err)
	}
	if want := f.emu.ServiceKey().MarshalSPKIBase64(); got.ServiceKey != want {
		t.Errorf("GET %s = %q, want %q", emulator.ServiceKeyPath, got.ServiceKey, want)
	}
	wantError(t, f.do("", "POST", emulator.ServiceKeyPath, "{}"), 405, emulator.CodeMethodNotAllowed)
}

// TestLogsNoSecrets logs every request at debug level and checks that no
// token, key or Keyknox value reaches the log.
func TestLogsNoSecrets(t *testing.T) {
	var buf testkit.Buffer
	f := newFixture(t, func(c *emulator.Config) {
		c.Logger = zerolog.New(&buf).Level(zerolog.DebugLevel)
	})
	tok := f.token("alice-uid")
	body, _ := publishBody(t, f.keys["alice"], "alice-uid", "", f.now)
	wantOK(t, f.do("alice-uid", "POST", "/card/v5", body))
	wantOK(t, f.do("alice-uid", "POST", "/keyknox/v2/push", pushBody("0", []string{"alice-uid"}, "secret-meta", "secret-value")))
	wantError(t, f.do("", "POST", "/keyknox/v2/pull", "{}", "Authorization", "Virgil "+tok+"x"), 401, emulator.CodeTokenInvalid)
	wantOK(t, f.do("", "POST", "/_emulator/fault", `{"status":503}`))
	log := buf.String()
	if strings.Count(log, `"message":"emulator: request"`) != 4 || !strings.Contains(log, `"caller":"alice-uid"`) {
		t.Fatalf("request log lines missing:\n%s", log)
	}
	parts := strings.Split(tok, ".")
	for _, secret := range []string{parts[2], parts[1], f.keys["alice"].MarshalPKCS8Base64(), "c2VjcmV0LW1ldGE", "secret-value"} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, log)
		}
	}
}

// TestFailedWriteChangesNothing: when the journal cannot be written, every
// change is answered 500 and leaves the state as it was, in memory and on
// disk; once writes work again, so does the emulator, and a restart reads a
// journal without the failed changes.
func TestFailedWriteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *emulator.Config) { c.Dir = dir }
	f := newFixture(t, mod)
	aliceBody, aliceID := publishBody(t, f.keys["alice"], "alice-uid", "", f.now)
	wantOK(t, f.do("alice-uid", "POST", "/card/v5", aliceBody))
	w := f.do("owner-id", "POST", "/keyknox/v2/push", pushBody("0", []string{"owner-id", "alice", "bob"}, "m", "v"))
	wantOK(t, w)
	hash := w.Header().Get("Virgil-Keyknox-Hash")

	// state is what a reader sees: alice's card, the entry and its readers.
	state := func(f *fixture) string {
		t.Helper()
		var out []string
		w := f.do("bob-uid", "POST", "/card/v5/actions/search", `{"identities":["alice-uid","bob-uid"]}`)
		wantOK(t, w)
		out = append(out, w.Body.String())
		w = f.do("bob-uid", "GET", "/card/v5/"+aliceID, "")
		out = append(out, w.Header().Get("X-Virgil-Is-Superseeded"))
		for _, reader := range []string{"owner-id", "alice", "bob"} {
			w = f.do(reader, "POST", "/keyknox/v2/pull", pullBody("0", "owner-id"))
			wantOK(t, w)
			out = append(out, w.Body.String(), w.Header().Get("Virgil-Keyknox-Hash"))
		}
		return strings.Join(out, "\n")
	}
	before := state(f)

	emulator.FailJournalWrites(f.emu, true)
	bobBody, _ := publishBody(t, f.keys["bob"], "bob-uid", "", f.now)
	rotBody, _ := publishBody(t, f.keys["carol"], "alice-uid", aliceID, f.now.Add(time.Second))
	changes := []struct {
		name, caller, path, body string
		hdr                      []string
	}{
		{"publish", "bob-uid", "/card/v5", bobBody, nil},
		{"replace", "alice-uid", "/card/v5", rotBody, nil},
		{"revoke", "alice-uid", "/card/v5/actions/revoke/" + aliceID, "{}", nil},
		{"push", "owner-id", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m2", "v2"), []string{"Virgil-Keyknox-Previous-Hash", hash}},
		{"push new key", "owner-id", "/keyknox/v2/push", pushBody("1", []string{"carol"}, "m2", "v2"), nil},
		{"revoke access", "owner-id", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1","identity":"bob"}`, nil},
		{"delete", "owner-id", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1"}`, nil},
	}
	for _, c := range changes {
		wantError(t, f.do(c.caller, "POST", c.path, c.body, c.hdr...), http.StatusInternalServerError, emulator.CodeUnavailable)
		if got := state(f); got != before {
			t.Fatalf("after the failed %s the state is\n%s\nwant\n%s", c.name, got, before)
		}
	}

	emulator.FailJournalWrites(f.emu, false)
	wantOK(t, f.do("owner-id", "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m3", "v3"), "Virgil-Keyknox-Previous-Hash", hash))
	after := state(f)
	if after == before {
		t.Fatal("a push after writes work again changed nothing")
	}
	if err := f.emu.Close(); err != nil {
		t.Fatal(err)
	}
	if got := state(newFixture(t, mod)); got != after {
		t.Fatalf("after a restart the state is\n%s\nwant\n%s", got, after)
	}
}
