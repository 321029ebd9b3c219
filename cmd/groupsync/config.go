package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/groupsync/groupsync/internal/secretfile"
)

// usageError is a configuration mistake: main prints it on one line and
// exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// option describes one setting: its flag, its environment variable and, for
// secrets, that it is read only from the environment or a file.
type option struct {
	name   string // flag name in kebab case
	usage  string
	def    string
	secret bool // value from GROUPSYNC_X or GROUPSYNC_X_FILE (or --x-file), never from a flag
	// secretFile: the value names a file holding a secret, refused unless
	// private to its owner, as the files of secret options are.
	secretFile bool
	isBool     bool // a bare --x means true, as with Go's flag package
}

// env returns the option's environment variable, GROUPSYNC_ + the flag name
// in upper snake case.
func (o option) env() string {
	return "GROUPSYNC_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

// options is every setting of every command. The README's configuration table
// is checked against it by a test.
var options = map[string]option{
	"http-addr":                    {name: "http-addr", usage: "listen address of the HTTP server (\":0\" picks a port)", def: "127.0.0.1:8080"},
	"metrics-addr":                 {name: "metrics-addr", usage: "worker: listen address for /metrics and /healthz (empty: none)"},
	"pprof":                        {name: "pprof", usage: "worker: also serve Go's /debug/pprof/ profiles on the metrics address (keep it private)", def: "false", isBool: true},
	"data-dir":                     {name: "data-dir", usage: "dev and emulator: folder for embedded NATS data, keys and dev.json", def: ".groupsync"},
	"nats-url":                     {name: "nats-url", usage: "NATS server with JetStream, or a comma-separated list of cluster nodes; may carry user:password@ or token@", def: "nats://127.0.0.1:4222"},
	"nats-token":                   {name: "nats-token", usage: "NATS authentication token", secret: true},
	"nats-creds-file":              {name: "nats-creds-file", usage: "NATS .creds file (user JWT and NKey seed), mode 0600", secretFile: true},
	"nats-nkey-file":               {name: "nats-nkey-file", usage: "file holding a NATS NKey user seed, mode 0600", secretFile: true},
	"nats-tls-ca-file":             {name: "nats-tls-ca-file", usage: "PEM file of the authorities of the NATS servers' certificates (requires TLS)"},
	"nats-tls-cert-file":           {name: "nats-tls-cert-file", usage: "PEM client certificate for NATS (with nats-tls-key-file)"},
	"nats-tls-key-file":            {name: "nats-tls-key-file", usage: "PEM key of the NATS client certificate, mode 0600", secretFile: true},
	"stream-replicas":              {name: "stream-replicas", usage: "replicas of the JetStream streams and KV buckets (3 on a 3-node cluster); changed in place on start", def: "1"},
	"job-key":                      {name: "job-key", usage: "key that signs jobs (HMAC-SHA256, at least 32 characters); serve, worker and reconcile share it; the web console's CSRF key is derived from it", secret: true},
	"job-key-previous":             {name: "job-key-previous", usage: "second key workers accept while the job key is rotated (and the web console the CSRF tokens derived from it)", secret: true},
	"redis-url":                    {name: "redis-url", usage: "Redis for idempotency and group state: redis://, redis+sentinel://HOST,HOST/MASTER or redis+cluster://HOST,HOST (dev: empty uses JetStream KV)"},
	"virgil-api-url":               {name: "virgil-api-url", usage: "Virgil API base URL", def: "https://api.virgilsecurity.com"},
	"virgil-app-id":                {name: "virgil-app-id", usage: "Virgil application id"},
	"virgil-app-key-id":            {name: "virgil-app-key-id", usage: "Virgil App Key id"},
	"virgil-app-key":               {name: "virgil-app-key", usage: "Virgil App Key, base64 PKCS#8", secret: true},
	"owner-identity":               {name: "owner-identity", usage: "Virgil identity that owns every group", def: "2137f9ef75295ea"},
	"owner-key-file":               {name: "owner-key-file", usage: "file holding the owner's private key (base64 PKCS#8), mode 0600", def: "owner.key", secretFile: true},
	"identity-secret":              {name: "identity-secret", usage: "key of the uid/guid to Virgil identity mapping; never change it", secret: true},
	"webhook-username":             {name: "webhook-username", usage: "Basic auth user name CometChat sends"},
	"webhook-password":             {name: "webhook-password", usage: "Basic auth password CometChat sends", secret: true},
	"webhook-id":                   {name: "webhook-id", usage: "expected CometChat webhook id (empty: any)"},
	"cometchat-app-id":             {name: "cometchat-app-id", usage: "CometChat app id webhooks must carry"},
	"cometchat-region":             {name: "cometchat-region", usage: "CometChat app region (us, eu, in)", def: "us"},
	"cometchat-api-key":            {name: "cometchat-api-key", usage: "CometChat REST API key (fullAccess)", secret: true},
	"cometchat-api-url":            {name: "cometchat-api-url", usage: "CometChat REST base URL without the API version, such as https://APPID.api-us.cometchat.io (a trailing /v3 is accepted); overrides the regional default; https only, except to loopback"},
	"audit-max-age":                {name: "audit-max-age", usage: "how long the audit trail (stream GROUPSYNC_AUDIT) keeps its records of the changes applied to Virgil", def: "2160h"},
	"partitions":                   {name: "partitions", usage: "ordering partitions of the job stream", def: "16"},
	"concurrency":                  {name: "concurrency", usage: "jobs in flight per worker process (0: one per partition)", def: "0"},
	"client-auth":                  {name: "client-auth", usage: "client API auth: cometchat or trust-header", def: "cometchat"},
	"client-rate":                  {name: "client-rate", usage: "client API: requests per second per client IP (IPv6: per /64); 0: no limit", def: "20"},
	"client-burst":                 {name: "client-burst", usage: "client API: most requests at once per client IP", def: "100"},
	"client-uid-rate":              {name: "client-uid-rate", usage: "client API: requests per second per uid whose token is not verified yet; 0: no limit", def: "5"},
	"client-uid-burst":             {name: "client-uid-burst", usage: "client API: most such requests at once per uid", def: "50"},
	"client-trusted-proxies":       {name: "client-trusted-proxies", usage: "client API and web console: addresses or CIDR prefixes of reverse proxies whose X-Forwarded-For names the client (empty: X-Forwarded-For is ignored)"},
	"cors-allowed-origins":         {name: "cors-allowed-origins", usage: "client API: browser origins allowed to call it, comma separated: scheme://host[:port], or scheme://host:* for any port (dev adds loopback origins)"},
	"log-level":                    {name: "log-level", usage: "debug, info, warn or error", def: "info"},
	"log-format":                   {name: "log-format", usage: "json or console", def: "json"},
	"emulator-addr":                {name: "emulator-addr", usage: "dev: listen address of the Virgil emulator", def: "127.0.0.1:8271"},
	"nats-port":                    {name: "nats-port", usage: "dev: port of the embedded NATS (-1 picks one)", def: "4250"},
	"shutdown-timeout":             {name: "shutdown-timeout", usage: "how long in-flight work may take to finish on shutdown", def: "20s"},
	"max-clock-skew":               {name: "max-clock-skew", usage: "webhooks: how far ahead of their receipt event times may lie; later times are clamped (docs/convergence.md)", def: "5m"},
	"emulator-debug-api":           {name: "emulator-debug-api", usage: "emulator: serve the /_emulator/ inspection and fault endpoints, which answer without a token (dev turns them on; never expose them)", def: "false", isBool: true},
	"virgil-service-key":           {name: "virgil-service-key", usage: "public key (base64 SPKI) that must have signed every Virgil card as \"virgil\"; empty: Virgil's own Cards service key when the API URL is https://api.virgilsecurity.com, and any other API URL is refused (an emulator publishes its key at /emulator/v1/service-key)"},
	"dev-insecure-listen-anywhere": {name: "dev-insecure-listen-anywhere", usage: "dev: allow listen addresses beyond loopback although dev trusts X-CometChat-UID, prints its credentials and serves the emulator's fault API (never on a shared network)", def: "false", isBool: true},
	"stream-max-msgs":              {name: "stream-max-msgs", usage: "most jobs the job stream GROUPSYNC holds; when full, webhooks get 503 (-1: no limit)", def: "1000000"},
	"stream-max-bytes":             {name: "stream-max-bytes", usage: "most bytes the job stream holds, such as 1GiB (-1: no limit)", def: "1GiB"},
	"stream-max-age":               {name: "stream-max-age", usage: "how long a job may wait in the job stream before it is dropped (0: kept until applied or dead-lettered)", def: "0s"},
	"dlq-max-msgs":                 {name: "dlq-max-msgs", usage: "most failed jobs the dead-letter stream GROUPSYNC_DLQ holds; when full, failing jobs stay in the job stream (-1: no limit)", def: "100000"},
	"dlq-max-bytes":                {name: "dlq-max-bytes", usage: "most bytes the dead-letter stream holds, such as 256MiB (-1: no limit)", def: "256MiB"},
	"dlq-max-age":                  {name: "dlq-max-age", usage: "how long failed jobs are kept", def: "720h"},
	"stream-fill-threshold":        {name: "stream-fill-threshold", usage: "fill of either stream (0 to 1, of messages or bytes) above which /readyz reports not ready", def: "0.9"},
	"emulator-service-key":         {name: "emulator-service-key", usage: "emulator: private key of its card signatures, base64 PKCS#8 (empty: kept in the data dir)", secret: true},
	"reconcile-interval":           {name: "reconcile-interval", usage: "worker: how often one worker reconciles every group with CometChat when an API key is set (0: never)", def: "1h"},
	"reconcile-rate":               {name: "reconcile-rate", usage: "worker: CometChat REST requests per second the scheduled reconcile may cause", def: "2"},
	"console-addr":                 {name: "console-addr", usage: "listen address of the web console (serve: empty turns it off; dev: on loopback, 127.0.0.1:8090 or a free port when empty)"},
	"console-username":             {name: "console-username", usage: "web console: Basic auth user name (serve: with console-addr and the password, turns the console on)"},
	"console-password":             {name: "console-password", usage: "web console: Basic auth password, at least 12 characters", secret: true},
	"loss-window":                  {name: "loss-window", usage: "worker: how long membership changes are checked with CometChat after a loss of Redis's data is found", def: "5m"},
}

// settings parses the options a command registered. Only the parse
// functions of configs.go read it; everything else takes typed configs.
type settings struct {
	values map[string]*string
	files  map[string]*string // --x-file for secrets
	fs     *flag.FlagSet
	getenv func(string) string
}

// newSettings registers the named options on a FlagSet for cmd (a name
// given twice is registered once). Flags take precedence over GROUPSYNC_*
// variables, which take precedence over defaults.
func newSettings(cmd string, getenv func(string) string, names ...string) *settings {
	s := &settings{
		values: map[string]*string{},
		files:  map[string]*string{},
		fs:     flag.NewFlagSet("groupsync "+cmd, flag.ContinueOnError),
		getenv: getenv,
	}
	s.fs.SetOutput(io.Discard)
	for _, n := range names {
		o, ok := options[n]
		if !ok {
			panic("groupsync: unknown option " + n)
		}
		if _, dup := s.values[n]; dup {
			continue
		}
		if _, dup := s.files[n]; dup {
			continue
		}
		if o.secret {
			s.files[n] = s.fs.String(n+"-file", "", fmt.Sprintf("file holding the %s (or %s / %s_FILE)", o.usage, o.env(), o.env()))
			continue
		}
		v := &flagValue{isBool: o.isBool}
		s.values[n] = &v.s
		s.fs.Var(v, n, fmt.Sprintf("%s (%s, default %q)", o.usage, o.env(), o.def))
	}
	return s
}

// flagValue is a string flag; a boolean one may be given bare (--pprof).
type flagValue struct {
	s      string
	isBool bool
}

func (v *flagValue) String() string { return v.s }

func (v *flagValue) Set(s string) error {
	v.s = s
	return nil
}

// IsBoolFlag tells the flag package that a bare --x means --x=true.
func (v *flagValue) IsBoolFlag() bool { return v.isBool }

// parse parses args; -h prints the usage to out. Every secret file the
// registered options name is then checked at once (checkSecretFiles).
func (s *settings) parse(args []string, out io.Writer) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.printUsage(out)
			return err
		}
		return usagef("%v", err)
	}
	return s.checkSecretFiles()
}

