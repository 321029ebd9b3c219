package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream error codes that mean a replica count cannot be had.
const (
	jsClusterNoPeers          = 10005
	jsInsufficientResources   = 10023
	jsReplicasNotUpdatable    = 10061
	jsReplicasNotSupported    = 10074
	jsStreamConfigInvalidCode = 10052
)

// ReplicasError reports that JetStream refused a stream's replica count, on
// creation or when Open changed a live stream to Config.Replicas. It
// matches ErrInvalidConfig; the JetStream error stays in the chain.
type ReplicasError struct {
	// Stream is the stream (for a key-value bucket, its "KV_<bucket>"
	// stream).
	Stream string
	// Replicas is the count asked for.
	Replicas int
	// Reason says, in one line, why it cannot be had.
	Reason string
	// Err is JetStream's answer.
	Err error
}

// Error implements error, on one line.
func (e *ReplicasError) Error() string {
	return fmt.Sprintf("queue: stream %s: %d replicas refused: %s", e.Stream, e.Replicas, e.Reason)
}

// Unwrap returns JetStream's error.
func (e *ReplicasError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ReplicasError) Is(target error) bool { return target == ErrInvalidConfig }

// ReplicasRefused returns a *ReplicasError when err, from creating or
// updating stream with the given replica count, means JetStream refuses that
// count (a server without clustering, fewer servers than replicas, a server
// that cannot change the count of a stream); otherwise it returns err as is.
// Code that keeps other streams or key-value buckets for groupsync passes
// their errors through it, so every refusal reads the same.
func ReplicasRefused(stream string, replicas int, err error) error {
	var api *jetstream.APIError
	if err == nil || !errors.As(err, &api) {
		return err
	}
	desc := strings.Join(strings.Fields(api.Description), " ")
	reason := ""
	switch api.ErrorCode {
	case jsReplicasNotSupported:
		reason = "NATS runs without clustering, where a stream has 1 replica"
	case jsClusterNoPeers, jsInsufficientResources:
		if replicas <= 1 {
			return err
		}
		reason = fmt.Sprintf("the JetStream cluster has fewer than %d servers that can hold it (%s)", replicas, desc)
	case jsReplicasNotUpdatable:
		reason = fmt.Sprintf("this NATS server cannot change the replica count of a stream (%s)", desc)
	case jsStreamConfigInvalidCode:
		if !strings.Contains(strings.ToLower(desc), "replica") {
			return err
		}
		reason = desc
	default:
		return err
	}
	return &ReplicasError{Stream: stream, Replicas: replicas, Reason: reason, Err: err}
}

// StreamReplicas resolves a configured replica count for stream: want
// when it is above zero, else the count the stream has now, or
// DefaultReplicas when it does not exist yet. Code that keeps other streams
// or buckets for groupsync uses it so that 0 means "keep" everywhere.
func StreamReplicas(ctx context.Context, js jetstream.JetStream, stream string, want int) (int, error) {
	if want > 0 {
		return want, nil
	}
	s, err := js.Stream(ctx, stream)
	switch {
	case err == nil:
		return s.CachedInfo().Config.Replicas, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return DefaultReplicas, nil
	}
	return 0, wrap("stream "+stream, err)
}

// ensureStream creates cfg's stream or updates it to cfg, replica count
// included (0: the live count), and logs a change of the replica count of
// a live stream.
func (q *Queue) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	before := 0
	var have *jetstream.StreamConfig
	if s, err := q.js.Stream(ctx, cfg.Name); err == nil {
		have = &s.CachedInfo().Config
		before = have.Replicas
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, wrap("provision stream "+cfg.Name, err)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = before
		if before == 0 {
			cfg.Replicas = DefaultReplicas
		}
	}
	if have != nil && sameStreamConfig(*have, cfg) {
		// Nothing to change: no update, so processes starting together do
		// not keep rewriting the stream under each other's consumers.
		s, err := q.js.Stream(ctx, cfg.Name)
		if err != nil {
			return nil, wrap("provision stream "+cfg.Name, err)
		}
		return s, nil
	}
	s, err := q.js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		if rerr := ReplicasRefused(cfg.Name, cfg.Replicas, err); rerr != err {
			return nil, rerr
		}
		return nil, wrap("provision stream "+cfg.Name, err)
	}
	if before != 0 && before != cfg.Replicas {
		q.log.Info().Str("stream", cfg.Name).Int("from", before).Int("to", cfg.Replicas).
			Msg("stream replica count changed in place")
	}
	return s, nil
}

// sameStreamConfig reports whether a live stream already has every setting
// that groupsync gives its streams.
func sameStreamConfig(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Discard == want.Discard &&
		have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes && have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates && have.Replicas == want.Replicas
}
