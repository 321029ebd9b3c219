package webhook

import (
	"context"
	"sync"
	"time"
)

// ReadyReason is implemented by errors of ready checks that carry a reason
// safe to show to whoever reaches /readyz (no secret, no address), such as
// *queue.FillError. /readyz lists it under "reasons"; other errors are only
// logged.
type ReadyReason interface {
	error
	// Reason describes why the check fails.
	Reason() string
}

// readyReason is a ReadyReason made by the server itself.
type readyReason string

func (r readyReason) Error() string  { return string(r) }
func (r readyReason) Reason() string { return string(r) }

// CachedCheck returns a ready check that runs check at most once per ttl
// and otherwise answers with its last result, failures included, so that
// frequent /readyz probes do not turn into calls to a remote service (such
// as Virgil). Concurrent callers while check runs wait for that one run
// (or their own context). The result of a run cut short by its caller's
// context is not kept. Safe for concurrent use.
func CachedCheck(check func(context.Context) error, ttl time.Duration) func(context.Context) error {
	c := &cachedCheck{check: check, ttl: ttl, now: time.Now}
	return c.run
}

type cachedCheck struct {
	check func(context.Context) error
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	at      time.Time     // when the kept result was made
	err     error         // the kept result
	kept    bool          // a result is kept
	running chan struct{} // closed when the current run ends; nil when none
}

func (c *cachedCheck) run(ctx context.Context) error {
	c.mu.Lock()
	if c.kept && c.now().Sub(c.at) < c.ttl {
		err := c.err
		c.mu.Unlock()
		return err
	}
	if done := c.running; done != nil {
		c.mu.Unlock()
		select {
		case <-done:
			return c.run(ctx)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	c.running = done
	c.mu.Unlock()

	err := c.check(ctx)

	c.mu.Lock()
	if ctx.Err() == nil {
		c.at, c.err, c.kept = c.now(), err, true
	}
	c.running = nil
	c.mu.Unlock()
	close(done)
	return err
}
