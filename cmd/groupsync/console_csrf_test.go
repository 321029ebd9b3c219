package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/queue"
)

// stubBackend is a console Backend without parts: no failed job, and a
// retry that retries every id it is given.
type stubBackend struct{}

func (stubBackend) Overview(context.Context) (inspect.Overview, error) {
	return inspect.Overview{}, nil
}
func (stubBackend) Failed(context.Context) ([]queue.FailedJob, error) {
	return []queue.FailedJob{}, nil
}
func (stubBackend) FailedJob(context.Context, string) (inspect.FailedDetail, error) {
	return inspect.FailedDetail{}, inspect.ErrNotFound
}
func (stubBackend) Retry(_ context.Context, ids ...string) (int, error) { return len(ids), nil }
func (stubBackend) RetryAll(context.Context) (int, error)               { return 0, nil }
func (stubBackend) Purge(context.Context) (int, error)                  { return 0, nil }
func (stubBackend) Group(context.Context, string) (inspect.GroupReport, error) {
	return inspect.GroupReport{}, inspect.ErrNotFound
}
func (stubBackend) History(context.Context, string, uint64) (inspect.HistoryPage, error) {
	return inspect.HistoryPage{}, inspect.ErrNotFound
}
func (stubBackend) Explain(context.Context, string, string) (inspect.MemberReport, error) {
	return inspect.MemberReport{}, inspect.ErrNotFound
}

// syncBuffer is a bytes.Buffer safe for the console's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// consoleServe is the web console of one serve, built from the Config
// parseServe makes of its environment.
type consoleServe struct {
	url  string
	cfg  console.Config
	logs *syncBuffer
	// pages holds every answer's body.
	pages strings.Builder
}

const (
	csrfTestUser = "ops"
	csrfTestPass = "console-password-of-the-deployment"
)

// startConsoleServe parses serve's settings with the job key current (and
// previous, when not empty) and serves its console in the process.
func startConsoleServe(t *testing.T, base []string, current, previous string) *consoleServe {
	t.Helper()
	vars := append(serveEnv(base), "GROUPSYNC_CONSOLE_ADDR=127.0.0.1:0", "GROUPSYNC_CONSOLE_USERNAME="+csrfTestUser,
		"GROUPSYNC_CONSOLE_PASSWORD="+csrfTestPass, "GROUPSYNC_JOB_KEY="+current, "GROUPSYNC_JOB_KEY_PREVIOUS="+previous)
	logs := &syncBuffer{}
	cfg, err := parseServe(env{getenv: getenvOf(vars), stdout: logs, stderr: logs}, nil)
	if err != nil {
		t.Fatalf("parseServe: %v", err)
	}
	if cfg.Console == nil {
		t.Fatal("serve with every console setting runs no console")
	}
	cs := &consoleServe{cfg: cfg.Console.Console, logs: logs}
	cc := cfg.Console.Console
	cc.Logger = zerolog.New(logs)
	srv, err := console.New(cc, stubBackend{})
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cs.url = hs.URL
	return cs
}

// do sends a request with the console's credentials and returns the
// answer's status, CSRF header and body.
func (cs *consoleServe) do(t *testing.T, method, path string, form url.Values, header map[string]string) (int, string, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, cs.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(csrfTestUser, csrfTestPass)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	cs.pages.Write(b)
	return resp.StatusCode, resp.Header.Get(console.HeaderCSRF), string(b)
}

// formToken is the csrf field of the retry form the failed jobs page
// renders (the page a browser posts from).
func (cs *consoleServe) formToken(t *testing.T) string {
	t.Helper()
	status, header, body := cs.do(t, "GET", console.PathPurge, nil, map[string]string{"Accept": "text/html"})
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d", console.PathPurge, status)
	}
	_, rest, ok := strings.Cut(body, `name="csrf" value="`)
	if !ok {
		t.Fatalf("GET %s renders no csrf field:\n%s", console.PathPurge, body)
	}
	token, _, _ := strings.Cut(rest, `"`)
	if token != header {
		t.Fatalf("the form's token %q is not the %s header %q", token, console.HeaderCSRF, header)
	}
	return token
}

// retry posts the retry form with token, as a browser would, and returns
// the status.
func (cs *consoleServe) retry(t *testing.T, token string) int {
	t.Helper()
	status, _, body := cs.do(t, "POST", console.PathRetry, url.Values{"csrf": {token}, "id": {"job-1"}}, map[string]string{"Accept": "application/json"})
	if status != http.StatusOK && status != http.StatusForbidden {
		t.Fatalf("POST %s = %d %s, want 200 or 403", console.PathRetry, status, body)
	}
	return status
}

