package webhook_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/webhook"
)

// noLimits turns the rate limits off, for tests of other things.
func noLimits(c *webhook.Config) { c.Limits.IPRate, c.Limits.UIDRate = -1, -1 }

func jwtRequest(t *testing.T, b *testBundle, uid, token string) *http.Request {
	t.Helper()
	return clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, uid, token, nil)
}

func randomToken(t *testing.T) string {
	t.Helper()
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "junk_" + hex.EncodeToString(b[:])
}

// TestClientAuthMalformedMakesNoCall: tokens and uids outside CometChat's
// syntax get 401 and never reach CometChat, even one that would confirm
// anything.
func TestClientAuthMalformedMakesNoCall(t *testing.T) {
	b, cc, called := clientSetup(t, noLimits)
	cc.Answer("users/", http.StatusOK, `{"data":{"uid":"bob"}}`)
	for name, tt := range map[string]struct{ uid, auth string }{
		"DotDot":        {"bob", "Bearer .."},
		"Dot":           {"bob", "Bearer ."},
		"EncodedDotDot": {"bob", "Bearer %2e%2e"},
		"EncodedSlash":  {"bob", "Bearer x%2f..%2f..%2fbob"},
		"PathTraversal": {"bob", "Bearer ../../users/bob"},
		"Query":         {"bob", "Bearer a?b=c"},
		"OverLong":      {"bob", "Bearer " + strings.Repeat("a", 257)},
		"NonASCII":      {"bob", "Bearer tök"},
		"TwoTokens":     {"bob", "Bearer a b"},
		"NotBearer":     {"bob", "Basic Ym9iOmJvYg=="},
		"UIDDotDot":     {"..", "Bearer tok-alice"},
		"UIDDot":        {".", "Bearer tok-alice"},
		"UIDEncoded":    {"%2e%2e", "Bearer tok-alice"},
		"UIDSlash":      {"bob/x", "Bearer tok-alice"},
		"UIDNonASCII":   {"böb", "Bearer tok-alice"},
		"UIDOverLong":   {strings.Repeat("b", 101), "Bearer tok-alice"},
		"UIDDotted":     {"bob.smith", "Bearer tok-alice"},
	} {
		t.Run(name, func(t *testing.T) {
			req := jwtRequest(t, b, "", "")
			req.Header.Set(webhook.HeaderUID, tt.uid)
			req.Header.Set("Authorization", tt.auth)
			if r := do(t, req); r.status != http.StatusUnauthorized {
				t.Errorf("GET virgil-jwt as %q with %q = %d %s, want 401", tt.uid, tt.auth, r.status, r.raw)
			}
		})
	}
	if n := cc.Requests(); n != 0 {
		t.Errorf("malformed tokens and uids made %d calls to CometChat, want none", n)
	}
	if len(*called) != 0 {
		t.Errorf("OnUserToken called for %v", *called)
	}
}

