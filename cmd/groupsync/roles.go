package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/webhook"
	"github.com/groupsync/groupsync/worker"
)

// Options each role reads.
var (
	commonOptions = []string{"log-level", "log-format", "shutdown-timeout"}
	serveOptions  = append([]string{"http-addr", "nats-url", "redis-url", "partitions", "identity-secret", "owner-identity",
		"virgil-api-url", "virgil-app-id", "virgil-app-key-id", "virgil-app-key",
		"webhook-username", "webhook-password", "webhook-id", "cometchat-app-id",
		"cometchat-region", "cometchat-api-key", "cometchat-api-url", "client-auth"}, commonOptions...)
	workerOptions = append([]string{"metrics-addr", "pprof", "nats-url", "redis-url", "partitions", "concurrency", "identity-secret",
		"virgil-api-url", "virgil-app-id", "virgil-app-key-id", "virgil-app-key", "owner-identity", "owner-key-file",
		"cometchat-app-id", "cometchat-region", "cometchat-api-key", "cometchat-api-url"}, commonOptions...)
	emulatorOptions = append([]string{"http-addr", "data-dir", "virgil-app-id", "virgil-app-key-id", "virgil-app-key",
		"emulator-debug-api", "emulator-service-key"}, commonOptions...)
)

// serveConfig is everything `serve` needs, checked before anything starts.
type serveConfig struct {
	web   webhook.Config
	app   *virgilApp
	ids   *groupsync.Identities
	store string // redis URL; empty: JetStream KV
}

func loadServeConfig(s *settings, log zerolog.Logger) (*serveConfig, error) {
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
	app, err := loadVirgilApp(s)
	if err != nil {
		return nil, err
	}
	ids, err := loadIdentities(s)
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
	return &serveConfig{
		app: app, ids: ids, store: s.mustStr("redis-url"),
		web: webhook.Config{
			Addr:       s.mustStr("http-addr"),
			Username:   user,
			Password:   pass,
			AppID:      appID,
			WebhookID:  s.mustStr("webhook-id"),
			Logger:     log,
			Identities: ids,
			ClientAuth: auth,
			CometChat: webhook.CometChatConfig{
				APIURL: s.mustStr("cometchat-api-url"),
				Region: s.mustStr("cometchat-region"),
				APIKey: apiKey,
			},
			Tokens: webhook.VirgilTokens{Generator: app.gen},
		},
	}, nil
}

// processRegistry is a Prometheus registry with the Go and process
// collectors.
func processRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// backends are the connections a role shares: NATS, the job queue and the
// worker store.
type backends struct {
	nc         *nats.Conn
	q          *queue.Queue
	store      worker.Store
	closeStore func()
}

func (b *backends) close() {
	b.closeStore()
	b.nc.Close()
}

// openBackends connects to NATS, provisions the queue and opens the store
// (Redis at redisURL, or JetStream KV when it is empty).
func openBackends(ctx context.Context, s *settings, log zerolog.Logger, name, redisURL string) (*backends, error) {
	nc, q, err := openQueue(ctx, s, log, name)
	if err != nil {
		return nil, err
	}
	store, closeStore, err := openStore(ctx, redisURL, nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &backends{nc: nc, q: q, store: store, closeStore: closeStore}, nil
}

// openStore opens the worker store: Redis when url is set, else JetStream KV
// on nc.
func openStore(ctx context.Context, url string, nc *nats.Conn) (worker.Store, func(), error) {
	if url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, nil, usagef("redis-url: %v", err)
		}
		rdb := redis.NewClient(opts)
		return worker.NewRedisStore(rdb, ""), func() { rdb.Close() }, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := worker.OpenKVStore(ctx, js, worker.KVConfig{})
	if err != nil {
		return nil, nil, err
	}
	return kv, func() {}, nil
}

func pingStore(url string, nc *nats.Conn) func(context.Context) error {
	if url == "" {
		return func(context.Context) error {
			if !nc.IsConnected() {
				return errors.New("nats not connected")
			}
			return nil
		}
	}
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	return func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
}

func pingVirgil(apiURL string) func(context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/card/v5/actions/search", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("virgil unreachable")
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("virgil answers %d", resp.StatusCode)
		}
		return nil
	}
}

