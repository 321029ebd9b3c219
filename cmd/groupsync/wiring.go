package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/membership"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natsembed"
	"github.com/groupsync/groupsync/redact"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/webhook"
	"github.com/groupsync/groupsync/worker"
)

// Main is one process of groupsync: Open starts the parts its Config names,
// in dependency order, and records how to stop each; Close stops them in
// reverse order within Config.ShutdownTimeout. serve, worker, emulator and
// dev are each one Main with a different Config; tests run them in the test
// process.
type Main struct {
	Config Config

	// Set by Open.
	NATSURL   string // the NATS the parts use
	VirgilURL string // the Virgil service the parts use
	HTTPAddr  string // address the HTTP server bound, when serving
	// ConsoleAddr is the address the web console bound, when it runs.
	ConsoleAddr string
	Queue       *queue.Queue // the job queue, when serve or worker runs
	Store       worker.Store // the worker store, when serve or worker runs
	Pool        *worker.Pool // the worker pool, when a worker runs
	Audit       *queue.Audit // the audit trail, when a worker runs
	Emulator    *emulator.Emulator

	log     zerolog.Logger
	httpReg *prometheus.Registry // the HTTP server's metrics, when serving
	owner   *virgil.Owner        // the groups' owner, when a worker runs
	nc      *nats.Conn
	closers []closer
	errc    chan error // a part that stopped on its own
	once    sync.Once
	err     error
}

// closer stops one part; ctx carries the remaining grace period.
type closer struct {
	name string
	stop func(ctx context.Context) error
}

// onClose records how to stop the part just started.
func (m *Main) onClose(name string, stop func(ctx context.Context) error) {
	m.closers = append(m.closers, closer{name, stop})
}

// component returns the logger of one part: tagged with its name when the
// process runs several (dev).
func (m *Main) component(name string) zerolog.Logger {
	if m.Config.EmbeddedNATS == nil {
		return m.log
	}
	return m.log.With().Str("component", name).Logger()
}

// Open starts the parts of m.Config: embedded NATS, the emulator, the NATS
// connection, queue and store, the worker pool and the HTTP server, in this
// order. On failure the caller must still call Close, which stops what did
// start.
func (m *Main) Open(ctx context.Context) error {
	cfg := &m.Config
	m.log = cfg.Logger
	m.errc = make(chan error, 4)
	if cfg.EmbeddedNATS != nil {
		if err := m.openEmbeddedNATS(*cfg.EmbeddedNATS); err != nil {
			return err
		}
	}
	if cfg.Emulator != nil {
		if err := m.openEmulator(*cfg.Emulator); err != nil {
			return err
		}
	}
	m.NATSURL, m.VirgilURL = cfg.NATS.URL, cfg.Virgil.APIURL
	if cfg.Serve == nil && cfg.Worker == nil {
		return nil
	}
	if err := m.openQueueAndStore(ctx); err != nil {
		return err
	}
	if cfg.Worker != nil {
		if err := m.openWorker(ctx, *cfg.Worker); err != nil {
			return err
		}
	}
	if cfg.Serve != nil {
		if err := m.openServer(ctx, *cfg.Serve); err != nil {
			return err
		}
	}
	if cfg.Console != nil {
		return m.openConsole(ctx, *cfg.Console)
	}
	return nil
}

// Err reports a part that stopped on its own (the worker pool), which ends
// the process.
func (m *Main) Err() <-chan error { return m.errc }

