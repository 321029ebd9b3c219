// Package natstest runs a real nats-server with JetStream inside the test
// process, on a free loopback port, with its data in a temporary folder.
//
// The server can be shut down and restarted on the same port and store
// folder, so clients made with Connect reconnect by themselves and whatever
// JetStream stored before the restart is still there afterwards.
//
// It is a test helper: import it from _test.go files only. Programs embed
// NATS with queue/natsembed, which this package wraps.
package natstest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/queue/natsembed"
)

// Option changes the server options before the first start.
type Option func(*server.Options)

// WithStoreDir stores JetStream data in dir instead of a fresh tb.TempDir().
func WithStoreDir(dir string) Option {
	return func(o *server.Options) { o.StoreDir = dir }
}

// WithServerName sets the server name (the default is chosen by nats-server).
func WithServerName(name string) Option {
	return func(o *server.Options) { o.ServerName = name }
}

// WithOptions applies fn to the server options, for knobs without a
// dedicated Option.
func WithOptions(fn func(*server.Options)) Option {
	return func(o *server.Options) { fn(o) }
}

// Server is an embedded nats-server with JetStream (a natsembed.Server)
// that fails the test instead of returning errors. Its methods are safe for
// concurrent use.
type Server struct {
	tb testing.TB
	*natsembed.Server
}

// Run starts a nats-server with JetStream on 127.0.0.1 and a free port, with
// its store in tb.TempDir(), logging off and signals not handled. It waits
// until the server accepts connections and fails tb if it does not. The
// server is shut down when the test ends.
func Run(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	o := server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := natsembed.Start(o)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	tb.Cleanup(srv.Shutdown)
	return &Server{tb: tb, Server: srv}
}

// Restart shuts the server down if it is running and starts it again with the
// same store folder and the same port, so clients reconnect to it and
// JetStream finds its streams. It fails the test if the server does not come
// back.
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.Server.Restart(); err != nil {
		s.tb.Fatalf("natstest: %v", err)
	}
}

// Connect returns a client connection to s that never gives up reconnecting
// and retries quickly, so it comes back soon after a Restart. Publishes made
// while disconnected are not buffered: they fail at once instead of being
// sent after the reconnect. The connection is closed when the test ends.
func Connect(tb testing.TB, s *Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.Name("natstest"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.ReconnectBufSize(-1),
		nats.Timeout(2 * time.Second),
	}, opts...)
	nc, err := nats.Connect(s.URL(), all...)
	if err != nil {
		tb.Fatalf("natstest: connect %s: %v", s.URL(), err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// BenchPublish measures raw JetStream publishing for comparison with higher
// layers: it publishes body to subject from b.RunParallel goroutines, each
// message with a unique Nats-Msg-Id, and waits for every PubAck. A stream must
// already capture subject. It reports allocations and fails b on the first
// publish error.
func BenchPublish(b *testing.B, nc *nats.Conn, subject string, body []byte) {
	b.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatalf("natstest: jetstream: %v", err)
	}
	var seq atomic.Uint64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := "bench-" + strconv.FormatUint(seq.Add(1), 10)
			if _, err := js.Publish(ctx, subject, body, jetstream.WithMsgID(id)); err != nil {
				b.Errorf("natstest: publish %s: %v", id, err)
				return
			}
		}
	})
}
