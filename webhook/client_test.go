package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/webhook"
)

// clientSetup starts a Server in "cometchat" client auth mode against a fake
// CometChat (where tok-alice is alice's token), with no queue behind it.
func clientSetup(t *testing.T, mod ...func(*webhook.Config)) (*testBundle, *cometchattest.Fake, *[]string) {
	t.Helper()
	cc := cometchattest.Start(t)
	cc.AddToken("alice", "tok-alice")
	var (
		mu     sync.Mutex
		called []string
	)
	b := &testBundle{logs: &testkit.Buffer{}}
	cfg := baseConfig(t, b.logs)
	b.ids = cfg.Identities
	b.reg = cfg.Registerer.(*prometheus.Registry)
	cfg.ClientAuth = webhook.ClientAuthCometChat
	cfg.CometChat = webhook.CometChatConfig{APIURL: cc.URL(), APIKey: cc.APIKey}
	cfg.OnUserToken = func(_ context.Context, uid string) {
		mu.Lock()
		defer mu.Unlock()
		called = append(called, uid)
	}
	for _, m := range mod {
		m(&cfg)
	}
	startServer(t, cfg, stuckEnqueuer{}, b)
	return b, cc, &called
}

func clientRequest(t *testing.T, method, url, uid, token string, body any) *http.Request {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if uid != "" {
		req.Header.Set(webhook.HeaderUID, uid)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func TestVirgilJWTWithCometChatAuth(t *testing.T) {
	b, cc, called := clientSetup(t)
	jwt := func(uid, token string) response {
		return do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, uid, token, nil))
	}

	r := jwt("alice", "tok-alice")
	wantID := b.ids.User("alice")
	if r.status != http.StatusOK || r.body["identity"] != wantID || r.body["virgilToken"] != "jwt-for-"+wantID {
		t.Fatalf("GET virgil-jwt = %d %s, want identity %s and its token", r.status, r.raw, wantID)
	}
	if !reflect.DeepEqual(*called, []string{"alice"}) {
		t.Errorf("OnUserToken calls = %v, want [alice]", *called)
	}
	if n := cc.TokenRequests(); n != 1 {
		t.Fatalf("CometChat asked %d times, want 1", n)
	}
	// Cached: upper-case uid header is the same user, and CometChat is not
	// asked again.
	if r := jwt("ALICE", "tok-alice"); r.status != http.StatusOK || r.body["identity"] != wantID {
		t.Errorf("second GET = %d %s", r.status, r.raw)
	}
	if n := cc.TokenRequests(); n != 1 {
		t.Errorf("CometChat asked %d times after a cached token, want 1", n)
	}

	// Invalid tokens: 401, remembered briefly.
	for range 2 {
		if r := jwt("alice", "stolen"); r.status != http.StatusUnauthorized {
			t.Errorf("GET with an invalid token = %d %s, want 401", r.status, r.raw)
		}
	}
	if n := cc.TokenRequests(); n != 2 {
		t.Errorf("CometChat asked %d times after two identical invalid tokens, want 2", n)
	}
	// Another user's token.
	if r := jwt("bob", "tok-alice"); r.status != http.StatusUnauthorized {
		t.Errorf("GET with alice's token as bob = %d, want 401", r.status)
	}
	// Missing header, missing or malformed token.
	for name, req := range map[string]*http.Request{
		"NoUID":   clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "", "tok-alice", nil),
		"NoToken": clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "alice", "", nil),
		"BadUID":  clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "al ice", "tok-alice", nil),
	} {
		if r := do(t, req); r.status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, r.status, r.raw)
		}
	}
	if !reflect.DeepEqual(*called, []string{"alice", "alice"}) {
		t.Errorf("OnUserToken calls = %v, want two for alice only", *called)
	}

	// CometChat failing: 503, not 401.
	cc.Answer("users/", http.StatusInternalServerError, `{"error":{"code":"ERR_FAKE"}}`)
	if r := jwt("carol", "tok-carol"); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET with CometChat failing = %d %s, want 503", r.status, r.raw)
	}
	cc.Answer("users/", http.StatusTooManyRequests, `{"error":{"code":"ERR_TOO_MANY_REQUESTS"}}`)
	if r := jwt("carol", "tok-carol"); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET with CometChat rate limiting = %d %s, want 503", r.status, r.raw)
	}
	// CometChat refusing our API key is our problem, not the caller's.
	cc.Answer("users/", http.StatusUnauthorized, `{"error":{"code":"ERR_AUTHENTICATION_FAILED"}}`)
	if r := jwt("carol", "tok-carol"); r.status != http.StatusServiceUnavailable {
		t.Errorf("GET with our API key refused = %d %s, want 503", r.status, r.raw)
	}
}

