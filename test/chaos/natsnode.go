package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsNodeEnv, when set in the environment, turns this program (or its
// test binary) into one node of a NATS cluster: see RunNATSNodeIfAsked.
const natsNodeEnv = "GROUPSYNC_CHAOS_NATS_NODE"

// natsNodeConfig is one node of a NATS JetStream cluster on loopback.
type natsNodeConfig struct {
	Name        string   `json:"name"`
	Dir         string   `json:"dir"`
	Port        int      `json:"port"`
	ClusterPort int      `json:"cluster_port"`
	Routes      []string `json:"routes"`
	SyncAlways  bool     `json:"sync_always"`
	// Password admits natsUser; routes between the nodes need none.
	Password string `json:"password"`
}

// RunNATSNodeIfAsked runs a NATS cluster node and exits when the
// environment asks for one (natsNodeEnv holds its JSON configuration);
// otherwise it returns at once. The harness re-executes itself this way, so
// each node is a process of its own that can be SIGKILLed, running the same
// nats-server version as the rest of the project.
func RunNATSNodeIfAsked() {
	raw := os.Getenv(natsNodeEnv)
	if raw == "" {
		return
	}
	var cfg natsNodeConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "nats node: bad %s: %v\n", natsNodeEnv, err)
		os.Exit(2)
	}
	opts := &server.Options{
		ServerName: cfg.Name, Host: "127.0.0.1", Port: cfg.Port,
		JetStream: true, StoreDir: cfg.Dir, SyncAlways: cfg.SyncAlways, NoSigs: true, Logtime: true,
		Cluster: server.ClusterOpts{Name: "groupsync", Host: "127.0.0.1", Port: cfg.ClusterPort},
		Routes:  server.RoutesFromStr(strings.Join(cfg.Routes, ",")),
		Users:   []*server.User{{Username: natsUser, Password: cfg.Password}},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nats node: %v\n", err)
		os.Exit(1)
	}
	s.ConfigureLogger()
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats node: not ready after 30s")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	os.Exit(0)
}

// natsCluster is three (or more) NATS nodes, each a child process.
type natsCluster struct {
	mu       sync.Mutex
	nodes    []*natsNode
	password string
}

type natsNode struct {
	cfg     natsNodeConfig
	logFile string
	cmd     *exec.Cmd
	done    chan struct{}
}

func (n *natsNode) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.cfg.Port) }

// startNATSCluster starts n clustered nodes with their stores under dir and
// logs under logDir, and waits until each accepts clients.
func startNATSCluster(dir, logDir string, n int, syncAlways bool, password string) (*natsCluster, error) {
	c := &natsCluster{password: password}
	var routes []string
	for i := range n {
		ports := make([]int, 2)
		for j := range ports {
			addr, err := freeAddr()
			if err != nil {
				return nil, err
			}
			_, p, _ := net.SplitHostPort(addr)
			ports[j], _ = strconv.Atoi(p)
		}
		name := fmt.Sprintf("nats-%d", i+1)
		c.nodes = append(c.nodes, &natsNode{
			cfg:     natsNodeConfig{Name: name, Dir: filepath.Join(dir, name), Port: ports[0], ClusterPort: ports[1], SyncAlways: syncAlways, Password: password},
			logFile: filepath.Join(logDir, name+".log"),
		})
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(ports[1]))
	}
	for _, node := range c.nodes {
		node.cfg.Routes = routes
	}
	for i := range c.nodes {
		if err := c.Start(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	// The nodes take clients before JetStream has elected its meta leader.
	if err := c.waitJetStream(60 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitJetStream waits until the cluster's JetStream answers requests.
func (c *natsCluster) waitJetStream(timeout time.Duration) error {
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.UserInfo(natsUser, c.password))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return poll(context.Background(), timeout, "JetStream of the NATS cluster", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// URL is the comma-separated list of every node's client URL.
func (c *natsCluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.url()
	}
	return strings.Join(urls, ",")
}

// Start starts node i (again, on the same ports and store).
func (c *natsCluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.cmd != nil {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(n.cfg)
	if err := os.MkdirAll(filepath.Dir(n.logFile), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(n.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), natsNodeEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", n.cfg.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url(), "nats://"), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-done:
			n.cmd = nil
			return fmt.Errorf("%s exited at start; log:\n%s", n.cfg.Name, tail(n.logFile, 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept clients after 30s", n.cfg.Name)
		}
	}
}

// Kill SIGKILLs node i and waits for it.
func (c *natsCluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// Stop stops every node (SIGTERM, then SIGKILL).
func (c *natsCluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.cmd == nil {
			continue
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
		}
		n.cmd = nil
	}
}

// Index returns the index of the node named name.
func (c *natsCluster) Index(name string) (int, error) {
	for i, n := range c.nodes {
		if n.cfg.Name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no NATS node named %q", name)
}

// streamLeader asks JetStream which node leads stream and how many replicas
// are current.
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) (leader string, current int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", 0, err
	}
	info := s.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", 0, errors.New("stream " + stream + " has no leader")
	}
	current = 1
	for _, r := range info.Cluster.Replicas {
		if r.Current && !r.Offline {
			current++
		}
	}
	return info.Cluster.Leader, current, nil
}
