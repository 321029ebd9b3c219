package virgil

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// TokenSource supplies the JWTs a Client sends. Implementations must be safe
// for concurrent use.
type TokenSource interface {
	// Token returns a token that is valid now. When refresh is true the
	// source must not return a token it handed out before (the service
	// answered that one as expired).
	Token(ctx context.Context, refresh bool) (Token, error)
}

// TokenFunc fetches a new token, for example from a token endpoint or a
// JWTGenerator.
type TokenFunc func(ctx context.Context) (Token, error)

// DefaultTokenMargin is how long before its expiry a cached token is replaced.
const DefaultTokenMargin = 30 * time.Second

// CachingTokenSource caches the token of a TokenFunc until Margin before its
// expiry. It is safe for concurrent use; concurrent callers share one fetch.
type CachingTokenSource struct {
	fetch  TokenFunc
	margin time.Duration
	now    func() time.Time

	mu     sync.Mutex
	cached Token
}

// NewCachingTokenSource returns a TokenSource that caches fetch's tokens until
// margin before they expire (DefaultTokenMargin when margin <= 0). now may be
// nil (time.Now). Tokens without a known expiry are fetched on every call.
func NewCachingTokenSource(fetch TokenFunc, margin time.Duration, now func() time.Time) *CachingTokenSource {
	if margin <= 0 {
		margin = DefaultTokenMargin
	}
	if now == nil {
		now = time.Now
	}
	return &CachingTokenSource{fetch: fetch, margin: margin, now: now}
}

// Token implements TokenSource.
func (s *CachingTokenSource) Token(ctx context.Context, refresh bool) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !refresh && !s.cached.IsZero() && s.now().Add(s.margin).Before(s.cached.ExpiresAt()) {
		return s.cached, nil
	}
	t, err := s.fetch(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("virgil: fetch token: %w", err)
	}
	s.cached = t
	return t, nil
}

// Source returns a caching TokenSource that generates tokens for identity.
func (g *JWTGenerator) Source(identity string) *CachingTokenSource {
	return NewCachingTokenSource(func(context.Context) (Token, error) {
		return g.Generate(identity)
	}, 0, g.Now)
}
