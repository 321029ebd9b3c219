package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

func openErr(t *testing.T, url string, cfg queue.Config) (*queue.Queue, error) {
	t.Helper()
	nc, err := queue.Connect(queue.ConnectConfig{URL: url, Name: "replicas-test"})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg.JobKey, cfg.AppID, cfg.Logger = testKey, testAppID, testLogger(t)
	q, err := queue.Open(ctx, nc, cfg)
	if err == nil {
		t.Cleanup(func() { q.Close() })
	}
	return q, err
}

func streamReplicas(t *testing.T, url, stream string) int {
	t.Helper()
	nc, err := queue.Connect(queue.ConnectConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("Stream(%s): %v", stream, err)
	}
	return s.CachedInfo().Config.Replicas
}

// TestReplicasOnSingleServer: a replica count above 1 on a NATS without
// clustering is refused with a one-line reason.
func TestReplicasOnSingleServer(t *testing.T) {
	t.Parallel()
	s := natstest.Run(t)
	_, err := openErr(t, s.URL(), queue.Config{Replicas: 3})
	var rerr *queue.ReplicasError
	if !errors.As(err, &rerr) || !errors.Is(err, queue.ErrInvalidConfig) {
		t.Fatalf("Open(Replicas 3) on one server = %v, want a ReplicasError", err)
	}
	if rerr.Stream != queue.DefaultStream || rerr.Replicas != 3 || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "without clustering") {
		t.Errorf("error = %q, want one line naming the stream and the reason", err)
	}
}

// TestReplicasInCluster: a live deployment's streams move from 1 to 3
// replicas in place, keeping their jobs, and a count above the cluster's
// size is refused without changing anything.
func TestReplicasInCluster(t *testing.T) {
	t.Parallel()
	c := natstest.RunCluster(t, 3)
	url := c.URLs()
	q, err := openErr(t, url, queue.Config{Partitions: 2, Replicas: 1})
	if err != nil {
		t.Fatalf("Open(R1): %v", err)
	}
	mustPublish(t, q, newJob("kept", guidOnPartition(t, 1, 2)))
	for _, s := range []string{queue.DefaultStream, queue.DefaultDeadLetterStream} {
		if got := streamReplicas(t, url, s); got != 1 {
			t.Fatalf("%s has %d replicas, want 1", s, got)
		}
	}

	q3, err := openErr(t, url, queue.Config{Partitions: 2, Replicas: 3})
	if err != nil {
		t.Fatalf("Open(R3) on the live streams: %v", err)
	}
	for _, s := range []string{queue.DefaultStream, queue.DefaultDeadLetterStream} {
		if got := streamReplicas(t, url, s); got != 3 {
			t.Errorf("%s has %d replicas after Open(R3), want 3", s, got)
		}
	}
	// A process not told the count (Replicas 0) keeps the live one.
	if _, err := openErr(t, url, queue.Config{Partitions: 2}); err != nil {
		t.Fatalf("Open(keep) on R3 streams: %v", err)
	}
	if got := streamReplicas(t, url, queue.DefaultStream); got != 3 {
		t.Errorf("%s has %d replicas after Open(keep), want 3", queue.DefaultStream, got)
	}
	d := mustNext(t, q3, 1)
	if d.Job.ID != "kept" {
		t.Fatalf("Next = %s, want the job queued before the change", d.Job.ID)
	}
	mustAck(t, d)

	_, err = openErr(t, url, queue.Config{Partitions: 2, Replicas: 5})
	var rerr *queue.ReplicasError
	if !errors.As(err, &rerr) || !errors.Is(err, queue.ErrInvalidConfig) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open(R5) on 3 servers = %v, want a one-line ReplicasError", err)
	}
	t.Logf("refusal: %v", err)
	if got := streamReplicas(t, url, queue.DefaultStream); got != 3 {
		t.Errorf("after the refused change %s has %d replicas, want 3", queue.DefaultStream, got)
	}
}
