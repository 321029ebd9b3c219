package emulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

// TestPublishServesVectorSignature checks, byte for byte, that publishing
// each vector card answers served_with_virgil_signature.
func TestPublishServesVectorSignature(t *testing.T) {
	var cv cardVectors
	testkit.LoadVector(t, "cards.json", &cv)
	f := newFixture(t, nil)
	if len(cv.Cards) < 3 {
		t.Fatalf("cards.json has %d cards", len(cv.Cards))
	}
	for _, c := range cv.Cards { // in order: alice-rotated names alice's first card
		w := f.do(c.Identity, http.MethodPost, "/card/v5", c.PublishRequestBody)
		wantOK(t, w)
		// The vector holds the served model as a JSON object; the JS key order is
		// content_snapshot, signatures[{signer, signature}], which compact
		// re-encoding of the vector text preserves.
		var want bytes.Buffer
		if err := json.Compact(&want, c.ServedWithSignature); err != nil {
			t.Fatal(err)
		}
		if got := w.Body.String(); got != want.String() {
			t.Errorf("%s: served\n%s\nwant\n%s", c.Label, got, want.String())
		}
		raw, err := virgil.ParseRawCard(w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if raw.ID() != c.CardID {
			t.Errorf("%s: id %s, want %s", c.Label, raw.ID(), c.CardID)
		}
		if err := raw.VerifySignature(virgil.SignerVirgil, f.emu.ServiceKey()); err != nil {
			t.Errorf("%s: virgil signature: %v", c.Label, err)
		}
	}
	// alice's first card is now replaced: get says superseded, search returns both.
	first := cv.Cards[1]
	if first.Label != "alice" {
		t.Fatalf("cards[1] is %q, want alice", first.Label)
	}
	w := f.do("bob-uid", http.MethodGet, "/card/v5/"+first.CardID, "")
	wantOK(t, w)
	if w.Header().Get("X-Virgil-Is-Superseeded") != "true" {
		t.Errorf("replaced card served without the superseded header")
	}
	w = f.do("bob-uid", http.MethodGet, "/card/v5/"+cv.Cards[2].CardID, "")
	wantOK(t, w)
	if h := w.Header().Get("X-Virgil-Is-Superseeded"); h != "" {
		t.Errorf("newest card served with superseded header %q", h)
	}
	c, ok := f.emu.Card("alice-uid")
	if !ok || c.ID != cv.Cards[2].CardID {
		t.Errorf("Card(alice-uid) = %v, %v; want the rotated card %s", c, ok, cv.Cards[2].CardID)
	}
}

// signedRaw self-signs an arbitrary snapshot.
func signedRaw(tb testing.TB, key *virgil.PrivateKey, snapshot string) string {
	tb.Helper()
	rc := &virgil.RawCard{ContentSnapshot: []byte(snapshot)}
	if err := rc.Sign(virgil.SignerSelf, key); err != nil {
		tb.Fatal(err)
	}
	return mustJSON(tb, rc)
}

func TestPublishRefusals(t *testing.T) {
	f := newFixture(t, nil)
	alice, bob := f.keys["alice"], f.keys["bob"]
	at := f.now
	pk := alice.Public().MarshalSPKIBase64()
	snap := func(identity, version, key string) string {
		return `{"identity":"` + identity + `","created_at":1767225600,"version":"` + version + `","public_key":"` + key + `"}`
	}
	good, goodID := publishBody(t, alice, "alice-uid", "", at)
	noSelf := mustJSON(t, &virgil.RawCard{ContentSnapshot: []byte(snap("alice-uid", "5.0", pk))})
	badSelf := signedRaw(t, bob, snap("alice-uid", "5.0", pk))
	withVirgil := func() string {
		rc := &virgil.RawCard{ContentSnapshot: []byte(snap("alice-uid", "5.0", pk))}
		_ = rc.Sign(virgil.SignerSelf, alice)
		_ = rc.Sign(virgil.SignerVirgil, bob)
		return mustJSON(t, rc)
	}()
	unknownPrev, _ := publishBody(t, alice, "alice-uid", strings.Repeat("ab", 32), at.Add(time.Second))

	tests := []struct {
		name   string
		caller string
		body   string
		status int
		code   int
	}{
		{"not json", "alice-uid", `{"content_snapshot":`, 400, emulator.CodeInvalidJSON},
		{"empty snapshot", "alice-uid", `{"content_snapshot":"","signatures":[]}`, 400, emulator.CodeInvalidJSON},
		{"snapshot not json", "alice-uid", signedRaw(t, alice, "not json"), 400, emulator.CodeInvalidCard},
		{"old version", "alice-uid", signedRaw(t, alice, snap("alice-uid", "4.0", pk)), 400, emulator.CodeInvalidCard},
		{"no created_at", "alice-uid", signedRaw(t, alice, `{"identity":"alice-uid","version":"5.0","public_key":"`+pk+`"}`), 400, emulator.CodeInvalidCard},
		{"empty identity", "alice-uid", signedRaw(t, alice, snap("", "5.0", pk)), 400, emulator.CodeIdentityMismatch},
		{"other identity", "bob-uid", good, 400, emulator.CodeIdentityMismatch},
		{"bad public key", "alice-uid", signedRaw(t, alice, snap("alice-uid", "5.0", "AAAA")), 400, emulator.CodeInvalidPublicKey},
		{"public key not base64", "alice-uid", signedRaw(t, alice, snap("alice-uid", "5.0", "%%%")), 400, emulator.CodeInvalidPublicKey},
		{"no self signature", "alice-uid", noSelf, 400, emulator.CodeSelfSignatureMissing},
		{"self signature by another key", "alice-uid", badSelf, 400, emulator.CodeSelfSignatureInvalid},
		{"virgil signature sent", "alice-uid", withVirgil, 400, emulator.CodeInvalidCard},
		{"unknown previous card", "alice-uid", unknownPrev, 400, emulator.CodeInvalidCard},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, f.do(tc.caller, http.MethodPost, "/card/v5", tc.body), tc.status, tc.code)
		})
	}
	if st := f.emu.Stats(); st.Rejected != uint64(len(tests)) {
		t.Errorf("Rejected = %d, want %d", st.Rejected, len(tests))
	}
	// Nothing above was stored.
	if _, ok := f.emu.Card("alice-uid"); ok {
		t.Fatal("a refused card was stored")
	}

	wantOK(t, f.do("alice-uid", http.MethodPost, "/card/v5", good))
	t.Run("duplicate", func(t *testing.T) {
		wantError(t, f.do("alice-uid", http.MethodPost, "/card/v5", good), 400, emulator.CodeInvalidCard)
	})
	t.Run("previous of another identity", func(t *testing.T) {
		body, _ := publishBody(t, bob, "bob-uid", goodID, at)
		wantError(t, f.do("bob-uid", http.MethodPost, "/card/v5", body), 400, emulator.CodeInvalidCard)
	})
	next, _ := publishBody(t, bob, "alice-uid", goodID, at.Add(time.Second))
	wantOK(t, f.do("alice-uid", http.MethodPost, "/card/v5", next))
	t.Run("previous already replaced", func(t *testing.T) {
		body, _ := publishBody(t, f.keys["carol"], "alice-uid", goodID, at.Add(2*time.Second))
		wantError(t, f.do("alice-uid", http.MethodPost, "/card/v5", body), 400, emulator.CodeInvalidCard)
	})
}

