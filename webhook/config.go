package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

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

// TokenIssuer issues the Virgil JWTs that E3Kit clients fetch from
// GET /v1/virgil-jwt. It must be safe for concurrent use.
type TokenIssuer interface {
	// IssueToken returns a fresh Virgil JWT for the Virgil identity.
	IssueToken(identity string) (token string, err error)
}

// CometChatConfig tells the client API how to reach CometChat's REST API to
// check a caller's auth token (ClientAuth "cometchat").
type CometChatConfig struct {
	// APIURL overrides the regional REST base URL
	// https://{AppID}.api-{Region}.cometchat.io, with or without the "/v3"
	// suffix.
	APIURL string
	// AppID is the CometChat app id of the regional URL and of the appId
	// header (default Config.AppID).
	AppID string
	// Region is the CometChat app region (default "us").
	Region string
	// APIKey is a CometChat REST API key, sent in the apikey header. It is a
	// secret: never logged. Required with ClientAuth "cometchat".
	APIKey string
	// CacheTTL is how long a valid token is remembered (default 1 minute).
	// An invalid token is remembered for at most 5 seconds.
	CacheTTL time.Duration
	// Timeout bounds one call to CometChat (default 3 seconds).
	Timeout time.Duration
}

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
	// Tokens issues Virgil JWTs for the client API (required).
	Tokens TokenIssuer
	// ReadyChecks are run by /readyz, each by name; any error makes the
	// server unready.
	ReadyChecks map[string]func(ctx context.Context) error
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
		{"CometChat.CacheTTL", c.CometChat.CacheTTL},
		{"CometChat.Timeout", c.CometChat.Timeout},
	} {
		if d.d < 0 {
			bad("%s %v: must be positive", d.name, d.d)
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
		if _, err := c.CometChat.baseURL(); err != nil {
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

// baseURL returns the REST base URL without the "/v3" suffix.
func (c CometChatConfig) baseURL() (string, error) {
	if c.APIURL == "" {
		if c.AppID == "" {
			return "", errors.New("CometChat.AppID or CometChat.APIURL is required")
		}
		return fmt.Sprintf("https://%s.api-%s.cometchat.io", url.PathEscape(c.AppID), url.PathEscape(c.Region)), nil
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("CometChat.APIURL %q: want an http or https URL", c.APIURL)
	}
	base := strings.TrimRight(c.APIURL, "/")
	base = strings.TrimSuffix(base, "/v3")
	return base, nil
}
