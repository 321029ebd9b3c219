package webhook

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/internal/httpserve"
)

// Paths served by a Server.
const (
	PathWebhook       = "/webhooks/cometchat"
	PathVirgilJWT     = "/v1/virgil-jwt"
	PathGetIdentities = "/v1/get-identities"
	PathHealth        = "/healthz"
	PathReady         = "/readyz"
	PathMetrics       = "/metrics"
)

// Context keys of the per-request log fields handlers fill in.
const (
	ctxTrigger = "groupsync.trigger"
	ctxGUID    = "groupsync.guid"
	ctxJobID   = "groupsync.job_id"
)

// Server is groupsync's HTTP server: CometChat webhooks, the client API of
// the end-to-end encryption extension, health, readiness and metrics. Create
// one with New. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	enq      Enqueuer
	log      zerolog.Logger
	echo     *echo.Echo
	metrics  *metrics
	verifier *verifier
	// ipBuckets and uidBuckets are the client API's rate limits (nil: no
	// limit).
	ipBuckets, uidBuckets *buckets
	corsPolicy            *corsPolicy
	// webhookUser and webhookPass are SHA-256 digests of the credentials,
	// so the comparison takes the same time whatever their lengths.
	webhookUser, webhookPass [32]byte
	retryAfter               string
	// lifecycle binds, serves and shuts down the http.Server.
	lifecycle httpserve.Lifecycle
}

// New returns a Server that queues webhooks through enq. It fills cfg's zero
// fields with the defaults, validates it and registers the metrics; it
// returns an error naming every invalid field (missing webhook credentials or
// app id among them) and does no I/O. With ClientAuth "trust-header" it logs
// a warning: the client API then trusts X-CometChat-UID alone.
func New(cfg Config, enq Enqueuer) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Own copy: the caller may reuse its map.
	checks := make(map[string]func(context.Context) error, len(cfg.ReadyChecks))
	for name, check := range cfg.ReadyChecks {
		checks[name] = check
	}
	cfg.ReadyChecks = checks
	if enq == nil {
		return nil, errors.New("webhook: new: nil Enqueuer")
	}
	reg := cfg.Registerer
	gatherer := cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg = r
		if gatherer == nil {
			gatherer = r
		}
	}
	if gatherer == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gatherer = g
		} else {
			gatherer = prometheus.DefaultGatherer
		}
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		enq:         enq,
		log:         cfg.Logger.With().Str("component", "http").Logger(),
		metrics:     m,
		webhookUser: digest(cfg.Username),
		webhookPass: digest(cfg.Password),
		retryAfter:  retryAfterSeconds(cfg.RetryAfter),
		lifecycle:   httpserve.Lifecycle{Name: "webhook"},
	}
	if err := reg.Register(newReadyCollector(s)); err != nil {
		return nil, fmt.Errorf("webhook: register metrics: %w", err)
	}
	s.ipBuckets = newBuckets(cfg.Limits.IPRate, cfg.Limits.IPBurst, cfg.Limits.MaxTracked)
	s.uidBuckets = newBuckets(cfg.Limits.UIDRate, cfg.Limits.UIDBurst, cfg.Limits.MaxTracked)
	s.corsPolicy = newCORSPolicy(cfg.CORS)
	if cfg.ClientAuth == ClientAuthCometChat {
		cc, err := cfg.CometChat.client()
		if err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		s.verifier = newVerifier(cfg.CometChat, cc, m)
	} else {
		s.log.Warn().Str("client_auth", cfg.ClientAuth).
			Msg("client API trusts the X-CometChat-UID header without checking a CometChat auth token; run it only behind a gateway that authenticates users, or for development")
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.recoverer, s.accessLog)
	e.POST(PathWebhook, s.handleWebhook)
	// The client API: CORS first, so that every answer (429, 401 and 503
	// included) reaches an allowed page; then limits and authentication.
	e.GET(PathVirgilJWT, s.handleVirgilJWT, s.cors(http.MethodGet), s.clientAuth)
	e.OPTIONS(PathVirgilJWT, handleOptions(http.MethodGet), s.cors(http.MethodGet))
	e.POST(PathGetIdentities, s.handleGetIdentities, s.cors(http.MethodPost), s.clientAuth)
	e.OPTIONS(PathGetIdentities, handleOptions(http.MethodPost), s.cors(http.MethodPost))
	e.GET(PathHealth, s.handleHealth)
	e.GET(PathReady, s.handleReady)
	e.GET(PathMetrics, echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	s.echo = e
	return s, nil
}

// Handler returns the server's HTTP handler, for tests and for embedding in
// another server.
func (s *Server) Handler() http.Handler { return s.echo }

// Start listens on Config.Addr and serves in the background until Shutdown.
// It returns once the listener is bound (see Addr), or the error of binding;
// ctx bounds the bind only. A serving failure after Start is logged.
func (s *Server) Start(ctx context.Context) error {
	ln, err := httpserve.Listen(ctx, "webhook", s.cfg.Addr)
	if err != nil {
		return err
	}
	srv, err := s.prepare(ln)
	if err != nil {
		ln.Close()
		return err
	}
	httpserve.Go(srv, ln, func(err error) { s.log.Error().Err(err).Msg("http server stopped") })
	return nil
}

