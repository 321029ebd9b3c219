package webhook_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/webhook"
)

// printRatio runs both benchmarks from TestPrintThroughputRatio:
//
//	go test ./webhook -run TestPrintThroughputRatio -webhook.ratio -v
var printRatio = flag.Bool("webhook.ratio", false, "run BenchmarkWebhookToPubAck and BenchmarkRawPublish and print their throughput ratio")

// benchParallelism multiplies GOMAXPROCS into the number of concurrent
// clients of both benchmarks.
const benchParallelism = 8

// benchBody returns the n-th benchmark body: a group_member_added event with
// a distinct updatedAt, spread over 64 groups, so every body is a new job.
func benchBody(n uint64) []byte {
	b := make([]byte, 0, 640)
	b = append(b, `{"trigger":"group_member_added","appId":"`+appID+`","region":"eu","webhook":"groupsync","data":{"group":{"guid":"bench-group-`...)
	b = strconv.AppendUint(b, n%64, 10)
	b = append(b, `","name":"Bench","type":"private","membersCount":3,"conversationId":"group_bench","createdAt":1718000000,"owner":"alice","updatedAt":`...)
	b = strconv.AppendUint(b, 1718000000+n, 10)
	b = append(b, `},"members":{"bob":{"uid":"bob","name":"Bob Ortiz","status":"offline","role":"default"},"carol":{"uid":"carol","name":"Carol Diaz","status":"offline","role":"default"}},"by":{"uid":"alice","name":"Alice Ng","status":"available","role":"default"}}}`...)
	return b
}

// httpConn is a minimal keep-alive HTTP/1.1 client on one TCP connection:
// it writes each request itself and reads the answer with
// http.ReadResponse. CometChat's sending costs are not ours, so the benchmark
// keeps its client lean: on a small machine net/http's Transport (two
// goroutines per connection) would take CPU from the server under test.
type httpConn struct {
	conn net.Conn
	br   *bufio.Reader
	head []byte // request line and headers up to "Content-Length: "
	buf  []byte
}

func dialHTTP(tb testing.TB, addr string) *httpConn {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(webhookUser + ":" + webhookPass))
	head := "POST " + webhook.PathWebhook + " HTTP/1.1\r\nHost: " + addr +
		"\r\nAuthorization: Basic " + auth +
		"\r\nContent-Type: application/json\r\nContent-Length: "
	return &httpConn{conn: conn, br: bufio.NewReaderSize(conn, 4096), head: []byte(head)}
}

// post sends body and returns the answer's status.
func (c *httpConn) post(body []byte) (int, error) {
	c.buf = append(c.buf[:0], c.head...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.conn.Write(c.buf); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// BenchmarkWebhookToPubAck measures the whole intake path: concurrent
// CometChat deliveries over HTTP/1.1 keep-alive connections on loopback,
// authenticated, parsed, published to an embedded JetStream and answered
// after the PubAck. Compare with BenchmarkRawPublish (same bodies, same
// concurrency).
func BenchmarkWebhookToPubAck(b *testing.B) {
	b.StopTimer()
	srv, _ := setup(b, func(c *webhook.Config) { c.Logger = zerolog.Nop() })
	var seq atomic.Uint64
	b.StartTimer()
	benchPost(b, srv.Addr(), &seq, nil)
}

// benchPost posts benchBody(seq.Add(1)) to the webhook at addr from
// b.RunParallel goroutines (benchParallelism per GOMAXPROCS), each on its
// own keep-alive connection, and fails b (and records in failed, unless nil)
// on any answer but 200.
func benchPost(b *testing.B, addr string, seq *atomic.Uint64, failed *benchFailures) {
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		c := dialHTTP(b, addr)
		defer c.conn.Close()
		for pb.Next() {
			status, err := c.post(benchBody(seq.Add(1)))
			if err != nil || status != http.StatusOK {
				failed.add(b, fmt.Errorf("POST = %d, %v", status, err))
				return
			}
		}
	})
}

// BenchmarkRawPublish publishes the same bodies with the same concurrency
// straight to JetStream (Nats-Msg-Id set, PubAck awaited): the ceiling of
// BenchmarkWebhookToPubAck.
func BenchmarkRawPublish(b *testing.B) {
	b.StopTimer()
	srv := natstest.Run(b)
	nc := natstest.Connect(b, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, queue.Config{Partitions: testPartns, JobKey: testJobKey, AppID: appID})
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Uint64
	b.StartTimer()
	benchPublish(b, js, q, &seq, nil)
}

// benchPublish publishes benchBody(seq.Add(1)) to the job subject of its
// group from b.RunParallel goroutines, as benchPost posts them, each with a
// unique Nats-Msg-Id, waiting for every PubAck.
func benchPublish(b *testing.B, js jetstream.JetStream, q *queue.Queue, seq *atomic.Uint64, failed *benchFailures) {
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := seq.Add(1)
			body := benchBody(n)
			subject := q.Subject(queue.Partition("bench-group-"+strconv.FormatUint(n%64, 10), testPartns))
			if _, err := js.Publish(ctx, subject, body, jetstream.WithMsgID("raw-"+strconv.FormatUint(n, 10))); err != nil {
				failed.add(b, fmt.Errorf("publish: %w", err))
				return
			}
		}
	})
}

