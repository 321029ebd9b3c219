package browser

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/groupsync/groupsync/internal/testkit"
)

// screenshots, when set, is the folder TestConsole writes its screenshots
// of the console's pages to (make screenshots sets it to docs/images).
var screenshots = flag.String("browser.screenshots", "", "write PNG screenshots of the console's pages to this folder")

// consoleViewport is the browser window the console is shown in, and the
// size of the screenshots.
const consoleViewportWidth, consoleViewportHeight = 1200, 800

// consoleTab is a browser tab on dev's web console.
type consoleTab struct {
	ctx  context.Context
	base string
}

// openConsole opens a tab on the console, sized for the screenshots,
// without credentials yet.
func openConsole(t *testing.T, b *browser, d *dev) *consoleTab {
	t.Helper()
	if !strings.HasPrefix(d.info.Console.URL, "http://127.0.0.1:") || d.info.Console.Username == "" || d.info.Console.Password == "" {
		t.Fatalf("dev.json console = {url %q, username %q}, want a loopback URL and credentials", d.info.Console.URL, d.info.Console.Username)
	}
	ctx, cancel := chromedp.NewContext(b.root)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("console: open a tab: %v", err)
	}
	c := &consoleTab{ctx: ctx, base: d.info.Console.URL}
	c.do(t, "size the window", chromedp.EmulateViewport(consoleViewportWidth, consoleViewportHeight))
	return c
}

// login makes every request of the tab carry the console's Basic auth, as
// a browser does once its user typed them into the login prompt.
func (c *consoleTab) login(t *testing.T, username, password string) {
	t.Helper()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
	c.do(t, "send the credentials", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": auth},
		})
		return err
	}))
}

// do runs actions in the tab within opTimeout, failing the test on an error.
func (c *consoleTab) do(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("console: %s: %v", what, err)
	}
}

// load runs actions that load a page (a navigation, a click on a link or a
// form's button) and returns the status of the page loaded.
func (c *consoleTab) load(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) int64 {
	t.Helper()
	return c.loadResponse(t, what, actions...).Status
}

// loadResponse is load returning the page's whole response.
func (c *consoleTab) loadResponse(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) *network.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		t.Fatalf("console: %s: %v", what, err)
	}
	return resp
}

// refused requires the console to refuse the page at path to a browser
// without credentials. Chromium, headless, has no prompt to ask for them:
// it ends the navigation on the 401 with ERR_INVALID_AUTH_CREDENTIALS.
func (c *consoleTab) refused(t *testing.T, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(c.base+path))
	var loadErr *chromedp.LoadError
	switch {
	case errors.As(err, &loadErr) && loadErr.ErrorText == "net::ERR_INVALID_AUTH_CREDENTIALS":
	case err != nil:
		t.Fatalf("console: open %s without credentials: %v", path, err)
	case resp.Status != http.StatusUnauthorized:
		t.Fatalf("console: %s without credentials answered %d, want 401", path, resp.Status)
	}
}

// open loads the console's page at path and requires want as its status.
func (c *consoleTab) open(t *testing.T, path string, want int64) *network.Response {
	t.Helper()
	resp := c.loadResponse(t, "open "+path, chromedp.Navigate(c.base+path))
	if resp.Status != want {
		t.Fatalf("console: %s answered %d, want %d; the page says: %s", path, resp.Status, want, c.body(t))
	}
	return resp
}

// header is the value of a response header, whatever the case of its name.
func header(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// eval evaluates a JavaScript expression in the page. DevTools evaluates it
// whatever the console's Content Security Policy, which lets no script of
// the page run.
func eval[T any](t *testing.T, c *consoleTab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("console: evaluate %s: %v", expr, err)
	}
	return v
}

// body is the text of the page shown, as a user sees it.
func (c *consoleTab) body(t *testing.T) string {
	t.Helper()
	return eval[string](t, c, `document.body ? document.body.innerText : ""`)
}

// text is the text of the element sel of the page, "" when there is none.
func (c *consoleTab) text(t *testing.T, sel string) string {
	t.Helper()
	return eval[string](t, c, fmt.Sprintf(`(function (e) { return e ? e.innerText : "" })(document.querySelector(%q))`, sel))
}

