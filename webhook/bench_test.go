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
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.StartTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := dialHTTP(b, srv.Addr())
		defer c.conn.Close()
		for pb.Next() {
			status, err := c.post(benchBody(seq.Add(1)))
			if err != nil || status != http.StatusOK {
				b.Errorf("POST = %d, %v", status, err)
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
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.StartTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := seq.Add(1)
			body := benchBody(n)
			subject := q.Subject(queue.Partition("bench-group-"+strconv.FormatUint(n%64, 10), testPartns))
			if _, err := js.Publish(ctx, subject, body, jetstream.WithMsgID("raw-"+strconv.FormatUint(n, 10))); err != nil {
				b.Errorf("publish: %v", err)
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