// checkSecretFiles refuses every file that holds a secret of a registered
// option (the --x-file flag or GROUPSYNC_X_FILE of a secret option when no
// GROUPSYNC_X is given, the value of a secretFile option) and that group or
// others may read or write, or that is not a regular file: one usage error
// naming every such setting, its path and mode. Files that are missing or
// cannot be read are left to the reader, which reports them.
func (s *settings) checkSecretFiles() error {
	var names []string
	for n := range s.values {
		names = append(names, n)
	}
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var refused []string
	for _, n := range names {
		setting, path := s.secretFile(options[n])
		if path == "" {
			continue
		}
		if err := secretfile.Check(setting, path); errors.Is(err, secretfile.ErrNotPrivate) {
			refused = append(refused, err.Error())
		}
	}
	if len(refused) > 0 {
		return usagef("%s", strings.Join(refused, "; "))
	}
	return nil
}

// secretFile returns the file that holds o's secret and the setting that
// named it (--x-file or GROUPSYNC_X_FILE, --x or GROUPSYNC_X for a
// secretFile option), or "" when o names no file.
func (s *settings) secretFile(o option) (setting, path string) {
	switch {
	case o.secret:
		if p := s.files[o.name]; p != nil && *p != "" {
			return "--" + o.name + "-file", *p
		}
		if s.getenv(o.env()) != "" {
			return "", ""
		}
		return o.env() + "_FILE", s.getenv(o.env() + "_FILE")
	case o.secretFile:
		return s.settingName(o.name), s.mustStr(o.name)
	}
	return "", ""
}

