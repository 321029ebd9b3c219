package worker_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/worker"
)

// latencyStore records, per committed job, the time from publish to commit.
type latencyStore struct {
	worker.Store
	mu        sync.Mutex
	published map[string]time.Time
	lat       []time.Duration
}

func (s *latencyStore) Commit(ctx context.Context, c worker.Commit) error {
	err := s.Store.Commit(ctx, c)
	if err == nil {
		s.mu.Lock()
		if at, ok := s.published[c.JobID]; ok {
			s.lat = append(s.lat, time.Since(at))
			delete(s.published, c.JobID)
		}
		s.mu.Unlock()
	}
	return err
}

func (s *latencyStore) quantile(q float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0
	}
	l := append([]time.Duration(nil), s.lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// BenchmarkWorkerThroughput pushes membership jobs (joins and leaves of
// members with cards, so every leave writes an epoch) over 32 groups through
// one pool and through four, against the emulator and the real owner, on 8
// partitions. It reports jobs/s and the publish-to-commit latency.
func BenchmarkWorkerThroughput(b *testing.B) {
	for _, pools := range []int{1, 4} {
		b.Run(fmt.Sprintf("Pools%d", pools), func(b *testing.B) {
			b.StopTimer()
			e := newEnv(b, envOptions{queue: func(c *queue.Config) { c.Partitions = 8 }})
			users := []string{"u0", "u1", "u2", "u3", "u4"}
			e.register(users...)
			ls := &latencyStore{Store: e.store, published: map[string]time.Time{}}
			cfg := e.poolConfig()
			cfg.Logger = cfg.Logger.Level(100) // quiet
			for range pools {
				e.startPool(cfg, nil, ls, nil)
			}
			const groups = 32
			for g := range groups {
				e.publish(job(evt{guid: fmt.Sprintf("bench-%02d", g), created: 1}.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "u0")))
			}
			e.waitSettled()
			jobs := make([]groupsync.Job, b.N)
			for i := range b.N {
				g := evt{guid: fmt.Sprintf("bench-%02d", i%groups), created: 1}
				n := i / groups
				u := users[1+n/2%4]
				at := int64(1000 + n)
				if n%2 == 0 {
					jobs[i] = job(g.ev(groupsync.TriggerMemberJoined, groupsync.ActionAdd, at, u))
				} else {
					jobs[i] = job(g.ev(groupsync.TriggerMemberLeft, groupsync.ActionRemove, at, u))
				}
			}
			ctx := context.Background()
			b.StartTimer()
			start := time.Now()
			for _, j := range jobs {
				ls.mu.Lock()
				ls.published[j.ID] = time.Now()
				ls.mu.Unlock()
				if _, err := e.q.Publish(ctx, j); err != nil {
					b.Fatal(err)
				}
			}
			e.waitSettled()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(float64(ls.quantile(0.5).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(ls.quantile(0.99).Microseconds())/1000, "p99-ms")
		})
	}
}