// Close stops every part Open started, the last started first, sharing
// Config.ShutdownTimeout between them: the HTTP server stops taking
// requests, the pool finishes or hands back its jobs, then connections and
// embedded servers close. It returns every error joined; calling it again
// returns the same result.
func (m *Main) Close() error {
	m.once.Do(func() {
		grace := m.Config.ShutdownTimeout
		if grace <= 0 {
			grace = 20 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		var errs []error
		for i := len(m.closers) - 1; i >= 0; i-- {
			c := m.closers[i]
			if err := c.stop(ctx); err != nil {
				m.Config.Logger.Warn().Err(err).Str("part", c.name).Msg("shutdown")
				errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
			}
		}
		m.err = errors.Join(errs...)
	})
	return m.err
}

func (m *Main) openEmbeddedNATS(c EmbeddedNATSConfig) error {
	port := c.Port
	if port > 0 && !portFree(port) {
		port = -1
	}
	ns, err := natsembed.Start(server.Options{
		ServerName: "groupsync-dev",
		Host:       "127.0.0.1",
		Port:       port,
		StoreDir:   c.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
	})
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	m.onClose("embedded nats", func(context.Context) error { ns.Shutdown(); return nil })
	m.Config.NATS.URL = ns.URL()
	return nil
}

func (m *Main) openEmulator(c EmulatorConfig) error {
	ec := c.Emulator
	ec.Logger = m.component("emulator")
	emu, err := emulator.New(ec)
	if err != nil {
		return err
	}
	m.onClose("emulator", func(context.Context) error { return emu.Close() })
	m.Emulator = emu
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/", emu)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil && c.AnyPortIfTaken {
		ln, err = listenAnyPort(c.Addr)
	}
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	m.onClose("emulator http", srv.Shutdown)
	if m.Config.Virgil.APIURL == "" {
		m.Config.Virgil.APIURL = "http://" + ln.Addr().String()
	}
	m.log.Info().Str("addr", ln.Addr().String()).Bool("debug_api", ec.DebugAPI).Msg("virgil emulator listening")
	return nil
}

// openQueueAndStore connects to NATS, provisions the queue and opens the
// store.
func (m *Main) openQueueAndStore(ctx context.Context) error {
	cfg := &m.Config
	nc, q, err := openQueue(ctx, cfg.NATS, cfg.Queue, m.log)
	if err != nil {
		return err
	}
	m.nc, m.Queue = nc, q
	m.onClose("nats", func(context.Context) error { nc.Close(); return nil })
	m.onClose("queue", func(context.Context) error { return q.Close() })
	store, closeStore, err := openStore(ctx, cfg.Store, nc)
	if err != nil {
		return err
	}
	m.onClose("store", func(context.Context) error { return closeStore() })
	m.Store = store
	return nil
}

