package cometchat_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
)

// TestCheckAuthTokenMalformedMakesNoRequest: every token or uid that is not
// made of [A-Za-z0-9_-] within bounds is refused before any request.
func TestCheckAuthTokenMalformedMakesNoRequest(t *testing.T) {
	f := cometchattest.Start(t)
	f.AddToken("alice", "tok-alice")
	// A stand-in that would confirm anything: a request slipping through
	// would pass.
	f.Answer("users/", http.StatusOK, `{"data":{"uid":"alice"}}`)
	c := newClient(t, f, 100)
	ctx := context.Background()
	for name, tt := range map[string]struct{ uid, token string }{
		"DotDot":         {"alice", ".."},
		"Dot":            {"alice", "."},
		"EncodedDotDot":  {"alice", "%2e%2e"},
		"EncodedSlash":   {"alice", "a%2Fb"},
		"Slash":          {"alice", "x/../../users/alice"},
		"Backslash":      {"alice", `a\b`},
		"Query":          {"alice", "tok?x=1"},
		"Fragment":       {"alice", "tok#x"},
		"Space":          {"alice", "tok alice"},
		"NUL":            {"alice", "tok\x00"},
		"NonASCII":       {"alice", "tök-alice"},
		"Fullwidth":      {"alice", "ｔｏｋ"},
		"OverLong":       {"alice", strings.Repeat("a", cometchat.MaxTokenLen+1)},
		"Empty":          {"alice", ""},
		"UIDDotDot":      {"..", "tok-alice"},
		"UIDDot":         {".", "tok-alice"},
		"UIDEncoded":     {"%2e%2e", "tok-alice"},
		"UIDSlash":       {"alice/auth_tokens", "tok-alice"},
		"UIDNonASCII":    {"alicé", "tok-alice"},
		"UIDOverLong":    {strings.Repeat("u", cometchat.MaxIDLen+1), "tok-alice"},
		"UIDEmpty":       {"", "tok-alice"},
		"UIDWithNewline": {"alice\n", "tok-alice"},
	} {
		t.Run(name, func(t *testing.T) {
			before := f.Requests()
			err := c.CheckAuthToken(ctx, tt.uid, tt.token)
			if !errors.Is(err, cometchat.ErrTokenInvalid) {
				t.Errorf("CheckAuthToken(%q, %q) = %v, want ErrTokenInvalid", tt.uid, tt.token, err)
			}
			if n := f.Requests() - before; n != 0 {
				t.Errorf("CheckAuthToken(%q, %q) made %d requests, want none", tt.uid, tt.token, n)
			}
		})
	}
	// The longest accepted token does reach CometChat.
	long := strings.Repeat("a", cometchat.MaxTokenLen)
	if err := c.CheckAuthToken(ctx, "alice", long); err != nil || f.TokenRequests() != 1 {
		t.Errorf("CheckAuthToken with a %d-byte token = %v after %d requests, want a pass from the stand-in after 1", len(long), err, f.TokenRequests())
	}
}

