package queue

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/redact"
)

// Defaults for the zero-value fields of ConnectConfig.
const (
	DefaultReconnectWait   = 250 * time.Millisecond
	DefaultReconnectJitter = 500 * time.Millisecond
	DefaultConnectTimeout  = 5 * time.Second
)

// ConnectConfig says how a process reaches NATS. Every groupsync role
// connects through Connect with it, so all of them accept the same servers,
// credentials and TLS settings.
//
// At most one way of authenticating may be given: user and password (or a
// token) in the URLs, Token, CredsFile or NKeyFile. TLS (TLSCAFile,
// TLSCertFile, TLSKeyFile) combines with any of them.
type ConnectConfig struct {
	// URL is one NATS server or a comma-separated list of them, such as the
	// nodes of a cluster ("nats://n1:4222,nats://n2:4222"). Schemes: nats,
	// tls (TLS required), ws, wss. A URL may carry "user:password@" or
	// "token@"; Connect never prints it unredacted.
	URL string
	// Name is the connection name the server shows (monitoring, logs).
	Name string
	// Token authenticates with a NATS token (a secret).
	Token string
	// CredsFile is a NATS .creds file (user JWT and NKey seed), for servers
	// run in operator mode. Like NKeyFile and TLSKeyFile it must be private
	// to its owner (see Validate).
	CredsFile string
	// NKeyFile is a file holding an NKey user seed ("SU…").
	NKeyFile string
	// TLSCAFile is a PEM file of the authorities that sign the servers'
	// certificates; setting it requires TLS. Empty: the system's roots
	// (with a tls:// URL).
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the client certificate and its key
	// (PEM) for servers that verify clients; set both or neither. Setting
	// them requires TLS.
	TLSCertFile, TLSKeyFile string
	// ReconnectWait is the pause before trying a server again after a
	// disconnect (default 250 ms); ReconnectJitter (default 500 ms) adds a
	// random part to it, so a fleet of processes does not reconnect in
	// lockstep after a node dies. The connection never gives up
	// reconnecting.
	ReconnectWait, ReconnectJitter time.Duration
	// Timeout bounds the connection to one server (default 5 s).
	Timeout time.Duration
	// Logger receives disconnects, reconnects and asynchronous errors (a
	// permission violation, a slow consumer). The zero value logs nothing.
	Logger zerolog.Logger
}

// String describes the configuration without its secrets, for logs.
func (c ConnectConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "servers %s, auth %s", redact.URL(c.URL), c.authMethod())
	if c.tls() {
		b.WriteString(", tls")
	}
	return b.String()
}

func (c ConnectConfig) tls() bool {
	return c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != ""
}

// authMethod names the way of authenticating configured ("none" when
// nothing is).
func (c ConnectConfig) authMethod() string {
	var m []string
	if c.Token != "" {
		m = append(m, "token")
	}
	if c.CredsFile != "" {
		m = append(m, "creds file")
	}
	if c.NKeyFile != "" {
		m = append(m, "nkey")
	}
	for _, u := range splitURLs(c.URL) {
		if p, err := url.Parse(u); err == nil && p.User != nil {
			m = append(m, "url user info")
			break
		}
	}
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(m, "+")
}