func TestSearchGetRevoke(t *testing.T) {
	f := newFixture(t, nil)
	aliceBody, aliceID := publishBody(t, f.keys["alice"], "alice-uid", "", f.now)
	bobBody, bobID := publishBody(t, f.keys["bob"], "bob-uid", "", f.now)
	wantOK(t, f.do("alice-uid", http.MethodPost, "/card/v5", aliceBody))
	wantOK(t, f.do("bob-uid", http.MethodPost, "/card/v5", bobBody))

	searchIDs := func(caller string, ids ...string) []string {
		t.Helper()
		w := f.do(caller, http.MethodPost, "/card/v5/actions/search", mustJSON(t, map[string][]string{"identities": ids}))
		wantOK(t, w)
		var raws []*virgil.RawCard
		if err := json.Unmarshal(w.Body.Bytes(), &raws); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range raws {
			out = append(out, r.ID())
		}
		return out
	}
	// Publication order, whatever the request order.
	if got := searchIDs("carol-uid", "bob-uid", "alice-uid", "nobody"); strings.Join(got, ",") != aliceID+","+bobID {
		t.Errorf("search = %v, want [alice bob]", got)
	}
	if got := searchIDs("carol-uid", "nobody"); len(got) != 0 {
		t.Errorf("search of unknown = %v", got)
	}
	many := make([]string, virgil.MaxSearchIdentities)
	for i := range many {
		many[i] = "user-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
	}
	many[len(many)-1] = "bob-uid"
	if got := searchIDs("carol-uid", many...); len(got) != 1 || got[0] != bobID {
		t.Errorf("search of %d identities = %v, want [bob]", len(many), got)
	}
	tooMany := mustJSON(t, map[string][]string{"identities": append(many, "alice-uid")})

	tests := []struct {
		name, caller, method, path, body string
		status, code                     int
	}{
		{"search empty", "alice-uid", "POST", "/card/v5/actions/search", `{"identities":[]}`, 400, emulator.CodeEmptyIdentities},
		{"search missing", "alice-uid", "POST", "/card/v5/actions/search", `{}`, 400, emulator.CodeEmptyIdentities},
		{"search bad json", "alice-uid", "POST", "/card/v5/actions/search", `{"identities":"x"}`, 400, emulator.CodeInvalidJSON},
		{"search 51 identities", "alice-uid", "POST", "/card/v5/actions/search", tooMany, 400, emulator.CodeEmptyIdentities},
		{"get unknown", "alice-uid", "GET", "/card/v5/" + strings.Repeat("0", 64), "", 404, emulator.CodeCardNotFound},
		{"revoke unknown", "alice-uid", "POST", "/card/v5/actions/revoke/" + strings.Repeat("0", 64), "{}", 404, emulator.CodeCardNotFound},
		{"revoke other's card", "alice-uid", "POST", "/card/v5/actions/revoke/" + bobID, "{}", 403, emulator.CodeForbidden},
		{"get with POST", "alice-uid", "POST", "/card/v5/" + bobID, "{}", 405, emulator.CodeMethodNotAllowed},
		{"unknown endpoint", "alice-uid", "POST", "/card/v4", "{}", 404, emulator.CodeNotFound},
		{"keyknox v3", "alice-uid", "GET", "/keyknox/v3", "", 404, emulator.CodeNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, f.do(tc.caller, tc.method, tc.path, tc.body), tc.status, tc.code)
		})
	}

	w := f.do("carol-uid", http.MethodGet, "/card/v5/"+aliceID, "")
	wantOK(t, w)
	if w.Header().Get("X-Virgil-Is-Superseeded") != "" {
		t.Error("fresh card marked superseded")
	}
	raw, err := virgil.ParseRawCard(w.Body.Bytes())
	if err != nil || raw.ID() != aliceID {
		t.Fatalf("get returned %v, %v", raw, err)
	}

	w = f.do("alice-uid", http.MethodPost, "/card/v5/actions/revoke/"+aliceID, "{}")
	wantOK(t, w)
	wantOK(t, f.do("alice-uid", http.MethodPost, "/card/v5/actions/revoke/"+aliceID, "{}")) // idempotent
	if got := searchIDs("bob-uid", "alice-uid"); len(got) != 0 {
		t.Errorf("revoked card still found: %v", got)
	}
	w = f.do("bob-uid", http.MethodGet, "/card/v5/"+aliceID, "")
	wantOK(t, w)
	if w.Header().Get("X-Virgil-Is-Superseeded") != "true" {
		t.Error("revoked card not marked superseded")
	}
	if _, ok := f.emu.Card("alice-uid"); ok {
		t.Error("Card returns a revoked card")
	}
	// A revoked card cannot be replaced.
	next, _ := publishBody(t, f.keys["carol"], "alice-uid", aliceID, f.now.Add(time.Second))
	wantError(t, f.do("alice-uid", http.MethodPost, "/card/v5", next), 400, emulator.CodeInvalidCard)
}

