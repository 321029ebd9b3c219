package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable reports that NATS or JetStream could not be reached in time:
// no connection, a timeout, or nobody answering the request. Callers treat it
// as transient (the webhook answers 503, the worker backs off). Match it with
// errors.Is; the underlying NATS error stays in the chain.
var ErrUnavailable = errors.New("queue: nats unavailable")

// ErrInvalidConfig is matched (errors.Is) by configuration mistakes that
// Connect and Open find: a malformed server URL, conflicting credentials, a
// credentials file that cannot be read, or a replica count JetStream
// refuses. Commands report them on one line and exit with status 2.
var ErrInvalidConfig = errors.New("queue: invalid configuration")

// ErrFull reports a stream that reached its message or byte limit (or
// JetStream's storage) and refuses new messages until workers drain it or an
// operator raises the limit. Callers treat it as transient, as
// ErrUnavailable (the webhook answers 503 with Retry-After).
var ErrFull = errors.New("queue: stream full")

// ErrInvalidJob reports a job that cannot be queued, such as one without an ID.
var ErrInvalidJob = errors.New("queue: invalid job")

// ErrInvalidPartition reports a partition number outside [0, Partitions).
var ErrInvalidPartition = errors.New("queue: invalid partition")

// ErrJobNotFound is matched (errors.Is) by every *JobNotFoundError.
var ErrJobNotFound = errors.New("queue: job not found")

// JobNotFoundError reports job IDs that Retry did not find among the dead
// letters.
type JobNotFoundError struct {
	// IDs are the unknown job IDs, in the order given.
	IDs []string
}

// Error implements error.
func (e *JobNotFoundError) Error() string {
	return fmt.Sprintf("queue: dead-lettered job not found: %s", strings.Join(e.IDs, ", "))
}

// Is makes errors.Is(err, ErrJobNotFound) true.
func (e *JobNotFoundError) Is(target error) bool {
	return target == ErrJobNotFound
}

// ErrNotReplayable is matched (errors.Is) by every *NotReplayableError.
var ErrNotReplayable = errors.New("queue: failed job cannot be replayed")

// NotReplayableError reports failed jobs that Retry will not replay: jobs
// refused at intake (FailedJob.Refused), which were never queued.
type NotReplayableError struct {
	// IDs are the jobs, in the order given.
	IDs []string
}

// Error implements error.
func (e *NotReplayableError) Error() string {
	return fmt.Sprintf("queue: refused at intake, cannot be replayed (fix the group in CometChat, run reconcile, then purge): %s", strings.Join(e.IDs, ", "))
}

// Is makes errors.Is(err, ErrNotReplayable) true.
func (e *NotReplayableError) Is(target error) bool {
	return target == ErrNotReplayable
}

// isUnavailable reports whether err means NATS could not be reached or did
// not answer in time.
func isUnavailable(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrStaleConnection),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, jetstream.ErrJetStreamPublisherClosed):
		return true
	}
	return false
}

// isFull reports whether err is JetStream refusing a message because the
// stream is at its limits (discard-new) or storage ran out.
func isFull(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode {
	case errCodeStoreFailed:
		return strings.Contains(ae.Description, "maximum messages") || strings.Contains(ae.Description, "maximum bytes")
	case errCodeInsufficientResources, errCodeStorageResourcesExceeded:
		return true
	}
	return false
}

// JetStream error codes (nats-server errors.json) that nats.go does not name.
const (
	errCodeStoreFailed              jetstream.ErrorCode = 10077 // "maximum messages exceeded", "maximum bytes exceeded"
	errCodeInsufficientResources    jetstream.ErrorCode = 10023
	errCodeStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// wrap prefixes err with "queue: <op>: ", or with "queue: nats unavailable:
// <op>: " and ErrUnavailable in the chain when err means NATS could not be
// reached.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if isFull(err) && !errors.Is(err, ErrFull) {
		return fmt.Errorf("%w: %s: %w", ErrFull, op, err)
	}
	if isUnavailable(err) && !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("queue: %s: %w", op, err)
}

// invalidConfigError is a configuration mistake; it matches
// ErrInvalidConfig.
type invalidConfigError struct{ msg string }

func (e *invalidConfigError) Error() string        { return e.msg }
func (e *invalidConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// invalidf returns an error matching ErrInvalidConfig with the formatted
// message, which must start with "queue: ".
func invalidf(format string, args ...any) error {
	return &invalidConfigError{msg: fmt.Sprintf(format, args...)}
}
