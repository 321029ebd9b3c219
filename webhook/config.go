package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/groupsync"
)

// Defaults for the zero-value fields of Config.
const (
	DefaultAddr           = "127.0.0.1:8080"
	DefaultMaxBodyBytes   = 1 << 20
	DefaultPublishTimeout = 1500 * time.Millisecond
	DefaultRetryAfter     = 10 * time.Second
	DefaultReadyTimeout   = 2 * time.Second
	DefaultCacheTTL       = time.Minute
	DefaultRegion         = "us"
	// DefaultVerifyTimeout bounds one call to CometChat's auth token API.
	DefaultVerifyTimeout = 3 * time.Second
	// DefaultCacheSize is how many verified tokens are remembered.
	DefaultCacheSize = 10000
	// DefaultNegativeCacheSize is how many refused tokens are remembered.
	DefaultNegativeCacheSize = 1024
	// DefaultIPRate and DefaultIPBurst are the token bucket of one client
	// IP: requests per second, and the most at once.
	DefaultIPRate  = 20
	DefaultIPBurst = 100
	// DefaultUIDRate and DefaultUIDBurst are the token bucket of one uid:
	// requests per second that are not answered from the cache of verified
	// tokens, and the most at once.
	DefaultUIDRate  = 5
	DefaultUIDBurst = 50
	// DefaultMaxTracked bounds the token buckets kept, for IPs and for
	// uids each; the least recently used are dropped first.
	DefaultMaxTracked = 100000
	// DefaultCORSMaxAge is how long browsers may cache a preflight answer.
	DefaultCORSMaxAge = 10 * time.Minute
	// DefaultMaxClockSkew is how far ahead of the receipt time an event's
	// times may lie before they are clamped.
	DefaultMaxClockSkew = 5 * time.Minute
)

// Client API authentication modes (Config.ClientAuth).
const (
	// ClientAuthCometChat checks the caller's CometChat auth token with
	// CometChat's REST API.
	ClientAuthCometChat = "cometchat"
	// ClientAuthTrustHeader trusts the X-CometChat-UID header alone, for
	// deployments behind a gateway that authenticates users, and for tests.
	ClientAuthTrustHeader = "trust-header"
)

// Limits of the client API.
const (
	// MaxLookup is the most uids, and the most guids, one get-identities
	// request may ask for.
	MaxLookup = 500
	// maxClientBody bounds the body of a get-identities request.
	maxClientBody = 256 << 10
	// maxBodyLimit is the largest MaxBodyBytes accepted.
	maxBodyLimit = 64 << 20
)

// Enqueuer stores a job durably. queue.Queue implements it.
type Enqueuer interface {
	// Enqueue stores job and returns once it is durable (JetStream's
	// PubAck), reporting whether a job with the same ID was already stored.
	// Any error means the job may not be stored; the receiver then answers
	// 503 so that CometChat retries. It must honour ctx's deadline and be
	// safe for concurrent use.
	Enqueue(ctx context.Context, job groupsync.Job) (duplicate bool, err error)
}

// FailedRecorder records a job the receiver refuses to queue because it is
// too big to apply (an event naming more than groupsync.MaxEventMembers
// members) as a failed job operators see. queue.Queue implements it; when
// the Enqueuer also implements it, such events are recorded and answered
// 200 (CometChat must not retry what can never be applied); otherwise they
// get 413. It must be safe for concurrent use.
type FailedRecorder interface {
	// RecordRefused stores job (members is how many members its event
	// named) as failed with reason, once per job ID within the queue's
	// duplicate window. Any error means it may not be stored; the receiver
	// then answers 503 so that CometChat retries.
	RecordRefused(ctx context.Context, job groupsync.Job, members int, reason string) (duplicate bool, err error)
}

// TokenIssuer issues the Virgil JWTs that E3Kit clients fetch from
// GET /v1/virgil-jwt. It must be safe for concurrent use.
type TokenIssuer interface {
	// IssueToken returns a fresh Virgil JWT for the Virgil identity.
	IssueToken(identity string) (token string, err error)
}

// CometChatConfig tells the client API how to reach CometChat's REST API to
// check a caller's auth token (ClientAuth "cometchat"), through a
// cometchat.Client (see that package for what it verifies).
type CometChatConfig struct {
	// APIURL overrides the regional REST base URL
	// https://{AppID}.api-{Region}.cometchat.io (cometchat.Config.BaseURL:
	// without "/v3"; a trailing "/v3" means the same).
	APIURL string
	// AppID is the CometChat app id of the regional URL and of the appId
	// header (default Config.AppID).
	AppID string
	// Region is the CometChat app region (default "us").
	Region string
	// APIKey is a CometChat REST API key, sent in the apikey header. It is a
	// secret: never logged. Required with ClientAuth "cometchat".
	APIKey string
	// CacheTTL is how long a verified token is remembered (default 1
	// minute). A refused token is remembered for at most 5 seconds.
	CacheTTL time.Duration
	// CacheSize bounds the verified tokens remembered (default 10000).
	// Only tokens CometChat confirmed enter it, so tokens made up by a
	// caller cannot push verified ones out.
	CacheSize int
	// NegativeCacheSize bounds the refused tokens remembered (default
	// 1024), in a cache of their own.
	NegativeCacheSize int
	// Timeout bounds one call to CometChat (default 3 seconds).
	Timeout time.Duration
}