func TestAuth(t *testing.T) {
	f := newFixture(t, nil)
	other, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	gen := func(mod func(g *virgil.JWTGenerator)) string {
		g := *f.gen
		mod(&g)
		tok, err := g.Generate("alice-uid")
		if err != nil {
			t.Fatal(err)
		}
		return tok.Value()
	}
	valid := f.token("alice-uid")
	parts := strings.Split(valid, ".")
	tests := []struct {
		name   string
		header string
		code   int
	}{
		{"missing", "", emulator.CodeAuthMissing},
		{"bearer scheme", "Bearer " + valid, emulator.CodeAuthMissing},
		{"no token", "Virgil ", emulator.CodeAuthMissing},
		{"garbage", "Virgil abc.def.ghi", emulator.CodeTokenInvalid},
		{"two parts", "Virgil " + parts[0] + "." + parts[1], emulator.CodeTokenInvalid},
		{"unknown kid", "Virgil " + gen(func(g *virgil.JWTGenerator) { g.AppKeyID = "0000" }), emulator.CodeTokenInvalid},
		{"bad signature", "Virgil " + gen(func(g *virgil.JWTGenerator) { g.AppKey = other }), emulator.CodeTokenInvalid},
		{"other app", "Virgil " + gen(func(g *virgil.JWTGenerator) { g.AppID = "ffff" }), emulator.CodeTokenInvalid},
		{"tampered body", "Virgil " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"virgil-`+f.app.AppID+`","sub":"identity-bob-uid","iat":1767225600,"exp":1767226800}`)) + "." + parts[2], emulator.CodeTokenInvalid},
		{"expired", "Virgil " + gen(func(g *virgil.JWTGenerator) {
			g.Now = func() time.Time { return vectorNow.Add(-time.Hour) }
		}), emulator.CodeTokenExpired},
	}
	for _, tc := range tests {
		for _, ep := range []struct{ method, path, body string }{
			{"POST", "/card/v5/actions/search", `{"identities":["a"]}`},
			{"POST", "/card/v5", `{}`},
			{"GET", "/card/v5/" + strings.Repeat("0", 64), ""},
			{"POST", "/card/v5/actions/revoke/" + strings.Repeat("0", 64), "{}"},
			{"POST", "/keyknox/v2/push", `{}`},
			{"POST", "/keyknox/v2/pull", `{}`},
			{"POST", "/keyknox/v2/keys", `{}`},
			{"POST", "/keyknox/v2/reset", `{}`},
		} {
			t.Run(tc.name+ep.path, func(t *testing.T) {
				hdr := []string{}
				if tc.header != "" {
					hdr = []string{"Authorization", tc.header}
				}
				wantError(t, f.do("", ep.method, ep.path, ep.body, hdr...), http.StatusUnauthorized, tc.code)
			})
		}
	}
	// Tokens are valid up to and including exp.
	atExp := newFixture(t, func(c *emulator.Config) {
		c.Now = func() time.Time { return vectorNow.Add(virgil.DefaultTokenTTL) }
	})
	atExp.gen = f.gen
	wantOK(t, atExp.do("alice-uid", "POST", "/card/v5/actions/search", `{"identities":["a"]}`))
	afterExp := newFixture(t, func(c *emulator.Config) {
		c.Now = func() time.Time { return vectorNow.Add(virgil.DefaultTokenTTL + time.Second) }
	})
	afterExp.gen = f.gen
	wantError(t, afterExp.do("alice-uid", "POST", "/card/v5/actions/search", `{"identities":["a"]}`), 401, emulator.CodeTokenExpired)

	// A second application key is accepted when configured.
	second := newFixture(t, func(c *emulator.Config) {
		c.MoreAppKeys = map[string]*virgil.PublicKey{"second-kid": other.Public()}
	})
	second.gen = &virgil.JWTGenerator{AppID: f.app.AppID, AppKeyID: "second-kid", AppKey: other, Now: f.gen.Now}
	wantOK(t, second.do("alice-uid", "POST", "/card/v5/actions/search", `{"identities":["a"]}`))
}

func TestCORSAndPreflight(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do("", http.MethodOptions, "/keyknox/v2/push", "", "Origin", "http://localhost:3000",
		"Access-Control-Request-Method", "POST")
	if w.Code != http.StatusNoContent {
		t.Fatalf("preflight status %d", w.Code)
	}
	for _, h := range []struct{ name, contains string }{
		{"Access-Control-Allow-Origin", "*"},
		{"Access-Control-Allow-Methods", "POST"},
		{"Access-Control-Allow-Headers", "Virgil-Keyknox-Previous-Hash"},
		{"Access-Control-Allow-Headers", "Authorization"},
		{"Access-Control-Expose-Headers", "Virgil-Keyknox-Hash"},
		{"Access-Control-Expose-Headers", "X-Virgil-Is-Superseeded"},
	} {
		if !strings.Contains(w.Header().Get(h.name), h.contains) {
			t.Errorf("%s = %q, want it to contain %q", h.name, w.Header().Get(h.name), h.contains)
		}
	}
	// Error answers carry CORS headers too, or browsers hide the code.
	w = f.do("", http.MethodPost, "/card/v5/actions/search", "{}")
	if w.Header().Get("Access-Control-Allow-Origin") == "" {
		t.Error("error answer without CORS headers")
	}
}

func TestBodyLimit(t *testing.T) {
	f := newFixture(t, func(c *emulator.Config) { c.MaxBodyBytes = 1024 })
	big := `{"identities":["` + strings.Repeat("a", 2048) + `"]}`
	wantError(t, f.do("alice-uid", http.MethodPost, "/card/v5/actions/search", big), http.StatusRequestEntityTooLarge, emulator.CodeInvalidJSON)
}
