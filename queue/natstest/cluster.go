package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded servers on loopback, each on
// free client and route ports, each restartable on the same ports and store
// folder.
type Cluster struct {
	// Servers are the nodes, in start order.
	Servers []*Server
}

// RunCluster starts n clustered nats-servers with JetStream (cluster name
// "groupsync-test", server names "n1", "n2", …), each with routes to the
// others, and waits until JetStream has elected a meta leader that has
// heard from every node and answers requests. opts apply to every node. The nodes are shut down when the test
// ends.
func RunCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("natstest: cluster of %d nodes", n)
	}
	// Reserve the route ports first, so every node can list all of them.
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("natstest: reserve a route port: %v", err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
	}
	c := &Cluster{}
	for i := range n {
		all := append([]Option{
			WithServerName(fmt.Sprintf("n%d", i+1)),
			WithOptions(func(o *server.Options) {
				o.Cluster.Name = "groupsync-test"
				o.Cluster.Host = "127.0.0.1"
				o.Cluster.Port = ports[i]
				o.Routes = routes
			}),
		}, opts...)
		c.Servers = append(c.Servers, Run(tb, all...))
	}
	c.WaitReady(tb)
	return c
}

// URLs returns the client URLs of every node, comma-separated, as
// GROUPSYNC_NATS_URL takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// WaitReady waits until the running nodes see a JetStream meta leader, the
// leader has heard from every running node, and a client request to
// JetStream succeeds, failing tb after 30 seconds.
func (c *Cluster) WaitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.ready(); err == nil {
			return
		} else if time.Now().After(deadline) {
			tb.Fatalf("natstest: cluster not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) ready() error {
	var leader *server.Server
	running := 0
	for _, s := range c.Servers {
		if srv := s.NATS(); srv != nil {
			running++
			if srv.JetStreamIsLeader() {
				leader = srv
			}
		}
	}
	if leader == nil {
		return fmt.Errorf("no meta leader")
	}
	// Streams are placed on the peers the leader has heard from: until it
	// has heard from every running node, asking for as many replicas as
	// nodes fails with "no suitable peers for placement".
	if n := len(leader.JetStreamClusterPeers()); n < running {
		return fmt.Errorf("the meta leader sees %d of the %d running servers", n, running)
	}
	nc, err := nats.Connect(c.URLs(), nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}
