package webhook

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/groupsync/groupsync/cometchat"
)

// negativeTTL is the longest a refused token is remembered.
const negativeTTL = 5 * time.Second

// errTokenInvalid is returned by the verifier when CometChat did not confirm
// the auth token for the uid.
var errTokenInvalid = errors.New("webhook: cometchat auth token invalid")

// errCometChatUnavailable is returned by the verifier when CometChat could
// not be asked (network error, timeout, 429 or 5xx, or it refused our API
// key), and for any other error: nothing passes that was not confirmed.
var errCometChatUnavailable = errors.New("webhook: cometchat unavailable")

// tokenKey is the cache and flight key of a (uid, token): a digest, so raw
// tokens are not kept.
type tokenKey [32]byte

func newTokenKey(uid, token string) tokenKey {
	h := sha256.New()
	h.Write([]byte(uid))
	h.Write([]byte{0})
	h.Write([]byte(token))
	var k tokenKey
	h.Sum(k[:0])
	return k
}

// verifier checks CometChat auth tokens through a cometchat.Client. Verified
// tokens are kept in a bounded LRU for CacheTTL, refused ones in another,
// smaller one for at most negativeTTL, so made-up tokens never push verified
// ones out. Concurrent checks of one (uid, token) make one call. It is safe
// for concurrent use.
type verifier struct {
	check   func(ctx context.Context, uid, token string) error
	timeout time.Duration
	ttl     time.Duration
	negTTL  time.Duration
	now     func() time.Time
	good    *lru.Cache[tokenKey, time.Time] // value: expiry
	bad     *lru.Cache[tokenKey, time.Time]
	flight  singleflight.Group
	m       *metrics
}

func newVerifier(cfg CometChatConfig, cc *cometchat.Client, m *metrics) *verifier {
	good, err := lru.New[tokenKey, time.Time](cfg.CacheSize)
	if err != nil { // sizes validated positive
		panic(err)
	}
	bad, err := lru.New[tokenKey, time.Time](cfg.NegativeCacheSize)
	if err != nil {
		panic(err)
	}
	return &verifier{
		check:   cc.CheckAuthToken,
		timeout: cfg.Timeout,
		ttl:     cfg.CacheTTL,
		negTTL:  min(cfg.CacheTTL, negativeTTL),
		now:     time.Now,
		good:    good,
		bad:     bad,
		m:       m,
	}
}

// fresh reports whether c holds k, unexpired, dropping it when expired.
func (v *verifier) fresh(c *lru.Cache[tokenKey, time.Time], k tokenKey) bool {
	exp, ok := c.Get(k)
	if !ok {
		return false
	}
	if v.now().Before(exp) {
		return true
	}
	c.Remove(k)
	return false
}

// verified reports whether k was confirmed by CometChat within CacheTTL.
func (v *verifier) verified(k tokenKey) bool { return v.fresh(v.good, k) }

// Verify returns nil when CometChat confirms token as an auth token of uid
// (or did within CacheTTL), errTokenInvalid when it did not, and an error
// matching errCometChatUnavailable when it could not be asked. A caller
// whose ctx ends while the check runs gets errCometChatUnavailable; the
// check itself goes on for the others waiting on it, within Timeout.
func (v *verifier) Verify(ctx context.Context, k tokenKey, uid, token string) error {
	if v.verified(k) {
		v.m.clientAuth.WithLabelValues("cached").Inc()
		return nil
	}
	if v.fresh(v.bad, k) {
		v.m.clientAuth.WithLabelValues("invalid_cached").Inc()
		return errTokenInvalid
	}
	v.m.clientAuthWaiting.Inc()
	ch := v.flight.DoChan(string(k[:]), func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.timeout)
		defer cancel()
		err := v.check(cctx, uid, token)
		switch {
		case err == nil:
			v.good.Add(k, v.now().Add(v.ttl))
			v.bad.Remove(k)
			v.m.clientAuth.WithLabelValues("verified").Inc()
			return nil, nil
		case errors.Is(err, cometchat.ErrTokenInvalid):
			v.bad.Add(k, v.now().Add(v.negTTL))
			v.m.clientAuth.WithLabelValues("invalid").Inc()
			return nil, errTokenInvalid
		default:
			v.m.clientAuth.WithLabelValues("unavailable").Inc()
			return nil, fmt.Errorf("%w: %v", errCometChatUnavailable, err)
		}
	})
	defer v.m.clientAuthWaiting.Dec()
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("%w: request ended while waiting", errCometChatUnavailable)
	}
}