// TestClientAuthMisbehavingCometChat: anything but a 200 naming the caller
// (and its token) is a 401; a redirect is never followed and the apikey never
// reaches its target.
func TestClientAuthMisbehavingCometChat(t *testing.T) {
	b, cc, called := clientSetup(t, noLimits)
	target := cometchattest.Start(t)
	target.APIKey = cc.APIKey
	target.AddToken("alice", "tok-alice")
	for _, tt := range []struct {
		name   string
		status int
		body   string
	}{
		{"EmptyBody", 200, ""},
		{"EmptyObject", 200, "{}"},
		{"ForeignUID", 200, `{"data":{"uid":"bob","authToken":"tok-alice"}}`},
		{"ForeignToken", 200, `{"data":{"uid":"alice","authToken":"tok-mallory"}}`},
		{"NotJSON", 200, "ok"},
		{"NoContent", 204, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc.Answer("users/", tt.status, tt.body)
			token := randomToken(t) // a fresh token: no cache in the way
			if r := do(t, jwtRequest(t, b, "alice", token)); r.status != http.StatusUnauthorized {
				t.Errorf("GET virgil-jwt with CometChat answering %d %q = %d %s, want 401", tt.status, tt.body, r.status, r.raw)
			}
		})
	}
	cc.Answer("users/", 0, "")
	t.Run("Redirect", func(t *testing.T) {
		cc.Redirect(target.URL())
		before := cc.TokenRequests()
		if r := do(t, jwtRequest(t, b, "alice", "tok-alice")); r.status != http.StatusUnauthorized {
			t.Errorf("GET virgil-jwt with CometChat redirecting = %d %s, want 401", r.status, r.raw)
		}
		if cc.TokenRequests() != before+1 {
			t.Errorf("CometChat asked %d times, want once", cc.TokenRequests()-before)
		}
		if target.Requests() != 0 || target.APIKeyRequests() != 0 {
			t.Errorf("redirect target got %d requests (%d with the apikey), want none", target.Requests(), target.APIKeyRequests())
		}
	})
	if len(*called) != 0 {
		t.Errorf("OnUserToken called for %v", *called)
	}
}

// TestClientRateLimitFlood: random tokens from one IP are refused with 429
// once its bucket is empty, so the calls to CometChat stay bounded.
func TestClientRateLimitFlood(t *testing.T) {
	const burst = 10
	b, cc, _ := clientSetup(t, func(c *webhook.Config) {
		c.Limits = webhook.LimitConfig{IPRate: 0.01, IPBurst: burst, UIDRate: -1}
	})
	limited := 0
	for i := range 200 {
		r := do(t, jwtRequest(t, b, fmt.Sprintf("user%d", i), randomToken(t)))
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("429 with Retry-After %q, want whole seconds", r.header.Get("Retry-After"))
			}
		default:
			t.Fatalf("request %d = %d %s, want 401 or 429", i, r.status, r.raw)
		}
	}
	if limited != 200-burst {
		t.Errorf("%d of 200 requests got 429, want %d", limited, 200-burst)
	}
	if n := cc.TokenRequests(); n > burst {
		t.Errorf("200 random tokens made %d calls to CometChat, want at most %d", n, burst)
	}
	// X-Forwarded-For is not trusted by default: a new value is the same
	// client.
	req := jwtRequest(t, b, "alice", "tok-alice")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	if r := do(t, req); r.status != http.StatusTooManyRequests {
		t.Errorf("request with a forged X-Forwarded-For = %d, want 429", r.status)
	}
}

// TestClientRateLimitPerUID: random tokens for one uid are limited per uid,
// from any IP; a token of that uid verified before keeps working.
func TestClientRateLimitPerUID(t *testing.T) {
	const burst = 5
	b, cc, _ := clientSetup(t, func(c *webhook.Config) {
		c.Limits = webhook.LimitConfig{IPRate: -1, UIDRate: 0.01, UIDBurst: burst}
	})
	if r := do(t, jwtRequest(t, b, "alice", "tok-alice")); r.status != http.StatusOK {
		t.Fatalf("alice's first request = %d %s", r.status, r.raw)
	}
	limited := 0
	for range 50 {
		if r := do(t, jwtRequest(t, b, "alice", randomToken(t))); r.status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 50-(burst-1) {
		t.Errorf("%d of 50 guesses for alice got 429, want %d", limited, 50-(burst-1))
	}
	if n := cc.TokenRequests(); n > burst {
		t.Errorf("guesses for alice made %d calls to CometChat, want at most %d", n, burst)
	}
	if r := do(t, jwtRequest(t, b, "alice", "tok-alice")); r.status != http.StatusOK {
		t.Errorf("alice with her verified token after the guesses = %d %s, want 200", r.status, r.raw)
	}
	if r := do(t, jwtRequest(t, b, "bob", randomToken(t))); r.status != http.StatusUnauthorized {
		t.Errorf("bob after alice's bucket ran dry = %d, want 401 (his own bucket)", r.status)
	}
}

// TestClientConcurrentChecksMerged: concurrent requests with one (uid,
// token) make one call to CometChat.
func TestClientConcurrentChecksMerged(t *testing.T) {
	const n = 16
	b, cc, _ := clientSetup(t, noLimits)
	release := cc.HoldTokens()
	defer release()
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i] = do(t, jwtRequest(t, b, "alice", "tok-alice")).status
		})
	}
	// Every request is waiting for CometChat before it may answer.
	testkit.Eventually(t, 10*time.Second, "all requests waiting for CometChat", func() bool {
		return gauge(t, b.reg, "groupsync_client_auth_checks_waiting") == n
	})
	release()
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("request %d = %d, want 200", i, s)
		}
	}
	if c := cc.TokenRequests(); c != 1 {
		t.Errorf("%d concurrent checks of one token made %d calls to CometChat, want 1", n, c)
	}
}

