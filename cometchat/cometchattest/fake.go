// Package cometchattest is an in-process fake of the parts of CometChat's
// REST API that groupsync calls, for tests. CometChat is the one service
// groupsync does not run itself, so it is the one that tests fake.
//
// Besides behaving like CometChat, a Fake can misbehave on demand: redirect
// every request elsewhere (Redirect), answer any request with a
// status and body of the test's choosing (Answer), hold them until released (HoldTokens) and
// rate limit (RateLimit). It counts what it was asked (Requests,
// TokenRequests, APIKeyRequests).
package cometchattest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Fake is a fake CometChat app: groups with members, users with auth tokens.
// It is safe for concurrent use.
type Fake struct {
	// APIKey is the key every request must carry in the apikey header.
	APIKey string

	mu       sync.Mutex
	groups   map[string]map[string]string // guid -> uid -> scope
	owners   map[string]string
	tokens   map[string]string      // token -> uid
	limited  int                    // answer the next N requests with 429
	redirect string                 // when set, answer every request with a redirect there
	answers  map[string]fixedAnswer // path prefix (after /v3/) -> fixed answer
	hold     chan struct{}          // when set, auth token checks wait until it is closed

	server     *httptest.Server
	requests   atomic.Int64
	tokenReqs  atomic.Int64
	withAPIKey atomic.Int64
	tokenWaits atomic.Int64
}

type fixedAnswer struct {
	status int
	body   string
}

// Start runs a Fake on a loopback port until the test ends.
func Start(tb testing.TB) *Fake {
	tb.Helper()
	f := New()
	tb.Cleanup(f.Close)
	return f
}

// New runs a Fake on a loopback port until Close, for test harnesses that
// are programs rather than tests.
func New() *Fake {
	f := &Fake{
		APIKey:  "test-api-key",
		groups:  map[string]map[string]string{},
		owners:  map[string]string{},
		tokens:  map[string]string{},
		answers: map[string]fixedAnswer{},
	}
	f.server = httptest.NewServer(f)
	return f
}

// Close stops the Fake.
func (f *Fake) Close() {
	f.release()
	f.server.Close()
}

// URL is the base URL to configure as the CometChat API URL: scheme and
// host, without "/v3" (which the client adds).
func (f *Fake) URL() string { return f.server.URL }

// Requests counts the requests received.
func (f *Fake) Requests() int64 { return f.requests.Load() }

// TokenRequests counts the requests received for
// /v3/users/{uid}/auth_tokens/{token}.
func (f *Fake) TokenRequests() int64 { return f.tokenReqs.Load() }

// APIKeyRequests counts the requests received that carried an apikey header,
// right or wrong.
func (f *Fake) APIKeyRequests() int64 { return f.withAPIKey.Load() }

// TokenChecksWaiting reports how many auth token checks are held by
// HoldTokens right now.
func (f *Fake) TokenChecksWaiting() int64 { return f.tokenWaits.Load() }

// SetGroup creates or replaces a group with its members (the first is the owner).
func (f *Fake) SetGroup(guid string, uids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for i, u := range uids {
		scope := "participant"
		if i == 0 {
			scope = "admin"
			f.owners[guid] = u
		}
		m[u] = scope
	}
	f.groups[guid] = m
}

// DeleteGroup removes a group.
func (f *Fake) DeleteGroup(guid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.groups, guid)
}

// AddToken makes token a valid auth token of uid.
func (f *Fake) AddToken(uid, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = uid
}

// RemoveToken revokes token.
func (f *Fake) RemoveToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tokens, token)
}

// RateLimit makes the next n requests fail with 429 and Retry-After: 1.
func (f *Fake) RateLimit(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limited = n
}

// Redirect makes every request, from now on, answer 307 Temporary Redirect
// to target followed by the request's path and query. An empty target turns
// this off.
func (f *Fake) Redirect(target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redirect = target
}

// Answer makes every request whose path after "/v3/" starts with prefix
// answer status with body as is, from now on (once the apikey is right): for
// example Answer("users/", 200, "") answers every auth token check with an
// empty 200. A zero status turns it off again.
func (f *Fake) Answer(prefix string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == 0 {
		delete(f.answers, prefix)
		return
	}
	f.answers[prefix] = fixedAnswer{status: status, body: body}
}