// splitURLs splits a comma-separated server list, dropping blanks.
func splitURLs(list string) []string {
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// Validate checks c as Connect would before connecting: the server URLs,
// that at most one way of authenticating is given, and that the files it
// names can be opened; the secret ones (CredsFile, NKeyFile, TLSKeyFile)
// must be regular files that group and others may neither read nor write
// (secretfile.Check: mode 0600 or 0400, a link judged by its target). Its errors match ErrInvalidConfig and hold no secret.
func (c ConnectConfig) Validate() error {
	_, err := c.validate()
	return err
}

// validate checks c without I/O other than opening the files it names,
// and returns the cleaned server list. It reports every invalid setting,
// joined.
func (c ConnectConfig) validate() ([]string, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	urls := splitURLs(c.URL)
	if len(urls) == 0 {
		bad("no server URL")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			bad("server URL %s: %v", redact.URL(raw), redact.Error(errors.Unwrap(err)))
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			bad("server URL %s: scheme %q, want nats, tls, ws or wss", redact.URL(raw), u.Scheme)
		}
		if u.Host == "" {
			bad("server URL %s has no host", redact.URL(raw))
		}
	}
	if m := c.authMethod(); strings.Contains(m, "+") {
		bad("more than one way to authenticate (%s); give one", m)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("a TLS client certificate needs both its certificate and key files")
	}
	for _, f := range []struct {
		what, path string
		secret     bool // refused when group or others may read or write it
	}{
		{"creds file", c.CredsFile, true},
		{"nkey seed file", c.NKeyFile, true},
		{"TLS CA file", c.TLSCAFile, false},
		{"TLS certificate file", c.TLSCertFile, false},
		{"TLS key file", c.TLSKeyFile, true},
	} {
		if f.path == "" {
			continue
		}
		if f.secret {
			if err := secretfile.Check(f.what, f.path); errors.Is(err, secretfile.ErrNotPrivate) {
				errs = append(errs, err)
				continue
			}
		}
		fh, err := os.Open(f.path)
		if err != nil {
			bad("%s: %v", f.what, err)
			continue
		}
		fh.Close()
	}
	if len(errs) > 0 {
		return nil, invalidf("queue: nats: %v", errors.Join(errs...))
	}
	return urls, nil
}

// Connect connects to the first reachable server of cfg.URL with cfg's
// credentials and TLS settings, and returns a connection that keeps
// reconnecting, to any server of the list or learned from the cluster, for
// as long as it is open: a NATS restart or the loss of one cluster node is a
// blip, not a failure. Publishes made while disconnected are not buffered;
// they fail at once, so callers can answer 503 rather than hope.
//
// Errors match ErrInvalidConfig for a configuration mistake (before any I/O)
// and ErrUnavailable when no server could be reached; an authentication
// failure is reported as such. No error or log line holds a password,
// token or user information from the URLs.
func Connect(cfg ConnectConfig) (*nats.Conn, error) {
	urls, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.ReconnectWait == 0 {
		cfg.ReconnectWait = DefaultReconnectWait
	}
	if cfg.ReconnectJitter == 0 {
		cfg.ReconnectJitter = DefaultReconnectJitter
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultConnectTimeout
	}
	log := cfg.Logger
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectJitter(cfg.ReconnectJitter, cfg.ReconnectJitter),
		nats.ReconnectBufSize(-1),
		nats.Timeout(cfg.Timeout),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(redact.Error(err)).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("nats_url", redact.URL(c.ConnectedUrl())).Msg("nats reconnected")
		}),
		nats.ClosedHandler(func(c *nats.Conn) {
			if err := c.LastError(); err != nil {
				log.Error().Err(redact.Error(err)).Msg("nats connection closed")
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(redact.Error(err))
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats error")
		}),
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, invalidf("queue: nats: nkey seed file: %v", redact.Error(err))
		}
		opts = append(opts, opt)
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	if cfg.tls() {
		opts = append(opts, nats.Secure())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, connectError(cfg, err)
	}
	log.Debug().Str("nats_url", redact.URL(nc.ConnectedUrl())).Str("auth", cfg.authMethod()).
		Bool("tls", nc.TLSRequired() || cfg.tls()).Msg("nats connected")
	return nc, nil
}

// connectError describes a failed connect without secrets.
func connectError(cfg ConnectConfig, err error) error {
	err = redact.Error(err)
	servers := redact.URL(cfg.URL)
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired),
		strings.Contains(strings.ToLower(err.Error()), "authorization violation"):
		return fmt.Errorf("queue: connect to NATS at %s: credentials refused (auth: %s): %w", servers, cfg.authMethod(), err)
	case isUnavailable(err):
		return fmt.Errorf("%w: connect to NATS at %s: %w", ErrUnavailable, servers, err)
	}
	return fmt.Errorf("queue: connect to NATS at %s: %w", servers, err)
}
