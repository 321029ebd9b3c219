package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/queue"
)

func TestNewReportsEveryInvalidField(t *testing.T) {
	_, err := console.New(console.Config{
		Username:     "a:b",
		Password:     "short",
		FailureRate:  -1,
		FailureBurst: -2,
		CSRFKey:      []byte("too short"),
	}, nil)
	if err == nil {
		t.Fatal("New(invalid config) = nil error")
	}
	for _, want := range []string{"Username", "Password", "FailureRate", "FailureBurst", "CSRFKey"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error = %q, want it to name %s", err, want)
		}
	}
	// A previous key needs a key of its own to make tokens under, and the
	// same length.
	for _, tc := range []struct {
		cfg  console.Config
		want string
	}{
		{console.Config{Username: "u", Password: testPass, PreviousCSRFKey: make([]byte, 32)}, "PreviousCSRFKey is set without CSRFKey"},
		{console.Config{Username: "u", Password: testPass, CSRFKey: make([]byte, 32), PreviousCSRFKey: make([]byte, 31)}, "PreviousCSRFKey: 31 bytes"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
	if _, err := console.New(console.Config{}, nil); err == nil || !strings.Contains(err.Error(), "Username is required") || !strings.Contains(err.Error(), "Password is required") {
		t.Errorf("New(zero Config) error = %v, want both credentials required", err)
	}
}

func TestEveryPageNeedsCredentials(t *testing.T) {
	b := setup(t, func(c *console.Config) { c.FailureBurst = 100 })
	for _, path := range []string{"/", "/failed", "/failed/purge", "/static/console.css", "/no-such-page", "/groups/g1"} {
		for name, opt := range map[string]reqOpt{"None": noAuth, "WrongPassword": withAuth(testUser, "wrong-password-123"), "WrongUser": withAuth("root", testPass)} {
			resp := b.do(t, "GET", path, nil, opt)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s with %s credentials = %d, want 401", path, name, resp.StatusCode)
			}
			if name == "None" && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("GET %s without credentials: WWW-Authenticate = %q, want Basic", path, resp.Header.Get("WWW-Authenticate"))
			}
			if resp.Header.Get(console.HeaderCSRF) != "" {
				t.Errorf("GET %s with %s credentials gave away the CSRF token", path, name)
			}
		}
	}
	if resp := b.do(t, "GET", "/static/console.css", nil); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("GET /static/console.css = %d %s, want 200 text/css", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestWrongCredentialsAreRateLimitedPerClient(t *testing.T) {
	b := setup(t, func(c *console.Config) { c.FailureBurst = 3 })
	get := func(remote string, opt reqOpt) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/failed", nil)
		req.RemoteAddr = remote
		req.Header.Set("Accept", "application/json")
		opt(req)
		rec := httptest.NewRecorder()
		b.srv.ServeHTTP(rec, req)
		return rec
	}
	const attacker, other = "192.0.2.7:4000", "198.51.100.9:5000"
	wrong := withAuth(testUser, "not-the-password")
	for i := range 3 {
		if rec := get(attacker, wrong); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong credentials #%d = %d, want 401", i+1, rec.Code)
		}
	}
	// Requests without credentials (a browser's first) never count.
	for range 5 {
		if rec := get(other, noAuth); rec.Code != http.StatusUnauthorized {
			t.Fatalf("no credentials = %d, want 401", rec.Code)
		}
	}
	rec := get(attacker, wrong)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("wrong credentials #4 = %d, want 429", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if rec := get(attacker, withAuth(testUser, testPass)); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right credentials from the blocked client = %d, want 429 until its bucket refills", rec.Code)
	}
	if rec := get(other, withAuth(testUser, testPass)); rec.Code != http.StatusOK {
		t.Errorf("right credentials from another client = %d, want 200", rec.Code)
	}
	// IPv6 clients are counted per /64.
	for i := range 3 {
		get("[2001:db8::"+string(rune('1'+i))+"]:80", wrong)
	}
	if rec := get("[2001:db8::99]:80", wrong); rec.Code != http.StatusTooManyRequests {
		t.Errorf("wrong credentials from a fourth address of one /64 = %d, want 429", rec.Code)
	}
	if got := counter(t, b, "groupsync_console_failed_logins_total"); got != 6 {
		t.Errorf("failed_logins_total = %v, want 6 (refused requests are not tried)", got)
	}
}

