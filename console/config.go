package console

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults of the zero-value fields of Config.
const (
	// DefaultAddr is the listen address of Start.
	DefaultAddr = "127.0.0.1:8090"
	// DefaultFailureRate is how many failed logins per second a client IP
	// earns back: one every 12 seconds, 5 a minute.
	DefaultFailureRate = 1.0 / 12
	// DefaultFailureBurst is how many failed logins a client IP may make
	// before it is answered 429.
	DefaultFailureBurst = 5
	// DefaultMaxTracked bounds the client IPs whose failures are counted;
	// the least recently seen are forgotten first.
	DefaultMaxTracked = 10000
	// DefaultRequestTimeout bounds the Backend's work for one request.
	DefaultRequestTimeout = 30 * time.Second
	// MinPasswordLen is the shortest password New accepts.
	MinPasswordLen = 12
	// MinCSRFKeyLen is the shortest CSRFKey New accepts.
	MinCSRFKeyLen = 32
)

// Config configures a Server. New fills the zero fields with the defaults
// named in their docs, then validates the result.
type Config struct {
	// Addr is the listen address of Start (default "127.0.0.1:8090"; a port
	// of 0 picks a free port, see Server.Addr).
	Addr string
	// Username and Password are the HTTP Basic auth credentials of every
	// page (both required; the user name without ":", the password at
	// least MinPasswordLen characters). Password is a secret: never logged
	// or shown.
	Username, Password string
	// Version is shown in the pages' footer.
	Version string
	// Logger receives one line per request (never a header or a
	// credential) and the retries and purges done.
	Logger zerolog.Logger
	// Registerer, when set, gets the console's metrics:
	// groupsync_console_requests_total{page,status} and
	// groupsync_console_failed_logins_total.
	Registerer prometheus.Registerer
	// FailureRate is the failed logins per second a client IP earns back
	// (default 1/12); FailureBurst the failures it may make before it is
	// answered 429 (default 5).
	FailureRate  float64
	FailureBurst int
	// MaxTracked bounds the client IPs whose failures are counted (default
	// 10000).
	MaxTracked int
	// TrustedProxies are the reverse proxies in front of the console: a
	// request from one of them is counted against the rightmost address of
	// its X-Forwarded-For that is not a trusted proxy. Empty:
	// X-Forwarded-For is ignored and the client is the connection's peer.
	TrustedProxies []netip.Prefix
	// CSRFKey is the key of the CSRF tokens, at least 32 bytes (default:
	// random, made by New, so tokens change with every restart). Processes
	// serving the same console behind one address give it the same key, or
	// a form one of them rendered is refused by the others; groupsync
	// derives it from the job key, which they share. It is a secret: never
	// logged or shown.
	CSRFKey []byte
	// PreviousCSRFKey, when set (at least 32 bytes, and only with
	// CSRFKey), is a key whose tokens are accepted too but never made:
	// while the key changes, process by process, a form rendered by a
	// process still on one key posts to a process on the other. It is a
	// secret: never logged or shown.
	PreviousCSRFKey []byte
	// RequestTimeout bounds the Backend's work for one request (default 30
	// seconds).
	RequestTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.FailureRate == 0 {
		c.FailureRate = DefaultFailureRate
	}
	if c.FailureBurst == 0 {
		c.FailureBurst = DefaultFailureBurst
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = DefaultMaxTracked
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	return c
}

// validate reports every invalid field, joined.
func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	switch {
	case c.Username == "":
		bad("Username is required: every page needs Basic auth")
	case strings.ContainsAny(c.Username, ":\r\n"):
		bad("Username: must not contain a colon or a line break (Basic auth cannot carry them)")
	}
	switch {
	case c.Password == "":
		bad("Password is required: every page needs Basic auth")
	case len(c.Password) < MinPasswordLen:
		bad("Password: %d characters, want at least %d", len(c.Password), MinPasswordLen)
	}
	if !(c.FailureRate > 0) {
		bad("FailureRate %v: must be positive", c.FailureRate)
	}
	if c.FailureBurst < 1 {
		bad("FailureBurst %d: must be positive", c.FailureBurst)
	}
	if c.MaxTracked < 1 {
		bad("MaxTracked %d: must be positive", c.MaxTracked)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			bad("TrustedProxies: invalid prefix %v", p)
		}
	}
	if c.CSRFKey != nil && len(c.CSRFKey) < MinCSRFKeyLen {
		bad("CSRFKey: %d bytes, want at least %d", len(c.CSRFKey), MinCSRFKeyLen)
	}
	switch {
	case c.PreviousCSRFKey != nil && c.CSRFKey == nil:
		bad("PreviousCSRFKey is set without CSRFKey: a random key would not be shared with the processes the previous key serves")
	case c.PreviousCSRFKey != nil && len(c.PreviousCSRFKey) < MinCSRFKeyLen:
		bad("PreviousCSRFKey: %d bytes, want at least %d", len(c.PreviousCSRFKey), MinCSRFKeyLen)
	}
	if c.RequestTimeout < 0 {
		bad("RequestTimeout %v: must be positive", c.RequestTimeout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("console: config: %w", errors.Join(errs...))
	}
	return nil
}

// Validate reports every invalid field of c once the defaults are filled
// in, joined, as New would.
func (c Config) Validate() error { return c.withDefaults().validate() }