// client returns the cometchat.Client of c.
func (c CometChatConfig) client() (*cometchat.Client, error) {
	return cometchat.New(cometchat.Config{BaseURL: c.APIURL, AppID: c.AppID, Region: c.Region, APIKey: c.APIKey})
}

// LimitConfig sets the rate limits of the client API: a token bucket per
// client IP, charged by every request, and one per uid, charged by every
// request that is not answered from the cache of verified tokens (all of
// them with ClientAuth "trust-header"). A request over a limit gets 429 with
// Retry-After.
type LimitConfig struct {
	// IPRate is the requests per second one client IP may make (default
	// 20); IPv6 clients are counted per /64. Negative: no limit.
	IPRate float64
	// IPBurst is the most requests one client IP may make at once (default
	// 100).
	IPBurst int
	// UIDRate is the requests per second, not answered from the cache of
	// verified tokens, that may name one uid (default 5). Negative: no
	// limit.
	UIDRate float64
	// UIDBurst is the most such requests at once (default 50).
	UIDBurst int
	// TrustedProxies are the addresses of reverse proxies in front of the
	// server. A request from one of them is counted against the address
	// its X-Forwarded-For names: the rightmost entry that is not a trusted
	// proxy. Without TrustedProxies, X-Forwarded-For is ignored and the
	// client IP is the connection's peer.
	TrustedProxies []netip.Prefix
	// MaxTracked bounds the buckets kept, for IPs and for uids each
	// (default 100000); the least recently used are dropped first.
	MaxTracked int
}

// CORSConfig sets the browser origins that may call the client API. The
// webhook and the other endpoints never answer with CORS headers.
type CORSConfig struct {
	// AllowedOrigins are origins "scheme://host[:port]", compared exactly
	// (ASCII case aside; a default port may be written or left out), or
	// "scheme://host:*" for any port of that host. A request from another
	// origin gets no CORS headers, and its preflight 403. "*" is refused:
	// list the origins. Empty: no browser origin may call.
	AllowedOrigins []string
	// MaxAge is how long a browser may cache a preflight answer (default
	// 10 minutes).
	MaxAge time.Duration
}

// LoopbackOrigins are the browser origins of pages served from this
// machine, on any port; dev mode allows them.
var LoopbackOrigins = []string{"http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"}

// Config configures a Server. New fills the zero fields with the defaults
// named in their docs, then validates the result.
type Config struct {
	// Addr is the listen address of Start (default "127.0.0.1:8080"; a port
	// of 0 picks a free port, see Server.Addr).
	Addr string
	// Username and Password are the Basic auth credentials CometChat sends
	// with every webhook. Both are required; Password is a secret.
	Username, Password string
	// AppID is the CometChat app id every webhook must carry (required).
	AppID string
	// WebhookID, when set, is the id of the CometChat webhook configuration
	// every webhook must carry.
	WebhookID string
	// MaxBodyBytes is the largest webhook body accepted (default 1 MiB);
	// larger bodies get 413.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for the queue's acknowledgement
	// (default 1.5 s; CometChat waits about 2 s).
	PublishTimeout time.Duration
	// RetryAfter is the Retry-After of a 503 answer (default 10 s, the
	// delay of CometChat's first retry).
	RetryAfter time.Duration
	// MaxClockSkew is how far CometChat's clock may run ahead of ours
	// (default 5 minutes): an event time later than its receipt plus
	// MaxClockSkew is clamped (groupsync.Job.ClampTimes), counted in
	// groupsync_webhook_clamped_events_total and logged.
	MaxClockSkew time.Duration
	// ReadyTimeout bounds all ReadyChecks of one /readyz request (default
	// 2 s).
	ReadyTimeout time.Duration
	// Logger receives the server's logs. The zero value logs nothing.
	Logger zerolog.Logger
	// Registerer receives the server's metrics. When nil, New uses a fresh
	// registry. /metrics serves Gatherer, or Registerer when it is also a
	// prometheus.Gatherer (a *prometheus.Registry is), or else the default
	// gatherer.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves; see Registerer.
	Gatherer prometheus.Gatherer
	// Identities maps uids and guids to Virgil identities (required).
	Identities *groupsync.Identities
	// ClientAuth is how the client API authenticates callers:
	// ClientAuthCometChat (the default) or ClientAuthTrustHeader.
	ClientAuth string
	// CometChat is used by ClientAuthCometChat.
	CometChat CometChatConfig
	// Limits are the client API's rate limits (on by default).
	Limits LimitConfig
	// CORS lists the browser origins allowed to call the client API.
	CORS CORSConfig
	// Tokens issues Virgil JWTs for the client API (required).
	Tokens TokenIssuer
	// ReadyChecks are run by /readyz, each by name; any error makes the
	// server unready.
	ReadyChecks map[string]func(ctx context.Context) error
	// Degraded, when set, returns why the deployment works with less safety
	// than it should (for example no CometChat API key); /readyz then
	// answers 200 with status "degraded" and the reasons.
	Degraded func() []string
	// OnUserToken, when set, is called with the caller's uid after a Virgil
	// JWT was issued to them, before the answer is sent, so that pending
	// group adds can be finished once the user has a card. It should return
	// quickly; it handles its own errors.
	OnUserToken func(ctx context.Context, uid string)
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.ClientAuth == "" {
		c.ClientAuth = ClientAuthCometChat
	}
	if c.CometChat.AppID == "" {
		c.CometChat.AppID = c.AppID
	}
	if c.CometChat.Region == "" {
		c.CometChat.Region = DefaultRegion
	}
	if c.CometChat.CacheTTL == 0 {
		c.CometChat.CacheTTL = DefaultCacheTTL
	}
	if c.CometChat.Timeout == 0 {
		c.CometChat.Timeout = DefaultVerifyTimeout
	}
	if c.CometChat.CacheSize == 0 {
		c.CometChat.CacheSize = DefaultCacheSize
	}
	if c.CometChat.NegativeCacheSize == 0 {
		c.CometChat.NegativeCacheSize = DefaultNegativeCacheSize
	}
	l := &c.Limits
	if l.IPRate == 0 {
		l.IPRate = DefaultIPRate
	}
	if l.IPBurst == 0 {
		l.IPBurst = DefaultIPBurst
	}
	if l.UIDRate == 0 {
		l.UIDRate = DefaultUIDRate
	}
	if l.UIDBurst == 0 {
		l.UIDBurst = DefaultUIDBurst
	}
	if l.MaxTracked == 0 {
		l.MaxTracked = DefaultMaxTracked
	}
	if c.CORS.MaxAge == 0 {
		c.CORS.MaxAge = DefaultCORSMaxAge
	}
	return c
}