// TestClientJunkFloodKeepsVerified: a flood of made-up tokens does not push
// verified tokens out of the cache.
func TestClientJunkFloodKeepsVerified(t *testing.T) {
	const users = 4
	b, cc, _ := clientSetup(t, noLimits, func(c *webhook.Config) {
		c.CometChat.CacheSize = users
		c.CometChat.NegativeCacheSize = 8
	})
	for i := range users {
		cc.AddToken(fmt.Sprintf("user%d", i), fmt.Sprintf("tok%d", i))
	}
	ask := func() {
		t.Helper()
		for i := range users {
			if r := do(t, jwtRequest(t, b, fmt.Sprintf("user%d", i), fmt.Sprintf("tok%d", i))); r.status != http.StatusOK {
				t.Fatalf("user%d = %d %s", i, r.status, r.raw)
			}
		}
	}
	ask()
	for i := range 300 {
		if r := do(t, jwtRequest(t, b, fmt.Sprintf("user%d", i%users), randomToken(t))); r.status != http.StatusUnauthorized {
			t.Fatalf("junk = %d, want 401", r.status)
		}
	}
	before := cc.TokenRequests()
	ask()
	if n := cc.TokenRequests() - before; n != 0 {
		t.Errorf("verified users cost %d calls to CometChat after a junk flood, want 0 (still cached)", n)
	}
}

