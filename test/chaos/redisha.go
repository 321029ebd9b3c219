package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
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
		if _, err := redisCommand(r.addr(), "PING"); err == nil {
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
		r, err := redisCommand(s.addr(), "SENTINEL", "get-master-addr-by-name", sentinelMaster)
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
	deadline := start.Add(60 * time.Second)
	for {
		m, err := h.master()
		if err == nil && m != old {
			if role, err := redisCommand(m.addr(), "ROLE"); err == nil && len(role) > 0 && role[0] == "master" {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the Sentinels did not promote the replica within 60s")
		}
		time.Sleep(100 * time.Millisecond)
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

// redisCommand sends one command over RESP and returns a status or bulk
// string as one element, or the bulk strings of an array (nested arrays and
// integers are returned as their first line).
func redisCommand(addr string, args ...string) ([]string, error) {
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
	rd := bufio.NewReader(c)
	line, err := rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return nil, errors.New("empty answer")
	case line[0] == '-':
		return nil, errors.New(line[1:])
	case line[0] == '+' || line[0] == ':':
		return []string{line[1:]}, nil
	case line[0] == '$':
		s, err := readBulk(rd, line)
		if err != nil || s == nil {
			return nil, err
		}
		return []string{*s}, nil
	case line[0] == '*':
		n, _ := strconv.Atoi(line[1:])
		var out []string
		for range n {
			l, err := rd.ReadString('\n')
			if err != nil {
				return nil, err
			}
			l = strings.TrimRight(l, "\r\n")
			if strings.HasPrefix(l, "$") {
				s, err := readBulk(rd, l)
				if err != nil {
					return nil, err
				}
				if s != nil {
					out = append(out, *s)
				}
				continue
			}
			if len(l) > 0 && l[0] != '*' {
				out = append(out, l[1:])
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected answer %q", line)
}

func readBulk(rd *bufio.Reader, header string) (*string, error) {
	n, err := strconv.Atoi(header[1:])
	if err != nil || n < 0 {
		return nil, err
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(rd, buf); err != nil {
		return nil, err
	}
	s := string(buf[:n])
	return &s, nil
}