// TestConsoleCSRFAcrossServes: the consoles of two serves of a deployment,
// configured as serve configures them, accept each other's CSRF tokens
// because they share the job key, also while it is rotated; with different
// job keys they refuse them; no key shows in their logs or pages.
func TestConsoleCSRFAcrossServes(t *testing.T) {
	base, _ := appEnv(t, 0o600)
	old := hex.EncodeToString(bytes.Repeat([]byte{0x0d}, 32))
	next := hex.EncodeToString(bytes.Repeat([]byte{0x0e}, 32))
	other := hex.EncodeToString(bytes.Repeat([]byte{0x0f}, 32))
	type keys struct{ current, previous string }
	cases := []struct {
		name string
		a, b keys
		want int // status of a POST to either with the other's token
	}{
		{"SameJobKey", keys{old, ""}, keys{old, ""}, http.StatusOK},
		{"OtherJobKey", keys{old, ""}, keys{other, ""}, http.StatusForbidden},
		// The rotation of docs/security.md, process by process: the new key
		// as previous, then the keys swapped, then the old one dropped.
		{"RotationNewKeyAsPrevious", keys{old, ""}, keys{old, next}, http.StatusOK},
		{"RotationKeysSwapped", keys{old, next}, keys{next, old}, http.StatusOK},
		{"RotationOldKeyDropped", keys{next, old}, keys{next, ""}, http.StatusOK},
		{"PreviousKeyOfAnotherDeployment", keys{old, other}, keys{next, other}, http.StatusForbidden},
	}
	var all []*consoleServe
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := startConsoleServe(t, base, tc.a.current, tc.a.previous)
			b := startConsoleServe(t, base, tc.b.current, tc.b.previous)
			all = append(all, a, b)
			ta, tb := a.formToken(t), b.formToken(t)
			if got := a.retry(t, ta); got != http.StatusOK {
				t.Errorf("a POST to the serve that rendered the form = %d, want 200", got)
			}
			if got := b.retry(t, ta); got != tc.want {
				t.Errorf("b's answer to a form of a = %d, want %d", got, tc.want)
			}
			if got := a.retry(t, tb); got != tc.want {
				t.Errorf("a's answer to a form of b = %d, want %d", got, tc.want)
			}
			if (ta == tb) != (tc.a.current == tc.b.current) {
				t.Errorf("tokens of a and b equal: %v, want %v (job keys %s and %s)", ta == tb, tc.a.current == tc.b.current, tc.a.current[:4], tc.b.current[:4])
			}
		})
	}
	// No job key, no CSRF key, raw or encoded, shows in a log or a page.
	var secrets []string
	for _, k := range []string{old, next, other} {
		csrf := consoleCSRFKey(queue.JobKey(k))
		if len(csrf) < console.MinCSRFKeyLen {
			t.Fatalf("consoleCSRFKey gives %d bytes, want at least %d", len(csrf), console.MinCSRFKeyLen)
		}
		secrets = append(secrets, k, string(csrf), hex.EncodeToString(csrf), base64.StdEncoding.EncodeToString(csrf),
			base64.RawURLEncoding.EncodeToString(csrf))
	}
	for i, cs := range all {
		if cs.logs.String() == "" {
			t.Errorf("console %d logged nothing: the check below would prove nothing", i)
		}
		for _, s := range secrets {
			if strings.Contains(cs.logs.String(), s) || strings.Contains(cs.pages.String(), s) {
				t.Errorf("console %d logs or renders key material %.6q…", i, s)
			}
		}
	}
}

// TestConsoleCSRFKeyIsDerived: serve and dev give the console a key
// derived from the job key under its own label, so it is neither the job
// key nor a job signature, and the previous job key gives the previous key.
func TestConsoleCSRFKeyIsDerived(t *testing.T) {
	jobKey := queue.JobKey(strings.Repeat("j", 64))
	k := consoleCSRFKey(jobKey)
	if len(k) != 32 || bytes.Contains(k, jobKey) || bytes.Equal(k, consoleCSRFKey(queue.JobKey(strings.Repeat("i", 64)))) {
		t.Errorf("consoleCSRFKey = %x: want 32 bytes, other than the job key, changing with it", k)
	}
	if sig := jobKey.Sign([]byte(consoleCSRFLabel)); !strings.HasSuffix(sig, "="+hex.EncodeToString(k)) {
		// The derivation is the job key's HMAC of the label: a job whose
		// body were the label would carry it as its signature. Job bodies
		// are JSON objects, which the label is not.
		t.Errorf("consoleCSRFKey is not HMAC-SHA256(job key, %q)", consoleCSRFLabel)
	}
	if strings.HasPrefix(consoleCSRFLabel, "{") {
		t.Errorf("label %q could be a job body", consoleCSRFLabel)
	}
	if consoleCSRFKey(nil) != nil {
		t.Error("consoleCSRFKey(no key) is not nil")
	}
	// dev derives it from the job key of its data dir, as serve does.
	dir := filepath.Join(t.TempDir(), "data")
	dev, err := parseDev(env{getenv: getenvOf(nil), stdout: io.Discard, stderr: io.Discard},
		[]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("parseDev: %v", err)
	}
	if got := dev.Console.Console.CSRFKey; got == nil || !bytes.Equal(got, consoleCSRFKey(dev.Queue.JobKey)) {
		t.Errorf("dev's console CSRFKey = %x, want the one derived from its job key", got)
	}
	var c console.Config
	setConsoleCSRFKeys(&c, queue.Config{JobKey: jobKey})
	if !bytes.Equal(c.CSRFKey, k) || c.PreviousCSRFKey != nil {
		t.Errorf("without a previous job key: CSRFKey %x, PreviousCSRFKey %x", c.CSRFKey, c.PreviousCSRFKey)
	}
}