// startServer builds and starts the HTTP server.
func startServer(ctx context.Context, sc *serveConfig, q *queue.Queue, nc *nats.Conn, store worker.CheckSchedule, onUser func(context.Context, string) error, log zerolog.Logger) (*webhook.Server, error) {
	reg := processRegistry()
	cfg := sc.web
	cfg.Registerer = reg
	cfg.ReadyChecks = map[string]func(context.Context) error{
		"nats":   q.Ping,
		"store":  pingStore(sc.store, nc),
		"virgil": pingVirgil(sc.app.apiURL),
	}
	cfg.OnUserToken = func(ctx context.Context, uid string) {
		var err error
		if onUser != nil {
			err = onUser(ctx, uid)
		} else {
			err = worker.ScheduleUserCheck(ctx, store, uid, 0)
		}
		if err != nil {
			log.Warn().Err(err).Msg("could not schedule the card check of a user")
		}
	}
	srv, err := webhook.New(cfg, q)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	return srv, nil
}

// startRole parses a long-running role's flags and builds its logger; it
// returns the settings, the logger and the shutdown grace period.
func startRole(e env, name string, args []string, logFormat string, opts ...string) (*settings, zerolog.Logger, time.Duration, error) {
	s := newSettings(name, e.getenv, opts...)
	if err := s.parse(args, e.stdout); err != nil {
		return nil, zerolog.Nop(), 0, err
	}
	log, err := newLogger(s, e.stderr, logFormat)
	if err != nil {
		return nil, zerolog.Nop(), 0, err
	}
	grace, err := s.duration("shutdown-timeout")
	if err != nil {
		return nil, zerolog.Nop(), 0, err
	}
	return s, log, grace, nil
}

func runServe(ctx context.Context, e env, args []string) error {
	s, log, grace, err := startRole(e, "serve", args, "json", serveOptions...)
	if err != nil {
		return err
	}
	sc, err := loadServeConfig(s, log)
	if err != nil {
		return err
	}
	b, err := openBackends(ctx, s, log, "groupsync-serve", sc.store)
	if err != nil {
		return err
	}
	defer b.close()
	q := b.q
	srv, err := startServer(ctx, sc, q, b.nc, b.store, nil, log)
	if err != nil {
		return err
	}
	log.Info().Str("addr", srv.Addr()).Msg("serving webhooks and the client API")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
	return q.Close()
}

// workerParts is what a worker pool needs, checked before anything starts.
type workerParts struct {
	app        *virgilApp
	ids        *groupsync.Identities
	ownerKey   *virgil.PrivateKey
	identity   string
	concurrent int
	reconciler worker.Reconciler
	store      string
}

func loadWorkerParts(s *settings) (*workerParts, error) {
	app, err := loadVirgilApp(s)
	if err != nil {
		return nil, err
	}
	ids, err := loadIdentities(s)
	if err != nil {
		return nil, err
	}
	conc, err := s.int("concurrency", 0)
	if err != nil {
		return nil, err
	}
	identity := s.mustStr("owner-identity")
	if err := virgil.ValidateIdentity(identity); err != nil {
		return nil, usagef("owner-identity: %v", err)
	}
	key, err := loadOwnerKey(s.mustStr("owner-key-file"))
	if err != nil {
		return nil, err
	}
	wp := &workerParts{app: app, ids: ids, ownerKey: key, identity: identity, concurrent: conc, store: s.mustStr("redis-url")}
	if apiKey, err := s.str("cometchat-api-key"); err != nil {
		return nil, err
	} else if apiKey != "" {
		cc, err := newCometChat(s)
		if err != nil {
			return nil, err
		}
		wp.reconciler = membership{cc}
	}
	return wp, nil
}

// membership adapts the CometChat REST client to worker.Reconciler.
type membership struct{ cc *cometchat.Client }

