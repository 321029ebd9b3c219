// Package cometchat is groupsync's one client of CometChat's REST API (Chat
// API v3), and the only code that talks to it: the auth token check of the
// client API (CheckAuthToken) and the group and member listing of reconcile
// (Groups, Group, Members).
//
// # Base URL
//
// Requests go to {base}/v3/..., where base is
// https://{appId}.api-{region}.cometchat.io or Config.BaseURL. BaseURL is a
// scheme and host with an optional path prefix and without the API version;
// one that ends in /v3 means the same (older configurations wrote it that
// way). A BaseURL with credentials, a query or a fragment is refused, and so
// is plain http to a host other than loopback: the REST API key must not
// travel in clear text.
//
// # Trust
//
// The client never follows a redirect, and every request is checked to go to
// the configured scheme and host before it carries the apikey header. Ids
// are checked before they are put into a URL (CometChat's uids, guids and
// auth tokens are made of A-Z, a-z, 0-9, "_" and "-"), so nothing a caller
// sends can change the path. CometChat's answers are parsed strictly: an
// answer of an unexpected shape is an error, never an empty success.
//
// List calls page until CometChat says it is done (current_page >=
// total_pages, or a short page; never by "total", which CometChat reports
// wrongly at times) and honour 429 Retry-After before backing off.
package cometchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned when CometChat answers 404 (for example
// ERR_GUID_NOT_FOUND for a deleted group).
var ErrNotFound = errors.New("cometchat: not found")

// ErrInvalidID is returned, without a request, for a uid, guid or token that
// is not made of A-Z, a-z, 0-9, "_" and "-", or is empty or too long.
var ErrInvalidID = errors.New("cometchat: invalid id")

// ErrBadAnswer is matched by the errors of answers that do not have the
// documented shape (not JSON, a missing or mistyped field, a redirect).
var ErrBadAnswer = errors.New("cometchat: unexpected answer")

// Bounds of the ids CometChat issues.
const (
	// MaxIDLen is the longest uid or guid accepted (CometChat's limit is
	// 100 characters).
	MaxIDLen = 100
	// MaxTokenLen is the longest auth token accepted. CometChat's tokens
	// are the uid, "_" and 40 hex digits, well below this.
	MaxTokenLen = 256
)

// APIError is a non-2xx answer of the REST API.
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code is CometChat's error code, such as ERR_TOO_MANY_REQUESTS.
	Code string
	// Message is CometChat's message.
	Message string
	// RetryAfter is the server's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("cometchat: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Is matches ErrNotFound for 404 answers, and ErrBadAnswer for redirects
// (which are never followed).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrBadAnswer:
		return e.Status/100 == 3
	}
	return false
}

// Temporary reports whether retrying later may succeed (429 and 5xx).
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Config configures a Client.
type Config struct {
	// AppID is the CometChat app id. Required unless BaseURL is set; when
	// set it is also sent in the appId header.
	AppID string
	// Region is the app region (us, eu, in). Default "us".
	Region string
	// BaseURL overrides https://{AppID}.api-{Region}.cometchat.io: a scheme
	// and host, with an optional path prefix, without the "/v3" of the API
	// version (a trailing "/v3" is accepted and means the same). See the
	// package doc for what is refused.
	BaseURL string
	// APIKey is a REST API key with fullAccess scope. Required. It is sent
	// in the apikey header, only to the configured host, and never logged.
	APIKey string
	// PerPage is the page size of list calls. Default 100.
	PerPage int
	// MaxRetries bounds retries of 429 and 5xx answers per list call.
	// Default 5. CheckAuthToken never retries.
	MaxRetries int
	// HTTPClient defaults to a client with a 15 s timeout. The Client uses
	// a copy that never follows redirects, whatever HTTPClient says.
	HTTPClient *http.Client
}

// Client calls CometChat's REST API. It is safe for concurrent use.
type Client struct {
	base  *url.URL // scheme, host and path prefix, without "/v3"
	cfg   Config
	http  *http.Client
	sleep func(context.Context, time.Duration) error
}

