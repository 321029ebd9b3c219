package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/redact"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/webhook"
	"github.com/groupsync/groupsync/worker"
)

// Config is what one process runs, parsed once from flags and the
// environment before anything starts. Its parts are the packages' own Config
// types; a nil part is not run. Main.Open starts the parts it names.
//
// Adding a setting is three small changes and a README row:
//
//  1. an entry in options (config.go): its flag name, usage, default, and
//     secret, secretFile (it names a file holding a secret, refused unless
//     mode 0600 or 0400) or isBool when it is one (the env var
//     GROUPSYNC_<NAME> follows);
//  2. its name in the option group below of the part that reads it (every
//     command running that part then accepts it);
//  3. one line in that group's parse function setting the field, usually a
//     field of the package's own Config (queue.Config, worker.Config,
//     webhook.Config, ...), which the package defaults and validates.
//
// A setting of a new part gets its own group, parse function and field here.
// TestReadmeConfigTable fails until the README's configuration table has
// the row.
type Config struct {
	// Logger is the process's one root logger.
	Logger zerolog.Logger
	// ShutdownTimeout is the grace period of Main.Close.
	ShutdownTimeout time.Duration
	// NATS is the NATS server of the queue (and of the JetStream KV store).
	NATS NATSConfig
	// Queue configures the job streams.
	Queue queue.Config
	// Audit configures the audit trail the worker appends to; Open sets
	// its Replicas to the job streams'.
	Audit queue.AuditConfig
	// Store selects the worker store.
	Store StoreConfig
	// Virgil is the Virgil service and the application that signs JWTs.
	Virgil VirgilConfig

	// EmbeddedNATS, when set, runs a nats-server in the process; Open points
	// NATS.URL at it.
	EmbeddedNATS *EmbeddedNATSConfig
	// Emulator, when set, serves the Virgil emulator; Open points an empty
	// Virgil.APIURL at it.
	Emulator *EmulatorConfig
	// Serve, when set, runs the HTTP server: webhooks and the client API.
	// Open fills in its ReadyChecks, OnUserToken and Registerer.
	Serve *webhook.Config
	// Worker, when set, runs a worker pool.
	Worker *WorkerConfig
	// Console, when set, serves the web console (with Serve: it needs the
	// queue, and shows the store and Virgil when the process has them).
	Console *ConsoleConfig
}

// ConsoleConfig serves the web console.
type ConsoleConfig struct {
	// Console configures the console; Open fills in its Logger,
	// Registerer and Version.
	Console console.Config
	// AnyPortIfTaken listens on a free port of the address's host when its
	// port is taken (dev mode).
	AnyPortIfTaken bool
}

// NATSConfig says how to reach NATS: servers, credentials, TLS. Every role
// connects through queue.Connect with it.
type NATSConfig = queue.ConnectConfig

// StoreConfig selects the worker store: Redis when RedisURL is set, else
// JetStream KV on the queue's NATS.
type StoreConfig struct {
	// RedisURL is GROUPSYNC_REDIS_URL as given (redis://, redis+sentinel://
	// or redis+cluster://); empty selects JetStream KV.
	RedisURL string
	// Redis is RedisURL parsed (zero when RedisURL is empty).
	Redis worker.RedisConfig
	// KV names the JetStream KV buckets (zero value: the defaults).
	KV worker.KVConfig
}

// VirgilConfig is the Virgil service and the application whose JWTs
// authenticate calls to it.
type VirgilConfig struct {
	// APIURL is the base URL of the Virgil services.
	APIURL string
	// ServiceKey, when set, is the key every card's "virgil" signature
	// must verify with (GROUPSYNC_VIRGIL_SERVICE_KEY); see ownerServiceKey.
	ServiceKey *virgil.PublicKey
	// JWT signs Virgil JWTs with the application's key.
	JWT *virgil.JWTGenerator
}

