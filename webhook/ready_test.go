package webhook

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
)

func TestCachedCheck(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	release := make(chan struct{})
	close(release)
	gate := &release
	var gateMu sync.Mutex
	check := func(ctx context.Context) error {
		calls.Add(1)
		gateMu.Lock()
		g := *gate
		gateMu.Unlock()
		<-g
		if fail.Load() {
			return errors.New("virgil down")
		}
		return nil
	}
	clock := time.Unix(1_700_000_000, 0)
	c := &cachedCheck{check: check, ttl: 5 * time.Second, now: func() time.Time { return clock }}
	ctx := context.Background()
	for range 10 {
		if err := c.run(ctx); err != nil {
			t.Fatalf("run = %v", err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("10 probes within the ttl made %d calls, want 1", n)
	}
	fail.Store(true)
	clock = clock.Add(4 * time.Second)
	if err := c.run(ctx); err != nil || calls.Load() != 1 {
		t.Fatalf("probe before the ttl = %v after %d calls, want the kept success", err, calls.Load())
	}
	clock = clock.Add(2 * time.Second)
	for range 3 {
		if err := c.run(ctx); err == nil {
			t.Fatal("probe after the ttl succeeded, want the new failure")
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("calls = %d, want 2 (the failure is kept too)", n)
	}

	// Concurrent probes while a call runs share it.
	block := make(chan struct{})
	gateMu.Lock()
	*gate = block
	gateMu.Unlock()
	clock = clock.Add(10 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.run(ctx)
		}()
	}
	t.Cleanup(func() {
		select {
		case <-block:
		default:
			close(block) // the wait below failed: let the probes end
		}
	})
	testkit.Eventually(t, 10*time.Second, "a probe calls the check", func() bool { return calls.Load() >= 3 })
	close(block)
	wg.Wait()
	if n := calls.Load(); n != 3 {
		t.Errorf("8 concurrent probes made %d calls in all, want 3", n)
	}
}
