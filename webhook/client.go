package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// HeaderUID is the request header carrying the caller's CometChat uid.
const HeaderUID = "X-CometChat-UID"

// ctxUID is the echo context key of the authenticated caller's uid.
const ctxUID = "groupsync.uid"

// negativeTTL is the longest an invalid token is remembered.
const negativeTTL = 5 * time.Second

// maxCacheEntries bounds the token cache.
const maxCacheEntries = 10000

// errTokenInvalid is returned by the verifier when CometChat does not know
// the auth token for the uid.
var errTokenInvalid = errors.New("webhook: cometchat auth token invalid")

// errCometChatUnavailable is returned by the verifier when CometChat could
// not be asked (network error, timeout, 429 or 5xx, or it refused our API
// key).
var errCometChatUnavailable = errors.New("webhook: cometchat unavailable")

// verifier checks CometChat auth tokens with GET /v3/users/{uid}/auth_tokens/{token}
// and caches the answers: valid ones for CacheTTL, invalid ones briefly.
type verifier struct {
	cfg    CometChatConfig
	base   string
	client *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cacheEntry
}

type cacheEntry struct {
	valid   bool
	expires time.Time
}

func newVerifier(cfg CometChatConfig, base string) *verifier {
	return &verifier{
		cfg:    cfg,
		base:   base,
		client: &http.Client{Timeout: cfg.Timeout},
		now:    time.Now,
		cache:  make(map[[32]byte]cacheEntry),
	}
}