// openQueue connects to NATS and provisions the job streams.
func openQueue(ctx context.Context, n NATSConfig, qc queue.Config, log zerolog.Logger) (*nats.Conn, *queue.Queue, error) {
	nc, err := connectNATS(n, log)
	if err != nil {
		return nil, nil, err
	}
	// A cluster electing leaders, or busy provisioning for processes that
	// start together, may not answer in time: try again for a while before
	// giving up, as a process that is restarted in a loop would.
	deadline := time.Now().Add(openQueueRetry)
	wait := 500 * time.Millisecond
	for {
		q, err := queue.Open(ctx, nc, qc)
		if err == nil {
			return nc, q, nil
		}
		if !errors.Is(err, queue.ErrUnavailable) || time.Now().Add(wait).After(deadline) {
			nc.Close()
			return nil, nil, err
		}
		log.Warn().Err(err).Dur("retry_in", wait).Msg("queue not ready, trying again")
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// openQueueRetry is how long openQueue keeps trying while NATS does not
// answer.
const openQueueRetry = time.Minute

// openNATSQueue is openQueue for one-off commands: it reads the NATS
// settings from s first.
func openNATSQueue(ctx context.Context, s *settings, name string, qc queue.Config, log zerolog.Logger) (*nats.Conn, *queue.Queue, error) {
	n, err := parseNATS(s, name)
	if err != nil {
		return nil, nil, err
	}
	return openQueue(ctx, n, qc, log)
}

// connectNATS connects every role to NATS the same way (queue.Connect):
// servers, credentials and TLS from c, reconnecting with jitter for as long
// as the process runs, so a NATS restart or a lost cluster node is a blip.
func connectNATS(c NATSConfig, log zerolog.Logger) (*nats.Conn, error) {
	c.Logger = log
	return queue.Connect(c)
}

// store is a worker store that answers readiness probes.
type store interface {
	worker.Store
	Ping(ctx context.Context) error
}

var (
	_ store = (*worker.RedisStore)(nil)
	_ store = (*worker.KVStore)(nil)
)

// openStore opens the worker store: Redis when c.RedisURL is set, else
// JetStream KV on nc. The returned function closes what it opened.
func openStore(ctx context.Context, c StoreConfig, nc *nats.Conn) (store, func() error, error) {
	if c.RedisURL != "" {
		if err := worker.CheckRedis(ctx, c.Redis); err != nil {
			return nil, nil, usagef("redis-url: %v", redact.Error(err))
		}
		rdb := worker.OpenRedis(c.Redis)
		return worker.NewRedisStore(rdb, ""), rdb.Close, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := worker.OpenKVStore(ctx, js, c.KV)
	if err != nil {
		return nil, nil, err
	}
	return kv, func() error { return nil }, nil
}

// virgilClient is the Virgil client acting as identity.
func (m *Main) virgilClient(identity string) *virgil.Client {
	return virgil.NewClient(m.Config.Virgil.APIURL, m.Config.Virgil.JWT.Source(identity))
}

// openWorker makes sure the owner card exists and starts a worker pool.
func (m *Main) openWorker(ctx context.Context, c WorkerConfig) error {
	log := m.component("worker")
	if c.ServiceKey == nil {
		return errors.New("worker: no Cards service key: cards could not be checked for Virgil's signature")
	}
	owner := virgil.NewOwner(m.virgilClient(c.OwnerIdentity), c.OwnerKey, c.OwnerIdentity, virgil.WithServiceKey(c.ServiceKey))
	log.Info().Str("service_key", c.ServiceKey.MarshalSPKIBase64()).Msg("cards must carry Virgil's signature by this key")
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cardID, err := owner.EnsureCard(cctx)
	if err != nil {
		return fmt.Errorf("owner card: %w", err)
	}
	log.Info().Str("owner_identity", c.OwnerIdentity).Str("card_id", cardID).Msg("owner card ready")
	m.owner = owner
	reg := processRegistry()
	reg.MustRegister(m.Queue.Collector())
	ac := m.Config.Audit
	ac.Replicas = m.Queue.Config().Replicas
	audit, err := queue.OpenAudit(ctx, m.nc, ac)
	if err != nil {
		return err
	}
	m.Audit = audit
	pc := c.Pool
	pc.Logger, pc.Registerer, pc.Audit = log, reg, audit
	if c.CometChat != nil {
		cc, err := cometchat.New(*c.CometChat)
		if err != nil {
			return err
		}
		pc.Reconciler, pc.Groups = membership.CometChat{Client: cc}, membership.CometChat{Client: cc}
	}
	if pc.Meta, err = openMeta(ctx, m.nc, m.Config.Queue.Replicas); err != nil {
		return err
	}
	if pc.Roster, err = openRoster(ctx, m.nc, m.Config.Queue.Replicas, false); err != nil {
		return err
	}
	pool, err := worker.New(pc, m.Queue, m.Store, worker.NewVirgilGroups(owner, c.Identities))
	if err != nil {
		return err
	}
	m.Pool = pool
	done := make(chan error, 1)
	go func() { done <- pool.Run(context.WithoutCancel(ctx)) }()
	go func() {
		// A pool that stops before Close asked it to ends the process.
		select {
		case err := <-done:
			done <- err
			m.errc <- fmt.Errorf("worker pool stopped: %w", err)
		case <-ctx.Done():
		}
	}()
	m.onClose("worker pool", func(ctx context.Context) error {
		err := pool.Stop(ctx)
		<-done
		return err
	})
	if c.MetricsAddr != "" {
		return m.serveMetrics(c.MetricsAddr, reg, c.Pprof, pool.Degraded, log)
	}
	return nil
}

// processRegistry is a Prometheus registry with the Go and process
// collectors.
func processRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves /metrics, /healthz and /readyz (with the pool's
// degraded reasons) on addr, and with profile Go's /debug/pprof/ profiles.
func (m *Main) serveMetrics(addr string, reg *prometheus.Registry, profile bool, degraded func() []string, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		body := map[string]any{"status": "ready"}
		if reasons := degraded(); len(reasons) > 0 {
			body = map[string]any{"status": "degraded", "degraded": reasons}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	})
	if profile {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	m.onClose("metrics", func(context.Context) error { return srv.Close() })
	log.Info().Str("addr", ln.Addr().String()).Msg("serving worker metrics")
	return nil
}

// virgilReadyTTL is how long /readyz keeps the answer of Virgil's ping.
const virgilReadyTTL = 5 * time.Second

// openServer starts the HTTP server. Its readiness checks ask the queue, the
// store and Virgil; a user's fresh token schedules the check of their cards,
// by the pool when one runs in this process.
func (m *Main) openServer(ctx context.Context, cfg webhook.Config) error {
	log := m.component("http")
	cfg.Logger = log
	reg := processRegistry()
	reg.MustRegister(m.Queue.Collector())
	cfg.Registerer = reg
	m.httpReg = reg
	vc := m.virgilClient(m.Config.Virgil.JWT.AppID)
	cfg.ReadyChecks = map[string]func(context.Context) error{
		"nats":       m.Queue.Ping,
		"queue_fill": m.Queue.CheckFill,
		"store":      m.Store.(store).Ping,
		// Probes come every few seconds from every load balancer: Virgil
		// is asked at most once per virgilReadyTTL.
		"virgil": webhook.CachedCheck(vc.Ping, virgilReadyTTL),
	}
	if cfg.Degraded == nil {
		cfg.Degraded = func() []string {
			if m.Pool != nil {
				return m.Pool.Degraded()
			}
			if cfg.CometChat.APIKey == "" {
				return []string{worker.ReasonNoReconciler}
			}
			return nil
		}
	}
	cfg.OnUserToken = func(ctx context.Context, uid string) {
		var err error
		if m.Pool != nil {
			err = m.Pool.UserSeen(ctx, uid)
		} else {
			err = worker.ScheduleUserCheck(ctx, m.Store, uid, 0)
		}
		if err != nil {
			log.Warn().Err(err).Msg("could not schedule the card check of a user")
		}
	}
	srv, err := webhook.New(cfg, m.Queue)
	if err != nil {
		return usagef("%v", err)
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	m.onClose("http", srv.Shutdown)
	m.HTTPAddr = srv.Addr()
	m.log.Info().Str("addr", srv.Addr()).Msg("serving webhooks and the client API")
	return nil
}

// openConsole starts the web console on what this process reaches: the
// queue, its dead letters and the audit trail (NATS), the workers' roster
// and the last scheduled reconcile, the group state (the store), and
// Virgil as the groups' owner only where a worker runs in the process (dev):
// serve holds no owner key, and its console says Virgil is not configured.
// Its metrics join the HTTP server's /metrics.
func (m *Main) openConsole(ctx context.Context, cc ConsoleConfig) error {
	audit := m.Audit
	if audit == nil {
		var err error
		if audit, err = queue.OpenAudit(ctx, m.nc, queue.AuditConfig{ReadOnly: true}); err != nil {
			return fmt.Errorf("console: %w", err)
		}
	}
	roster, err := openRoster(ctx, m.nc, 0, true)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	meta, err := openMeta(ctx, m.nc, m.Config.Queue.Replicas)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	ic := inspect.Config{Queue: m.Queue, Audit: audit, Store: m.Store, Workers: roster, Reconcile: meta}
	if m.owner != nil && m.Config.Worker != nil {
		ic.Virgil, ic.Identities = m.owner, m.Config.Worker.Identities
	}
	in, err := inspect.New(ic)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	cfg := cc.Console
	cfg.Logger = m.component("console")
	cfg.Version = buildVersion()
	if m.httpReg != nil {
		cfg.Registerer = m.httpReg
	}
	c, err := console.New(cfg, in)
	if err != nil {
		return usagef("%v", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil && cc.AnyPortIfTaken {
		ln, err = listenAnyPort(cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("console: listen on %s: %w", cfg.Addr, err)
	}
	if err := c.Serve(ln); err != nil {
		return err
	}
	m.onClose("console", c.Shutdown)
	m.ConsoleAddr = c.Addr()
	m.log.Info().Str("addr", c.Addr()).Msg("serving the web console")
	return nil
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// listenAnyPort listens on a free port of addr's host.
func listenAnyPort(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usagef("listen address %q: %v", addr, err)
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}
