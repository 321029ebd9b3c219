package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue/natsembed"
	"github.com/groupsync/groupsync/virgil"
)

// Webhook credentials and CometChat app id of every cluster.
const (
	webhookUser = "cometchat"
	cometAppID  = "chaosapp5f1d2e3c"
)

// ClusterConfig chooses how a Cluster runs.
type ClusterConfig struct {
	// Binary is the groupsync binary (see BuildBinary).
	Binary string
	// Dir holds every store, key file and process log.
	Dir string
	// Workers is how many `groupsync worker` processes start.
	Workers int
	// Partitions is GROUPSYNC_PARTITIONS (0: the binary's default).
	Partitions int
	// Concurrency is GROUPSYNC_CONCURRENCY of the workers (0: the binary's
	// default, one job per partition).
	Concurrency int
	// LogLevel is GROUPSYNC_LOG_LEVEL of every process (default info).
	LogLevel string
	// NATSSyncAlways fsyncs every JetStream write, as deploy/nats.conf does.
	NATSSyncAlways bool
	// NATSNodes, when above 1, runs NATS as a cluster of that many nodes,
	// each a process of its own, with streams of as many replicas (at most 3).
	NATSNodes int
	// RedisSentinel runs Redis as a primary, a replica and three Sentinels.
	RedisSentinel bool
	// Serves is how many `groupsync serve` processes run (default 1).
	Serves int
	// CometChat runs the fake CometChat REST API (Cluster.CometChat) and
	// gives every process its URL and key, so that workers check changes
	// after a Redis data loss with it and reconcile every
	// ReconcileInterval. Whoever drives the cluster must keep the fake's
	// groups true (RunChaos does).
	CometChat bool
	// ReconcileInterval is GROUPSYNC_RECONCILE_INTERVAL with CometChat.
	ReconcileInterval time.Duration
	// Logf reports progress (default: nothing).
	Logf func(format string, args ...any)
}

// Cluster is a groupsync deployment made of separate processes on this
// machine: nats-server (in this process, restartable), redis-server, the
// emulator, one `groupsync serve` and any number of `groupsync worker`.
type Cluster struct {
	cfg   ClusterConfig
	nats  *natsembed.Server
	redis *redisServer
	// natsC and redisH replace nats and redis in a multi-node cluster.
	natsC  *natsCluster
	redisH *redisHA
	env    []string
	logf   func(string, ...any)

	HTTPURL string
	// HTTPURLs has the URL of every serve process (HTTPURL is the first).
	HTTPURLs  []string
	VirgilURL string
	// CometChat is the fake CometChat REST API (nil without
	// ClusterConfig.CometChat).
	CometChat *cometchattest.Fake
	Identity  *groupsync.Identities
	appKey    *virgil.PrivateKey
	appID     string
	appKeyID  string

	mu       sync.Mutex
	userKeys map[string]*virgil.PrivateKey // by uid, of RegisterUsers
	procs    []*Process                    // every process ever started
	emulator *Process
	serve    *Process
	serves   []*Process
	// failovers records how long each failover of a multi-node cluster took.
	failovers []string
	workers   []*Process
	secrets   map[string]string // name -> value that must never be logged
	nc        *nats.Conn
}

// Process is one groupsync child process; its output goes to LogFile.
type Process struct {
	Name    string
	LogFile string
	// MetricsURL is the base URL of a worker's /metrics and /debug/pprof/.
	MetricsURL string
	cmd        *exec.Cmd
	done       chan struct{}
	err        error
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PeakRSS returns VmHWM of the running process in KiB.
func (p *Process) PeakRSS() (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, errors.New("no VmHWM")
}

// CPUProfile records a CPU profile of a worker for d into file.
func (p *Process) CPUProfile(d time.Duration, file string) error {
	if p.MetricsURL == "" {
		return fmt.Errorf("%s serves no profiles", p.Name)
	}
	client := &http.Client{Timeout: d + 30*time.Second}
	resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.MetricsURL, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s profile: status %d", p.Name, resp.StatusCode)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ModuleRoot returns the folder of the groupsync go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the groupsync module")
	}
	return filepath.Dir(mod), nil
}