func TestCORS(t *testing.T) {
	b, _, _ := clientSetup(t, noLimits, func(c *webhook.Config) {
		c.CORS.AllowedOrigins = []string{"https://app.example.com", "http://localhost:*"}
	})
	const allowed = "https://app.example.com"
	withOrigin := func(req *http.Request, origin string) *http.Request {
		req.Header.Set("Origin", origin)
		return req
	}
	preflight := func(path, origin, method string) response {
		req, err := http.NewRequest(http.MethodOptions, b.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "authorization,x-cometchat-uid")
		return do(t, req)
	}

	t.Run("AllowedRequest", func(t *testing.T) {
		for _, origin := range []string{allowed, "https://APP.example.com:443", "http://localhost:5173"} {
			r := do(t, withOrigin(jwtRequest(t, b, "alice", "tok-alice"), origin))
			if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != origin {
				t.Errorf("GET from %s = %d, Allow-Origin %q; want 200 naming the origin", origin, r.status, r.header.Get("Access-Control-Allow-Origin"))
			}
			if r.header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("GET from %s allows credentials", origin)
			}
			if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
				t.Errorf("GET from %s: no Vary: Origin", origin)
			}
		}
		// Refusals reach the page too.
		r := do(t, withOrigin(jwtRequest(t, b, "alice", "nope"), allowed))
		if r.status != http.StatusUnauthorized || r.header.Get("Access-Control-Allow-Origin") != allowed {
			t.Errorf("401 from an allowed origin has Allow-Origin %q", r.header.Get("Access-Control-Allow-Origin"))
		}
		if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("Expose-Headers = %q, want Retry-After", r.header.Get("Access-Control-Expose-Headers"))
		}
	})
	t.Run("DisallowedRequest", func(t *testing.T) {
		for _, origin := range []string{"https://evil.example", "http://app.example.com", "https://app.example.com.evil.example", "null", "http://localhost.evil.example:80", "https://localhost:5173"} {
			r := do(t, withOrigin(jwtRequest(t, b, "alice", "tok-alice"), origin))
			for k := range r.header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("GET from %s has CORS header %s: %q", origin, k, r.header.Get(k))
				}
			}
		}
	})
	t.Run("Preflight", func(t *testing.T) {
		for path, method := range map[string]string{webhook.PathVirgilJWT: "GET", webhook.PathGetIdentities: "POST"} {
			r := preflight(path, "http://localhost:3000", method)
			if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
				t.Fatalf("preflight %s = %d, Allow-Origin %q", path, r.status, r.header.Get("Access-Control-Allow-Origin"))
			}
			hdrs := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
			for _, h := range []string{"authorization", "x-cometchat-uid", "content-type"} {
				if !strings.Contains(hdrs, h) {
					t.Errorf("preflight %s allows headers %q, want %s", path, hdrs, h)
				}
			}
			if r.header.Get("Access-Control-Allow-Methods") != method || r.header.Get("Access-Control-Allow-Origin") == "*" {
				t.Errorf("preflight %s: methods %q, origin %q", path, r.header.Get("Access-Control-Allow-Methods"), r.header.Get("Access-Control-Allow-Origin"))
			}
			if r.header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("preflight %s allows credentials", path)
			}
		}
		r := preflight(webhook.PathVirgilJWT, "https://evil.example", "GET")
		if r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from a disallowed origin = %d, Allow-Origin %q; want 403 without", r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("WebhookHasNoCORS", func(t *testing.T) {
		r := preflight(webhook.PathWebhook, allowed, "POST")
		req := withOrigin(webhookRequest(t, b.url, readExample(t, "group_member_added.json")), allowed)
		r2 := do(t, req)
		for _, resp := range []response{r, r2} {
			for k := range resp.header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("webhook answer %d has CORS header %s", resp.status, k)
				}
			}
		}
	})
}

func TestCORSConfig(t *testing.T) {
	for _, origins := range [][]string{{"*"}, {"https://a.example/path"}, {"app.example.com"}, {"ftp://a.example"}, {"https://*.example.com"}, {"https://a.example:0"}} {
		cfg := baseConfig(t, &testkit.Buffer{})
		cfg.CORS.AllowedOrigins = origins
		if _, err := webhook.New(cfg, stuckEnqueuer{}); err == nil || !strings.Contains(err.Error(), "CORS.AllowedOrigins") {
			t.Errorf("New with CORS origins %q = %v, want an error naming CORS.AllowedOrigins", origins, err)
		}
	}
	// Loopback origins, as dev allows them.
	b := &testBundle{logs: &testkit.Buffer{}}
	cfg := baseConfig(t, b.logs)
	cfg.CORS.AllowedOrigins = webhook.LoopbackOrigins
	startServer(t, cfg, stuckEnqueuer{}, b)
	for origin, want := range map[string]bool{
		"http://127.0.0.1:41234": true, "http://localhost:8000": true, "http://[::1]:9000": true, "http://127.0.0.1": true,
		"https://127.0.0.1:41234": false, "http://127.0.0.2:80": false, "http://example.com": false,
	} {
		req := jwtRequest(t, b, "alice", "")
		req.Header.Set("Origin", origin)
		r := do(t, req)
		if got := r.header.Get("Access-Control-Allow-Origin") == origin; got != want {
			t.Errorf("loopback policy, origin %s: allowed %v, want %v", origin, got, want)
		}
	}
}

// gauge reads a gauge without labels from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var m *dto.Metric = mf.GetMetric()[0]
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
