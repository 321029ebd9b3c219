package cometchat

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrTokenInvalid is matched by CheckAuthToken's error when CometChat did
// not confirm that the token belongs to the uid: the uid or token is
// malformed (no request is made), CometChat answered 404 or another 4xx
// about the token, answered a redirect, or answered 200 with a body that does
// not name the caller.
var ErrTokenInvalid = errors.New("cometchat: auth token not confirmed")

// ErrUnavailable is matched by CheckAuthToken's error when CometChat could
// not be asked: a network error or timeout, 429, 5xx, or CometChat refusing
// our REST API key (401, 403).
var ErrUnavailable = errors.New("cometchat: cannot check the auth token now")

// maxTokenAnswer bounds the body of an auth token answer.
const maxTokenAnswer = 64 << 10

// CheckAuthToken asks CometChat (GET /v3/users/{uid}/auth_tokens/{token})
// whether token is an auth token of uid. It returns nil only for a 200 whose
// body is a JSON object with data.uid equal to uid (ASCII case aside: uids
// are case-insensitive in CometChat) and, when data.authToken is present,
// equal to token. Otherwise its error matches ErrTokenInvalid or
// ErrUnavailable (see their docs); everything that is not a positive answer
// is one of the two. It makes one request, without retries, bounded by ctx,
// and none at all for a malformed uid or token. Errors never hold the token.
func (c *Client) CheckAuthToken(ctx context.Context, uid, token string) error {
	if !ValidID(uid) || !ValidToken(token) {
		return fmt.Errorf("%w: malformed uid or token", ErrTokenInvalid)
	}
	status, body, _, err := c.do(ctx, c.endpoint([]string{"users", uid, "auth_tokens", token}, nil))
	if err != nil {
		// do's errors carry no URL; scrub the token anyway, in case a
		// transport quoted part of the request.
		msg := strings.ReplaceAll(err.Error(), token, "REDACTED")
		if ctx.Err() != nil {
			msg = "request timed out or was cancelled"
		}
		if errors.Is(err, ErrBadAnswer) {
			return fmt.Errorf("%w: %s", ErrTokenInvalid, msg)
		}
		return fmt.Errorf("%w: %s", ErrUnavailable, msg)
	}
	switch {
	case status == http.StatusOK:
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: CometChat refused the REST API key (HTTP %d)", ErrUnavailable, status)
	case status == http.StatusTooManyRequests || status >= 500:
		return fmt.Errorf("%w: HTTP %d", ErrUnavailable, status)
	default: // other 2xx, 3xx (never followed), 400, 404 and other 4xx
		return fmt.Errorf("%w: HTTP %d", ErrTokenInvalid, status)
	}
	return confirms(body, uid, token)
}

// confirms checks the body of a 200 answer to an auth token check: one JSON
// object whose data.uid is uid (ASCII case aside) and whose data.authToken,
// when present, is token. Its error matches ErrTokenInvalid.
func confirms(body []byte, uid, token string) error {
	if len(body) > maxTokenAnswer {
		return fmt.Errorf("%w: answer larger than %d bytes", ErrTokenInvalid, maxTokenAnswer)
	}
	var ans struct {
		Data *struct {
			UID       *string `json:"uid"`
			AuthToken *string `json:"authToken"`
		} `json:"data"`
	}
	if err := decodeStrict(body, &ans); err != nil {
		return fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	switch {
	case ans.Data == nil || ans.Data.UID == nil:
		return fmt.Errorf("%w: the answer names no uid", ErrTokenInvalid)
	case !ValidID(*ans.Data.UID) || !strings.EqualFold(*ans.Data.UID, uid):
		return fmt.Errorf("%w: the answer names another uid", ErrTokenInvalid)
	case ans.Data.AuthToken != nil && subtle.ConstantTimeCompare([]byte(*ans.Data.AuthToken), []byte(token)) != 1:
		return fmt.Errorf("%w: the answer names another token", ErrTokenInvalid)
	}
	return nil
}
