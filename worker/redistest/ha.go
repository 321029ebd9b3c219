package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartReplica starts a redis-server that replicates primary.
func StartReplica(tb testing.TB, primary *Server) *Server {
	tb.Helper()
	host, port, _ := net.SplitHostPort(primary.Addr())
	return Start(tb, WithArgs("--replicaof", host, port))
}

// StartSentinels starts n Sentinels monitoring primary under the master name
// name, with a quorum of n/2+1 and a down-after of one second, so a killed
// primary is replaced within a few seconds. Each Sentinel is a Server:
// Addr gives its address, Kill and Restart work as for redis-server.
func StartSentinels(tb testing.TB, primary *Server, name string, n int) []*Server {
	tb.Helper()
	host, port, _ := net.SplitHostPort(primary.Addr())
	conf := fmt.Sprintf("sentinel monitor %s %s %s %d\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\n"+
		"sentinel parallel-syncs %s 1\n", name, host, port, n/2+1, name, name, name)
	out := make([]*Server, n)
	for i := range out {
		out[i] = Start(tb, func(s *Server) {
			s.conf = conf
			s.args = append(s.args, "--sentinel")
		})
	}
	return out
}

// MasterAddr asks a Sentinel which address it holds for the master name.
func MasterAddr(sentinel *Server, name string) (string, error) {
	r, err := command(sentinel.Addr(), "SENTINEL", "get-master-addr-by-name", name)
	if err != nil {
		return "", err
	}
	if len(r) != 2 {
		return "", fmt.Errorf("sentinel knows no master %q", name)
	}
	return net.JoinHostPort(r[0], r[1]), nil
}

// StartCluster starts a Redis Cluster of n primaries (no replicas) on free
// ports, spreads the 16384 hash slots over them and waits until every node
// reports cluster_state:ok.
func StartCluster(tb testing.TB, n int) []*Server {
	tb.Helper()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = Start(tb, func(s *Server) {
			s.args = append(s.args, "--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		})
	}
	const slots = 16384
	for i, s := range nodes {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if _, err := command(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			tb.Fatalf("redistest: cluster addslots on %s: %v", s.Addr(), err)
		}
	}
	for _, s := range nodes[1:] {
		host, port, _ := net.SplitHostPort(s.Addr())
		if _, err := command(nodes[0].Addr(), "CLUSTER", "MEET", host, port); err != nil {
			tb.Fatalf("redistest: cluster meet %s: %v", s.Addr(), err)
		}
	}
	deadline := time.Now().Add(readyTimeout)
	for _, s := range nodes {
		for {
			info, err := command(s.Addr(), "CLUSTER", "INFO")
			if err == nil && len(info) == 1 && strings.Contains(info[0], "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: cluster not ok on %s after %s: %v %v", s.Addr(), readyTimeout, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// command sends one command and returns a simple answer: a status or bulk
// string as one element, an array of bulk strings as its elements.
func command(addr string, args ...string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case '+':
		return []string{line[1:]}, nil
	case '-':
		return nil, fmt.Errorf("%s", line[1:])
	case '$':
		s, err := bulk(r, line)
		if err != nil || s == nil {
			return nil, err
		}
		return []string{*s}, nil
	case '*':
		n, _ := strconv.Atoi(line[1:])
		out := make([]string, 0, max(n, 0))
		for range n {
			l, err := r.ReadString('\n')
			if err != nil {
				return nil, err
			}
			s, err := bulk(r, strings.TrimRight(l, "\r\n"))
			if err != nil {
				return nil, err
			}
			if s != nil {
				out = append(out, *s)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected answer %q", line)
}

func bulk(r *bufio.Reader, header string) (*string, error) {
	if !strings.HasPrefix(header, "$") {
		return nil, fmt.Errorf("want a bulk string, got %q", header)
	}
	n, err := strconv.Atoi(header[1:])
	if err != nil || n < 0 {
		return nil, err
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	s := string(buf[:n])
	return &s, nil
}
