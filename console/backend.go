package console

import (
	"context"

	"github.com/groupsync/groupsync/queue"
)

// Backend is what the console reads and changes. cmd/groupsync gives it an
// inspect.Inspector; tests may give it anything. Its methods must be safe
// for concurrent use and honour ctx.
type Backend interface {
	// Failed lists the dead-lettered jobs, oldest first.
	Failed(ctx context.Context) ([]queue.FailedJob, error)
	// Retry queues the dead-lettered jobs ids again and returns how many
	// it queued. An unknown id is an error matching queue.ErrJobNotFound
	// (404), a job refused at intake one matching queue.ErrNotReplayable
	// (409); then nothing is retried.
	Retry(ctx context.Context, ids ...string) (int, error)
	// RetryAll queues every dead-lettered job that can be replayed again
	// and returns how many it queued.
	RetryAll(ctx context.Context) (int, error)
	// Purge drops every dead-lettered job and returns how many it dropped.
	Purge(ctx context.Context) (int, error)
}