// settingName names how option name was given: --name when the flag was
// set, else its GROUPSYNC_ variable (which also stands for the default).
func (s *settings) settingName(name string) string {
	if s.flagSet(name) {
		return "--" + name
	}
	return options[name].env()
}

func (s *settings) printUsage(out io.Writer) {
	fmt.Fprintf(out, "usage: %s [flags]\n\nflags (each also read from its GROUPSYNC_* variable):\n", s.fs.Name())
	var names []string
	s.fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		f := s.fs.Lookup(n)
		fmt.Fprintf(out, "  --%s\n      %s\n", f.Name, f.Usage)
	}
}

// str returns the option's value: the flag if set, else the environment,
// else the default. Secrets come from the environment, the _FILE variable or
// the --x-file flag.
func (s *settings) str(name string) (string, error) {
	o := options[name]
	if o.secret {
		return s.secret(o)
	}
	p, ok := s.values[name]
	if !ok {
		panic("groupsync: option not registered: " + name)
	}
	if *p != "" || s.flagSet(name) {
		return *p, nil
	}
	if v := s.getenv(o.env()); v != "" {
		return v, nil
	}
	return o.def, nil
}

func (s *settings) flagSet(name string) bool {
	set := false
	s.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// secret returns the value of secret option o: read from the file
// secretFile names, else GROUPSYNC_X's (secretFile names none when it is
// set), else "".
func (s *settings) secret(o option) (string, error) {
	setting, file := s.secretFile(o)
	if file == "" {
		return strings.TrimSpace(s.getenv(o.env())), nil
	}
	b, err := secretfile.Read(setting, file)
	if errors.Is(err, secretfile.ErrNotPrivate) {
		return "", usagef("%v", err)
	}
	if err != nil {
		return "", usagef("%s: read %s file: %v", o.env(), o.name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// mustStr is str for options whose errors were already checked; it is used
// where only non-secret options are read.
func (s *settings) mustStr(name string) string {
	v, err := s.str(name)
	if err != nil {
		panic(err)
	}
	return v
}

func (s *settings) required(name string) (string, error) {
	v, err := s.str(name)
	if err != nil {
		return "", err
	}
	if v == "" {
		o := options[name]
		if o.secret {
			return "", usagef("%s is required (set %s or %s_FILE)", o.name, o.env(), o.env())
		}
		return "", usagef("%s is required (set --%s or %s)", o.name, o.name, o.env())
	}
	return v, nil
}

func (s *settings) int(name string, min int) (int, error) {
	v := s.mustStr(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		return 0, usagef("%s: %q is not a whole number >= %d", name, v, min)
	}
	return n, nil
}

func (s *settings) duration(name string) (time.Duration, error) {
	v := s.mustStr(name)
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, usagef("%s: %q is not a duration such as 20s", name, v)
	}
	return d, nil
}

func (s *settings) float(name string) (float64, error) {
	v := s.mustStr(name)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, usagef("%s: %q is not a number > 0", name, v)
	}
	return f, nil
}

func (s *settings) bool(name string) (bool, error) {
	v := s.mustStr(name)
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, usagef("%s: %q is not true or false", name, v)
	}
	return b, nil
}

func (s *settings) oneOf(name string, allowed ...string) (string, error) {
	v := s.mustStr(name)
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", usagef("%s: %q is not one of %s", name, v, strings.Join(allowed, ", "))
}