// Serve serves on ln until Shutdown, when it returns nil. It returns an
// error if the server is already serving or was shut down.
func (s *Server) Serve(ln net.Listener) error {
	srv, err := s.prepare(ln)
	if err != nil {
		return err
	}
	if err := httpserve.Serve(srv, ln); err != nil {
		return fmt.Errorf("webhook: serve: %w", err)
	}
	return nil
}

func (s *Server) prepare(ln net.Listener) (*http.Server, error) {
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(s.log, "", 0),
	}
	if err := s.lifecycle.Bind(ln, srv); err != nil {
		return nil, err
	}
	s.log.Info().Str("addr", ln.Addr().String()).Msg("http server listening")
	return srv, nil
}

// Addr returns the address the server is bound to (with the port chosen for
// ":0"), or "" before Start or Serve.
func (s *Server) Addr() string { return s.lifecycle.Addr() }

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in flight; a webhook in flight still gets its answer once the
// queue acknowledged it. It is idempotent; after it, Start and Serve fail.
// It returns ctx's error when requests were still running at the deadline.
func (s *Server) Shutdown(ctx context.Context) error { return s.lifecycle.Shutdown(ctx) }

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// handleError answers errors returned by handlers and by echo's router.
// Internal errors get a generic message; the detail goes to the log.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status := http.StatusInternalServerError
	msg := http.StatusText(status)
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(status)
		}
	} else {
		s.log.Error().Err(err).Str("method", c.Request().Method).Str("path", c.Path()).Msg("request failed")
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, errorBody{Error: msg})
}

// recoverer turns a panic into a 500 and a log line.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error().Str("panic", fmt.Sprint(r)).Str("path", c.Path()).Msg("handler panicked")
				err = echo.NewHTTPError(http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError))
			}
		}()
		return next(c)
	}
}

// accessLog logs one line per request: method, route, status, and the
// trigger, group and job id a webhook handler found. Nothing else of the
// request is logged: no header (Authorization holds secrets), no body.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		path := c.Path()
		if path == "" {
			path = "unmatched"
		}
		lvl := zerolog.InfoLevel
		switch {
		case path == PathHealth || path == PathReady || path == PathMetrics:
			lvl = zerolog.DebugLevel
		case status >= 500:
			lvl = zerolog.WarnLevel
		}
		ev := s.log.WithLevel(lvl).
			Str("method", c.Request().Method).
			Str("path", path).
			Int("status", status).
			Dur("duration", time.Since(start))
		for _, k := range []struct{ key, field string }{{ctxTrigger, "trigger"}, {ctxGUID, "guid"}, {ctxJobID, "job_id"}} {
			if v, ok := c.Get(k.key).(string); ok && v != "" {
				ev = ev.Str(k.field, v)
			}
		}
		ev.Msg("http request")
		return nil
	}
}

func (s *Server) handleHealth(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyBody is the answer of /readyz.
type readyBody struct {
	Status  string   `json:"status"`
	Failing []string `json:"failing,omitempty"`
	// Reasons gives, for failing checks whose error has a public reason
	// (see ReadyReason), that reason.
	Reasons map[string]string `json:"reasons,omitempty"`
	// Degraded lists why a ready server works with less safety than it
	// should (Config.Degraded).
	Degraded []string `json:"degraded,omitempty"`
}

// handleReady runs every ready check concurrently within ReadyTimeout and
// answers 503 with the names of those that failed or did not answer in time;
// otherwise 200, with status "degraded" and the reasons when Degraded names
// any.
func (s *Server) handleReady(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	names := make([]string, 0, len(s.cfg.ReadyChecks))
	for name := range s.cfg.ReadyChecks {
		names = append(names, name)
	}
	sort.Strings(names)
	var (
		mu   sync.Mutex
		errs = make([]error, len(names))
		done = make([]bool, len(names))
		wg   sync.WaitGroup
	)
	for i, name := range names {
		check := s.cfg.ReadyChecks[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := runCheck(ctx, check)
			mu.Lock()
			errs[i], done[i] = err, true
			mu.Unlock()
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	var failing []string
	reasons := map[string]string{}
	mu.Lock()
	for i, name := range names {
		err := errs[i]
		if !done[i] {
			err = readyReason(fmt.Sprintf("no answer within %v", s.cfg.ReadyTimeout))
		}
		if err != nil {
			s.log.Warn().Err(err).Str("check", name).Msg("readiness check failed")
			failing = append(failing, name)
			var rr ReadyReason
			if errors.As(err, &rr) {
				reasons[name] = rr.Reason()
			}
		}
	}
	mu.Unlock()
	var degraded []string
	if s.cfg.Degraded != nil {
		degraded = s.cfg.Degraded()
	}
	if len(failing) > 0 {
		body := readyBody{Status: "unavailable", Failing: failing, Degraded: degraded}
		if len(reasons) > 0 {
			body.Reasons = reasons
		}
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	if len(degraded) > 0 {
		return c.JSON(http.StatusOK, readyBody{Status: "degraded", Degraded: degraded})
	}
	return c.JSON(http.StatusOK, readyBody{Status: "ready"})
}

// runCheck runs check, turning a panic into an error.
func runCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("webhook: ready check panicked: %v", r)
		}
	}()
	return check(ctx)
}

// retryAfterSeconds formats d as a Retry-After value: whole seconds, at
// least 1, rounded up.
func retryAfterSeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return fmt.Sprint(secs)
}
