package virgil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Client defaults.
const (
	// DefaultTimeout is the deadline applied to a call whose context has none.
	DefaultTimeout = 30 * time.Second
	// Version is the client version sent in the Virgil-Agent header.
	Version = "0.1.0"
	// maxResponseSize bounds the response bodies the client reads.
	maxResponseSize = 8 << 20
	// maxErrorMessage bounds the message kept from a non-JSON error body.
	maxErrorMessage = 256
)

// Header names of the Virgil services.
const (
	headerAgent        = "Virgil-Agent"
	headerPreviousHash = "Virgil-Keyknox-Previous-Hash"
	headerHash         = "Virgil-Keyknox-Hash"
	headerSuperseded   = "X-Virgil-Is-Superseeded"
)

// ErrUnavailable wraps transport failures (connection refused, timeouts,
// truncated responses): the request may be retried.
var ErrUnavailable = errors.New("virgil: service unavailable")

// Sentinel API errors, matched by Virgil code with errors.Is.
var (
	// ErrInvalidPreviousHash: a Keyknox push raced another writer (code 50010).
	ErrInvalidPreviousHash = &APIError{Code: CodeInvalidPreviousHash, Message: "invalid previous hash"}
	// ErrCardNotFound: no card with the requested id (code 10001).
	ErrCardNotFound = &APIError{Code: CodeCardNotFound, Message: "card not found"}
)

// APIError is an error answer of a Virgil service.
type APIError struct {
	// Status is the HTTP status.
	Status int
	// Code is the Virgil error code (0 when the body carried none).
	Code int
	// Message is the service's message.
	Message string
	// RetryAfter is the Retry-After delay of a 429/503 answer, 0 if none.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("virgil: service error %d (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// Retryable reports whether repeating the request may succeed: 408, 429 and
// 5xx answers.
func (e *APIError) Retryable() bool {
	return e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Is matches an *APIError target with the same non-zero Code (and the same
// Status when the target sets one), and ErrTokenExpired for code 20304.
func (e *APIError) Is(target error) bool {
	if target == ErrTokenExpired {
		return e.Code == CodeTokenExpired
	}
	t, ok := target.(*APIError)
	if !ok || t.Code == 0 {
		return false
	}
	return t.Code == e.Code && (t.Status == 0 || t.Status == e.Status)
}

// Retryable reports whether err is a transient failure: ErrUnavailable or a
// retryable *APIError. Context cancellation by the caller is not retryable.
func Retryable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && ae.Retryable()
}

// Client calls the Virgil Cards v5 and Keyknox v2 services. It is safe for
// concurrent use.
type Client struct {
	baseURL string
	tokens  TokenSource
	http    *http.Client
	agent   string
	timeout time.Duration
	cards   *memo[[32]byte, *Card] // parsed cards by digest of their bytes
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client without timeout;
// deadlines come from contexts).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithAgent sets the Virgil-Agent header ("product;language;platform;version").
func WithAgent(agent string) Option { return func(c *Client) { c.agent = agent } }

// WithTimeout sets the deadline applied to calls whose context has none
// (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// DefaultAgent is the Virgil-Agent of this package, in the official
// clients' "product;language;platform;version" form.
func DefaultAgent() string {
	v := strings.TrimPrefix(runtime.Version(), "go")
	if i := strings.IndexAny(v, ". "); i > 0 {
		if j := strings.IndexAny(v[i+1:], ". "); j > 0 {
			v = v[:i+1+j]
		}
	}
	return "groupsync;go;Go" + v + "/" + runtime.GOOS + ";" + Version
}

// NewClient returns a client for the services at baseURL (for example
// https://api.virgilsecurity.com; a trailing slash is ignored), authenticated
// with tokens.
func NewClient(baseURL string, tokens TokenSource, opts ...Option) *Client {
	c := &Client{
		baseURL: strings.TrimRight(baseURL, "/"),
		tokens:  tokens,
		http:    &http.Client{},
		agent:   DefaultAgent(),
		timeout: DefaultTimeout,
		cards:   &memo[[32]byte, *Card]{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the services' base URL.
func (c *Client) BaseURL() string { return c.baseURL }

// response is a successful answer.
type response struct {
	header http.Header
	body   []byte
}

// do sends one request with a token, and once more with a fresh token when
// the answer is 401 with code 20304. body is JSON (nil for none).
func (c *Client) do(ctx context.Context, method, path string, body any, header http.Header) (*response, error) {
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("virgil: %s %s: encode body: %w", method, path, err)
		}
	}
	refresh := false
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Token(ctx, refresh)
		if err != nil {
			return nil, fmt.Errorf("virgil: %s %s: %w", method, path, err)
		}
		resp, err := c.send(ctx, method, path, payload, header, tok)
		var ae *APIError
		if attempt == 0 && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && ae.Code == CodeTokenExpired {
			refresh = true
			continue
		}
		return resp, err
	}
}

func (c *Client) send(ctx context.Context, method, path string, payload []byte, header http.Header, tok Token) (*response, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("virgil: %s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Virgil "+tok.Value())
	req.Header.Set(headerAgent, c.agent)
	req.Header.Set("User-Agent", c.agent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(ctxErr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("virgil: %s %s: %w", method, path, ctxErr)
		}
		return nil, fmt.Errorf("virgil: %s %s: %w: %w", method, path, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("virgil: %s %s: read response: %w: %w", method, path, ErrUnavailable, err)
	}
	if len(data) > maxResponseSize {
		return nil, fmt.Errorf("virgil: %s %s: response larger than %d bytes", method, path, maxResponseSize)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("virgil: %s %s: %w", method, path, apiError(resp, data))
	}
	return &response{header: resp.Header, body: data}, nil
}

func apiError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	var wire struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &wire) == nil && (wire.Code != 0 || wire.Message != "") {
		e.Code, e.Message = wire.Code, wire.Message
		return e
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	e.Message = msg
	return e
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
