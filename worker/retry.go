package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil"
)

// transient reports whether err may go away when retried within the same
// delivery.
func transient(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil, groupsync.IsPermanent(err), errors.Is(err, ErrLeaseLost), errors.Is(err, ErrConflict):
		return false
	}
	return true
}

// retryAfter returns the Retry-After of a Virgil error, 0 if none.
func retryAfter(err error) time.Duration {
	var ae *virgil.APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

// hintedBackOff is an exponential backoff that waits at least the last
// failure's Retry-After.
type hintedBackOff struct {
	*backoff.ExponentialBackOff
	hint time.Duration
}

func (b *hintedBackOff) NextBackOff() time.Duration {
	next := b.ExponentialBackOff.NextBackOff()
	if next != backoff.Stop && b.hint > next {
		next = b.hint
	}
	return next
}

// retry runs op, retrying transient failures with exponential backoff up to
// Config.Retries times while ctx lasts. It returns op's last error.
func (p *Pool) retry(ctx context.Context, log zerolog.Logger, what string, op func() error) error {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval, eb.MaxInterval, eb.MaxElapsedTime = p.cfg.RetryInitial, p.cfg.RetryMax, 0
	b := &hintedBackOff{ExponentialBackOff: eb}
	var last error
	attempt := 0
	err := backoff.RetryNotify(func() error {
		attempt++
		err := op()
		if err == nil {
			return nil
		}
		last = err
		b.hint = retryAfter(err)
		if !transient(ctx, err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(backoff.WithMaxRetries(b, uint64(p.cfg.Retries)), ctx), func(err error, d time.Duration) {
		p.metrics.retries.Inc()
		log.Warn().Err(err).Str("call", what).Int("call_attempt", attempt).Dur("retry_in", d).Msg("call failed, retrying")
	})
	if err != nil && last != nil && !errors.Is(err, last) {
		// The context ended while waiting: keep both causes.
		return fmt.Errorf("%w (last failure: %w)", err, last)
	}
	return err
}