// screenshot saves the tab's window as name.png in -browser.screenshots,
// when set.
func (c *consoleTab) screenshot(t *testing.T, name string) {
	t.Helper()
	if *screenshots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, opTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("console: screenshot of %s: %v", name, err)
	}
	if err := os.MkdirAll(*screenshots, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(*screenshots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// failedRows lists the job ids of the rows of the failed jobs page shown.
func (c *consoleTab) failedRows(t *testing.T) []string {
	t.Helper()
	return eval[[]string](t, c, `Array.from(document.querySelectorAll('#retry-form tbody input[name="id"]'), e => e.value)`)
}

// TestConsole drives the operator console in Chromium against a dev
// instance: an operator logs in with dev.json's credentials, finds the job
// that failed because a group grew past E3Kit's 100 participants, sees a
// POST without the CSRF token refused, retries the job from the page once a
// kick made room, and sees it gone and the group converged in Virgil; the
// group page then explains a kicked member and a pending one.
//
// With -browser.screenshots=DIR it saves the overview, the failed jobs, the
// group and a member's explanation there as console-*.png (make
// screenshots: docs/images).
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Chromium against a dev instance")
	}
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }
	chromium := chromiumPath(t)
	dists := bundles(t)
	bin := groupsyncBinary(t)
	step("built groupsync")
	d := startDev(t, bin)
	step("dev started")
	site := servePages(t, dists)
	b := startBrowser(t, chromium)

	// The users who hold a Virgil card sign up with E3Kit; dave and the
	// others added below never do, so they stay pending.
	app := b.defaultProfile().open(t, "e3kit", site.URL, "3.0.5", d)
	users := map[string]*user{}
	for _, uid := range []string{"alice", "bob", "carol", "erin"} {
		users[uid] = register(t, app, uid)
	}
	step("users registered")

	// CometChat: alice creates the group with bob, carol and dave; Virgil's
	// group then holds the owner, alice, bob and carol.
	const guid = "console-group"
	const created = int64(1767225600)
	d.groupCreated(t, guid, created, "alice", "alice", "bob", "carol", "dave")
	groupID := groupIdentity(t, d, guid)
	d.waitGroup(t, groupID, identities(users["alice"], users["bob"], users["carol"])...)

	// CometChat: alice adds erin and 96 more. 4 participants and 97 new
	// members (pending ones count) are more than E3Kit's 100: the job fails
	// for good and waits for an operator.
	added := []string{"erin"}
	for i := 1; len(added) < 97; i++ {
		added = append(added, fmt.Sprintf("guest-%02d", i))
	}
	d.memberAdded(t, guid, created, created+10, "alice", added...)
	step("group created, add posted")

	c := openConsole(t, b, d)
	c.refused(t, "/")
	c.login(t, d.info.Console.Username, d.info.Console.Password)
	// The pages work without JavaScript: their Content Security Policy
	// lets no script run, and the test below only clicks and types.
	if csp := header(c.open(t, "/", http.StatusOK), "Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("the console's Content Security Policy %q lets scripts run", csp)
	}

	// The failed jobs page, filtered by the group as an operator would, lists
	// the job with its reason.
	var jobID string
	testkit.EventuallyErr(t, 60*time.Second, "the console lists the failed add", func() error {
		c.open(t, "/failed", http.StatusOK)
		c.do(t, "filter by the group", chromedp.SetValue(chromedp.ID("filter-group"), guid))
		if got := c.load(t, "filter", chromedp.Click(chromedp.ID("filter-apply"))); got != http.StatusOK {
			return fmt.Errorf("the filter answered %d", got)
		}
		rows := c.failedRows(t)
		if len(rows) != 1 {
			return fmt.Errorf("%d failed jobs of %s listed: %s", len(rows), guid, c.text(t, "main"))
		}
		jobID = rows[0]
		return nil
	})
	step("failed job listed")
	row := c.text(t, "#retry-form tbody tr")
	for _, want := range []string{"group_member_added", guid, "participants"} {
		if !strings.Contains(row, want) {
			t.Errorf("the failed job's row %q does not show %q", row, want)
		}
	}
	c.open(t, "/", http.StatusOK)
	if got := c.text(t, "#failed-count"); got != "1" {
		t.Errorf("the overview counts %q failed jobs, want 1:\n%s", got, c.text(t, "main"))
	}
	c.screenshot(t, "console-overview")
	c.open(t, "/failed", http.StatusOK)
	c.screenshot(t, "console-failed")

	// A retry posted without the CSRF token is refused, and retries nothing.
	c.open(t, "/failed?group="+guid, http.StatusOK)
	c.do(t, "tick the job", chromedp.Click(chromedp.ID("select-0")))
	eval[bool](t, c, `(function (e) { e.remove(); return true })(document.querySelector('#retry-form input[name="csrf"]'))`)
	if got := c.load(t, "retry without the CSRF token", chromedp.Click(chromedp.ID("retry-selected"))); got != http.StatusForbidden {
		t.Fatalf("a retry without the CSRF token answered %d, want 403: %s", got, c.body(t))
	}
	if msg := c.text(t, "main"); !strings.Contains(msg, "CSRF") {
		t.Errorf("the refusal does not say why: %q", msg)
	}
	c.open(t, "/failed?group="+guid, http.StatusOK)
	if rows := c.failedRows(t); len(rows) != 1 || rows[0] != jobID {
		t.Fatalf("after the refused retry the page lists %v, want the job %s still there", rows, jobID)
	}

	// The cause goes away: alice kicks carol in CometChat, which leaves room
	// for the 97. The job is retried from the page.
	d.memberKicked(t, guid, created, created+20, "alice", "carol")
	d.waitGroup(t, groupID, identities(users["alice"], users["bob"])...)
	c.do(t, "tick the job", chromedp.Click(chromedp.ID("select-0")))
	if got := c.load(t, "retry the job", chromedp.Click(chromedp.ID("retry-selected"))); got != http.StatusOK {
		t.Fatalf("the retry answered %d: %s", got, c.body(t))
	}
	if notice := c.text(t, ".notice"); !strings.Contains(notice, "1 job") {
		t.Errorf("after the retry the page says %q, want that 1 job was queued again", notice)
	}
	step("job retried")

	// Virgil converges: erin, the one of the 97 with a card, gets the
	// group's key; the others are pending. The job is gone from the page.
	d.waitGroup(t, groupID, identities(users["alice"], users["bob"], users["erin"])...)
	testkit.EventuallyErr(t, 30*time.Second, "the retried job leaves the failed jobs", func() error {
		c.open(t, "/failed?group="+guid, http.StatusOK)
		if rows := c.failedRows(t); len(rows) != 0 {
			return fmt.Errorf("the page still lists %v", rows)
		}
		return nil
	})
	step("group converged, job gone")
	if count := c.text(t, "#failed-count"); !strings.HasPrefix(count, "0 of 0 ") {
		t.Errorf("the failed jobs page says %q, want none", count)
	}

	// The group page shows the group as Virgil holds it: alice, bob and erin
	// participants, dave and the guests pending, carol removed.
	c.open(t, "/groups/"+guid, http.StatusOK)
	checkHas := func(sel string, want ...string) {
		t.Helper()
		got := c.text(t, sel)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("the group page's %s does not show %q:\n%s", sel, w, got)
			}
		}
	}
	checkHas("#participants", "alice", "bob", "erin")
	checkHas("#pending", "dave", "guest-96")
	checkHas("#removed", "carol")
	checkHas("#virgil", "alice", "bob", "erin")
	if got := c.text(t, "#participants"); strings.Contains(got, "carol") || strings.Contains(got, "dave") {
		t.Errorf("the group page lists carol or dave as participants:\n%s", got)
	}
	if got := c.text(t, "#virgil"); strings.Contains(got, "carol") || strings.Contains(got, "Missing") || strings.Contains(got, "not in groupsync") {
		t.Errorf("the group page says Virgil is out of step with groupsync:\n%s", got)
	}
	checkHas("#history", "guest-96", "group_member_added by alice")
	if got := c.text(t, "#group-failed"); got != "None." {
		t.Errorf("the group page lists failed jobs after the retry:\n%s", got)
	}
	c.screenshot(t, "console-group")

	// Support asks why carol, then dave, cannot read the group: the page's
	// form explains each.
	explain := func(uid, want string) {
		t.Helper()
		c.open(t, "/groups/"+guid, http.StatusOK)
		c.do(t, "type "+uid, chromedp.SetValue(chromedp.ID("explain-uid"), uid))
		if got := c.load(t, "explain "+uid, chromedp.Click(chromedp.ID("explain-submit"))); got != http.StatusOK {
			t.Fatalf("explaining %s answered %d: %s", uid, got, c.body(t))
		}
		if got := c.text(t, "#explanation"); !strings.Contains(got, want) {
			t.Errorf("the console explains %s as %q, want it to say %q", uid, got, want)
		}
	}
	explain("carol", "carol is not a participant: kicked by alice")
	c.screenshot(t, "console-member")
	explain("dave", "dave is pending")
	step("members explained")
}