// WorkerConfig is a worker pool: the pool's own Config and the owner it acts
// as.
type WorkerConfig struct {
	// Pool configures the pool; Open fills in Reconciler, Groups, Meta,
	// Logger and Registerer.
	Pool worker.Config
	// OwnerIdentity is the Virgil identity that owns every group.
	OwnerIdentity string
	// OwnerKey is the owner's private key.
	OwnerKey *virgil.PrivateKey
	// ServiceKey verifies the "virgil" signature of every card; a member
	// whose card fails it gets no ticket (required: see ownerServiceKey).
	ServiceKey *virgil.PublicKey
	// Identities maps uids and guids to Virgil identities.
	Identities *groupsync.Identities
	// CometChat, when set, lets reconcile jobs, the scheduled reconcile and
	// the checks after a loss of Redis's data read groups from CometChat's
	// REST API.
	CometChat *cometchat.Config
	// MetricsAddr, when set, serves /metrics, /healthz and /readyz.
	MetricsAddr string
	// Pprof also serves Go's /debug/pprof/ profiles on MetricsAddr.
	Pprof bool
}

// EmulatorConfig serves the Virgil emulator.
type EmulatorConfig struct {
	// Addr is the listen address.
	Addr string
	// AnyPortIfTaken listens on a free port of Addr's host when Addr's port
	// is taken (dev mode).
	AnyPortIfTaken bool
	// Emulator configures the emulator itself.
	Emulator emulator.Config
}

// EmbeddedNATSConfig runs a nats-server with JetStream in the process.
type EmbeddedNATSConfig struct {
	// StoreDir holds JetStream's data.
	StoreDir string
	// Port is the client port; -1 picks a free one, and a taken port falls
	// back to a free one.
	Port int
}

// Option groups: the settings each part reads. A command registers the
// groups of the parts it runs.
var (
	logOptions       = []string{"log-level", "log-format"}
	lifecycleOptions = append([]string{"shutdown-timeout"}, logOptions...)
	natsOptions      = []string{"nats-url", "nats-token", "nats-creds-file", "nats-nkey-file", "nats-tls-ca-file", "nats-tls-cert-file", "nats-tls-key-file"}
	queueOptions     = []string{"partitions", "stream-replicas", "stream-max-msgs", "stream-max-bytes", "stream-max-age", "dlq-max-msgs", "dlq-max-bytes", "dlq-max-age", "stream-fill-threshold"}
	jobKeyOptions    = []string{"job-key", "job-key-previous"}
	auditOptions     = []string{"audit-max-age"}
	storeOptions     = []string{"redis-url"}
	virgilAppOptions = []string{"virgil-app-id", "virgil-app-key-id", "virgil-app-key"}
	virgilOptions    = append([]string{"virgil-api-url", "virgil-service-key"}, virgilAppOptions...)
	identityOptions  = []string{"identity-secret", "owner-identity"}
	cometchatOptions = []string{"cometchat-app-id", "cometchat-region", "cometchat-api-key", "cometchat-api-url"}
	clientAPIOptions = []string{"client-rate", "client-burst", "client-uid-rate", "client-uid-burst", "client-trusted-proxies", "cors-allowed-origins"}
	webhookOptions   = join([]string{"http-addr", "webhook-username", "webhook-password", "webhook-id", "client-auth", "max-clock-skew"}, cometchatOptions, clientAPIOptions)
	reconcileOptions = []string{"reconcile-interval", "reconcile-rate", "loss-window"}
	consoleOptions   = []string{"console-addr", "console-username", "console-password"}
	workerOptions    = join([]string{"concurrency", "owner-key-file", "metrics-addr", "pprof"}, auditOptions, cometchatOptions, reconcileOptions)
	emulatorOptions  = []string{"http-addr", "data-dir", "emulator-debug-api", "emulator-service-key"}
	devOptions       = join([]string{"http-addr", "data-dir", "emulator-addr", "console-addr", "nats-port", "owner-identity", "concurrency", "max-clock-skew", "virgil-service-key", devInsecureFlag}, auditOptions, cometchatOptions, clientAPIOptions, reconcileOptions)
)