// BuildBinary builds cmd/groupsync into dir and returns its path. When the
// environment names a binary in GROUPSYNC_CHAOS_BIN, that one is used as is.
func BuildBinary(dir string) (string, error) {
	if bin := os.Getenv("GROUPSYNC_CHAOS_BIN"); bin != "" {
		return bin, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "groupsync")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/groupsync")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/groupsync: %v\n%s", err, out)
	}
	return bin, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartCluster starts NATS, Redis, the emulator, runs `groupsync owner init`
// once, then starts serve and the workers, and waits until serve is ready.
// On error whatever started is stopped.
func StartCluster(ctx context.Context, cfg ClusterConfig) (c *Cluster, err error) {
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	c = &Cluster{cfg: cfg, logf: cfg.Logf, secrets: map[string]string{}}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()
	natsPassword := "nats-pw-" + randomHex(12)
	c.secrets["nats password"] = natsPassword
	natsURL, redisURL, err := c.startBackends(natsPassword)
	if err != nil {
		return c, err
	}
	if c.appKey, err = virgil.GenerateKey(); err != nil {
		return c, err
	}
	c.appID, c.appKeyID = randomHex(16), randomHex(16)
	// The emulator signs cards as "virgil" with serviceKey; the owner
	// checks that signature with its public half, as against Virgil.
	serviceKey, err := virgil.GenerateKey()
	if err != nil {
		return c, err
	}
	c.secrets["emulator service key"] = serviceKey.MarshalPKCS8Base64()
	secret := randomHex(32)
	password := "pw-" + randomHex(12)
	if c.Identity, err = groupsync.NewIdentities([]byte(secret), ""); err != nil {
		return c, err
	}
	c.secrets["app key"] = c.appKey.MarshalPKCS8Base64()
	c.secrets["identity secret"] = secret
	c.secrets["webhook password"] = password
	jobKey := randomHex(32)
	c.secrets["job key"] = jobKey
	emuAddr, err := freeAddr()
	if err != nil {
		return c, err
	}
	httpAddrs := make([]string, max(cfg.Serves, 1))
	for i := range httpAddrs {
		if httpAddrs[i], err = freeAddr(); err != nil {
			return c, err
		}
		c.HTTPURLs = append(c.HTTPURLs, "http://"+httpAddrs[i])
	}
	c.VirgilURL, c.HTTPURL = "http://"+emuAddr, c.HTTPURLs[0]
	ownerFile := filepath.Join(cfg.Dir, "owner.key")
	c.env = []string{
		"GROUPSYNC_NATS_URL=" + strings.ReplaceAll(natsURL, "nats://", "nats://"+natsUser+":"+natsPassword+"@"),
		"GROUPSYNC_REDIS_URL=" + redisURL, "GROUPSYNC_JOB_KEY=" + jobKey,
		"GROUPSYNC_VIRGIL_API_URL=" + c.VirgilURL, "GROUPSYNC_VIRGIL_APP_ID=" + c.appID,
		"GROUPSYNC_VIRGIL_APP_KEY_ID=" + c.appKeyID, "GROUPSYNC_VIRGIL_APP_KEY=" + c.appKey.MarshalPKCS8Base64(),
		"GROUPSYNC_VIRGIL_SERVICE_KEY=" + serviceKey.Public().MarshalSPKIBase64(),
		"GROUPSYNC_OWNER_KEY_FILE=" + ownerFile, "GROUPSYNC_IDENTITY_SECRET=" + secret,
		"GROUPSYNC_WEBHOOK_USERNAME=" + webhookUser, "GROUPSYNC_WEBHOOK_PASSWORD=" + password,
		"GROUPSYNC_COMETCHAT_APP_ID=" + cometAppID, "GROUPSYNC_CLIENT_AUTH=trust-header",
		"GROUPSYNC_LOG_LEVEL=" + cfg.LogLevel, "GROUPSYNC_SHUTDOWN_TIMEOUT=5s",
	}
	if c.natsC != nil {
		c.env = append(c.env, "GROUPSYNC_STREAM_REPLICAS="+strconv.Itoa(min(cfg.NATSNodes, 3)))
	}
	if cfg.Partitions > 0 {
		c.env = append(c.env, "GROUPSYNC_PARTITIONS="+strconv.Itoa(cfg.Partitions))
	}
	if cfg.Concurrency > 0 {
		c.env = append(c.env, "GROUPSYNC_CONCURRENCY="+strconv.Itoa(cfg.Concurrency))
	}
	if cfg.CometChat {
		c.CometChat = cometchattest.New()
		c.secrets["CometChat API key"] = c.CometChat.APIKey
		c.env = append(c.env, "GROUPSYNC_COMETCHAT_API_URL="+c.CometChat.URL(), "GROUPSYNC_COMETCHAT_API_KEY="+c.CometChat.APIKey,
			"GROUPSYNC_RECONCILE_INTERVAL="+cfg.ReconcileInterval.String())
	}
	if c.emulator, err = c.start("emulator", []string{"GROUPSYNC_HTTP_ADDR=" + emuAddr, "GROUPSYNC_DATA_DIR=" + filepath.Join(cfg.Dir, "emulator"),
		"GROUPSYNC_EMULATOR_SERVICE_KEY=" + serviceKey.MarshalPKCS8Base64(), "GROUPSYNC_EMULATOR_DEBUG_API=true"}, "emulator"); err != nil {
		return c, err
	}
	if err = poll(ctx, 30*time.Second, "emulator up", func() error { return c.healthy(c.VirgilURL+"/healthz", c.emulator) }); err != nil {
		return c, err
	}
	out, err := c.Run(ctx, "owner", "init")
	if err != nil {
		return c, fmt.Errorf("owner init: %v: %s", err, out)
	}
	key, err := os.ReadFile(ownerFile)
	if err != nil {
		return c, err
	}
	c.secrets["owner key"] = strings.TrimSpace(string(key))
	for _, addr := range httpAddrs {
		p, err := c.start("serve", []string{"GROUPSYNC_HTTP_ADDR=" + addr}, "serve")
		if err != nil {
			return c, err
		}
		c.serves = append(c.serves, p)
	}
	c.serve = c.serves[0]
	for i, p := range c.serves {
		if err = poll(ctx, 60*time.Second, "serve ready", func() error { return c.healthy(c.HTTPURLs[i]+"/readyz", p) }); err != nil {
			return c, err
		}
	}
	// Workers start once the streams exist, and each must come up: a worker
	// that dies at start would otherwise only show as jobs that wait.
	for range cfg.Workers {
		w, err := c.StartWorker()
		if err != nil {
			return c, err
		}
		if err = poll(ctx, 60*time.Second, "worker up", func() error { return c.healthy(w.MetricsURL+"/healthz", w) }); err != nil {
			return c, err
		}
	}
	c.nc, err = nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Name("chaos-observer"),
		nats.UserInfo(natsUser, natsPassword))
	if err != nil {
		return c, err
	}
	return c, nil
}

