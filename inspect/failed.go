package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/redact"
)

// FailedDetail is one failed job with its body, secrets redacted.
type FailedDetail struct {
	queue.FailedJob
	// Body is the job as it was queued, re-encoded with every secret-looking
	// value replaced (redact.JSON); nil when the body is not JSON
	// (BodyNote says so), since what cannot be redacted is not shown.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyNote says why Body is missing, "" when it is there.
	BodyNote string `json:"body_note,omitempty"`
	// BodySize is the size of the stored body in bytes.
	BodySize int `json:"body_size"`
	// Replayable reports whether Retry can put the job back on the queue
	// (a job refused at intake cannot: fix the group, reconcile, purge).
	Replayable bool `json:"replayable"`
}

// Failed lists the dead-lettered jobs, oldest first. Errors match
// queue.ErrUnavailable when NATS cannot be reached.
func (in *Inspector) Failed(ctx context.Context) ([]queue.FailedJob, error) {
	jobs, err := in.cfg.Queue.Failed(ctx)
	if err != nil {
		return nil, fmt.Errorf("inspect: failed jobs: %w", err)
	}
	return jobs, nil
}

// FailedJob returns the latest dead letter of job id: its reason, attempts
// and body with secrets redacted. An unknown id matches ErrNotFound (and
// queue.ErrJobNotFound).
func (in *Inspector) FailedJob(ctx context.Context, id string) (FailedDetail, error) {
	fj, body, err := in.cfg.Queue.FailedJobBody(ctx, id)
	if err != nil {
		return FailedDetail{}, notFound(fmt.Errorf("inspect: failed job %s: %w", id, err))
	}
	d := FailedDetail{FailedJob: fj, BodySize: len(body), Replayable: !fj.Refused}
	red, err := redact.JSON(body)
	if err != nil {
		d.BodyNote = "not shown: the stored body is not JSON, so it could not be redacted"
	} else {
		d.Body = red
	}
	return d, nil
}

// Retry puts the named failed jobs back on the queue (queue.Queue.Retry)
// and returns how many it put back. When an id is unknown nothing is
// retried and the error matches ErrNotFound; a job refused at intake
// matches queue.ErrNotReplayable.
func (in *Inspector) Retry(ctx context.Context, ids ...string) (int, error) {
	if len(ids) == 0 {
		return 0, errors.New("inspect: retry: no job ids")
	}
	n, err := in.cfg.Queue.Retry(ctx, ids...)
	if err != nil {
		return n, notFound(fmt.Errorf("inspect: retry: %w", err))
	}
	return n, nil
}

// RetryAll puts every replayable failed job back on the queue and returns
// how many.
func (in *Inspector) RetryAll(ctx context.Context) (int, error) {
	n, err := in.cfg.Queue.RetryAll(ctx)
	if err != nil {
		return n, fmt.Errorf("inspect: retry all: %w", err)
	}
	return n, nil
}

// Purge drops every failed job stored when it starts and returns how many.
func (in *Inspector) Purge(ctx context.Context) (int, error) {
	n, err := in.cfg.Queue.Purge(ctx)
	if err != nil {
		return n, fmt.Errorf("inspect: purge: %w", err)
	}
	return n, nil
}

// notFound makes err match ErrNotFound too when it matches
// queue.ErrJobNotFound.
func notFound(err error) error {
	if errors.Is(err, queue.ErrJobNotFound) {
		return &notFoundError{err}
	}
	return err
}

type notFoundError struct{ err error }

func (e *notFoundError) Error() string        { return e.err.Error() }
func (e *notFoundError) Unwrap() error        { return e.err }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }
