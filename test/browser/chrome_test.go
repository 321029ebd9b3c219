package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/groupsync/groupsync/internal/testkit"
)

// The E3Kit browser versions under test: the one CometChat's E2EE sample
// app ships (^2.4.5, 2.5.5 today) and the current one. package.json installs
// them under these aliases; the page of each is page/page-<version>.html.
var e3kitVersions = map[string]string{
	"2.5.5": "e3kit-browser-2",
	"3.0.5": "e3kit-browser-3",
}

// opTimeout bounds one operation in a page.
const opTimeout = 60 * time.Second

// chromiumPath returns Debian's chromium. Without it the test is skipped
// with a message, except in CI where that is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: CI must install Debian's chromium package (.ci/run does) to run the browser test")
	}
	t.Skip("chromium is not installed: `sudo apt-get install chromium` to run the browser test")
	return ""
}

// bundles checks that `npm ci` installed the pinned e3kit-browser versions
// (running it when node_modules is missing) and returns the dist folder of
// each version.
func bundles(t *testing.T) map[string]string {
	t.Helper()
	check := func() (map[string]string, error) {
		out := map[string]string{}
		for version, alias := range e3kitVersions {
			dir := filepath.Join("node_modules", alias)
			b, err := os.ReadFile(filepath.Join(dir, "package.json"))
			if err != nil {
				return nil, err
			}
			var pkg struct {
				Name, Version string
			}
			if err := json.Unmarshal(b, &pkg); err != nil {
				return nil, fmt.Errorf("%s/package.json: %w", dir, err)
			}
			if pkg.Name != "@virgilsecurity/e3kit-browser" || pkg.Version != version {
				return nil, fmt.Errorf("%s holds %s %s, want @virgilsecurity/e3kit-browser %s: run `npm ci` in test/browser", dir, pkg.Name, pkg.Version, version)
			}
			out[version] = filepath.Join(dir, "dist")
		}
		return out, nil
	}
	out, err := check()
	if err == nil {
		return out
	}
	if _, statErr := os.Stat("node_modules"); statErr == nil {
		t.Fatal(err)
	}
	npm, lookErr := exec.LookPath("npm")
	if lookErr != nil {
		t.Fatalf("test/browser/node_modules is missing and npm is not installed: install Node.js and npm (`make test` runs `npm ci` here)")
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in test/browser: %v\n%s", err, b)
	}
	if out, err = check(); err != nil {
		t.Fatal(err)
	}
	return out
}

// servePages serves the test pages, the harness and each version's bundle
// (with its WASM files beside it) on a loopback server of its own: the
// pages' origin is not groupsync's.
func servePages(t *testing.T, dists map[string]string) *httptest.Server {
	t.Helper()
	buffer := bufferBundle(t)
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServer(http.Dir("page")))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /buffer.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(buffer)
	})
	for version, dist := range dists {
		prefix := "/e3kit-browser-" + version + "/"
		mux.Handle("GET "+prefix, http.StripPrefix(prefix, http.FileServer(http.Dir(dist))))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// bufferBundle stands in for a web app's bundler: it wraps the npm package
// buffer (the Node.js Buffer API for browsers, pinned by package-lock.json)
// and its two dependencies into one script that defines window.buffer. The
// 3.0.5 page needs it for its shim (page/page-3.0.5.html).
func bufferBundle(t *testing.T) []byte {
	t.Helper()
	var js bytes.Buffer
	js.WriteString("(function () {\n  var sources = {};\n")
	for _, name := range []string{"buffer", "base64-js", "ieee754"} {
		src, err := os.ReadFile(filepath.Join("node_modules", name, "index.js"))
		if err != nil {
			t.Fatalf("read the npm package %s: %v (run `npm ci` in test/browser)", name, err)
		}
		fmt.Fprintf(&js, "  sources[%q] = function (module, exports, require) {\n%s\n  };\n", name, src)
	}
	js.WriteString(`  var cache = {};
  function require(name) {
    if (!cache[name]) {
      var module = { exports: {} };
      cache[name] = module;
      sources[name](module, module.exports, require);
    }
    return cache[name].exports;
  }
  window.buffer = require("buffer");
})();
`)
	return js.Bytes()
}

// browser is one headless Chromium.
type browser struct {
	root   context.Context // the first tab; the browser lives as long as it
	cancel context.CancelFunc
	log    *testkit.Buffer // console output and errors of every page
}

// startBrowser starts Chromium with a temporary profile folder. It runs
// without the sandbox only as root, where Chromium refuses to start with it.
func startBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{log: &testkit.Buffer{}}
	root, cancelRoot := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(format string, args ...any) {
		fmt.Fprintf(b.log, "chromedp: "+format+"\n", args...)
	}))
	b.root = root
	b.cancel = func() {
		cancelRoot()
		cancelAlloc()
	}
	t.Cleanup(func() {
		b.cancel()
		if t.Failed() {
			t.Logf("browser console:\n%s", b.log.String())
		}
	})
	// The first call starts the browser, which lives as long as root: it
	// must not get a shorter context.
	if err := chromedp.Do(root); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// profile is a browser context: its own cookies, IndexedDB and local
// storage, as another browser profile or device would have.
type profile struct {
	b   *browser
	ctx context.Context
}

// defaultProfile is the browser's first profile.
func (b *browser) defaultProfile() *profile { return &profile{b: b, ctx: b.root} }

// freshProfile makes a new, empty browser context.
func (b *browser) freshProfile(t *testing.T) *profile {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first call makes the browser context (and a tab in it); the pages
	// opened from ctx then share it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("make a browser context: %v", err)
	}
	return &profile{b: b, ctx: ctx}
}

// page is one tab showing the test page of an E3Kit version.
type page struct {
	name    string
	version string
	ctx     context.Context
}

// open opens a tab in the profile with the page of version and configures
// the harness with groupsync's client API and Virgil URLs.
func (p *profile) open(t *testing.T, name, site, version string, d *dev) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	t.Cleanup(cancel)
	pg := &page{name: name, version: version, ctx: ctx}
	// The first call opens the tab, which lives as long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open a tab: %v", name, err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			fmt.Fprintf(p.b.log, "[%s] %s\n", name, m)
		}
	}()
	runCtx, stop := context.WithTimeout(ctx, opTimeout)
	defer stop()
	type pageState struct {
		Ready     bool   `json:"ready"`
		LoadError string `json:"loadError"`
	}
	err := chromedp.Do(runCtx, chromedp.Navigate(site+"/page-"+version+".html"))
	var state pageState
	if err == nil {
		state, err = chromedp.Run(runCtx, chromedp.Evaluate[pageState](
			`({ready: !!(window.gs && window.gs.ready), loadError: String(window.gsLoadError || "")})`))
	}
	if err != nil {
		t.Fatalf("%s: open the %s page: %v", name, version, err)
	}
	if !state.Ready {
		t.Fatalf("%s: e3kit-browser %s did not load in the page: %s", name, version, state.LoadError)
	}
	pg.mustRun(t, "configure", map[string]any{"api": d.info.HTTPURL, "virgil": d.info.VirgilAPIURL, "owner": d.info.OwnerIdentity}, nil)
	return pg
}

// jsError is an error thrown in the page, as the harness describes it.
type jsError struct {
	Name           string `json:"name"`
	Message        string `json:"message"`
	GroupErrorCode int    `json:"groupErrorCode"`
	Status         int    `json:"status"`
	Code           int    `json:"code"`
}

func (e *jsError) Error() string {
	s := e.Name + ": " + e.Message
	if e.GroupErrorCode != 0 {
		s += fmt.Sprintf(" (GroupErrorCode %d)", e.GroupErrorCode)
	}
	return s
}

// run calls the harness operation op with args in the page and decodes its
// result into out (when not nil). A failure in the page is a *jsError; a
// failure to reach the page fails the test.
func (pg *page) run(t *testing.T, op string, args any, out any) *jsError {
	t.Helper()
	opJSON, _ := json.Marshal(op)
	argsJSON, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(pg.ctx, opTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("window.gs.run(%s, %s)", opJSON, argsJSON),
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s (%s): %s: %v", pg.name, pg.version, op, err)
	}
	var res struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
		Error  *jsError        `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("%s: %s: answer %q: %v", pg.name, op, raw, err)
	}
	if !res.OK {
		if res.Error == nil {
			res.Error = &jsError{Name: "Error", Message: "the harness gave no error"}
		}
		return res.Error
	}
	if out != nil {
		if err := json.Unmarshal(res.Result, out); err != nil {
			t.Fatalf("%s: %s: result %s: %v", pg.name, op, res.Result, err)
		}
	}
	return nil
}

// mustRun is run that fails the test on an error in the page.
func (pg *page) mustRun(t *testing.T, op string, args any, out any) {
	t.Helper()
	if err := pg.run(t, op, args, out); err != nil {
		t.Fatalf("%s (e3kit-browser %s): %s: %v", pg.name, pg.version, op, err)
	}
}
