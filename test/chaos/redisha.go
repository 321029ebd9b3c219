package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisProc is a redis-server child process started with extra arguments
// and, for a Sentinel, a configuration file it may rewrite.
type redisProc struct {
	name    string
	dir     string
	port    int
	args    []string
	conf    string
	logFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *redisProc) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func newRedisProc(name, dir string, args ...string) (*redisProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, p, _ := net.SplitHostPort(addr)
	r := &redisProc{name: name, dir: filepath.Join(dir, name), args: args, logFile: filepath.Join(dir, name+".log")}
	r.port, _ = strconv.Atoi(p)
	return r, os.MkdirAll(r.dir, 0o755)
}

// start runs the process (again) on the same port and waits for PING.
func (r *redisProc) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var args []string
	if r.conf != "" {
		f := filepath.Join(r.dir, "sentinel.conf")
		if _, err := os.Stat(f); err != nil {
			if err := os.WriteFile(f, []byte(r.conf), 0o600); err != nil {
				return err
			}
		}
		args = append(args, f, "--sentinel")
	}
	args = append(args, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir, "--protected-mode", "no")
	if r.conf == "" {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	args = append(args, r.args...)
	f, err := os.OpenFile(r.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = f, f
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("redis-server: %w (install it: apt-get install redis-server)", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := redisPing(r.addr()); err == nil {
			return nil
		}
		select {
		case <-done:
			r.cmd = nil
			return fmt.Errorf("%s exited at start; log:\n%s", r.name, tail(r.logFile, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer PING", r.name)
}

func (r *redisProc) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		<-r.done
		r.cmd = nil
	}
}

// redisHA is a Redis primary with one replica, watched by three Sentinels
// under the master name "groupsync", every part a process of its own.
type redisHA struct {
	servers   []*redisProc // [0] started as the primary, [1] as its replica
	sentinels []*redisProc
}

const sentinelMaster = "groupsync"

func startRedisHA(dir string) (*redisHA, error) {
	h := &redisHA{}
	primary, err := newRedisProc("redis-a", dir)
	if err != nil {
		return nil, err
	}
	replica, err := newRedisProc("redis-b", dir, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	if err != nil {
		return nil, err
	}
	h.servers = []*redisProc{primary, replica}
	for _, s := range h.servers {
		if err := s.start(); err != nil {
			h.stop()
			return nil, err
		}
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1500\n"+
		"sentinel failover-timeout %[1]s 10000\n"+
		"sentinel parallel-syncs %[1]s 1\n", sentinelMaster, primary.port)
	for i := range 3 {
		s, err := newRedisProc(fmt.Sprintf("sentinel-%d", i+1), dir)
		if err != nil {
			h.stop()
			return nil, err
		}
		s.conf = conf
		h.sentinels = append(h.sentinels, s)
		if err := s.start(); err != nil {
			h.stop()
			return nil, err
		}
	}
	return h, nil
}

// URL is the redis+sentinel:// URL groupsync connects with.
func (h *redisHA) URL() string {
	addrs := make([]string, len(h.sentinels))
	for i, s := range h.sentinels {
		addrs[i] = s.addr()
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + sentinelMaster
}

// master asks the Sentinels which server is the primary now.
func (h *redisHA) master() (*redisProc, error) {
	var last error
	for _, s := range h.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		cancel()
		sc.Close()
		if err != nil || len(r) != 2 {
			last = fmt.Errorf("%s: %v %v", s.name, r, err)
			continue
		}
		for _, srv := range h.servers {
			if srv.addr() == net.JoinHostPort(r[0], r[1]) {
				return srv, nil
			}
		}
		last = fmt.Errorf("%s names an unknown master %v", s.name, r)
	}
	return nil, last
}

// KillMaster SIGKILLs the current primary, waits until the Sentinels have
// promoted the other server, and starts the killed one again (empty; the
// Sentinels make it a replica of the new primary). It returns how long the
// promotion took.
func (h *redisHA) KillMaster() (time.Duration, error) {
	old, err := h.master()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	old.kill()
	err = poll(context.Background(), 60*time.Second, "the Sentinels promote the replica", func() error {
		m, err := h.master()
		switch {
		case err != nil:
			return err
		case m == old:
			return errors.New("the killed server is still the primary")
		}
		if role := redisRole(m.addr()); role != "master" {
			return fmt.Errorf("the new primary %s is %q", m.addr(), role)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	// Back as an empty server: no --replicaof, the Sentinels reconfigure it.
	old.args = nil
	return took, old.start()
}

func (h *redisHA) stop() {
	for _, s := range append(append([]*redisProc{}, h.sentinels...), h.servers...) {
		s.kill()
	}
}

// redisPing asks the server at addr for PONG.
func redisPing(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// redisRole returns the role ("master", "slave") of the server at addr, or
// "" when it does not answer.
func redisRole(addr string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || len(r) == 0 {
		return ""
	}
	role, _ := r[0].(string)
	return role
}