// validate reports every invalid field of a defaulted Config.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if c.Username == "" {
		bad("Username is required: CometChat's webhook must use Basic auth")
	}
	if c.Password == "" {
		bad("Password is required: CometChat's webhook must use Basic auth")
	}
	if c.AppID == "" {
		bad("AppID is required: webhooks are checked against the CometChat app id")
	}
	if c.MaxBodyBytes < 1 || c.MaxBodyBytes > maxBodyLimit {
		bad("MaxBodyBytes %d: want 1 to %d", c.MaxBodyBytes, maxBodyLimit)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"PublishTimeout", c.PublishTimeout},
		{"RetryAfter", c.RetryAfter},
		{"ReadyTimeout", c.ReadyTimeout},
		{"MaxClockSkew", c.MaxClockSkew},
		{"CometChat.CacheTTL", c.CometChat.CacheTTL},
		{"CometChat.Timeout", c.CometChat.Timeout},
		{"CORS.MaxAge", c.CORS.MaxAge},
	} {
		if d.d < 0 {
			bad("%s %v: must be positive", d.name, d.d)
		}
	}
	for _, n := range []struct {
		name string
		n    int
	}{
		{"CometChat.CacheSize", c.CometChat.CacheSize},
		{"CometChat.NegativeCacheSize", c.CometChat.NegativeCacheSize},
		{"Limits.IPBurst", c.Limits.IPBurst},
		{"Limits.UIDBurst", c.Limits.UIDBurst},
		{"Limits.MaxTracked", c.Limits.MaxTracked},
	} {
		if n.n < 1 {
			bad("%s %d: must be positive", n.name, n.n)
		}
	}
	for _, p := range c.Limits.TrustedProxies {
		if !p.IsValid() {
			bad("Limits.TrustedProxies: invalid prefix %v", p)
		}
	}
	for _, o := range c.CORS.AllowedOrigins {
		if _, err := parseOrigin(o, true); err != nil {
			bad("CORS.AllowedOrigins: %v", err)
		}
	}
	if c.Identities == nil {
		bad("Identities is required")
	}
	if c.Tokens == nil {
		bad("Tokens is required")
	}
	for name, check := range c.ReadyChecks {
		if name == "" || check == nil {
			bad("ReadyChecks: every check needs a name and a function")
			break
		}
	}
	switch c.ClientAuth {
	case ClientAuthTrustHeader:
	case ClientAuthCometChat:
		if c.CometChat.APIKey == "" {
			bad("CometChat.APIKey is required with ClientAuth %q", ClientAuthCometChat)
		}
		if _, err := c.CometChat.client(); err != nil && c.CometChat.APIKey != "" {
			errs = append(errs, err)
		}
	default:
		bad("ClientAuth %q: want %q or %q", c.ClientAuth, ClientAuthCometChat, ClientAuthTrustHeader)
	}
	if len(errs) > 0 {
		return fmt.Errorf("webhook: config: %w", errors.Join(errs...))
	}
	return nil
}
