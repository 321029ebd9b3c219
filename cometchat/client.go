// Package cometchat is a small client of CometChat's REST API (Chat API v3):
// the calls groupsync needs to reconcile Virgil groups with CometChat's own
// record of groups and members.
//
// Every list call pages until CometChat says it is done (current_page >=
// total_pages, or a short page; never by "total", which CometChat reports
// wrongly at times) and honours 429 Retry-After before backing off.
package cometchat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned when CometChat answers 404 (for example
// ERR_GUID_NOT_FOUND for a deleted group).
var ErrNotFound = errors.New("cometchat: not found")

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

// Is matches ErrNotFound for 404 answers.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Temporary reports whether retrying later may succeed (429 and 5xx).
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Config configures a Client.
type Config struct {
	// AppID is the CometChat app id. Required unless BaseURL is set.
	AppID string
	// Region is the app region (us, eu, in). Default "us".
	Region string
	// BaseURL overrides https://{appId}.api-{region}.cometchat.io/v3.
	BaseURL string
	// APIKey is a REST API key with fullAccess scope. Required. It is sent
	// in the apikey header and never logged.
	APIKey string
	// PerPage is the page size of list calls. Default 100.
	PerPage int
	// MaxRetries bounds retries of 429 and 5xx answers per call. Default 5.
	MaxRetries int
	// HTTPClient defaults to a client with a 15 s timeout.
	HTTPClient *http.Client
}

// Client calls CometChat's REST API. It is safe for concurrent use.
type Client struct {
	base  string
	cfg   Config
	http  *http.Client
	sleep func(context.Context, time.Duration) error
}

// New returns a Client. It fails when neither AppID nor BaseURL is set, or
// when APIKey is empty.
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
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.APIKey == "" {
		return nil, errors.New("cometchat: an API key is required")
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		if cfg.AppID == "" {
			return nil, errors.New("cometchat: an app id or a base URL is required")
		}
		base = fmt.Sprintf("https://%s.api-%s.cometchat.io/v3", url.PathEscape(cfg.AppID), url.PathEscape(cfg.Region))
	}
	return &Client{base: base, cfg: cfg, http: cfg.HTTPClient, sleep: sleepCtx}, nil
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
	Data []T `json:"data"`
	Meta struct {
		Pagination pagination `json:"pagination"`
	} `json:"meta"`
}

// Groups lists every group of the app, calling fn once per page so that
// callers can show progress and stop early by returning an error.
func (c *Client) Groups(ctx context.Context, fn func(page []Group) error) error {
	return listAll(ctx, c, "/groups", fn)
}

// Members lists every member of group guid. It returns an error matching
// ErrNotFound when the group does not exist.
func (c *Client) Members(ctx context.Context, guid string) ([]Member, error) {
	var all []Member
	err := listAll(ctx, c, "/groups/"+url.PathEscape(guid)+"/members", func(page []Member) error {
		all = append(all, page...)
		return nil
	})
	return all, err
}

// Group returns one group. It returns an error matching ErrNotFound when the
// group does not exist (for example after deletion).
func (c *Client) Group(ctx context.Context, guid string) (Group, error) {
	var env struct {
		Data Group `json:"data"`
	}
	err := c.get(ctx, "/groups/"+url.PathEscape(guid), nil, &env)
	return env.Data, err
}

func listAll[T any](ctx context.Context, c *Client, path string, fn func([]T) error) error {
	for page := 1; ; page++ {
		q := url.Values{"perPage": {strconv.Itoa(c.cfg.PerPage)}, "page": {strconv.Itoa(page)}}
		var env listEnvelope[T]
		if err := c.get(ctx, path, q, &env); err != nil {
			return err
		}
		if err := fn(env.Data); err != nil {
			return err
		}
		p := env.Meta.Pagination
		perPage := c.cfg.PerPage
		if p.PerPage > 0 {
			perPage = p.PerPage
		}
		if len(env.Data) < perPage || (p.TotalPages > 0 && p.CurrentPage >= p.TotalPages) {
			return nil
		}
		if page >= 1_000_000 {
			return fmt.Errorf("cometchat: list %s: more than a million pages", path)
		}
	}
}

// get performs one GET with retries of 429 and 5xx, decoding the JSON answer
// into out.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	delay := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := c.getOnce(ctx, u, out)
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || !ae.Temporary() || attempt >= c.cfg.MaxRetries {
			if err != nil {
				return fmt.Errorf("cometchat: GET %s: %w", path, err)
			}
			return nil
		}
		wait := delay
		if ae.RetryAfter > 0 {
			wait = ae.RetryAfter
		}
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("cometchat: GET %s: %w", path, err)
		}
		delay = min(delay*2, 30*time.Second)
	}
}

func (c *Client) getOnce(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("apikey", c.cfg.APIKey)
	if c.cfg.AppID != "" {
		req.Header.Set("appId", c.cfg.AppID)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &eb) == nil {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		if s := resp.Header.Get("Retry-After"); s != "" {
			if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
				ae.RetryAfter = time.Duration(secs) * time.Second
			}
		}
		return ae
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