func (c *Cluster) healthy(url string, p *Process) error {
	if !p.Running() {
		return fmt.Errorf("groupsync %s exited: %v; log %s:\n%s", p.Name, p.err, p.LogFile, tail(p.LogFile, 20))
	}
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// start runs `groupsync args...` with the cluster environment plus extra.
func (c *Cluster) start(name string, extra []string, args ...string) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	logFile := filepath.Join(c.cfg.Dir, "logs", fmt.Sprintf("%02d-%s.log", len(c.procs), name))
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.cfg.Binary, args...)
	cmd.Env = append(append(cleanEnv(), c.env...), extra...)
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start groupsync %v: %w", args, err)
	}
	p := &Process{Name: name, LogFile: logFile, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GROUPSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

// Run runs a short-lived groupsync command and returns its stdout; its
// stderr joins the error. Its output is also kept for the secret scan.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	return c.RunWith(ctx, nil, args...)
}

// RunWith is Run with extra environment variables (they win over the
// cluster's).
func (c *Cluster) RunWith(ctx context.Context, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.cfg.Binary, args...)
	cmd.Env = append(append(cleanEnv(), c.env...), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	c.mu.Lock()
	logFile := filepath.Join(c.cfg.Dir, "logs", fmt.Sprintf("%02d-%s.log", len(c.procs), strings.Join(args, "-")))
	_ = os.MkdirAll(filepath.Dir(logFile), 0o755)
	_ = os.WriteFile(logFile, []byte(stdout.String()+stderr.String()), 0o644)
	done := make(chan struct{})
	close(done)
	c.procs = append(c.procs, &Process{Name: strings.Join(args, " "), LogFile: logFile, cmd: cmd, done: done})
	c.mu.Unlock()
	if err != nil {
		return stdout.String(), fmt.Errorf("groupsync %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// StartWorker starts one more worker process, serving /metrics and Go's
// /debug/pprof/ on a free address (Process.MetricsURL).
func (c *Cluster) StartWorker() (*Process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := c.start("worker", []string{"GROUPSYNC_METRICS_ADDR=" + addr, "GROUPSYNC_PPROF=true"}, "worker")
	if err != nil {
		return nil, err
	}
	p.MetricsURL = "http://" + addr
	c.mu.Lock()
	c.workers = append(c.workers, p)
	c.mu.Unlock()
	return p, nil
}

// Workers returns the worker processes still running.
func (c *Cluster) Workers() []*Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*Process
	for _, p := range c.workers {
		if p.Running() {
			live = append(live, p)
		}
	}
	return live
}

// Serve returns the serve process.
func (c *Cluster) Serve() *Process { return c.serve }

// KillWorker kills the i-th running worker with SIGKILL and waits for it.
func (c *Cluster) KillWorker(i int) error {
	live := c.Workers()
	if len(live) == 0 {
		return errors.New("no worker running")
	}
	p := live[i%len(live)]
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// StopWorkers stops every worker with SIGTERM (graceful) and waits.
func (c *Cluster) StopWorkers() {
	for _, p := range c.Workers() {
		stopProcess(p)
	}
}

func stopProcess(p *Process) {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// RestartNATS shuts the NATS server down, keeps it down for down, and starts
// it again on the same port and store.
func (c *Cluster) RestartNATS(down time.Duration) error {
	c.nats.Shutdown()
	time.Sleep(down)
	return c.nats.Restart()
}

// RestartRedis kills redis-server (SIGKILL; it keeps no data) and starts it
// again, empty, on the same port after down.
func (c *Cluster) RestartRedis(down time.Duration) error {
	c.redis.kill()
	time.Sleep(down)
	return c.redis.start()
}

// Stop stops every process (SIGTERM, then SIGKILL), Redis and NATS.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.cmd.Process != nil && p.Running() {
			wg.Add(1)
			go func() { defer wg.Done(); stopProcess(p) }()
		}
	}
	wg.Wait()
	if c.nc != nil {
		c.nc.Close()
	}
	if c.redis != nil {
		c.redis.kill()
	}
	if c.nats != nil {
		c.nats.Shutdown()
	}
	if c.redisH != nil {
		c.redisH.stop()
	}
	if c.natsC != nil {
		c.natsC.Stop()
	}
	if c.CometChat != nil {
		c.CometChat.Close()
	}
}

// poll calls cond until it returns nil or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still failing after %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// natsUser is the NATS user every process of the cluster connects as.
const natsUser = "groupsync"

// redisServer is a redis-server child process without persistence: a
// restart loses every key, as a Redis without AOF would.
type redisServer struct {
	dir  string
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(dir string) (*redisServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	r := &redisServer{dir: dir}
	r.port, _ = strconv.Atoi(port)
	return r, r.start()
}

func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

func (r *redisServer) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--protected-mode", "no")
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w (install it: apt-get install redis-server)", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	return poll(context.Background(), 15*time.Second, "redis-server answers PING", func() error {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("PING\r\n"))
		buf := make([]byte, 7)
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := io.ReadFull(conn, buf)
		if string(buf[:n]) != "+PONG\r\n" {
			return fmt.Errorf("answered %q", buf[:n])
		}
		return nil
	})
}

func (r *redisServer) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		<-r.done
		r.cmd = nil
	}
}
