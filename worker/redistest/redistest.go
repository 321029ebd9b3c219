// Package redistest runs a throwaway redis-server process on a free loopback
// port for tests, which they can kill and restart to simulate outages and
// data loss.
//
// It is a test helper: import it from _test.go files only (and from cmd,
// which wires the all-in-one dev mode). A missing redis-server binary fails
// the test with an install hint; it never skips.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// readyTimeout bounds how long Start and Restart wait for the server to
// answer PING.
const readyTimeout = 15 * time.Second

// Option changes how the server runs.
type Option func(*Server)

// WithPersistence turns on the append-only file (appendfsync always), so
// Restart keeps what was written before. Without it a restart starts empty,
// as a Redis without persistence does.
func WithPersistence() Option {
	return func(s *Server) { s.persist = true }
}

// WithArgs adds command-line options (configuration directives such as
// "--replicaof", "127.0.0.1", "6380") to every start of the server.
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// Server is a redis-server child process. Its methods are safe for
// concurrent use.
type Server struct {
	tb      testing.TB
	mu      sync.Mutex
	bin     string
	dir     string
	port    int
	persist bool
	args    []string
	// conf, when set, is written to a file that is the first argument:
	// Sentinel rewrites its configuration file and needs one.
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server on 127.0.0.1 and a free port with its files in
// tb.TempDir(), waits until it answers PING, and kills it when the test ends.
// It fails tb when redis-server is not installed or does not start.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found in PATH (%v); install it, e.g. `apt-get install redis-server` or `brew install redis`", err)
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir()}
	for _, opt := range opts {
		opt(s)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s.port = port
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Kill)
	return s
}

// Addr returns the server's host:port, the same across restarts.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns a redis:// URL for the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Kill stops the server at once (SIGKILL) and reaps it. Killing a stopped
// server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// Restart kills the server and starts it again on the same port and folder.
// Data survives only WithPersistence.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
	if err := s.startLocked(); err != nil {
		s.tb.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

func (s *Server) startLocked() error {
	var args []string
	if s.conf != "" {
		f := fmt.Sprintf("%s/redis-%d.conf", s.dir, s.port)
		if _, err := os.Stat(f); err != nil {
			if err := os.WriteFile(f, []byte(s.conf), 0o600); err != nil {
				return fmt.Errorf("write config: %w", err)
			}
		}
		args = append(args, f)
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--save", "",
		"--dir", s.dir,
		"--daemonize", "no",
	)
	if s.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = nil
	logf, err := os.Create(fmt.Sprintf("%s/redis-%d.log", s.dir, time.Now().UnixNano()))
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	cmd.Stderr = logf
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(readyTimeout)
	for {
		if err := ping(s.Addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.killLocked()
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("redis-server on %s not ready after %s: %v; log:\n%s", s.Addr(), readyTimeout, err, b)
		}
		select {
		case <-done:
			s.cmd = nil
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("redis-server exited at start; log:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends a RESP PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