func TestRateLimitBehindATrustedProxy(t *testing.T) {
	b := setup(t, func(c *console.Config) {
		c.FailureBurst = 2
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	get := func(remote, forwarded string, opt reqOpt) int {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = remote
		req.Header.Set("Accept", "application/json")
		if forwarded != "" {
			req.Header.Set("X-Forwarded-For", forwarded)
		}
		opt(req)
		rec := httptest.NewRecorder()
		b.srv.ServeHTTP(rec, req)
		return rec.Code
	}
	wrong, right := withAuth(testUser, "not-the-password"), withAuth(testUser, testPass)
	for range 2 {
		get("10.0.0.1:1", "203.0.113.5, 10.0.0.2", wrong)
	}
	if code := get("10.0.0.1:1", "203.0.113.5", wrong); code != http.StatusTooManyRequests {
		t.Errorf("third failure of the client behind the proxy = %d, want 429", code)
	}
	if code := get("10.0.0.1:1", "198.51.100.1", right); code != http.StatusOK {
		t.Errorf("another client behind the same proxy = %d, want 200", code)
	}
	// From a peer that is not a trusted proxy, X-Forwarded-For is ignored:
	// a forged one does not dodge the limit.
	for i := range 2 {
		get("192.0.2.50:1", fmt.Sprintf("198.51.100.%d", 10+i), wrong)
	}
	if code := get("192.0.2.50:1", "198.51.100.99", wrong); code != http.StatusTooManyRequests {
		t.Errorf("forged X-Forwarded-For from an untrusted peer = %d, want 429", code)
	}
}

// counter sums the values of a counter of the console's registry.
func counter(t *testing.T, b *testBundle, name string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestPostsNeedTheCSRFToken(t *testing.T) {
	b := setup(t)
	b.deadLetter(t, "job-1", "g1", "virgil: group past 100 participants")
	for _, tc := range []struct {
		name string
		form url.Values
		opts []reqOpt
	}{
		{"NoToken", url.Values{}, nil},
		{"WrongToken", url.Values{"csrf": {"AAAA" + b.csrf[4:]}}, nil},
		{"TokenOfOtherCredentials", url.Values{"csrf": {otherToken(t)}}, nil},
		{"NoTokenJSON", nil, []reqOpt{jsonAccept}},
		{"WrongHeaderJSON", nil, []reqOpt{jsonAccept, withHeader(console.HeaderCSRF, "x"+b.csrf)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{console.PathRetryAll, console.PathRetry, console.PathPurge} {
				form := url.Values{"id": {"job-1"}, "confirm": {"yes"}}
				for k, v := range tc.form {
					form[k] = v
				}
				resp := b.do(t, "POST", path, form, tc.opts...)
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("POST %s = %d, want 403", path, resp.StatusCode)
				}
			}
		})
	}
	if got := b.failedIDs(t); !slices.Equal(got, []string{"job-1"}) {
		t.Fatalf("dead letters after refused POSTs = %v, want [job-1]", got)
	}
	// A cross-site browser request is refused even with the token.
	resp := b.post(t, console.PathRetryAll, nil, withHeader("Sec-Fetch-Site", "cross-site"))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST with the token = %d, want 403", resp.StatusCode)
	}
	// The token in the header, as scripts send it, is accepted.
	resp = b.do(t, "POST", console.PathRetryAll, url.Values{}, jsonAccept, withHeader(console.HeaderCSRF, b.csrf))
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, `"retried": 1`) {
		t.Errorf("POST %s with the header token = %d %s, want 200 retried 1", console.PathRetryAll, resp.StatusCode, resp.body)
	}
}

