package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
)

// binary is the groupsync binary built once for the test run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "groupsync-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "groupsync")
	// Tests run the binary with the race detector.
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build groupsync:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running groupsync command: the binary, or run in the test
// process (cmd nil, cancel set).
type process struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	stdout *testkit.Buffer
	stderr *testkit.Buffer
	exited chan struct{} // closed once the process has exited
	err    error         // Wait's result, valid after exited is closed
}

// running reports whether the process has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// startBinary runs the binary with args and env (added to a clean
// environment without GROUPSYNC_ variables of the caller).
func startBinary(tb testing.TB, env []string, args ...string) *process {
	tb.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &process{cmd: cmd, stdout: &testkit.Buffer{}, stderr: &testkit.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start groupsync %v: %v", args, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
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

// startInProcess runs the command line args in the test process, as the
// binary would with env (and no other GROUPSYNC_ variable). Cancelling its
// context stands for SIGINT.
func startInProcess(tb testing.TB, env []string, args ...string) *process {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{cancel: cancel, stdout: &testkit.Buffer{}, stderr: &testkit.Buffer{}, exited: make(chan struct{})}
	go func() {
		if code := run(ctx, args, getenvOf(env), p.stdout, p.stderr); code != 0 {
			p.err = fmt.Errorf("exit status %d", code)
		}
		close(p.exited)
	}()
	tb.Cleanup(func() {
		cancel()
		<-p.exited
	})
	return p
}

// runInProcess runs a command line to completion in the test process and
// returns its exit code and output.
func runInProcess(tb testing.TB, env []string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut testkit.Buffer
	code = run(ctx, args, getenvOf(env), &out, &errOut)
	return code, out.String(), errOut.String()
}

// getenvOf looks variables up in env ("K=V" entries) only.
func getenvOf(env []string) func(string) string {
	return func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
}

// stop sends SIGINT (or cancels an in-process run) and waits for a clean
// exit.
func (p *process) stop(tb testing.TB) {
	tb.Helper()
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
	} else {
		p.cancel()
	}
	select {
	case <-p.exited:
		if p.err != nil {
			tb.Fatalf("groupsync exited with %v after SIGINT\nstderr:\n%s", p.err, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
		}
		tb.Fatalf("groupsync did not stop within 60s of SIGINT\nstderr:\n%s", p.stderr.String())
	}
}

// runBinary runs a command to completion and returns its exit code and output.
func runBinary(tb testing.TB, env []string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	default:
		tb.Fatalf("run groupsync %v: %v", args, err)
		return -1, "", ""
	}
}

func getJSON(url string, out any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w (%s)", url, err, b)
		}
	}
	return resp.StatusCode, nil
}

func TestBadConfigurationIsOneLineAndExitCode2(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"UnknownCommand", nil, []string{"frobnicate"}, "unknown command"},
		{"UnknownFlag", nil, []string{"serve", "--no-such-flag"}, "no-such-flag"},
		{"ServeWithoutWebhookPassword", []string{"GROUPSYNC_WEBHOOK_USERNAME=u"}, []string{"serve"}, "webhook-password"},
		{"BadPartitions", []string{"GROUPSYNC_PARTITIONS=zero"}, []string{"jobs", "failed"}, "partitions"},
		{"RetryWithoutIDs", nil, []string{"jobs", "retry"}, "job ids or --all"},
		{"ReconcileWithoutGroups", nil, []string{"reconcile"}, "group ids, --all or --status"},
		{"BadLogLevel", []string{"GROUPSYNC_LOG_LEVEL=loud"}, []string{"worker"}, "log-level"},
		{"CometChatPlainHTTP", []string{"GROUPSYNC_COMETCHAT_API_KEY=k", "GROUPSYNC_COMETCHAT_API_URL=http://app1.api-us.cometchat.io/v3"}, []string{"reconcile", "--all"}, "plain http"},
		{"CometChatURLWithCredentials", []string{"GROUPSYNC_COMETCHAT_API_KEY=k", "GROUPSYNC_COMETCHAT_API_URL=https://u:p@app1.api-us.cometchat.io"}, []string{"reconcile", "--all"}, "credentials"},
		{"CORSAnyOrigin", []string{"GROUPSYNC_CORS_ALLOWED_ORIGINS=*"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "cors-allowed-origins"},
		{"CORSOriginWithPath", []string{"GROUPSYNC_CORS_ALLOWED_ORIGINS=https://app.example.com/chat"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "cors-allowed-origins"},
		{"NegativeClientRate", []string{"GROUPSYNC_CLIENT_RATE=-1"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "client-rate"},
		{"ZeroMaxClockSkew", []string{"GROUPSYNC_MAX_CLOCK_SKEW=0s"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "max-clock-skew"},
		{"BadMaxClockSkew", nil, []string{"dev", "--data-dir", "/nonexistent/groupsync", "--max-clock-skew", "soon"}, "max-clock-skew"},
		{"ZeroClientBurst", []string{"GROUPSYNC_CLIENT_UID_BURST=0"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "client-uid-burst"},
		{"TrustedProxyHostName", []string{"GROUPSYNC_CLIENT_TRUSTED_PROXIES=proxy.example"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "client-trusted-proxies"},
		{"MissingSecretFile", []string{"GROUPSYNC_VIRGIL_APP_ID=a", "GROUPSYNC_VIRGIL_APP_KEY_ID=k", "GROUPSYNC_VIRGIL_APP_KEY_FILE=/nonexistent/key"}, []string{"owner", "init"}, "GROUPSYNC_VIRGIL_APP_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, tc.env, tc.args...)
			if code != 2 {
				t.Fatalf("groupsync %v exited %d, want 2\nstdout: %s\nstderr: %s", tc.args, code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", len(lines), stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stderr holds a stack trace:\n%s", stderr)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, stdout, _ := runBinary(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "groupsync ") {
		t.Fatalf("version: exit %d, output %q", code, stdout)
	}
	code, stdout, _ = runBinary(t, nil, "help")
	if code != 0 {
		t.Fatalf("help exited %d", code)
	}
	for name := range commands() {
		if !strings.Contains(stdout, name) {
			t.Errorf("help does not list %s", name)
		}
	}
}

// TestLogTimesHaveMilliseconds: JSON log lines carry their time to the
// millisecond, so jobs applied within one second can be ordered across
// processes.
func TestLogTimesHaveMilliseconds(t *testing.T) {
	var buf bytes.Buffer
	s := newSettings("worker", func(string) string { return "" }, "log-level", "log-format")
	if err := s.parse([]string{"--log-format", "json"}, io.Discard); err != nil {
		t.Fatal(err)
	}
	log, err := parseLogger(s, &buf, "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hello")
	var line struct {
		Time string `json:"time"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	at, err := time.Parse(time.RFC3339Nano, line.Time)
	if err != nil || !regexp.MustCompile(`T\d\d:\d\d:\d\d\.\d{3}`).MatchString(line.Time) || time.Since(at) > time.Minute {
		t.Errorf("log time %q (%v): want RFC 3339 with milliseconds, now", line.Time, err)
	}
}
