package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/virgil"
)

// Error codes the emulator answers with. Only CodeCardNotFound,
// CodeTokenExpired and CodeInvalidPreviousHash are known to be the real
// service's; the others are the emulator's own (docs/virgil-protocol.md
// section 10).
const (
	// CodeCardNotFound: the card id is unknown (404).
	CodeCardNotFound = virgil.CodeCardNotFound
	// CodeNotFound: no such endpoint (404).
	CodeNotFound = 10000
	// CodeAuthMissing: missing or unsupported Authorization header (401).
	CodeAuthMissing = virgil.CodeAuthMissing
	// CodeTokenInvalid: malformed token, bad signature, unknown kid, wrong issuer (401).
	CodeTokenInvalid = virgil.CodeTokenInvalid
	// CodeTokenExpired: the token expired; clients refresh it and retry (401).
	CodeTokenExpired = virgil.CodeTokenExpired
	// CodeForbidden: revoking another identity's card (403).
	CodeForbidden = 20500
	// CodeInvalidJSON: the body is not the expected JSON (400), or too large (413).
	CodeInvalidJSON = 30000
	// CodeInvalidCard: bad snapshot, version, duplicate or previous card (400).
	CodeInvalidCard = 30107
	// CodeEmptyIdentities: a search without identities, or with too many (400).
	CodeEmptyIdentities = 30111
	// CodeIdentityMismatch: empty identity or not the caller's (400).
	CodeIdentityMismatch = 30114
	// CodeInvalidPublicKey: the card's public key does not import (400).
	CodeInvalidPublicKey = 30117
	// CodeSelfSignatureMissing: the card has no self signature (400).
	CodeSelfSignatureMissing = 30123
	// CodeSelfSignatureInvalid: the self signature does not verify (400).
	CodeSelfSignatureInvalid = 30142
	// CodeKeyknoxInvalidParams: bad Keyknox parameters (400).
	CodeKeyknoxInvalidParams = 50000
	// CodeInvalidPreviousHash: a push without the entry's current hash (409).
	CodeInvalidPreviousHash = virgil.CodeInvalidPreviousHash
	// CodeMethodNotAllowed: the endpoint exists with another method (405).
	CodeMethodNotAllowed = 10005
	// CodeInjectedFault: an error answered by fault injection (see Fault).
	CodeInjectedFault = 99000
	// CodeUnavailable: the emulator is closed or cannot store its state (503/500).
	CodeUnavailable = 99500
)

// Header names of the Virgil services.
const (
	headerKeyknoxHash     = "Virgil-Keyknox-Hash"
	headerKeyknoxPrevious = "Virgil-Keyknox-Previous-Hash"
	headerSuperseded      = "X-Virgil-Is-Superseeded" // sic, as the SDK spells it
)

// DefaultMaxBodyBytes bounds request bodies when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// DefaultMaxSearchIdentities bounds the identities of one search when
// Config.MaxSearchIdentities is zero: E3Kit's findUsers never sends more
// than 50, so the emulator refuses more, as the strictest known client
// implies the service may.
const DefaultMaxSearchIdentities = virgil.MaxSearchIdentities

// Error is an error answer of the emulator: an HTTP status and a Virgil
// error code, sent as JSON {"code","message"}.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the Virgil error code (one of the Code* constants).
	Code int
	// Message is the human-readable text.
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("emulator: %d/%d: %s", e.Status, e.Code, e.Message)
}