// otherToken is the CSRF token a console with other credentials gives.
func otherToken(t *testing.T) string {
	t.Helper()
	b := openParts(t)
	b.serve(t, func(c *console.Config) { c.Password = testPass + "-other" }, func(c *console.Config) { c.Registerer = nil })
	return b.csrf
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	b := setup(t)
	for _, tc := range []struct {
		path string
		opts []reqOpt
		want int
	}{
		{"/", nil, 200},
		{"/failed", []reqOpt{jsonAccept}, 200},
		{"/static/console.css", nil, 200},
		{"/nope", nil, 404},
		{"/", []reqOpt{noAuth}, 401},
	} {
		resp := b.do(t, "GET", tc.path, nil, tc.opts...)
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: Content-Security-Policy = %q, want no script and no framing", tc.path, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, k, got, v)
			}
		}
	}
}

func TestUnknownPagesAndJobsAre404(t *testing.T) {
	b := setup(t)
	b.deadLetter(t, "job-1", "g1", "boom")
	for _, tc := range []struct {
		method, path string
		form         url.Values
		opts         []reqOpt
	}{
		{"GET", "/nope", nil, nil},
		{"GET", "/nope", nil, []reqOpt{jsonAccept}},
		{"GET", "/failed/x/y", nil, nil},
		{"POST", console.PathRetry, url.Values{"id": {"no-such-job"}}, nil},
		{"POST", console.PathRetry, url.Values{"id": {"job-1", "no-such-job"}}, []reqOpt{jsonAccept}},
		{"POST", "/nope", url.Values{}, nil},
	} {
		var resp response
		if tc.method == "POST" {
			resp = b.post(t, tc.path, tc.form, tc.opts...)
		} else {
			resp = b.do(t, tc.method, tc.path, nil, tc.opts...)
		}
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s %v = %d, want 404", tc.method, tc.path, tc.form, resp.StatusCode)
		}
	}
	if got := b.failedIDs(t); !slices.Equal(got, []string{"job-1"}) {
		t.Errorf("after a retry naming an unknown id, dead letters = %v, want [job-1] (nothing retried)", got)
	}
}

func TestPagesAnswerJSONOrHTML(t *testing.T) {
	b := setup(t)
	b.deadLetter(t, "job-1", "g1", "boom")
	for _, tc := range []struct {
		accept   reqOpt
		wantJSON bool
	}{
		{jsonAccept, true},
		{withHeader("Accept", "application/json, text/html;q=0.5"), true},
		{htmlAccept, false},
		{withHeader("Accept", "*/*"), false},
		{func(*http.Request) {}, false},
	} {
		for _, path := range []string{"/", "/failed", "/failed/purge"} {
			resp := b.do(t, "GET", path, nil, tc.accept)
			ct := resp.Header.Get("Content-Type")
			isJSON := strings.HasPrefix(ct, "application/json")
			if resp.StatusCode != http.StatusOK || isJSON != tc.wantJSON {
				t.Errorf("GET %s (Accept %q) = %d %s, want JSON %v", path, resp.Request.Header.Get("Accept"), resp.StatusCode, ct, tc.wantJSON)
			}
			if !isJSON && !strings.Contains(resp.body, "<main id=\"main\"") {
				t.Errorf("GET %s HTML has no main element", path)
			}
		}
	}
}