// join concatenates option groups.
func join(groups ...[]string) []string {
	var all []string
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// logTimeFormat is the log lines' time: RFC 3339 with milliseconds.
// Workers apply a group's jobs one after another, often within a second,
// and their order across processes is what a lapse is traced by.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// zerolog's time format is process-wide: set once, before any logger runs.
func init() { zerolog.TimeFieldFormat = logTimeFormat }

// parseLogger builds the process's one root logger: JSON lines, or a
// console writer for people (the default of dev and of one-shot commands).
// Packages receive it through their Config.
func parseLogger(s *settings, w io.Writer, defaultFormat string) (zerolog.Logger, error) {
	level, err := s.oneOf("log-level", "debug", "info", "warn", "error")
	if err != nil {
		return zerolog.Nop(), err
	}
	format := defaultFormat
	if s.flagSet("log-format") || s.getenv(options["log-format"].env()) != "" {
		if format, err = s.oneOf("log-format", "json", "console"); err != nil {
			return zerolog.Nop(), err
		}
	}
	lvl, _ := zerolog.ParseLevel(level)
	// Every line passes through redact: no URL in any log line keeps its
	// user information or secret query values, whichever package wrote it.
	w = redact.Writer(w)
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// parseLifecycle reads the logger and the shutdown grace period into cfg.
func parseLifecycle(s *settings, cfg *Config, w io.Writer, defaultFormat string) error {
	log, err := parseLogger(s, w, defaultFormat)
	if err != nil {
		return err
	}
	grace, err := s.duration("shutdown-timeout")
	if err != nil {
		return err
	}
	cfg.Logger, cfg.ShutdownTimeout = log, grace
	return nil
}

// parseNATS reads the servers, credentials and TLS files of the NATS
// connection and checks them (URLs, one way to authenticate, files that
// open) before anything connects.
func parseNATS(s *settings, name string) (NATSConfig, error) {
	token, err := s.str("nats-token")
	if err != nil {
		return NATSConfig{}, err
	}
	c := NATSConfig{
		URL:         s.mustStr("nats-url"),
		Name:        name,
		Token:       token,
		CredsFile:   s.mustStr("nats-creds-file"),
		NKeyFile:    s.mustStr("nats-nkey-file"),
		TLSCAFile:   s.mustStr("nats-tls-ca-file"),
		TLSCertFile: s.mustStr("nats-tls-cert-file"),
		TLSKeyFile:  s.mustStr("nats-tls-key-file"),
	}
	if err := c.Validate(); err != nil {
		return NATSConfig{}, usagef("%v", err)
	}
	return c, nil
}

func parseQueue(s *settings, log zerolog.Logger) (queue.Config, error) {
	partitions, err := s.int("partitions", 1)
	if err != nil {
		return queue.Config{}, err
	}
	replicas, err := parseReplicas(s)
	if err != nil {
		return queue.Config{}, err
	}
	qc := queue.Config{Partitions: partitions, Replicas: replicas, Logger: log}
	for _, l := range []struct {
		name  string
		field *int64
		bytes bool
	}{
		{"stream-max-msgs", &qc.MaxJobs, false},
		{"stream-max-bytes", &qc.MaxJobBytes, true},
		{"dlq-max-msgs", &qc.DeadLetterMaxJobs, false},
		{"dlq-max-bytes", &qc.DeadLetterMaxBytes, true},
	} {
		v := s.mustStr(l.name)
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if l.bytes {
			n, err = parseByteSize(v)
		}
		if err != nil || n == 0 || n < -1 {
			return queue.Config{}, usagef("%s: %q is not a limit above 0, or -1 for none", l.name, v)
		}
		*l.field = n
	}
	if qc.MaxJobAge, err = s.duration("stream-max-age"); err != nil {
		return queue.Config{}, err
	}
	if qc.DeadLetterMaxAge, err = s.duration("dlq-max-age"); err != nil {
		return queue.Config{}, err
	}
	if qc.DeadLetterMaxAge == 0 {
		return queue.Config{}, usagef("dlq-max-age: must be more than 0")
	}
	v := s.mustStr("stream-fill-threshold")
	if qc.FillThreshold, err = strconv.ParseFloat(v, 64); err != nil || qc.FillThreshold <= 0 || qc.FillThreshold > 1 {
		return queue.Config{}, usagef("stream-fill-threshold: %q is not a number above 0 and at most 1", v)
	}
	return qc, nil
}

// parseReplicas reads stream-replicas. When it is not given, it returns 0:
// new streams and buckets get the default, live ones keep their count, so a
// process started without the setting (a one-off command, a forgotten
// variable) never shrinks a cluster's streams.
func parseReplicas(s *settings) (int, error) {
	replicas, err := s.int("stream-replicas", 1)
	if err != nil {
		return 0, err
	}
	if replicas > 5 {
		return 0, usagef("stream-replicas: %d: JetStream keeps at most 5 replicas", replicas)
	}
	if !s.flagSet("stream-replicas") && s.getenv(options["stream-replicas"].env()) == "" {
		return 0, nil
	}
	return replicas, nil
}

// parseJobKeys reads the job keys into qc. With required, a missing key
// stops the command: serve, worker and reconcile never run without one (the
// workers would have nothing to tell a forged job from a real one by). The
// queue gets appID, the CometChat app jobs must carry.
func parseJobKeys(s *settings, qc *queue.Config, appID string, required bool) error {
	var key string
	var err error
	if required {
		key, err = s.required("job-key")
	} else {
		key, err = s.str("job-key")
	}
	if err != nil {
		return err
	}
	prev, err := s.str("job-key-previous")
	if err != nil {
		return err
	}
	for _, k := range []struct{ name, v string }{{"job-key", key}, {"job-key-previous", prev}} {
		if k.v != "" && len(k.v) < queue.MinJobKeyLen {
			return usagef("%s: %d characters, want at least %d (make one with `openssl rand -hex 32`)", k.name, len(k.v), queue.MinJobKeyLen)
		}
	}
	if prev != "" && key == "" {
		return usagef("job-key-previous is set without job-key")
	}
	if key != "" {
		qc.JobKey = queue.JobKey(key)
	}
	if prev != "" {
		qc.PreviousJobKey = queue.JobKey(prev)
	}
	qc.AppID = appID
	return nil
}

// parseAudit reads the audit trail's settings.
func parseAudit(s *settings) (queue.AuditConfig, error) {
	age, err := s.duration("audit-max-age")
	if err != nil {
		return queue.AuditConfig{}, err
	}
	if age < time.Hour {
		return queue.AuditConfig{}, usagef("audit-max-age: %v is shorter than an hour", age)
	}
	return queue.AuditConfig{MaxAge: age}, nil
}

func parseStore(s *settings) (StoreConfig, error) {
	u := s.mustStr("redis-url")
	if u == "" {
		return StoreConfig{}, nil
	}
	rc, err := worker.ParseRedisURL(u)
	if err != nil {
		return StoreConfig{}, usagef("redis-url: %v", err)
	}
	return StoreConfig{RedisURL: u, Redis: rc}, nil
}

func parseVirgil(s *settings) (VirgilConfig, error) {
	appID, err := s.required("virgil-app-id")
	if err != nil {
		return VirgilConfig{}, err
	}
	keyID, err := s.required("virgil-app-key-id")
	if err != nil {
		return VirgilConfig{}, err
	}
	raw, err := s.required("virgil-app-key")
	if err != nil {
		return VirgilConfig{}, err
	}
	key, err := virgil.ParsePrivateKeyBase64(raw)
	if err != nil {
		return VirgilConfig{}, usagef("virgil-app-key: not a base64 PKCS#8 Ed25519 key: %v", err)
	}
	apiURL := ""
	if _, ok := s.values["virgil-api-url"]; ok {
		apiURL = s.mustStr("virgil-api-url")
		if u, err := url.Parse(apiURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return VirgilConfig{}, usagef("virgil-api-url: %q is not an http or https URL", apiURL)
		}
	}
	service, err := parseServiceKey(s)
	if err != nil {
		return VirgilConfig{}, err
	}
	return VirgilConfig{APIURL: apiURL, ServiceKey: service, JWT: &virgil.JWTGenerator{AppID: appID, AppKeyID: keyID, AppKey: key}}, nil
}

// parseServiceKey reads virgil-service-key, nil when unset.
func parseServiceKey(s *settings) (*virgil.PublicKey, error) {
	if _, ok := s.values["virgil-service-key"]; !ok {
		return nil, nil
	}
	raw := s.mustStr("virgil-service-key")
	if raw == "" {
		return nil, nil
	}
	k, err := virgil.ParsePublicKeyBase64(raw)
	if err != nil {
		return nil, usagef("virgil-service-key: not a base64 SPKI Ed25519 public key")
	}
	return k, nil
}

// ownerServiceKey is the key every card must carry Virgil's signature by
// for an owner acting through v: fail closed, with a one-line usage error,
// when v's API URL is not Virgil's and no key was given.
func ownerServiceKey(v VirgilConfig) (*virgil.PublicKey, error) {
	k, err := virgil.ServiceKeyFor(v.APIURL, v.ServiceKey)
	if err != nil {
		return nil, usagef("virgil-service-key is required: the Virgil API URL %s is not %s, so set GROUPSYNC_VIRGIL_SERVICE_KEY to the public key of its card signatures (an emulator publishes it at %s)",
			v.APIURL, virgil.VirgilAPIURL, emulator.ServiceKeyPath)
	}
	return k, nil
}

// OwnerSettings is what every command acting as the owner reads first: the
// Virgil service and application, the key that checks the cards' Virgil
// signature, and the owner's identity.
type OwnerSettings struct {
	// Virgil is the service and the application signing JWTs.
	Virgil VirgilConfig
	// ServiceKey verifies the cards' Virgil signature.
	ServiceKey *virgil.PublicKey
	// OwnerIdentity is the Virgil identity that owns every group.
	OwnerIdentity string
}

// parseOwnerSettings reads the Virgil settings, the service key an owner
// requires (ownerServiceKey) and the owner identity, in that order.
func parseOwnerSettings(s *settings) (OwnerSettings, error) {
	var o OwnerSettings
	var err error
	if o.Virgil, err = parseVirgil(s); err != nil {
		return OwnerSettings{}, err
	}
	if o.ServiceKey, err = ownerServiceKey(o.Virgil); err != nil {
		return OwnerSettings{}, err
	}
	if o.OwnerIdentity, err = parseOwnerIdentity(s); err != nil {
		return OwnerSettings{}, err
	}
	return o, nil
}

// owner acts as the owner with key, through a Virgil client of its own.
func (o OwnerSettings) owner(key *virgil.PrivateKey) *virgil.Owner {
	client := virgil.NewClient(o.Virgil.APIURL, o.Virgil.JWT.Source(o.OwnerIdentity))
	return virgil.NewOwner(client, key, o.OwnerIdentity, virgil.WithServiceKey(o.ServiceKey))
}

func parseOwnerIdentity(s *settings) (string, error) {
	identity := s.mustStr("owner-identity")
	if err := virgil.ValidateIdentity(identity); err != nil {
		return "", usagef("owner-identity: %v", err)
	}
	return identity, nil
}

func parseIdentities(s *settings) (*groupsync.Identities, error) {
	secret, err := s.required("identity-secret")
	if err != nil {
		return nil, err
	}
	ids, err := groupsync.NewIdentities([]byte(secret), s.mustStr("owner-identity"))
	if err != nil {
		return nil, usagef("identity-secret: %v", err)
	}
	return ids, nil
}

// parseCometChat returns the REST client's config, or nil when no API key is
// set and required is false.
func parseCometChat(s *settings, required bool) (*cometchat.Config, error) {
	key, err := s.str("cometchat-api-key")
	if err != nil {
		return nil, err
	}
	if key == "" && !required {
		return nil, nil
	}
	if key, err = s.required("cometchat-api-key"); err != nil {
		return nil, err
	}
	cfg := &cometchat.Config{
		AppID:   s.mustStr("cometchat-app-id"),
		Region:  s.mustStr("cometchat-region"),
		BaseURL: s.mustStr("cometchat-api-url"),
		APIKey:  key,
	}
	if cfg.BaseURL == "" && cfg.AppID == "" {
		return nil, usagef("cometchat-app-id (or cometchat-api-url) is required")
	}
	if _, err := cometchat.New(*cfg); err != nil {
		return nil, usagef("%v", err)
	}
	return cfg, nil
}

// parseClientAPI reads the client API's rate limits and CORS origins into
// cfg. dev also allows the loopback origins.
func parseClientAPI(s *settings, cfg *webhook.Config, dev bool) error {
	rate := func(name string) (float64, error) {
		v, err := strconv.ParseFloat(s.mustStr(name), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, usagef("%s: %q is not a rate (requests per second, 0: no limit)", name, s.mustStr(name))
		}
		if v == 0 {
			return -1, nil // webhook.LimitConfig: negative is no limit
		}
		return v, nil
	}
	var err error
	l := &cfg.Limits
	if l.IPRate, err = rate("client-rate"); err != nil {
		return err
	}
	if l.UIDRate, err = rate("client-uid-rate"); err != nil {
		return err
	}
	if l.IPBurst, err = s.int("client-burst", 1); err != nil {
		return err
	}
	if l.UIDBurst, err = s.int("client-uid-burst", 1); err != nil {
		return err
	}
	if l.TrustedProxies, err = webhook.ParseTrustedProxies(s.mustStr("client-trusted-proxies")); err != nil {
		return usagef("client-trusted-proxies: %v", err)
	}
	var origins []string
	for _, o := range strings.Split(s.mustStr("cors-allowed-origins"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	if dev {
		origins = append(origins, webhook.LoopbackOrigins...)
	}
	cfg.CORS.AllowedOrigins = origins
	if err := webhook.CheckOrigins(origins); err != nil {
		return usagef("cors-allowed-origins: %v", err)
	}
	return nil
}

// parseMaxClockSkew reads max-clock-skew: a positive duration.
func parseMaxClockSkew(s *settings) (time.Duration, error) {
	skew, err := s.duration("max-clock-skew")
	if err != nil {
		return 0, err
	}
	if skew <= 0 {
		return 0, usagef("max-clock-skew: %q must be longer than zero", s.mustStr("max-clock-skew"))
	}
	return skew, nil
}

// parseWebhook reads the HTTP server's settings; the caller sets its
// Identities and Tokens.
func parseWebhook(s *settings, log zerolog.Logger) (*webhook.Config, error) {
	user, err := s.required("webhook-username")
	if err != nil {
		return nil, err
	}
	pass, err := s.required("webhook-password")
	if err != nil {
		return nil, err
	}
	appID, err := s.required("cometchat-app-id")
	if err != nil {
		return nil, err
	}
	auth, err := s.oneOf("client-auth", webhook.ClientAuthCometChat, webhook.ClientAuthTrustHeader)
	if err != nil {
		return nil, err
	}
	apiKey, err := s.str("cometchat-api-key")
	if err != nil {
		return nil, err
	}
	if auth == webhook.ClientAuthCometChat && apiKey == "" {
		return nil, usagef("cometchat-api-key is required with client-auth cometchat (set GROUPSYNC_COMETCHAT_API_KEY, or client-auth trust-header behind a gateway)")
	}
	if auth == webhook.ClientAuthCometChat {
		// The same checks as the REST client's, reported at start.
		if _, err := parseCometChat(s, true); err != nil {
			return nil, err
		}
	}
	skew, err := parseMaxClockSkew(s)
	if err != nil {
		return nil, err
	}
	cfg := &webhook.Config{
		Addr:         s.mustStr("http-addr"),
		MaxClockSkew: skew,
		Username:     user,
		Password:     pass,
		AppID:        appID,
		WebhookID:    s.mustStr("webhook-id"),
		Logger:       log,
		ClientAuth:   auth,
		CometChat: webhook.CometChatConfig{
			APIURL: s.mustStr("cometchat-api-url"),
			Region: s.mustStr("cometchat-region"),
			APIKey: apiKey,
		},
	}
	if err := parseClientAPI(s, cfg, false); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseWorker(s *settings, ids *groupsync.Identities) (*WorkerConfig, error) {
	conc, err := s.int("concurrency", 0)
	if err != nil {
		return nil, err
	}
	identity, err := parseOwnerIdentity(s)
	if err != nil {
		return nil, err
	}
	key, err := loadOwnerKey(s.settingName("owner-key-file"), s.mustStr("owner-key-file"))
	if err != nil {
		return nil, err
	}
	cc, err := parseCometChat(s, false)
	if err != nil {
		return nil, err
	}
	profile, err := s.bool("pprof")
	if err != nil {
		return nil, err
	}
	pool := worker.Config{Concurrency: conc}
	if err := parseReconcile(s, &pool, cc != nil); err != nil {
		return nil, err
	}
	return &WorkerConfig{
		Pool:          pool,
		OwnerIdentity: identity,
		OwnerKey:      key,
		Identities:    ids,
		CometChat:     cc,
		MetricsAddr:   s.mustStr("metrics-addr"),
		Pprof:         profile,
	}, nil
}

// parseReconcile reads the scheduled reconcile's interval and rate and the
// loss checks' window into pc; the scheduled reconcile runs only with a
// CometChat API key (withAPIKey).
func parseReconcile(s *settings, pc *worker.Config, withAPIKey bool) error {
	interval, err := s.duration("reconcile-interval")
	if err != nil {
		return err
	}
	if pc.ReconcileRate, err = s.float("reconcile-rate"); err != nil {
		return err
	}
	if pc.LossWindow, err = s.duration("loss-window"); err != nil {
		return err
	}
	if pc.LossWindow < time.Minute {
		return usagef("loss-window: %s is shorter than CometChat's retries (+10 s, +30 s) plus the queue's lag; use at least 1m", pc.LossWindow)
	}
	if withAPIKey {
		pc.ReconcileInterval = interval
	}
	return nil
}

// parseRole registers opts for the role name, parses args and the
// lifecycle settings. It returns the settings to read the rest from.
func parseRole(e env, name string, args []string, defaultFormat string, cfg *Config, opts ...string) (*settings, error) {
	s := newSettings(name, e.getenv, append(opts, lifecycleOptions...)...)
	if err := s.parse(args, e.stdout); err != nil {
		return nil, err
	}
	if err := parseLifecycle(s, cfg, e.stderr, defaultFormat); err != nil {
		return nil, err
	}
	return s, nil
}

// parseBackends reads what serve and worker share: NATS, the queue with its
// replicas and job keys (both require a job key and the CometChat app id),
// the store, Virgil and the identity mapping.
func parseBackends(s *settings, cfg *Config, name string) (*groupsync.Identities, error) {
	var err error
	if cfg.NATS, err = parseNATS(s, name); err != nil {
		return nil, err
	}
	if cfg.Queue, err = parseQueue(s, cfg.Logger); err != nil {
		return nil, err
	}
	appID, err := s.required("cometchat-app-id")
	if err != nil {
		return nil, err
	}
	if err := parseJobKeys(s, &cfg.Queue, appID, true); err != nil {
		return nil, err
	}
	if cfg.Store, err = parseStore(s); err != nil {
		return nil, err
	}
	cfg.Store.KV.Replicas = cfg.Queue.Replicas
	if cfg.Virgil, err = parseVirgil(s); err != nil {
		return nil, err
	}
	return parseIdentities(s)
}

// parseServe parses the configuration of `groupsync serve`.
func parseServe(e env, args []string) (Config, error) {
	var cfg Config
	s, err := parseRole(e, "serve", args, "json", &cfg,
		join(natsOptions, queueOptions, jobKeyOptions, storeOptions, virgilOptions, identityOptions, webhookOptions, consoleOptions)...)
	if err != nil {
		return cfg, err
	}
	if cfg.Serve, err = parseWebhook(s, cfg.Logger); err != nil {
		return cfg, err
	}
	if cfg.Console, err = parseConsole(s); err != nil {
		return cfg, err
	}
	if cfg.Console != nil {
		// The proxies in front of serve are in front of its console too.
		cfg.Console.Console.TrustedProxies = cfg.Serve.Limits.TrustedProxies
	}
	ids, err := parseBackends(s, &cfg, "groupsync-serve")
	if err != nil {
		return cfg, err
	}
	cfg.Serve.Identities, cfg.Serve.Tokens = ids, webhook.VirgilTokens{Generator: cfg.Virgil.JWT}
	if cfg.Console != nil {
		setConsoleCSRFKeys(&cfg.Console.Console, cfg.Queue)
	}
	return cfg, nil
}

// consoleCSRFLabel is what the job key signs to make the web console's
// CSRF key. Job signatures are made over job bodies, JSON objects, which
// never equal it, so no signature a NATS reader sees is the CSRF key.
const consoleCSRFLabel = "groupsync console csrf v1"

// consoleCSRFKey derives the web console's CSRF key from a job key:
// HMAC-SHA256 of consoleCSRFLabel under it. Every serve of a deployment
// holds the same job key, so their consoles accept each other's tokens
// (behind one address, a form one serve rendered posts to another) without
// a secret of their own; the derivation is one way, so the CSRF key tells
// nothing of the job key. Nil for no key.
func consoleCSRFKey(jobKey queue.JobKey) []byte {
	if len(jobKey) == 0 {
		return nil
	}
	mac := hmac.New(sha256.New, jobKey)
	mac.Write([]byte(consoleCSRFLabel))
	return mac.Sum(nil)
}

// setConsoleCSRFKeys gives the console the CSRF keys of qc's job keys: it
// makes tokens under the current one and accepts those of the previous
// one too, so a job key rotation, process by process, refuses no form.
func setConsoleCSRFKeys(c *console.Config, qc queue.Config) {
	c.CSRFKey = consoleCSRFKey(qc.JobKey)
	c.PreviousCSRFKey = consoleCSRFKey(qc.PreviousJobKey)
}

// parseWorkerRole parses the configuration of `groupsync worker`.
func parseWorkerRole(e env, args []string) (Config, error) {
	var cfg Config
	s, err := parseRole(e, "worker", args, "json", &cfg,
		join(natsOptions, queueOptions, jobKeyOptions, storeOptions, virgilOptions, identityOptions, workerOptions)...)
	if err != nil {
		return cfg, err
	}
	ids, err := parseBackends(s, &cfg, "groupsync-worker")
	if err != nil {
		return cfg, err
	}
	if cfg.Audit, err = parseAudit(s); err != nil {
		return cfg, err
	}
	cfg.Audit.Replicas = cfg.Queue.Replicas
	if cfg.Worker, err = parseWorker(s, ids); err != nil {
		return cfg, err
	}
	cfg.Worker.ServiceKey, err = ownerServiceKey(cfg.Virgil)
	return cfg, err
}

// parseEmulator parses the configuration of `groupsync emulator`.
func parseEmulator(e env, args []string) (Config, error) {
	var cfg Config
	s, err := parseRole(e, "emulator", args, "json", &cfg, join(virgilAppOptions, emulatorOptions)...)
	if err != nil {
		return cfg, err
	}
	v, err := parseVirgil(s)
	if err != nil {
		return cfg, err
	}
	debug, err := s.bool("emulator-debug-api")
	if err != nil {
		return cfg, err
	}
	var service *virgil.PrivateKey
	if raw, err := s.str("emulator-service-key"); err != nil {
		return cfg, err
	} else if raw != "" {
		if service, err = virgil.ParsePrivateKeyBase64(raw); err != nil {
			return cfg, usagef("emulator-service-key: not a base64 PKCS#8 Ed25519 key")
		}
	}
	cfg.Emulator = &EmulatorConfig{
		Addr:     s.mustStr("http-addr"),
		Emulator: emulatorConfig(v.JWT, s.mustStr("data-dir"), service, debug, cfg.Logger),
	}
	return cfg, nil
}

// emulatorConfig is the emulator of the application that jwt signs for.
func emulatorConfig(jwt *virgil.JWTGenerator, dir string, serviceKey *virgil.PrivateKey, debug bool, log zerolog.Logger) emulator.Config {
	return emulator.Config{
		AppID:        jwt.AppID,
		AppKeyID:     jwt.AppKeyID,
		AppPublicKey: jwt.AppKey.Public(),
		ServiceKey:   serviceKey,
		Dir:          dir,
		Logger:       log,
		DebugAPI:     debug,
	}
}

// parseConsole reads the web console's settings: nil when none is set (the
// console is off), an error naming what is missing when only some are.
func parseConsole(s *settings) (*ConsoleConfig, error) {
	addr := s.mustStr("console-addr")
	user := s.mustStr("console-username")
	pass, err := s.str("console-password")
	if err != nil {
		return nil, err
	}
	if addr == "" && user == "" && pass == "" {
		return nil, nil
	}
	var missing []string
	for _, m := range []struct{ name, v string }{{"console-addr", addr}, {"console-username", user}, {"console-password", pass}} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, usagef("the web console needs console-addr, console-username and console-password together; %s not set (set all three, or none to leave it off)", strings.Join(missing, ", "))
	}
	cfg := console.Config{Addr: addr, Username: user, Password: pass}
	if err := cfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return &ConsoleConfig{Console: cfg}, nil
}