// New returns a Client. It fails, naming the setting, when APIKey is empty,
// when neither AppID nor BaseURL is set, or when BaseURL, AppID or Region is
// not acceptable (see the package doc).
func New(cfg Config) (*Client, error) {
	if cfg.Region == "" {
		cfg.Region = "us"
	}
	if cfg.PerPage <= 0 {
		cfg.PerPage = 100
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	var errs []error
	if cfg.APIKey == "" {
		errs = append(errs, errors.New("cometchat: an API key is required"))
	}
	base, err := baseURL(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	hc := &http.Client{Timeout: 15 * time.Second}
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient
		hc = &copied
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: base, cfg: cfg, http: hc, sleep: sleepCtx}, nil
}

// baseURL works out the base URL of cfg (without "/v3").
func baseURL(cfg Config) (*url.URL, error) {
	if cfg.BaseURL == "" {
		var errs []error
		switch {
		case cfg.AppID == "":
			errs = append(errs, errors.New("cometchat: an app id or a base URL is required"))
		case !validHostLabel(cfg.AppID):
			errs = append(errs, fmt.Errorf("cometchat: app id %q: want letters, digits and '-' only", cfg.AppID))
		}
		if !validHostLabel(cfg.Region) {
			errs = append(errs, fmt.Errorf("cometchat: region %q: want a region such as us, eu or in", cfg.Region))
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return &url.URL{Scheme: "https", Host: cfg.AppID + ".api-" + cfg.Region + ".cometchat.io"}, nil
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("cometchat: API URL %q: want an https URL such as https://APPID.api-us.cometchat.io", cfg.BaseURL)
	}
	if u.User != nil {
		return nil, errors.New("cometchat: API URL must not carry credentials (the API key goes in its own setting)")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("cometchat: API URL %s: want no query or fragment", u.Redacted())
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("cometchat: API URL %s: plain http is allowed for loopback hosts only; use https", u.Redacted())
	}
	path := strings.TrimRight(u.Path, "/")
	path = strings.TrimSuffix(path, "/v3")
	return &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimRight(path, "/")}, nil
}

// BaseURL returns the base URL requests are made under (they go to
// BaseURL()+"/v3/..."). It holds no secret.
func (c *Client) BaseURL() string { return c.base.String() }

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func validHostLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidID reports whether s can be a CometChat uid or guid: 1 to MaxIDLen
// characters of A-Z, a-z, 0-9, "_" and "-".
func ValidID(s string) bool { return validChars(s, MaxIDLen) }

// ValidToken reports whether s can be a CometChat auth token: 1 to
// MaxTokenLen characters of A-Z, a-z, 0-9, "_" and "-".
func ValidToken(s string) bool { return validChars(s, MaxTokenLen) }

func validChars(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Group is a CometChat group as listed by the REST API.
type Group struct {
	GUID         string `json:"guid"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Owner        string `json:"owner"`
	MembersCount int    `json:"membersCount"`
}

// Member is a group member as listed by the REST API.
type Member struct {
	UID   string `json:"uid"`
	Scope string `json:"scope"`
}

type pagination struct {
	Total       int `json:"total"`
	Count       int `json:"count"`
	PerPage     int `json:"per_page"`
	CurrentPage int `json:"current_page"`
	TotalPages  int `json:"total_pages"`
}

type listEnvelope[T any] struct {
	Data *[]T `json:"data"`
	Meta *struct {
		Pagination *pagination `json:"pagination"`
	} `json:"meta"`
}

// Groups lists every group of the app, calling fn once per page so that
// callers can show progress and stop early by returning an error. A group
// without a valid guid in the answer is an error matching ErrBadAnswer.
func (c *Client) Groups(ctx context.Context, fn func(page []Group) error) error {
	return listAll(ctx, c, []string{"groups"}, func(page []Group) error {
		for _, g := range page {
			if !ValidID(g.GUID) {
				return fmt.Errorf("%w: group with guid %q", ErrBadAnswer, cut(g.GUID))
			}
		}
		return fn(page)
	})
}

// Members lists every member of group guid. It returns an error matching
// ErrNotFound when the group does not exist, ErrInvalidID (without a
// request) for an invalid guid, and ErrBadAnswer when a member has no valid
// uid.
func (c *Client) Members(ctx context.Context, guid string) ([]Member, error) {
	if !ValidID(guid) {
		return nil, fmt.Errorf("cometchat: members of %q: %w", cut(guid), ErrInvalidID)
	}
	var all []Member
	err := listAll(ctx, c, []string{"groups", guid, "members"}, func(page []Member) error {
		for _, m := range page {
			if !ValidID(m.UID) {
				return fmt.Errorf("%w: member with uid %q", ErrBadAnswer, cut(m.UID))
			}
		}
		all = append(all, page...)
		return nil
	})
	return all, err
}

// Group returns one group. It returns an error matching ErrNotFound when the
// group does not exist (for example after deletion), ErrInvalidID for an
// invalid guid, and ErrBadAnswer when the answer does not name the group.
func (c *Client) Group(ctx context.Context, guid string) (Group, error) {
	if !ValidID(guid) {
		return Group{}, fmt.Errorf("cometchat: group %q: %w", cut(guid), ErrInvalidID)
	}
	var env struct {
		Data *Group `json:"data"`
	}
	if err := c.get(ctx, []string{"groups", guid}, nil, &env); err != nil {
		return Group{}, err
	}
	if env.Data == nil || !strings.EqualFold(env.Data.GUID, guid) {
		return Group{}, fmt.Errorf("cometchat: GET group %s: %w: it does not name the group", guid, ErrBadAnswer)
	}
	return *env.Data, nil
}

func listAll[T any](ctx context.Context, c *Client, path []string, fn func([]T) error) error {
	for page := 1; ; page++ {
		q := url.Values{"perPage": {strconv.Itoa(c.cfg.PerPage)}, "page": {strconv.Itoa(page)}}
		var env listEnvelope[T]
		if err := c.get(ctx, path, q, &env); err != nil {
			return err
		}
		if env.Data == nil {
			return fmt.Errorf("cometchat: list %s: %w: no data array", strings.Join(path, "/"), ErrBadAnswer)
		}
		data := *env.Data
		var p pagination
		if env.Meta != nil && env.Meta.Pagination != nil {
			p = *env.Meta.Pagination
			if p.CurrentPage != 0 && p.CurrentPage != page {
				return fmt.Errorf("cometchat: list %s: %w: asked for page %d, got page %d", strings.Join(path, "/"), ErrBadAnswer, page, p.CurrentPage)
			}
		}
		if err := fn(data); err != nil {
			return err
		}
		perPage := c.cfg.PerPage
		if p.PerPage > 0 {
			perPage = p.PerPage
		}
		if len(data) < perPage || (p.TotalPages > 0 && page >= p.TotalPages) {
			return nil
		}
		if page >= 1_000_000 {
			return fmt.Errorf("cometchat: list %s: more than a million pages", strings.Join(path, "/"))
		}
	}
}

// endpoint returns the URL of /v3/{segments...}?q. Every segment must be
// checked by the caller (ValidID, ValidToken), so none can hold "/", "." or
// "%"; PathEscape is belt and braces.
func (c *Client) endpoint(segments []string, q url.Values) *url.URL {
	u := *c.base
	raw := u.Path + "/v3"
	for _, s := range segments {
		raw += "/" + url.PathEscape(s)
	}
	u.Path, u.RawPath = raw, ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return &u
}

// get performs one GET with retries of 429 and 5xx, decoding the JSON answer
// into out.
func (c *Client) get(ctx context.Context, segments []string, q url.Values, out any) error {
	u := c.endpoint(segments, q)
	name := strings.Join(segments, "/")
	delay := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		status, body, retryAfter, err := c.do(ctx, u)
		if err == nil {
			err = decodeAnswer(status, body, retryAfter, out)
		}
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || !ae.Temporary() || attempt >= c.cfg.MaxRetries {
			if err != nil {
				return fmt.Errorf("cometchat: GET %s: %w", name, err)
			}
			return nil
		}
		wait := delay
		if ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("cometchat: GET %s: %w", name, err)
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// maxAnswer bounds the body of one answer.
const maxAnswer = 16 << 20

// do sends one GET to u with the API key and returns the status, the body
// (up to maxAnswer bytes) and Retry-After. It refuses, before sending, a URL
// whose scheme or host is not the configured one. Its errors are the
// transport's, without the URL (which may hold a token).
func (c *Client) do(ctx context.Context, u *url.URL) (int, []byte, time.Duration, error) {
	if u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		return 0, nil, 0, fmt.Errorf("cometchat: refusing to send the API key to %s://%s", u.Scheme, u.Host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("cometchat: build request: %w", err)
	}
	req.Header.Set("apikey", c.cfg.APIKey)
	if c.cfg.AppID != "" {
		req.Header.Set("appId", c.cfg.AppID)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL
		}
		return 0, nil, 0, fmt.Errorf("cometchat: request failed: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return 0, nil, 0, fmt.Errorf("cometchat: read answer: %w", err)
	}
	if len(body) > maxAnswer {
		return 0, nil, 0, fmt.Errorf("%w: answer larger than %d bytes", ErrBadAnswer, maxAnswer)
	}
	var retryAfter time.Duration
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			retryAfter = time.Duration(secs) * time.Second
		}
	}
	return resp.StatusCode, body, retryAfter, nil
}

// decodeAnswer turns a non-2xx status into an *APIError and decodes a 2xx
// body into out, strictly: one JSON object and nothing after it.
func decodeAnswer(status int, body []byte, retryAfter time.Duration, out any) error {
	if status != http.StatusOK {
		ae := &APIError{Status: status, RetryAfter: retryAfter}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &eb) == nil {
			ae.Code, ae.Message = cut(eb.Error.Code), cut(eb.Error.Message)
		}
		return ae
	}
	return decodeStrict(body, out)
}

// decodeStrict decodes body, which must be exactly one JSON object, into out.
func decodeStrict(body []byte, out any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrBadAnswer)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAnswer, err)
	}
	if dec.More() || dec.InputOffset() != int64(len(body)) {
		return fmt.Errorf("%w: data after the JSON object", ErrBadAnswer)
	}
	return nil
}

// cut shortens text from an answer for an error message.
func cut(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
