package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/groupsync/groupsync/cometchat"
)

// HeaderUID is the request header carrying the caller's CometChat uid.
const HeaderUID = "X-CometChat-UID"

// ctxUID is the echo context key of the authenticated caller's uid.
const ctxUID = "groupsync.uid"

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

// clientAuth authenticates a client API caller and applies the rate
// limits, in this order: the client IP's bucket (429); X-CometChat-UID, which
// must be a CometChat uid (401); in ClientAuthCometChat mode a Bearer token
// of CometChat's syntax (401, without asking CometChat); the uid's bucket,
// unless the token was verified within CacheTTL (429); the token check (401
// when CometChat did not confirm it, 503 when CometChat cannot be asked).
func (s *Server) clientAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		now := time.Now()
		if ok, wait := s.ipBuckets.take(clientIP(r, s.cfg.Limits.TrustedProxies), now); !ok {
			return s.tooMany(c, "ip", wait)
		}
		uid, ok := callerUID(r.Header.Get(HeaderUID))
		if !ok {
			return s.clientError(c, http.StatusUnauthorized, "missing or invalid "+HeaderUID+" header")
		}
		if s.verifier == nil {
			if ok, wait := s.uidBuckets.take(uid, now); !ok {
				return s.tooMany(c, "uid", wait)
			}
			c.Set(ctxUID, uid)
			return next(c)
		}
		token, ok := bearer(r.Header.Get(echo.HeaderAuthorization))
		if !ok {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="groupsync"`)
			return s.clientError(c, http.StatusUnauthorized, "missing bearer token")
		}
		if !cometchat.ValidToken(token) {
			s.metrics.clientAuth.WithLabelValues("malformed").Inc()
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="groupsync", error="invalid_token"`)
			return s.clientError(c, http.StatusUnauthorized, "invalid auth token")
		}
		key := newTokenKey(uid, token)
		if !s.verifier.verified(key) {
			if ok, wait := s.uidBuckets.take(uid, now); !ok {
				return s.tooMany(c, "uid", wait)
			}
		}
		switch err := s.verifier.Verify(r.Context(), key, uid, token); {
		case err == nil:
		case errors.Is(err, errTokenInvalid):
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="groupsync", error="invalid_token"`)
			return s.clientError(c, http.StatusUnauthorized, "invalid auth token")
		default:
			s.log.Warn().Err(err).Str("path", c.Path()).Msg("cannot verify client token with cometchat")
			c.Response().Header().Set(echo.HeaderRetryAfter, "5")
			return s.clientError(c, http.StatusServiceUnavailable, "cannot verify the auth token now, retry later")
		}
		c.Set(ctxUID, uid)
		return next(c)
	}
}

// tooMany answers 429 with Retry-After for a request over the limit of
// bucket kind by ("ip" or "uid").
func (s *Server) tooMany(c echo.Context, by string, wait time.Duration) error {
	s.metrics.rateLimited.WithLabelValues(by).Inc()
	c.Response().Header().Set(echo.HeaderRetryAfter, retryAfterSeconds(wait))
	return s.clientError(c, http.StatusTooManyRequests, "too many requests, retry later")
}

// callerUID checks the X-CometChat-UID header: a CometChat uid (A-Z, a-z,
// 0-9, "_", "-"; at most 100 characters), lower-cased as CometChat does.
// Nothing else is trimmed or accepted.
func callerUID(h string) (string, bool) {
	if !cometchat.ValidID(h) {
		return "", false
	}
	return strings.ToLower(h), true
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