func apiErr(status, code int, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Config configures an Emulator.
type Config struct {
	// AppID is the Virgil application id; tokens must be issued for it.
	AppID string
	// AppKeyID is the id (JWT kid) of AppPublicKey.
	AppKeyID string
	// AppPublicKey verifies the application's JWTs.
	AppPublicKey *virgil.PublicKey
	// MoreAppKeys are further accepted application keys by key id (optional).
	MoreAppKeys map[string]*virgil.PublicKey
	// ServiceKey makes the "virgil" signature of published cards. When nil
	// the emulator uses the key kept in Dir, or generates one.
	ServiceKey *virgil.PrivateKey
	// Dir, when set, is the folder where the state persists across restarts:
	// every change is on disk before it is answered (changes of concurrent
	// requests share one sync), though a concurrent reader may see a change
	// a moment before it is.
	Dir string
	// Now is the clock for token expiry and fault deadlines (default time.Now).
	Now func() time.Time
	// Logger receives one debug line per request (never tokens or keys).
	Logger zerolog.Logger
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// MaxSearchIdentities bounds the identities of one card search (default
	// DefaultMaxSearchIdentities). Only a measurement of the official
	// E3Kit owner raises it: E3Kit's owner-side group.remove searches every
	// remaining participant at once, which the default refuses for groups
	// past 50 (docs/virgil-protocol.md).
	MaxSearchIdentities int
	// DebugAPI turns on the /_emulator/ inspection and fault endpoints,
	// which answer without a token: for tests, dev mode and chaos runs
	// only. Off by default.
	DebugAPI bool
}

// validate reports every invalid field of cfg, joined.
func (cfg Config) validate() error {
	var errs []error
	if cfg.AppID == "" {
		errs = append(errs, errors.New("AppID is required"))
	}
	if cfg.AppKeyID == "" {
		errs = append(errs, errors.New("AppKeyID is required"))
	}
	if cfg.AppPublicKey == nil {
		errs = append(errs, errors.New("AppPublicKey is required"))
	}
	for kid, k := range cfg.MoreAppKeys {
		if kid == "" || k == nil {
			errs = append(errs, errors.New("MoreAppKeys has an empty key id or a nil key"))
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("emulator: config: %w", errors.Join(errs...))
	}
	return nil
}

// Emulator is a Virgil-compatible http.Handler. It is safe for concurrent use.
type Emulator struct {
	cfg        Config
	keys       map[string]*virgil.PublicKey
	serviceKey *virgil.PrivateKey
	log        zerolog.Logger

	mu      sync.Mutex // guards st and persistence
	st      *state
	store   *diskStore // nil without Dir
	pythia  pythiaKeys
	history map[pathKey]*groupHistory

	faultMu    sync.Mutex
	fault      Fault
	faultCount int

	closed   atomic.Bool
	requests atomic.Uint64
	faults   atomic.Uint64
	delayed  atomic.Uint64
	rejected atomic.Uint64
}

// New returns an Emulator for cfg. It fails when the application key is
// missing or when the state in cfg.Dir cannot be read.
func New(cfg Config) (*Emulator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxSearchIdentities <= 0 {
		cfg.MaxSearchIdentities = DefaultMaxSearchIdentities
	}
	keys := map[string]*virgil.PublicKey{cfg.AppKeyID: cfg.AppPublicKey}
	for kid, k := range cfg.MoreAppKeys {
		keys[kid] = k
	}
	e := &Emulator{cfg: cfg, keys: keys, log: cfg.Logger, st: newState(), history: map[pathKey]*groupHistory{}}
	if cfg.Dir != "" {
		ds, st, err := openDiskStore(cfg.Dir)
		if err != nil {
			return nil, err
		}
		ds.onCompactError = func(err error) {
			e.log.Error().Err(err).Msg("emulator: folding the journal into the snapshot failed; folding stops until the next start, the journal keeps every change")
		}
		e.store, e.st = ds, st
	}
	if err := e.loadPythia(); err != nil {
		return nil, err
	}
	switch {
	case cfg.ServiceKey != nil:
		e.serviceKey = cfg.ServiceKey
	case e.store != nil:
		k, err := e.store.serviceKey()
		if err != nil {
			return nil, err
		}
		e.serviceKey = k
	default:
		k, err := virgil.GenerateKey()
		if err != nil {
			return nil, fmt.Errorf("emulator: new: generate service key: %w", err)
		}
		e.serviceKey = k
	}
	return e, nil
}

// ServiceKey returns the public key of the emulator's "virgil" card
// signatures (give it to virgil.WithServiceKey).
func (e *Emulator) ServiceKey() *virgil.PublicKey { return e.serviceKey.Public() }

// ServiceKeyPath is the public endpoint (GET, no token) that publishes the
// emulator's service key as ServiceKeyResponse JSON, so that operators can
// configure the owner of a deployment against the emulator with it.
const ServiceKeyPath = "/emulator/v1/service-key"

// ServiceKeyResponse is the body of GET ServiceKeyPath.
type ServiceKeyResponse struct {
	// ServiceKey is the public key of the emulator's "virgil" card
	// signatures, base64 SPKI DER (the form of
	// virgil.VirgilCardsServiceKeyBase64 and GROUPSYNC_VIRGIL_SERVICE_KEY).
	ServiceKey string `json:"service_key"`
}

func (e *Emulator) serveServiceKey(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		e.writeError(w, apiErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ServiceKeyResponse{ServiceKey: e.serviceKey.Public().MarshalSPKIBase64()})
}

// Close stops serving: later requests get 503. The state is already on disk
// (every change is synced to the journal before it is answered); Close
// closes the journal. Close is idempotent.
func (e *Emulator) Close() error {
	e.closed.Store(true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store == nil {
		return nil
	}
	if err := e.store.close(); err != nil {
		return fmt.Errorf("emulator: close journal: %w", err)
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	caller := e.serve(rec, r)
	e.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Str("caller", caller).
		Int("status", rec.status).Dur("took", time.Since(start)).Msg("emulator: request")
}

func (e *Emulator) serve(w *statusRecorder, r *http.Request) (caller string) {
	setCORS(w.Header())
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return ""
	}
	if e.closed.Load() {
		e.writeError(w, apiErr(http.StatusServiceUnavailable, CodeUnavailable, "emulator closed"))
		return ""
	}
	if strings.HasPrefix(r.URL.Path, debugPrefix) && e.cfg.DebugAPI {
		e.serveDebug(w, r)
		return ""
	}
	if r.URL.Path == ServiceKeyPath {
		e.serveServiceKey(w, r)
		return ""
	}
	e.requests.Add(1)
	if e.injectFault(w, r) {
		return ""
	}
	h, method, apiE := route(r.Method, r.URL.Path)
	if apiE == nil && r.Method != method {
		apiE = apiErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method %s not allowed", r.Method)
	}
	if apiE != nil {
		e.writeError(w, apiE)
		return ""
	}
	claims, apiE := e.authenticate(r)
	if apiE != nil {
		e.writeError(w, apiE)
		return ""
	}
	var body []byte
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				e.writeError(w, apiErr(http.StatusRequestEntityTooLarge, CodeInvalidJSON, "request body larger than %d bytes", e.cfg.MaxBodyBytes))
			} else {
				e.writeError(w, apiErr(http.StatusBadRequest, CodeInvalidJSON, "reading the request body failed"))
			}
			return claims.Identity
		}
	}
	req := &request{caller: claims.Identity, body: body, http: r, header: w.Header()}
	resp, apiE := h(e, req)
	if apiE == nil && req.durable != nil {
		// The change is in the journal: answer once it is on disk.
		apiE = req.durable()
	}
	if apiE != nil {
		e.writeError(w, apiE)
		return claims.Identity
	}
	if resp.raw != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp.raw)
		return claims.Identity
	}
	w.WriteHeader(http.StatusOK)
	return claims.Identity
}