// HoldTokens makes auth token checks wait, once received and counted, until
// the returned function is called (or the test ends). Each check counts in
// TokenChecksWaiting while it waits.
func (f *Fake) HoldTokens() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.hold = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.hold == ch {
				f.hold = nil
			}
			f.mu.Unlock()
			close(ch)
		})
	}
}

func (f *Fake) release() {
	f.mu.Lock()
	ch := f.hold
	f.hold = nil
	f.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg, "source": "chat-api"}})
}

// ServeHTTP implements the REST calls: GET /v3/groups, /v3/groups/{guid},
// /v3/groups/{guid}/members and /v3/users/{uid}/auth_tokens/{token}.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.Header.Get("apikey") != "" {
		f.withAPIKey.Add(1)
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/v3/"), "/"), "/")
	isToken := r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "users" && parts[2] == "auth_tokens"
	if isToken {
		f.tokenReqs.Add(1)
	}
	f.mu.Lock()
	redirect, hold := f.redirect, f.hold
	f.mu.Unlock()
	if redirect != "" {
		http.Redirect(w, r, redirect+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	}
	if r.Header.Get("apikey") != f.APIKey {
		apiError(w, http.StatusUnauthorized, "ERR_AUTHENTICATION_FAILED", "invalid api key")
		return
	}
	if isToken && hold != nil {
		f.tokenWaits.Add(1)
		select {
		case <-hold:
		case <-r.Context().Done():
		}
		f.tokenWaits.Add(-1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.limited > 0 {
		f.limited--
		w.Header().Set("Retry-After", "1")
		apiError(w, http.StatusTooManyRequests, "ERR_TOO_MANY_REQUESTS", "rate limited")
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v3/") {
		apiError(w, http.StatusNotFound, "ERR_NOT_FOUND", "no such endpoint in the fake")
		return
	}
	for prefix, a := range f.answers {
		if strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/v3/"), prefix) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			_, _ = w.Write([]byte(a.body))
			return
		}
	}
	switch {
	case isToken:
		if uid, ok := f.tokens[parts[3]]; ok && strings.EqualFold(uid, parts[1]) {
			writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"uid": uid, "authToken": parts[3], "createdAt": 1718000000}})
			return
		}
		apiError(w, http.StatusNotFound, "ERR_AUTH_TOKEN_NOT_FOUND", "auth token not found")
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "groups":
		guids := make([]string, 0, len(f.groups))
		for g := range f.groups {
			guids = append(guids, g)
		}
		sort.Strings(guids)
		items := make([]any, 0, len(guids))
		for _, g := range guids {
			items = append(items, map[string]any{"guid": g, "name": g, "type": "private", "owner": f.owners[g], "membersCount": len(f.groups[g])})
		}
		page(w, r, items)
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "groups":
		m, ok := f.groups[parts[1]]
		if !ok {
			apiError(w, http.StatusNotFound, "ERR_GUID_NOT_FOUND", "group not found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"guid": parts[1], "owner": f.owners[parts[1]], "membersCount": len(m)}})
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "groups" && parts[2] == "members":
		m, ok := f.groups[parts[1]]
		if !ok {
			apiError(w, http.StatusNotFound, "ERR_GUID_NOT_FOUND", "group not found")
			return
		}
		uids := make([]string, 0, len(m))
		for u := range m {
			uids = append(uids, u)
		}
		sort.Strings(uids)
		items := make([]any, 0, len(uids))
		for _, u := range uids {
			items = append(items, map[string]any{"uid": u, "name": u, "scope": m[u], "joinedAt": 1718000000})
		}
		page(w, r, items)
	default:
		apiError(w, http.StatusNotFound, "ERR_NOT_FOUND", "no such endpoint in the fake")
	}
}

// page answers one page of items with CometChat's pagination block. Like the
// real service's documented example, "total" is not to be trusted: it is
// always 0.
func page(w http.ResponseWriter, r *http.Request, items []any) {
	perPage, _ := strconv.Atoi(r.URL.Query().Get("perPage"))
	if perPage <= 0 {
		perPage = 100
	}
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p <= 0 {
		p = 1
	}
	totalPages := (len(items) + perPage - 1) / perPage
	lo := min((p-1)*perPage, len(items))
	hi := min(lo+perPage, len(items))
	writeJSON(w, http.StatusOK, map[string]any{
		"data": items[lo:hi],
		"meta": map[string]any{"pagination": map[string]any{
			"total": 0, "count": hi - lo, "per_page": perPage, "current_page": p, "total_pages": totalPages,
		}},
	})
}