// TestPrintThroughputRatio prints both benchmarks and the ratio of their
// throughputs (webhook / raw). It runs only with -webhook.ratio.
func TestPrintThroughputRatio(t *testing.T) {
	if !*printRatio {
		t.Skip("run with -webhook.ratio to measure")
	}
	raw := testing.Benchmark(BenchmarkRawPublish)
	hook := testing.Benchmark(BenchmarkWebhookToPubAck)
	if raw.N == 0 || hook.N == 0 {
		t.Fatalf("a benchmark failed: raw %v, webhook %v", raw, hook)
	}
	rawRate := float64(raw.N) / raw.T.Seconds()
	hookRate := float64(hook.N) / hook.T.Seconds()
	fmt.Printf("BenchmarkRawPublish        %s  %.0f msg/s\n", raw.String(), rawRate)
	fmt.Printf("BenchmarkWebhookToPubAck   %s  %.0f msg/s\n", hook.String(), hookRate)
	fmt.Printf("throughput ratio webhook/raw = %.2f (target >= 0.5)\n", hookRate/rawRate)
}

// printClusterRatio runs TestPrintClusterThroughputRatio:
//
//	go test ./webhook -run TestPrintClusterThroughputRatio -webhook.cluster-ratio -v
var printClusterRatio = flag.Bool("webhook.cluster-ratio", false, "measure webhook -> PubAck against raw publishing on a 3-node JetStream cluster with R3 streams and print the ratio")

// clusterRounds is how many times TestPrintClusterThroughputRatio measures
// each side, alternating, so that both see the same machine.
const clusterRounds = 5

// TestPrintClusterThroughputRatio measures intake on a deployment that
// outgrew one machine: a 3-node JetStream cluster (embedded servers, file
// store fsynced on every write as in deploy/nats-cluster) whose job stream
// has 3 replicas, so every PubAck waits for a quorum of nodes. On the same
// cluster and stream it alternates raw JetStream publishing
// (benchPublish) and the webhook (the real Server and queue.Publish;
// benchPost), with the same bodies and concurrency, clusterRounds times,
// and prints each round, the median rates and their ratio. Both clients
// reach the cluster through the same node. It runs only with
// -webhook.cluster-ratio; it reports and asserts nothing about time.
func TestPrintClusterThroughputRatio(t *testing.T) {
	if !*printClusterRatio {
		t.Skip("run with -webhook.cluster-ratio to measure")
	}
	cluster := natstest.RunCluster(t, 3, natstest.WithOptions(func(o *server.Options) { o.SyncAlways = true }))
	connect := func(name string) *nats.Conn {
		nc, err := nats.Connect(cluster.URLs(), nats.Name(name), nats.DontRandomize(), nats.Timeout(2*time.Second))
		if err != nil {
			t.Fatalf("connect %s: %v", cluster.URLs(), err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The webhook's queue creates the R3 streams; raw publishing goes to
	// the same job stream on its own connection.
	q, err := queue.Open(ctx, connect("bench-webhook"), queue.Config{Partitions: testPartns, Replicas: 3, JobKey: testJobKey, AppID: appID})
	if err != nil {
		t.Fatalf("queue.Open with 3 replicas: %v", err)
	}
	js, err := jetstream.New(connect("bench-raw"))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, q.Config().Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("stream %s: %d replicas (cluster %+v), want 3", info.Config.Name, info.Config.Replicas, info.Cluster)
	}
	cfg := baseConfig(t, io.Discard)
	cfg.Logger = zerolog.Nop()
	srv, _ := startServer(t, cfg, q, &testBundle{})

	var seq atomic.Uint64 // shared, so no body is published twice
	var raws, hooks []float64
	for round := range clusterRounds {
		var failed benchFailures
		raw := testing.Benchmark(func(b *testing.B) { benchPublish(b, js, q, &seq, &failed) })
		hook := testing.Benchmark(func(b *testing.B) { benchPost(b, srv.Addr(), &seq, &failed) })
		if raw.N == 0 || hook.N == 0 || failed.n.Load() > 0 {
			t.Fatalf("round %d: a benchmark failed (%d errors, first: %v): raw %v, webhook %v", round+1, failed.n.Load(), failed.first.Load(), raw, hook)
		}
		raws = append(raws, float64(raw.N)/raw.T.Seconds())
		hooks = append(hooks, float64(hook.N)/hook.T.Seconds())
		fmt.Printf("round %d: raw R3 publish %s  %.0f msg/s; webhook -> R3 PubAck %s  %.0f msg/s; ratio %.2f\n",
			round+1, raw.String(), raws[round], hook.String(), hooks[round], hooks[round]/raws[round])
	}
	if info, err = stream.Info(ctx); err != nil {
		t.Fatal(err)
	}
	leader := "?"
	if info.Cluster != nil {
		leader = info.Cluster.Leader
	}
	rawRate, hookRate := median(raws), median(hooks)
	fmt.Printf("cluster: 3 nodes, job stream R3 (leader %s, %d messages stored), fsync always, %d concurrent clients, GOMAXPROCS %d\n",
		leader, info.State.Msgs, benchParallelism*runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0))
	fmt.Printf("BenchmarkClusterRawPublish        median of %d  %.0f msg/s\n", clusterRounds, rawRate)
	fmt.Printf("BenchmarkClusterWebhookToPubAck   median of %d  %.0f msg/s\n", clusterRounds, hookRate)
	fmt.Printf("cluster throughput ratio webhook/raw = %.2f\n", hookRate/rawRate)
}

// benchFailures counts the errors of benchmarks run with testing.Benchmark,
// whose failures the calling test does not see otherwise.
type benchFailures struct {
	n     atomic.Int64
	first atomic.Value // the first error
}

// add fails b with err and counts it in f (when f is not nil).
func (f *benchFailures) add(b *testing.B, err error) {
	b.Error(err)
	if f != nil && f.n.Add(1) == 1 {
		f.first.Store(err)
	}
}

// median returns the median of v (the mean of the middle two for an even
// count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
