package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestVerifierCacheExpiry checks the cache lifetimes with a fake clock:
// valid tokens for CacheTTL, invalid ones for at most negativeTTL.
func TestVerifierCacheExpiry(t *testing.T) {
	var calls atomic.Int64
	cc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("apikey") != "key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v3/users/alice/auth_tokens/good" {
			_, _ = w.Write([]byte(`{"data":{"uid":"alice","authToken":"good"}}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(cc.Close)

	var mu sync.Mutex
	now := time.Unix(1718000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	cfg := CometChatConfig{APIURL: cc.URL + "/", APIKey: "key", CacheTTL: time.Minute, Timeout: time.Second}
	base, err := cfg.baseURL()
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(cfg, base)
	v.now = clock
	ctx := context.Background()

	check := func(token string, want error, wantCalls int64) {
		t.Helper()
		if err := v.Verify(ctx, "alice", token); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("Verify(%s) = %v, want %v", token, err, want)
		}
		if got := calls.Load(); got != wantCalls {
			t.Fatalf("after Verify(%s): %d calls to CometChat, want %d", token, got, wantCalls)
		}
	}
	check("good", nil, 1)
	advance(59 * time.Second)
	check("good", nil, 1) // cached
	advance(2 * time.Second)
	check("good", nil, 2) // expired, asked again

	check("bad", errTokenInvalid, 3)
	check("bad", errTokenInvalid, 3) // cached briefly
	advance(negativeTTL)
	check("bad", errTokenInvalid, 4)

	// Failures to ask are never cached.
	v.cfg.APIKey = "wrong"
	check("other", errCometChatUnavailable, 5)
	check("other", errCometChatUnavailable, 6)
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		cfg  CometChatConfig
		want string
	}{
		{CometChatConfig{AppID: "app1", Region: "eu"}, "https://app1.api-eu.cometchat.io"},
		{CometChatConfig{APIURL: "https://x.example/v3/"}, "https://x.example"},
		{CometChatConfig{APIURL: "http://127.0.0.1:9"}, "http://127.0.0.1:9"},
	}
	for _, tt := range tests {
		got, err := tt.cfg.baseURL()
		if err != nil || got != tt.want {
			t.Errorf("%+v.baseURL() = %q, %v; want %q", tt.cfg, got, err, tt.want)
		}
	}
	if _, err := (CometChatConfig{}).baseURL(); err == nil {
		t.Error("baseURL without app id or URL = nil error")
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                  true,
		"Application/json":                  true,
		"APPLICATION/JSON; charset=utf-8":   true,
		"application/json;charset":          true, // malformed parameters
		"application/json-patch+json":       false,
		"text/json":                         false,
		"":                                  false,
		"application/x-www-form-urlencoded": false,
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		10 * time.Second:        "10",
		1500 * time.Millisecond: "2",
		time.Millisecond:        "1",
	} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%v) = %q, want %q", d, got, want)
		}
	}
}