func TestRetryAndPurgeChangeTheDeadLetterStream(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"job-1", "job-2", "job-3"} {
		b.deadLetter(t, id, "g-"+id, "virgil: unavailable")
	}
	var list struct {
		Total int               `json:"total"`
		Jobs  []queue.FailedJob `json:"jobs"`
	}
	b.getJSON(t, "/failed", &list)
	if list.Total != 3 || len(list.Jobs) != 3 || list.Jobs[0].ID != "job-3" {
		t.Fatalf("GET /failed = %+v, want 3 jobs, newest first", list)
	}

	// One job, from the HTML form: a redirect that says what was done.
	resp := b.post(t, console.PathRetry, url.Values{"id": {"job-2"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/failed?") {
		t.Fatalf("POST retry = %d Location %q, want 303 to /failed", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := b.failedIDs(t); !slices.Equal(got, []string{"job-1", "job-3"}) {
		t.Fatalf("dead letters after retrying job-2 = %v, want [job-1 job-3]", got)
	}
	page := b.do(t, "GET", resp.Header.Get("Location"), nil)
	if !strings.Contains(page.body, "Queued 1 job again.") {
		t.Errorf("the page after the retry does not say so:\n%s", page.body)
	}
	// The job is back on its partition.
	b.expectQueued(t, "job-2")

	// Several, as JSON.
	resp = b.post(t, console.PathRetry, url.Values{"id": {"job-1", "job-3"}}, jsonAccept)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, `"retried": 2`) {
		t.Fatalf("POST retry (JSON) = %d %s, want retried 2", resp.StatusCode, resp.body)
	}
	if got := b.failedIDs(t); len(got) != 0 {
		t.Fatalf("dead letters after retrying the rest = %v, want none", got)
	}
	b.expectQueued(t, "job-1")
	b.expectQueued(t, "job-3")

	// A JSON body, as a script sends it.
	b.deadLetter(t, "job-6", "g6", "boom")
	resp = b.do(t, "POST", console.PathRetry, nil, jsonAccept, withHeader(console.HeaderCSRF, b.csrf), withJSONBody(`{"ids": ["job-6"]}`))
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, `"retried": 1`) {
		t.Fatalf("POST retry with a JSON body = %d %s, want retried 1", resp.StatusCode, resp.body)
	}
	b.expectQueued(t, "job-6")

	// Purge asks first.
	b.deadLetter(t, "job-4", "g4", "boom")
	b.deadLetter(t, "job-5", "g5", "boom")
	confirm := b.do(t, "GET", console.PathPurge, nil)
	if confirm.StatusCode != http.StatusOK || !strings.Contains(confirm.body, `id="purge-confirm"`) {
		t.Fatalf("GET purge = %d, want the confirmation form", confirm.StatusCode)
	}
	resp = b.post(t, console.PathPurge, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST purge without confirm = %d, want 400", resp.StatusCode)
	}
	if got := b.failedIDs(t); len(got) != 2 {
		t.Fatalf("dead letters after an unconfirmed purge = %v, want 2", got)
	}
	resp = b.post(t, console.PathPurge, url.Values{"confirm": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST purge confirmed = %d, want 303", resp.StatusCode)
	}
	if got := b.failedIDs(t); len(got) != 0 {
		t.Fatalf("dead letters after the purge = %v, want none", got)
	}
	if page := b.do(t, "GET", resp.Header.Get("Location"), nil); !strings.Contains(page.body, "Purged 2 failed jobs.") {
		t.Errorf("the page after the purge does not say so")
	}
}

// expectQueued takes the next job of the partition and checks it is id.
func (b *testBundle) expectQueued(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := testContext()
	defer cancel()
	d, err := b.q.Next(ctx, 0)
	if err != nil {
		t.Fatalf("Next after retrying %s: %v", id, err)
	}
	if d.Job.ID != id {
		t.Fatalf("Next = %s, want %s", d.Job.ID, id)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFailedJobsFilter(t *testing.T) {
	b := setup(t)
	b.deadLetter(t, "job-a", "alpha", "virgil: group past 100 participants")
	b.deadLetter(t, "job-b", "beta", "unauthenticated job")
	b.deadLetter(t, "job-c", "alpha", "store: timeout")
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"job-c", "job-b", "job-a"}},
		{"?group=alpha", []string{"job-c", "job-a"}},
		{"?q=PARTICIPANTS", []string{"job-a"}},
		{"?q=job-b", []string{"job-b"}},
		{"?trigger=group_member_added&group=beta", []string{"job-b"}},
		{"?trigger=group_deleted", []string{}},
		{"?limit=2", []string{"job-c", "job-b"}},
		{"?group=alpha&limit=1", []string{"job-c"}},
	} {
		var list struct {
			Jobs []queue.FailedJob `json:"jobs"`
		}
		b.getJSON(t, "/failed"+tc.query, &list)
		got := []string{}
		for _, j := range list.Jobs {
			got = append(got, j.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("GET /failed%s = %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestFailedJobsLimit(t *testing.T) {
	b := setup(t)
	for _, id := range []string{"job-a", "job-b", "job-c"} {
		b.deadLetter(t, id, "g", "boom")
	}
	resp := b.do(t, "GET", "/failed?limit=2", nil)
	if !strings.Contains(resp.body, "2 of 3 failed jobs shown. Only the newest 2 are listed") {
		t.Errorf("GET /failed?limit=2 does not say it lists only 2:\n%s", resp.body)
	}
	for _, l := range []string{"0", "-1", "x", "10001"} {
		if resp := b.do(t, "GET", "/failed?limit="+l, nil, jsonAccept); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /failed?limit=%s = %d, want 400", l, resp.StatusCode)
		}
	}
}

func TestNoSecretIsRendered(t *testing.T) {
	b := setup(t)
	const natsPassword, apiToken = "nats-password-51d2", "tok-8c1e77aa"
	b.deadLetter(t, "job-1", "g1", "publish to nats://groupsync:"+natsPassword+"@nats.internal:4222 failed; GET https://api.example/v1?token="+apiToken)
	sigs := b.signatures(t)
	if len(sigs) != 1 {
		t.Fatalf("dead letters carry %d signatures, want 1 (the test must see one to prove it is not shown)", len(sigs))
	}
	secrets := map[string]string{
		"job signature": sigs[0],
		"job key":       string(testJobKey),
		"password":      testPass,
		"NATS password": natsPassword,
		"token":         apiToken,
	}
	for _, path := range []string{"/", "/failed", "/failed?q=nats", "/failed/purge", "/nope"} {
		for _, accept := range []reqOpt{jsonAccept, htmlAccept} {
			resp := b.do(t, "GET", path, nil, accept)
			for what, s := range secrets {
				if strings.Contains(resp.body, s) {
					t.Errorf("GET %s shows the %s", path, what)
				}
			}
		}
	}
	resp := b.post(t, console.PathRetry, url.Values{"id": {"job-1"}}, jsonAccept)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry = %d %s", resp.StatusCode, resp.body)
	}
	logs := b.logs.String()
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the console's log shows the %s", what)
		}
	}
	if strings.Contains(logs, "Authorization") || strings.Contains(logs, testUser+":") {
		t.Errorf("the console's log shows credentials:\n%s", logs)
	}
}

func TestRequestsAreCountedByPageAndStatus(t *testing.T) {
	b := setup(t)
	b.do(t, "GET", "/failed", nil)
	b.do(t, "GET", "/failed", nil, noAuth)
	b.do(t, "GET", "/nope", nil)
	for _, tc := range []struct {
		page, status string
		want         float64
	}{
		{"failed", "200", 1},
		{"failed", "401", 1},
		{"not_found", "404", 1},
	} {
		c, err := b.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := 0.0
		for _, mf := range c {
			if mf.GetName() != "groupsync_console_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["page"] == tc.page && labels["status"] == tc.status {
					got = m.GetCounter().GetValue()
				}
			}
		}
		if got != tc.want {
			t.Errorf("requests_total{page=%q,status=%q} = %v, want %v", tc.page, tc.status, got, tc.want)
		}
	}
}