func TestCheckAuthTokenAnswers(t *testing.T) {
	f := cometchattest.Start(t)
	f.AddToken("alice", "tok-alice")
	c := newClient(t, f, 100)
	ctx := context.Background()

	if err := c.CheckAuthToken(ctx, "alice", "tok-alice"); err != nil {
		t.Fatalf("CheckAuthToken(alice, her token) = %v, want nil", err)
	}
	if err := c.CheckAuthToken(ctx, "ALICE", "tok-alice"); err != nil {
		t.Errorf("CheckAuthToken(ALICE, her token) = %v, want nil (uids are case-insensitive)", err)
	}
	if err := c.CheckAuthToken(ctx, "bob", "tok-alice"); !errors.Is(err, cometchat.ErrTokenInvalid) {
		t.Errorf("CheckAuthToken(bob, alice's token) = %v, want ErrTokenInvalid", err)
	}
	if err := c.CheckAuthToken(ctx, "alice", "stolen"); !errors.Is(err, cometchat.ErrTokenInvalid) {
		t.Errorf("CheckAuthToken(alice, unknown token) = %v, want ErrTokenInvalid", err)
	}

	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"EmptyBody", 200, "", cometchat.ErrTokenInvalid},
		{"EmptyObject", 200, "{}", cometchat.ErrTokenInvalid},
		{"Null", 200, "null", cometchat.ErrTokenInvalid},
		{"Array", 200, `[{"data":{"uid":"alice"}}]`, cometchat.ErrTokenInvalid},
		{"NotJSON", 200, "OK", cometchat.ErrTokenInvalid},
		{"EmptyData", 200, `{"data":{}}`, cometchat.ErrTokenInvalid},
		{"NullData", 200, `{"data":null}`, cometchat.ErrTokenInvalid},
		{"EmptyUID", 200, `{"data":{"uid":""}}`, cometchat.ErrTokenInvalid},
		{"NumericUID", 200, `{"data":{"uid":5}}`, cometchat.ErrTokenInvalid},
		{"ForeignUID", 200, `{"data":{"uid":"bob","authToken":"tok-alice"}}`, cometchat.ErrTokenInvalid},
		{"ForeignToken", 200, `{"data":{"uid":"alice","authToken":"tok-other"}}`, cometchat.ErrTokenInvalid},
		{"TokenNotString", 200, `{"data":{"uid":"alice","authToken":1}}`, cometchat.ErrTokenInvalid},
		{"TrailingData", 200, `{"data":{"uid":"alice"}} {"data":{"uid":"bob"}}`, cometchat.ErrTokenInvalid},
		{"UIDWithoutToken", 200, `{"data":{"uid":"alice","createdAt":1}}`, nil},
		{"NoContent", 204, "", cometchat.ErrTokenInvalid},
		{"BadRequest", 400, `{"error":{"code":"ERR_BAD_REQUEST"}}`, cometchat.ErrTokenInvalid},
		{"NotFound", 404, `{"error":{"code":"ERR_AUTH_TOKEN_NOT_FOUND"}}`, cometchat.ErrTokenInvalid},
		{"Redirect", 302, "", cometchat.ErrTokenInvalid},
		{"APIKeyRefused", 401, `{"error":{"code":"ERR_AUTHENTICATION_FAILED"}}`, cometchat.ErrUnavailable},
		{"Forbidden", 403, "", cometchat.ErrUnavailable},
		{"RateLimited", 429, "", cometchat.ErrUnavailable},
		{"ServerError", 500, "", cometchat.ErrUnavailable},
		{"BadGateway", 502, "<html>", cometchat.ErrUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.Answer("users/", tt.status, tt.body)
			err := c.CheckAuthToken(ctx, "alice", "tok-alice")
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("CheckAuthToken with answer %d %q = %v, want %v", tt.status, tt.body, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "tok-alice") {
				t.Errorf("error %q holds the token", err)
			}
		})
	}
}

// TestCheckAuthTokenNeverFollowsRedirects: a redirecting CometChat is a no,
// and the apikey never reaches the redirect's target.
func TestCheckAuthTokenNeverFollowsRedirects(t *testing.T) {
	f := cometchattest.Start(t)
	f.AddToken("alice", "tok-alice")
	target := cometchattest.Start(t)
	target.APIKey = f.APIKey
	target.AddToken("alice", "tok-alice")
	c := newClient(t, f, 100)
	ctx := context.Background()
	for _, to := range []string{target.URL(), "http://" + strings.TrimPrefix(f.URL(), "http://")} {
		f.Redirect(to)
		if err := c.CheckAuthToken(ctx, "alice", "tok-alice"); !errors.Is(err, cometchat.ErrTokenInvalid) {
			t.Errorf("CheckAuthToken against a redirect to %s = %v, want ErrTokenInvalid", to, err)
		}
		if _, err := c.Members(ctx, "g1"); !errors.Is(err, cometchat.ErrBadAnswer) {
			t.Errorf("Members against a redirect to %s = %v, want ErrBadAnswer", to, err)
		}
	}
	if target.Requests() != 0 || target.APIKeyRequests() != 0 {
		t.Errorf("redirect target got %d requests, %d with an apikey; want none", target.Requests(), target.APIKeyRequests())
	}
	if f.TokenRequests() != 2 {
		t.Errorf("CometChat got %d token checks, want 2 (one per redirect, never followed)", f.TokenRequests())
	}
}

func TestCheckAuthTokenUnavailable(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close()
	c, err := cometchat.New(cometchat.Config{BaseURL: url, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckAuthToken(context.Background(), "alice", "tok-alice"); !errors.Is(err, cometchat.ErrUnavailable) || strings.Contains(err.Error(), "tok-alice") {
		t.Errorf("CheckAuthToken with CometChat down = %v, want ErrUnavailable without the token", err)
	}

	f := cometchattest.Start(t)
	f.AddToken("alice", "tok-alice")
	release := f.HoldTokens()
	defer release()
	c = newClient(t, f, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.CheckAuthToken(ctx, "alice", "tok-alice"); !errors.Is(err, cometchat.ErrUnavailable) {
		t.Errorf("CheckAuthToken past its deadline = %v, want ErrUnavailable", err)
	}
}
