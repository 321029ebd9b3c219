package queue_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

// BenchmarkPublish measures publishing jobs and waiting for their PubAcks,
// from b.RunParallel goroutines, on an embedded JetStream with file storage.
// Queue goes through Publish (JSON encoding, partitioning, de-duplication by
// Nats-Msg-Id); RawJetStream publishes the same bytes straight to the stream
// with natstest.BenchPublish, the floor any layer above can reach. Run with
// -cpu to vary the number of publishing goroutines.
func BenchmarkPublish(b *testing.B) {
	open := func(b *testing.B) (*queue.Queue, *natstest.Server) {
		b.Helper()
		srv := natstest.Run(b)
		nc := natstest.Connect(b, srv)
		q, err := queue.Open(context.Background(), nc, queue.Config{Logger: zerolog.Nop(), JobKey: testKey, AppID: testAppID})
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		return q, srv
	}
	sample := newJob("sample", "group-bench")
	body, err := json.Marshal(sample)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("Queue", func(b *testing.B) {
		q, _ := open(b)
		var seq atomic.Uint64
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				n := seq.Add(1)
				job := sample
				job.ID = "bench-" + strconv.FormatUint(n, 10)
				job.Event.GUID = "group-" + strconv.FormatUint(n%1000, 10)
				if _, err := q.Publish(ctx, job); err != nil {
					b.Errorf("Publish: %v", err)
					return
				}
			}
		})
	})
	b.Run("RawJetStream", func(b *testing.B) {
		q, srv := open(b)
		nc := natstest.Connect(b, srv)
		b.ResetTimer()
		natstest.BenchPublish(b, nc, q.Subject(0), body)
	})
}