// cacheKey keys the cache by a digest, so raw tokens are not kept.
func cacheKey(uid, token string) [32]byte {
	h := sha256.New()
	h.Write([]byte(uid))
	h.Write([]byte{0})
	h.Write([]byte(token))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Verify returns nil when token is a valid CometChat auth token of uid,
// errTokenInvalid when it is not, and an error matching
// errCometChatUnavailable when CometChat could not tell.
func (v *verifier) Verify(ctx context.Context, uid, token string) error {
	key := cacheKey(uid, token)
	now := v.now()
	v.mu.Lock()
	e, ok := v.cache[key]
	v.mu.Unlock()
	if ok && now.Before(e.expires) {
		if e.valid {
			return nil
		}
		return errTokenInvalid
	}
	err := v.ask(ctx, uid, token)
	if err != nil && !errors.Is(err, errTokenInvalid) {
		return err
	}
	ttl := v.cfg.CacheTTL
	if err != nil {
		ttl = min(ttl, negativeTTL)
	}
	if ttl > 0 {
		v.store(key, cacheEntry{valid: err == nil, expires: v.now().Add(ttl)})
	}
	return err
}

func (v *verifier) store(key [32]byte, e cacheEntry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= maxCacheEntries {
		now := v.now()
		for k, old := range v.cache {
			if !now.Before(old.expires) {
				delete(v.cache, k)
			}
		}
		// Still full: drop arbitrary entries (map order) to make room.
		for k := range v.cache {
			if len(v.cache) < maxCacheEntries {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[key] = e
}

// ask calls CometChat. The token is in the URL path, so neither the URL nor
// the transport error (which may quote it) is put into the returned error.
func (v *verifier) ask(ctx context.Context, uid, token string) error {
	u := v.base + "/v3/users/" + url.PathEscape(uid) + "/auth_tokens/" + url.PathEscape(token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: build request", errCometChatUnavailable)
	}
	req.Header.Set("apikey", v.cfg.APIKey)
	if v.cfg.AppID != "" {
		req.Header.Set("appId", v.cfg.AppID)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		reason := "request failed"
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			reason = "request timed out"
		}
		return fmt.Errorf("%w: %s", errCometChatUnavailable, reason)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusOK:
		// The answer names the token's user; it must be the caller.
		var ans struct {
			Data struct {
				UID string `json:"uid"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &ans) == nil && ans.Data.UID != "" && !strings.EqualFold(ans.Data.UID, uid) {
			return errTokenInvalid
		}
		return nil
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusBadRequest:
		return errTokenInvalid
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: cometchat refused the REST API key (HTTP %d)", errCometChatUnavailable, resp.StatusCode)
	default:
		return fmt.Errorf("%w: HTTP %d", errCometChatUnavailable, resp.StatusCode)
	}
}

// normaliseUID trims and lower-cases a uid as CometChat does, and checks it
// is at most 100 bytes of printable ASCII without spaces.
func normaliseUID(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > 100 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return "", false
		}
	}
	return s, true
}

// clientAuth authenticates a client API caller: X-CometChat-UID always, and
// in ClientAuthCometChat mode a Bearer CometChat auth token for that uid.
// It answers 401 when either is missing or wrong, 503 when CometChat cannot
// be asked.
func (s *Server) clientAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		uid, ok := normaliseUID(r.Header.Get(HeaderUID))
		if !ok {
			return s.clientError(c, http.StatusUnauthorized, "missing or invalid "+HeaderUID+" header")
		}
		if s.verifier != nil {
			token, ok := bearer(r.Header.Get(echo.HeaderAuthorization))
			if !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="groupsync"`)
				return s.clientError(c, http.StatusUnauthorized, "missing bearer token")
			}
			switch err := s.verifier.Verify(r.Context(), uid, token); {
			case errors.Is(err, errTokenInvalid):
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="groupsync", error="invalid_token"`)
				return s.clientError(c, http.StatusUnauthorized, "invalid auth token")
			case err != nil:
				s.log.Warn().Err(err).Str("path", c.Path()).Msg("cannot verify client token with cometchat")
				c.Response().Header().Set(echo.HeaderRetryAfter, "5")
				return s.clientError(c, http.StatusServiceUnavailable, "cannot verify the auth token now, retry later")
			}
		}
		c.Set(ctxUID, uid)
		return next(c)
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > 4096 {
		return "", false
	}
	return token, true
}

// clientError answers a client API error and counts it.
func (s *Server) clientError(c echo.Context, status int, msg string) error {
	s.countClient(c, status)
	return c.JSON(status, errorBody{Error: msg})
}

func (s *Server) countClient(c echo.Context, status int) {
	s.metrics.clientRequests.WithLabelValues(c.Path(), fmt.Sprint(status)).Inc()
}

// JWTBody is the answer of GET /v1/virgil-jwt, the shape of CometChat's
// extension.
type JWTBody struct {
	// VirgilToken is a Virgil JWT for Identity.
	VirgilToken string `json:"virgilToken"`
	// Identity is the caller's Virgil identity.
	Identity string `json:"identity"`
}

// handleVirgilJWT is GET /v1/virgil-jwt.
func (s *Server) handleVirgilJWT(c echo.Context) error {
	uid := c.Get(ctxUID).(string)
	identity := s.cfg.Identities.User(uid)
	token, err := s.cfg.Tokens.IssueToken(identity)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot issue virgil token")
		return s.clientError(c, http.StatusInternalServerError, "cannot issue a token")
	}
	if s.cfg.OnUserToken != nil {
		s.cfg.OnUserToken(c.Request().Context(), uid)
	}
	s.countClient(c, http.StatusOK)
	return c.JSON(http.StatusOK, JWTBody{VirgilToken: token, Identity: identity})
}

// IdentitiesRequest is the body of POST /v1/get-identities.
type IdentitiesRequest struct {
	// UIDs are CometChat user ids.
	UIDs []string `json:"uids"`
	// GUIDs are CometChat group ids.
	GUIDs []string `json:"guids"`
}

// IdentitiesBody is the answer of POST /v1/get-identities, the shape of
// CometChat's extension: one single-key object per requested id, mapping it
// (as sent) to its Virgil identity, in request order without repeats.
type IdentitiesBody struct {
	// UserIdentities holds {uid: identity} objects.
	UserIdentities []map[string]string `json:"userIdentities"`
	// GroupIdentities holds {guid: identity} objects.
	GroupIdentities []map[string]string `json:"groupIdentities"`
}

// handleGetIdentities is POST /v1/get-identities.
func (s *Server) handleGetIdentities(c echo.Context) error {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" && !isJSON(ct) {
		return s.clientError(c, http.StatusUnsupportedMediaType, "content type must be application/json")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxClientBody+1))
	if err != nil {
		return s.clientError(c, http.StatusBadRequest, "cannot read body")
	}
	if len(body) > maxClientBody {
		return s.clientError(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxClientBody))
	}
	var req IdentitiesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return s.clientError(c, http.StatusBadRequest, "body must be a JSON object {uids, guids}")
	}
	if len(req.UIDs) > MaxLookup || len(req.GUIDs) > MaxLookup {
		return s.clientError(c, http.StatusBadRequest, fmt.Sprintf("at most %d uids and %d guids per request", MaxLookup, MaxLookup))
	}
	users, bad := mapIDs(req.UIDs, s.cfg.Identities.User)
	if bad != "" {
		return s.clientError(c, http.StatusBadRequest, "invalid uid "+quoteShort(bad))
	}
	groups, bad := mapIDs(req.GUIDs, s.cfg.Identities.Group)
	if bad != "" {
		return s.clientError(c, http.StatusBadRequest, "invalid guid "+quoteShort(bad))
	}
	s.countClient(c, http.StatusOK)
	return c.JSON(http.StatusOK, IdentitiesBody{UserIdentities: users, GroupIdentities: groups})
}

// mapIDs maps each id (normalised first) with fn, keyed by the id as sent,
// dropping repeats. It returns the first invalid id, if any.
func mapIDs(ids []string, fn func(string) string) ([]map[string]string, string) {
	out := make([]map[string]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		norm, ok := normaliseUID(id)
		if !ok {
			return nil, id
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, map[string]string{id: fn(norm)})
	}
	return out, ""
}

// quoteShort quotes s, cut to 40 bytes.
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
