package console

import (
	"context"

	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/queue"
)

// Backend is what the console reads and changes: an *inspect.Inspector in
// groupsync. Its methods must be safe for concurrent use and honour ctx.
// Errors matching inspect.ErrNotFound or queue.ErrJobNotFound are answered
// 404, queue.ErrNotReplayable 409, any other 503 (and logged).
type Backend interface {
	// Overview reads the queue's backlog, the failed jobs, the workers
	// and the last scheduled reconcile.
	Overview(ctx context.Context) (inspect.Overview, error)
	// Failed lists the dead-lettered jobs, oldest first.
	Failed(ctx context.Context) ([]queue.FailedJob, error)
	// FailedJob returns one dead-lettered job with its body, secrets
	// redacted.
	FailedJob(ctx context.Context, id string) (inspect.FailedDetail, error)
	// Retry queues the dead-lettered jobs ids again and returns how many
	// it queued; on an unknown id or a job refused at intake it retries
	// nothing.
	Retry(ctx context.Context, ids ...string) (int, error)
	// RetryAll queues every dead-lettered job that can be replayed again
	// and returns how many it queued.
	RetryAll(ctx context.Context) (int, error)
	// Purge drops every dead-lettered job and returns how many it dropped.
	Purge(ctx context.Context) (int, error)
	// Group reports what the store, Virgil, the audit trail and the
	// failed jobs hold about a group.
	Group(ctx context.Context, guid string) (inspect.GroupReport, error)
	// History returns a page of a group's audit trail: its last records
	// below the audit sequence before (0: the newest), oldest first, with
	// the before of the next older page (0: none).
	History(ctx context.Context, guid string, before uint64) (inspect.HistoryPage, error)
	// Explain says why a user is or is not a participant of a group.
	Explain(ctx context.Context, guid, uid string) (inspect.MemberReport, error)
}

var _ Backend = (*inspect.Inspector)(nil)