// request is one authenticated API request.
type request struct {
	caller string
	body   []byte
	http   *http.Request
	header http.Header // response headers
	param  string      // path parameter (card id)
	// durable, set by a change, waits until the change is on disk; it runs
	// after the handler released the state lock, so the changes of
	// concurrent requests share one sync.
	durable func() *Error
}

// response is a successful answer: raw JSON, or an empty body when nil.
type response struct{ raw []byte }

func jsonResponse(v any) (response, *Error) {
	b, err := json.Marshal(v)
	if err != nil {
		return response{}, apiErr(http.StatusInternalServerError, CodeUnavailable, "encoding the answer failed")
	}
	return response{raw: b}, nil
}

type handler func(e *Emulator, r *request) (response, *Error)

// route maps a path (and, where one path has two, the method) to its
// handler and method.
func route(reqMethod, path string) (handler, string, *Error) {
	switch path {
	case "/pythia/v1/brainkey":
		return (*Emulator).brainKeySeed, http.MethodPost, nil
	case "/keyknox/v1":
		if reqMethod == http.MethodGet {
			return (*Emulator).keyknoxV1Pull, http.MethodGet, nil
		}
		return (*Emulator).keyknoxV1Push, http.MethodPut, nil
	case "/keyknox/v1/reset":
		return (*Emulator).keyknoxV1Reset, http.MethodPost, nil
	case "/card/v5":
		return (*Emulator).publishCard, http.MethodPost, nil
	case "/card/v5/actions/search":
		return (*Emulator).searchCards, http.MethodPost, nil
	case "/keyknox/v2/push":
		return (*Emulator).keyknoxPush, http.MethodPost, nil
	case "/keyknox/v2/pull":
		return (*Emulator).keyknoxPull, http.MethodPost, nil
	case "/keyknox/v2/keys":
		return (*Emulator).keyknoxKeys, http.MethodPost, nil
	case "/keyknox/v2/reset":
		return (*Emulator).keyknoxReset, http.MethodPost, nil
	}
	if id, ok := strings.CutPrefix(path, "/card/v5/actions/revoke/"); ok && id != "" && !strings.Contains(id, "/") {
		return withParam(id, (*Emulator).revokeCard), http.MethodPost, nil
	}
	if id, ok := strings.CutPrefix(path, "/card/v5/"); ok && id != "" && !strings.Contains(id, "/") && id != "actions" {
		return withParam(id, (*Emulator).getCard), http.MethodGet, nil
	}
	return nil, "", apiErr(http.StatusNotFound, CodeNotFound, "no endpoint %s", path)
}

