package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/cometchat/cometchattest"
)

// TestVerifierCacheExpiry checks the cache lifetimes with a fake clock:
// valid tokens for CacheTTL, invalid ones for at most negativeTTL, failures
// to ask never.
func TestVerifierCacheExpiry(t *testing.T) {
	f := cometchattest.Start(t)
	f.AddToken("alice", "good")
	v := testVerifier(t, f, CometChatConfig{CacheTTL: time.Minute})
	var mu sync.Mutex
	now := time.Unix(1718000000, 0)
	v.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	ctx := context.Background()

	check := func(token string, want error, wantCalls int64) {
		t.Helper()
		if err := v.Verify(ctx, newTokenKey("alice", token), "alice", token); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("Verify(%s) = %v, want %v", token, err, want)
		}
		if got := f.TokenRequests(); got != wantCalls {
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
	f.Answer("users/", http.StatusBadGateway, "")
	check("other", errCometChatUnavailable, 5)
	check("other", errCometChatUnavailable, 6)
}

// TestVerifierJunkKeepsVerified: a flood of made-up tokens fills only the
// negative cache; every verified token stays cached.
func TestVerifierJunkKeepsVerified(t *testing.T) {
	f := cometchattest.Start(t)
	v := testVerifier(t, f, CometChatConfig{CacheSize: 8, NegativeCacheSize: 4})
	ctx := context.Background()
	for i := range 8 {
		uid, tok := fmt.Sprintf("user%d", i), fmt.Sprintf("tok%d", i)
		f.AddToken(uid, tok)
		if err := v.Verify(ctx, newTokenKey(uid, tok), uid, tok); err != nil {
			t.Fatalf("Verify(%s) = %v", uid, err)
		}
	}
	for i := range 500 {
		tok := fmt.Sprintf("junk%d", i)
		if err := v.Verify(ctx, newTokenKey("user0", tok), "user0", tok); !errors.Is(err, errTokenInvalid) {
			t.Fatalf("Verify(junk) = %v, want errTokenInvalid", err)
		}
	}
	calls := f.TokenRequests()
	for i := range 8 {
		uid, tok := fmt.Sprintf("user%d", i), fmt.Sprintf("tok%d", i)
		if !v.verified(newTokenKey(uid, tok)) {
			t.Errorf("verified token of %s was pushed out by junk", uid)
		}
		if err := v.Verify(ctx, newTokenKey(uid, tok), uid, tok); err != nil {
			t.Errorf("Verify(%s) after the flood = %v", uid, err)
		}
	}
	if n := f.TokenRequests() - calls; n != 0 {
		t.Errorf("verified tokens cost %d calls after the flood, want 0", n)
	}
}

func testVerifier(t *testing.T, f *cometchattest.Fake, cfg CometChatConfig) *verifier {
	t.Helper()
	cfg.APIURL, cfg.APIKey = f.URL(), f.APIKey
	full := Config{AppID: "app", CometChat: cfg}.withDefaults()
	cc, err := full.CometChat.client()
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return newVerifier(full.CometChat, cc, m)
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
