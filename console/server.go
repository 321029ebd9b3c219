package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/internal/httpserve"
)

// Server is the console: an http.Handler, and a server of it on
// Config.Addr (Start, Addr, Shutdown). Create one with New. Its methods are
// safe for concurrent use.
type Server struct {
	cfg       Config
	backend   Backend
	log       zerolog.Logger
	creds     credentials
	failures  *failures
	metrics   *metrics
	views     *views
	mux       *http.ServeMux
	handler   http.Handler
	origin    *http.CrossOriginProtection
	lifecycle httpserve.Lifecycle
}

// New returns a console over b. It fills cfg's zero fields with the
// defaults, validates it (the error names every invalid field), parses
// the templates and registers the metrics; it does no I/O.
func New(cfg Config, b Backend) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("console: new: nil Backend")
	}
	key := cfg.CSRFKey
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("console: csrf key: %w", err)
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	v, err := parseViews()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		backend:   b,
		log:       cfg.Logger,
		creds:     newCredentials(cfg.Username, cfg.Password, key, cfg.PreviousCSRFKey),
		failures:  newFailures(cfg.FailureRate, cfg.FailureBurst, cfg.MaxTracked),
		metrics:   m,
		views:     v,
		mux:       http.NewServeMux(),
		origin:    http.NewCrossOriginProtection(),
		lifecycle: httpserve.Lifecycle{Name: "console"},
	}
	s.routes()
	s.handler = s.outer(s.mux)
	return s, nil
}

// ServeHTTP serves the console.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Start listens on Config.Addr and serves the console until Shutdown.
func (s *Server) Start(ctx context.Context) error {
	ln, err := httpserve.Listen(ctx, "console", s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve serves the console on ln, in the background, until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if err := s.lifecycle.Bind(ln, srv); err != nil {
		ln.Close()
		return err
	}
	httpserve.Go(srv, ln, func(err error) { s.log.Error().Err(err).Msg("console server stopped") })
	return nil
}

// Addr is the address the console listens on, once started.
func (s *Server) Addr() string { return s.lifecycle.Addr() }

// Shutdown stops taking requests and waits for those under way until ctx
// ends. It may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error { return s.lifecycle.Shutdown(ctx) }

// reqInfo is what the handlers tell the access log and the metrics about a
// request.
type reqInfo struct {
	page string
	auth bool
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if i, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

// statusWriter records the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// securityHeaders are set on every answer: no script may run, no frame may
// hold a page, nothing is cached, forms post only here.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cache-Control":                "no-store",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// outer sets the security headers, recovers from panics, counts and logs
// every request: method, route, status, duration and whether it was
// authenticated; never a header, a query or a credential.
func (s *Server) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		ri := &reqInfo{page: "unmatched"}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error().Str("panic", fmt.Sprint(p)).Str("page", ri.page).Msg("console handler panicked")
				if sw.status == 0 {
					http.Error(sw, "internal error", http.StatusInternalServerError)
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.requests.WithLabelValues(ri.page, strconv.Itoa(status)).Inc()
			lvl := zerolog.InfoLevel
			if status >= 500 {
				lvl = zerolog.WarnLevel
			}
			s.log.WithLevel(lvl).
				Str("method", r.Method).
				Str("page", ri.page).
				Int("status", status).
				Bool("authenticated", ri.auth).
				Str("client", clientIP(r, s.cfg.TrustedProxies)).
				Dur("duration", time.Since(start)).
				Msg("console request")
		}()
		next.ServeHTTP(sw, r)
	})
}

// handle registers h for pattern as page: behind Basic auth, and for
// unsafe methods behind the CSRF check.
func (s *Server) handle(pattern, page string, h http.HandlerFunc) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := info(r)
		ri.page = page
		if !s.authenticate(w, r) {
			return
		}
		ri.auth = true
		w.Header().Set(HeaderCSRF, s.creds.csrf)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := s.origin.Check(r); err != nil {
				s.fail(w, r, http.StatusForbidden, "cross-origin request refused")
				return
			}
			if !s.creds.checkCSRF(r) {
				s.metrics.csrfRefused.Inc()
				s.fail(w, r, http.StatusForbidden, "missing or wrong CSRF token: send the form's csrf field or the X-CSRF-Token header")
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}))
}

// maxFormBytes bounds a POST's body.
const maxFormBytes = 1 << 20

// authenticate checks r's Basic auth; when it fails it answers 401, or 429
// for a client that failed too often, and reports false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	client, now := clientIP(r, s.cfg.TrustedProxies), time.Now()
	if blocked, wait := s.failures.blocked(client, now); blocked {
		s.metrics.rateLimited.Inc()
		w.Header().Set("Retry-After", retryAfter(wait))
		s.fail(w, r, http.StatusTooManyRequests, "too many failed logins: try again later")
		return false
	}
	ok, present := s.creds.check(r)
	if ok {
		return true
	}
	if present {
		// Only wrong credentials count: a browser's first request, which
		// carries none, must not lock anyone out.
		s.failures.fail(client, now)
		s.metrics.failedLogins.Inc()
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="groupsync console", charset="UTF-8"`)
	s.fail(w, r, http.StatusUnauthorized, "authentication required")
	return false
}