func TestVirgilJWTCometChatUnreachable(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	b, _, called := clientSetup(t, func(c *webhook.Config) { c.CometChat.APIURL = downURL })
	r := do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "alice", "tok-alice", nil))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("GET with CometChat unreachable = %d %s, want 503 with Retry-After", r.status, r.raw)
	}
	if len(*called) != 0 {
		t.Errorf("OnUserToken called %v without a verified caller", *called)
	}
}

func TestGetIdentities(t *testing.T) {
	b, _, _ := clientSetup(t)
	req := webhook.IdentitiesRequest{UIDs: []string{"alice", "Bob", "alice"}, GUIDs: []string{"project-falcon"}}
	r := do(t, clientRequest(t, http.MethodPost, b.url+webhook.PathGetIdentities, "alice", "tok-alice", req))
	if r.status != http.StatusOK {
		t.Fatalf("POST get-identities = %d %s", r.status, r.raw)
	}
	var got webhook.IdentitiesBody
	if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
		t.Fatal(err)
	}
	want := webhook.IdentitiesBody{
		UserIdentities:  []map[string]string{{"alice": b.ids.User("alice")}, {"Bob": b.ids.User("bob")}},
		GroupIdentities: []map[string]string{{"project-falcon": b.ids.Group("project-falcon")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("get-identities = %+v, want %+v", got, want)
	}
	// The exact wire shape of CometChat's extension.
	var raw map[string][]map[string]string
	if err := json.Unmarshal([]byte(r.raw), &raw); err != nil || len(raw["userIdentities"]) != 2 || len(raw["groupIdentities"]) != 1 {
		t.Errorf("wire shape %s: %v", r.raw, err)
	}

	// Empty lists answer empty arrays, not null.
	r = do(t, clientRequest(t, http.MethodPost, b.url+webhook.PathGetIdentities, "alice", "tok-alice", map[string]any{}))
	if r.status != http.StatusOK || !strings.Contains(r.raw, `"userIdentities":[]`) || !strings.Contains(r.raw, `"groupIdentities":[]`) {
		t.Errorf("empty request = %d %s, want empty arrays", r.status, r.raw)
	}

	tooMany := make([]string, webhook.MaxLookup+1)
	for i := range tooMany {
		tooMany[i] = "u"
	}
	bad := []struct {
		name   string
		body   any
		status int
	}{
		{"TooManyUIDs", webhook.IdentitiesRequest{UIDs: tooMany}, http.StatusBadRequest},
		{"InvalidUID", webhook.IdentitiesRequest{UIDs: []string{"a b"}}, http.StatusBadRequest},
		{"InvalidGUID", webhook.IdentitiesRequest{GUIDs: []string{strings.Repeat("g", 101)}}, http.StatusBadRequest},
		{"NotAnObject", []int{1}, http.StatusBadRequest},
	}
	for _, tt := range bad {
		r := do(t, clientRequest(t, http.MethodPost, b.url+webhook.PathGetIdentities, "alice", "tok-alice", tt.body))
		if r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.raw, tt.status)
		}
	}
	// Unauthenticated.
	r = do(t, clientRequest(t, http.MethodPost, b.url+webhook.PathGetIdentities, "alice", "nope", req))
	if r.status != http.StatusUnauthorized {
		t.Errorf("get-identities with an invalid token = %d, want 401", r.status)
	}
}

func TestTrustHeaderMode(t *testing.T) {
	b := &testBundle{logs: &testkit.Buffer{}}
	cfg := baseConfig(t, b.logs)
	var called atomic.Int64
	cfg.OnUserToken = func(context.Context, string) { called.Add(1) }
	startServer(t, cfg, stuckEnqueuer{}, b)
	if !strings.Contains(b.logs.String(), `"level":"warn"`) || !strings.Contains(b.logs.String(), "X-CometChat-UID") {
		t.Errorf("no warning about trust-header mode at start; logs:\n%s", b.logs.String())
	}
	r := do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "dave", "", nil))
	if want := cfg.Identities.User("dave"); r.status != http.StatusOK || r.body["identity"] != want {
		t.Errorf("GET virgil-jwt in trust-header mode = %d %s, want identity %s", r.status, r.raw, want)
	}
	if called.Load() != 1 {
		t.Errorf("OnUserToken called %d times, want 1", called.Load())
	}
	if r := do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "", "", nil)); r.status != http.StatusUnauthorized {
		t.Errorf("GET virgil-jwt without uid = %d, want 401", r.status)
	}
}
