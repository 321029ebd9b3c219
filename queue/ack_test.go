package queue_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

// TestAckAcrossConsumerLeaderChange: the node leading a partition's
// consumer dies, with one more node, right after a job was handed out, so
// the consumer has no leader when the finished job is acknowledged. Ack
// keeps sending the acknowledgement, and once a node is back and the
// consumer has a new leader, that leader confirms it: the job is gone from
// the stream and never handed out again. The worker's connection is either
// on the node left running (its attempts find nobody answering) or on the
// leader that died (it reconnects first).
func TestAckAcrossConsumerLeaderChange(t *testing.T) {
	for _, tc := range []struct {
		name     string
		onLeader bool
	}{
		{"ClientOnAnotherNode", false},
		{"ClientOnTheLeader", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := natstest.RunCluster(t, 3)
			cfg := queue.Config{
				Partitions: 1,
				Replicas:   3,
				// Longer than the outage below, so Ack keeps trying
				// through it, and a lost ack would leave the job pending
				// (not redelivered) until the checks at the end.
				AckWait:   time.Minute,
				FetchWait: 500 * time.Millisecond,
				JobKey:    testKey,
				AppID:     testAppID,
				Logger:    testLogger(t),
			}
			admin := clusterConn(t, c, nil)
			pub := mustOpen(t, admin, cfg)
			mustPublish(t, pub, newJob("acked-across-failover", "group-failover"))
			cfg = pub.Config()
			leader := consumerLeader(t, admin, cfg.Stream)

			// The nodes: the leader, the one the worker stays on (or, with
			// the worker on the leader, the one it reconnects to), and one
			// more that dies with the leader and comes back.
			var lead, stay, back *natstest.Server
			for _, s := range c.Servers {
				switch {
				case s.NATS().Name() == leader:
					lead = s
				case stay == nil:
					stay = s
				default:
					back = s
				}
			}
			first := stay
			if tc.onLeader {
				first = lead
			}
			nc := clusterConn(t, c, first, stay.URL())

			// The queue's log tells when an attempt failed.
			retried := make(chan struct{})
			var once sync.Once
			cfg.Logger = testLogger(t).Hook(zerolog.HookFunc(func(_ *zerolog.Event, _ zerolog.Level, msg string) {
				if strings.HasPrefix(msg, "ack not confirmed") {
					once.Do(func() { close(retried) })
				}
			}))
			q := mustOpen(t, nc, cfg)
			d := mustNext(t, q, 0)

			lead.Shutdown()
			back.Shutdown()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			acked := make(chan error, 1)
			go func() { acked <- d.Ack(ctx) }()
			select {
			case <-retried:
			case err := <-acked:
				t.Fatalf("Ack without a consumer leader = %v after %d attempts, want it still trying", err, d.AckAttempts())
			}
			back.Restart()
			err := <-acked
			if err != nil {
				t.Fatalf("Ack after the consumer leader %s died: %v", leader, err)
			}
			// The pauses between attempts keep an election of seconds to
			// tens of attempts, not a busy loop of thousands.
			n := d.AckAttempts()
			t.Logf("ack confirmed at attempt %d; consumer leader now %s", n, consumerLeader(t, nc, cfg.Stream))
			if n < 2 || n > maxAckAttempts {
				t.Fatalf("Ack took %d attempts, want 2 to %d", n, maxAckAttempts)
			}

			// Confirmed means applied by the new consumer leader: nothing
			// waits for an ack, and the work-queue stream drops the job
			// (the stream's own leader does so once the consumer's ack
			// reaches it, which may take a moment after an election; the
			// cluster may also still be electing and drop requests
			// meanwhile: ask again).
			testkit.EventuallyErr(t, 15*time.Second, "the acked job gone from the stream", func() error {
				sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
				defer scancel()
				st, err := q.Stats(sctx)
				if err != nil {
					return err
				}
				if st.Jobs != 0 || st.Partitions[0].InFlight != 0 || st.Partitions[0].Pending != 0 {
					return fmt.Errorf("after the ack: %d jobs stored, partition %+v; want none", st.Jobs, st.Partitions[0])
				}
				return nil
			})
			mustNotNext(t, q, 0, 2*time.Second)
		})
	}
}

// maxAckAttempts bounds the attempts of an Ack across the outage and the
// election that follows: at least 250 ms apart once the pauses have grown,
// 100 attempts span more than twice the longest election measured on a
// busy test machine (9.3 s) plus a node's restart.
const maxAckAttempts = 100

// clusterConn connects to the nodes of c, first to first (any node when
// nil), reconnecting to the others as production connections do: to every
// node, or only to the URLs in only when given.
func clusterConn(t *testing.T, c *natstest.Cluster, first *natstest.Server, only ...string) *nats.Conn {
	t.Helper()
	urls := strings.Split(c.URLs(), ",")
	if len(only) > 0 {
		urls = only
	}
	if first != nil {
		rest := []string{first.URL()}
		for _, u := range urls {
			if u != first.URL() {
				rest = append(rest, u)
			}
		}
		urls = rest
	}
	nc, err := nats.Connect(strings.Join(urls, ","),
		nats.DontRandomize(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond),
		nats.ReconnectBufSize(-1),
		nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// consumerLeader returns the name of the server leading partition 0's
// consumer, waiting for one while an election runs.
func consumerLeader(t *testing.T, nc *nats.Conn, stream string) string {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := js.Consumer(ctx, stream, "groupsync-p00")
		cancel()
		if err == nil {
			if ci := c.CachedInfo(); ci.Cluster != nil && ci.Cluster.Leader != "" {
				return ci.Cluster.Leader
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader of the consumer of partition 0: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
