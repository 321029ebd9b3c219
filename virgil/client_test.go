package virgil_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil"
)

// countingTokens hands out a new token per call and records refreshes.
type countingTokens struct {
	gen       *virgil.JWTGenerator
	calls     atomic.Int32
	refreshes atomic.Int32
}

func (c *countingTokens) Token(_ context.Context, refresh bool) (virgil.Token, error) {
	c.calls.Add(1)
	if refresh {
		c.refreshes.Add(1)
	}
	return c.gen.Generate(fmt.Sprintf("owner-%d", c.calls.Load()))
}

func newTestTokens(t *testing.T) *countingTokens {
	b := setupJWT(t, time.Now())
	b.gen.Now = nil
	return &countingTokens{gen: b.gen}
}

func TestClientTokenExpiredRetriesOnce(t *testing.T) {
	tests := []struct {
		name       string
		failures   int // answers of 401/20304 before success
		wantErr    bool
		wantCalls  int32
		wantServed int32
	}{
		{"NoFailure", 0, false, 1, 1},
		{"OneExpired", 1, false, 2, 2},
		{"TwoExpired", 2, true, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var served atomic.Int32
			var auths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := served.Add(1)
				auths = append(auths, r.Header.Get("Authorization"))
				if int(n) <= tt.failures {
					w.WriteHeader(http.StatusUnauthorized)
					_, _ = w.Write([]byte(`{"code":20304,"message":"expired"}`))
					return
				}
				_, _ = w.Write([]byte(`["0"]`))
			}))
			t.Cleanup(srv.Close)
			toks := newTestTokens(t)
			c := virgil.NewClient(srv.URL, toks)
			_, err := c.KeyknoxKeys(context.Background(), "group-sessions", "p", "o")
			if (err != nil) != tt.wantErr {
				t.Fatalf("KeyknoxKeys() = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, virgil.ErrTokenExpired) {
				t.Errorf("error %v does not match ErrTokenExpired", err)
			}
			if toks.calls.Load() != tt.wantCalls || served.Load() != tt.wantServed {
				t.Errorf("token calls %d, requests %d; want %d, %d", toks.calls.Load(), served.Load(), tt.wantCalls, tt.wantServed)
			}
			if tt.failures > 0 && (toks.refreshes.Load() != 1 || auths[0] == auths[1]) {
				t.Errorf("refreshes = %d, second request reused the token: %v", toks.refreshes.Load(), auths[0] == auths[1])
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantCode   int
		retryable  bool
		retryAfter time.Duration
		is         error
	}{
		{"PreviousHash", 409, nil, `{"code":50010,"message":"invalid previous hash"}`, 50010, false, 0, virgil.ErrInvalidPreviousHash},
		{"CardNotFound", 404, nil, `{"code":10001,"message":"Requested card entity not found."}`, 10001, false, 0, virgil.ErrCardNotFound},
		{"RateLimited", 429, map[string]string{"Retry-After": "7"}, `{"code":1,"message":"slow down"}`, 1, true, 7 * time.Second, nil},
		{"ServerError", 502, nil, `<html>bad gateway</html>`, 0, true, 0, nil},
		{"BadRequest", 400, nil, `{"code":30000,"message":"bad"}`, 30000, false, 0, nil},
		{"Unauthorized", 401, nil, `{"code":20303,"message":"bad token"}`, 20303, false, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			c := virgil.NewClient(srv.URL, newTestTokens(t))
			_, err := c.KeyknoxPull(context.Background(), "r", "p", "k", "o")
			var ae *virgil.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("KeyknoxPull() = %v, want *APIError", err)
			}
			if ae.Status != tt.status || ae.Code != tt.wantCode || ae.Retryable() != tt.retryable || ae.RetryAfter != tt.retryAfter {
				t.Errorf("APIError = %+v, retryable %v", ae, ae.Retryable())
			}
			if virgil.Retryable(err) != tt.retryable {
				t.Errorf("Retryable(%v) = %v", err, !tt.retryable)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "virgil: ") {
				t.Errorf("error %q lacks the virgil: prefix", err)
			}
			if errors.Is(err, virgil.ErrTokenExpired) {
				t.Errorf("error %v matches ErrTokenExpired", err)
			}
		})
	}
}

func TestClientUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := virgil.NewClient(url, newTestTokens(t))
	_, err := c.KeyknoxKeys(context.Background(), "r", "p", "o")
	if !errors.Is(err, virgil.ErrUnavailable) || !virgil.Retryable(err) {
		t.Fatalf("KeyknoxKeys(closed server) = %v, want retryable ErrUnavailable", err)
	}
}

func TestClientDefaultDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	c := virgil.NewClient(srv.URL, newTestTokens(t), virgil.WithTimeout(50*time.Millisecond))
	_, err := c.KeyknoxKeys(context.Background(), "r", "p", "o")
	if !errors.Is(err, virgil.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("KeyknoxKeys(hanging server) = %v, want ErrUnavailable wrapping DeadlineExceeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.KeyknoxKeys(ctx, "r", "p", "o")
	if !errors.Is(err, context.Canceled) || virgil.Retryable(err) {
		t.Fatalf("KeyknoxKeys(canceled) = %v, want non-retryable context.Canceled", err)
	}
}

func TestClientChecksResponses(t *testing.T) {
	kf := loadKeys(t)
	alice, err := virgil.NewRawCard(mustKey(t, kf, "alice"), "alice-uid", "", time.Unix(1767225600, 0))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := virgil.NewRawCard(mustKey(t, kf, "bob"), "bob-uid", "", time.Unix(1767225600, 0))
	if err != nil {
		t.Fatal(err)
	}
	var answer []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	c := virgil.NewClient(srv.URL, newTestTokens(t))
	ctx := context.Background()

	answer = []byte("[" + string(mustMarshal(t, bob)) + "]")
	if _, err := c.SearchCards(ctx, []string{"alice-uid"}); !errors.Is(err, virgil.ErrInvalidCard) {
		t.Errorf("SearchCards(answer with another identity) = %v, want ErrInvalidCard", err)
	}
	answer = []byte("null")
	if cards, err := c.SearchCards(ctx, []string{"alice-uid"}); err != nil || len(cards) != 0 {
		t.Errorf("SearchCards(null) = %v, %v", cards, err)
	}
	answer = mustMarshal(t, bob)
	if _, err := c.PublishCard(ctx, alice); !errors.Is(err, virgil.ErrInvalidCard) {
		t.Errorf("PublishCard(answer with another snapshot) = %v, want ErrInvalidCard", err)
	}
	if _, _, err := c.GetCard(ctx, alice.ID()); !errors.Is(err, virgil.ErrInvalidCard) {
		t.Errorf("GetCard(answer with another card) = %v, want ErrInvalidCard", err)
	}
	answer = mustMarshal(t, alice)
	card, superseded, err := c.GetCard(ctx, alice.ID())
	if err != nil || card.ID != alice.ID() || superseded {
		t.Errorf("GetCard = %v, %v, %v", card, superseded, err)
	}
	// A card served again is not checked again, but the same snapshot with
	// another signature is.
	answer = []byte("[" + string(mustMarshal(t, alice)) + "]")
	for range 2 {
		cards, err := c.SearchCards(ctx, []string{"alice-uid"})
		if err != nil || len(cards) != 1 || cards[0].ID != alice.ID() || cards[0].Outdated || cards[0].Previous != nil {
			t.Fatalf("SearchCards(alice) = %v, %v", cards, err)
		}
		cards[0].Outdated = true // callers' changes stay theirs
	}
	forged := alice.Clone()
	forged.Signatures[0].Signature = append([]byte(nil), forged.Signatures[0].Signature...)
	forged.Signatures[0].Signature[5] ^= 1
	answer = []byte("[" + string(mustMarshal(t, forged)) + "]")
	if _, err := c.SearchCards(ctx, []string{"alice-uid"}); err == nil {
		t.Error("SearchCards accepted a forged self signature of a card it had seen")
	}
	answer = []byte(`{"owner":"o","root":"r","path":"p","key":"k","identities":[],"meta":"AAAA","value":""}`)
	if _, err := c.KeyknoxPull(ctx, "r", "p", "k", "o"); err == nil {
		t.Error("KeyknoxPull(only meta) = nil error")
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKeyknoxEntryJSON(t *testing.T) {
	got, err := json.Marshal(virgil.KeyknoxEntry{Owner: "o", Root: "r", Path: "p", Hash: "secret-hash"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"owner":"o","root":"r","path":"p","key":"","identities":[],"meta":"","value":""}`
	if string(got) != want {
		t.Errorf("Marshal(empty entry) = %s, want %s", got, want)
	}
	got, _ = json.Marshal(&virgil.KeyknoxEntry{Owner: "o", Root: "r", Path: "p", Key: "0", Identities: []string{"a"}, Meta: []byte{1}, Value: []byte{2}})
	want = `{"owner":"o","root":"r","path":"p","key":"0","identities":["a"],"meta":"AQ==","value":"Ag=="}`
	if string(got) != want {
		t.Errorf("Marshal(entry) = %s, want %s", got, want)
	}
}