func withParam(p string, h handler) handler {
	return func(e *Emulator, r *request) (response, *Error) {
		r.param = p
		return h(e, r)
	}
}

// authenticate checks the Authorization header as the Virgil services do.
func (e *Emulator) authenticate(r *http.Request) (*virgil.Claims, *Error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || scheme != "Virgil" || token == "" {
		return nil, apiErr(http.StatusUnauthorized, CodeAuthMissing, "Authorization header must be 'Virgil <jwt>'")
	}
	claims, err := virgil.VerifyJWT(token, e.cfg.AppID, e.keys, e.cfg.Now())
	if err != nil {
		var te *virgil.TokenError
		if errors.As(err, &te) {
			return nil, apiErr(http.StatusUnauthorized, te.Code(), "%s", te.Error())
		}
		return nil, apiErr(http.StatusUnauthorized, CodeTokenInvalid, "invalid token")
	}
	return claims, nil
}

func (e *Emulator) writeError(w http.ResponseWriter, apiE *Error) {
	e.rejected.Add(1)
	writeJSONError(w, apiE)
}

func writeJSONError(w http.ResponseWriter, apiE *Error) {
	b, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{apiE.Code, apiE.Message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apiE.Status)
	_, _ = w.Write(b)
}

// setCORS adds the headers browser E3Kit clients need: without the expose
// header they never see the Keyknox hash.
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Virgil-Agent, Virgil-Keyknox-Previous-Hash")
	h.Set("Access-Control-Expose-Headers", "Virgil-Keyknox-Hash, X-Virgil-Is-Superseeded")
	h.Set("Access-Control-Max-Age", strconv.Itoa(600))
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
