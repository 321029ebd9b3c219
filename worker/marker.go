package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// Marker implements Marker: the value of the key "marker".
func (s *RedisStore) Marker(ctx context.Context) (string, error) {
	v, err := s.rdb.Get(ctx, s.prefix+"marker").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("worker: redis read marker: %w", err)
	}
	return v, nil
}

// InitMarker implements Marker with SET NX.
func (s *RedisStore) InitMarker(ctx context.Context, mark string) (string, error) {
	if err := s.rdb.SetNX(ctx, s.prefix+"marker", mark, 0).Err(); err != nil {
		return "", fmt.Errorf("worker: redis write marker: %w", err)
	}
	return s.Marker(ctx)
}

// Marker implements Marker: the entry "marker" of the state bucket.
func (s *KVStore) Marker(ctx context.Context) (string, error) {
	e, err := s.state.Get(ctx, "marker")
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("worker: kv read marker: %w", err)
	}
	return string(e.Value()), nil
}

// InitMarker implements Marker with a create-only write.
func (s *KVStore) InitMarker(ctx context.Context, mark string) (string, error) {
	if _, err := s.state.Create(ctx, "marker", []byte(mark)); err != nil && !casFailed(err) {
		return "", fmt.Errorf("worker: kv write marker: %w", err)
	}
	return s.Marker(ctx)
}