func (m membership) Members(ctx context.Context, guid string) ([]string, bool, error) {
	members, err := m.cc.Members(ctx, guid)
	if errors.Is(err, cometchat.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	uids := make([]string, len(members))
	for i, mb := range members {
		uids[i] = mb.UID
	}
	return uids, true, nil
}

// newPool makes sure the owner card exists and builds a pool.
func newPool(ctx context.Context, wp *workerParts, q *queue.Queue, store worker.Store, reg prometheus.Registerer, log zerolog.Logger) (*worker.Pool, error) {
	client := virgil.NewClient(wp.app.apiURL, wp.app.gen.Source(wp.identity))
	owner := virgil.NewOwner(client, wp.ownerKey, wp.identity)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cardID, err := owner.EnsureCard(cctx)
	if err != nil {
		return nil, fmt.Errorf("owner card: %w", err)
	}
	log.Info().Str("owner_identity", wp.identity).Str("card_id", cardID).Msg("owner card ready")
	return worker.New(worker.Config{
		Concurrency: wp.concurrent,
		Reconciler:  wp.reconciler,
		Logger:      log,
		Registerer:  reg,
	}, q, store, worker.NewVirgilGroups(owner, wp.ids))
}

func runWorker(ctx context.Context, e env, args []string) error {
	s, log, grace, err := startRole(e, "worker", args, "json", workerOptions...)
	if err != nil {
		return err
	}
	wp, err := loadWorkerParts(s)
	if err != nil {
		return err
	}
	b, err := openBackends(ctx, s, log, "groupsync-worker", wp.store)
	if err != nil {
		return err
	}
	defer b.close()
	q := b.q
	reg := processRegistry()
	pool, err := newPool(ctx, wp, q, b.store, reg, log)
	if err != nil {
		return err
	}
	profile, err := s.bool("pprof")
	if err != nil {
		return err
	}
	if addr := s.mustStr("metrics-addr"); addr != "" {
		stop, err := serveMetrics(addr, reg, profile, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return runPool(ctx, pool, q, grace, log)
}

// runPool runs pool until ctx ends, then stops it gracefully within grace.
func runPool(ctx context.Context, pool *worker.Pool, q *queue.Queue, grace time.Duration, log zerolog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- pool.Run(context.WithoutCancel(ctx)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := pool.Stop(sctx); err != nil {
		log.Warn().Err(err).Msg("worker stop")
	}
	<-done
	return q.Close()
}

// serveMetrics serves /metrics and /healthz on addr, and with profile Go's
// /debug/pprof/ profiles.
func serveMetrics(addr string, reg *prometheus.Registry, profile bool, log zerolog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	if profile {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving worker metrics")
	return func() { srv.Close() }, nil
}

// newEmulator builds the Virgil emulator for app, persisting under dir.
func newEmulator(app *virgilApp, dir string, serviceKey *virgil.PrivateKey, debug bool, log zerolog.Logger) (*emulator.Emulator, http.Handler, error) {
	emu, err := emulator.New(emulator.Config{
		AppID:        app.gen.AppID,
		AppKeyID:     app.gen.AppKeyID,
		AppPublicKey: app.gen.AppKey.Public(),
		ServiceKey:   serviceKey,
		Dir:          dir,
		Logger:       log,
		DisableDebug: !debug,
	})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/", emu)
	return emu, mux, nil
}

func runEmulator(ctx context.Context, e env, args []string) error {
	s := newSettings("emulator", e.getenv, emulatorOptions...)
	if err := s.parse(args, e.stdout); err != nil {
		return err
	}
	log, err := newLogger(s, e.stderr, "json")
	if err != nil {
		return err
	}
	app, err := loadVirgilApp(s)
	if err != nil {
		return err
	}
	debug, err := s.bool("emulator-debug-api")
	if err != nil {
		return err
	}
	var service *virgil.PrivateKey
	if raw, err := s.str("emulator-service-key"); err != nil {
		return err
	} else if raw != "" {
		if service, err = virgil.ParsePrivateKeyBase64(raw); err != nil {
			return usagef("emulator-service-key: not a base64 PKCS#8 Ed25519 key")
		}
	}
	emu, handler, err := newEmulator(app, s.mustStr("data-dir"), service, debug, log)
	if err != nil {
		return err
	}
	defer emu.Close()
	ln, err := net.Listen("tcp", s.mustStr("http-addr"))
	if err != nil {
		return fmt.Errorf("emulator: listen: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Bool("debug_api", debug).Msg("virgil emulator listening")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
