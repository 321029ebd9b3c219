package webhook

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// origin is a parsed browser origin, or an allowed-origin pattern whose
// port may be "*".
type origin struct {
	scheme, host, port string
}

// parseOrigin parses "scheme://host[:port]" (http or https, nothing after
// the port). With pattern, the port may be "*". Default ports are dropped,
// scheme and host lower-cased.
func parseOrigin(s string, pattern bool) (origin, error) {
	if s == "*" {
		return origin{}, fmt.Errorf("%q: list the allowed origins; \"*\" is not accepted", s)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	scheme = strings.ToLower(scheme)
	if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/?#@\\ ") {
		return origin{}, fmt.Errorf("%q: want scheme://host[:port], such as https://app.example.com", s)
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
		if port == "" {
			return origin{}, fmt.Errorf("%q: empty port", s)
		}
	}
	if host == "" {
		return origin{}, fmt.Errorf("%q: no host", s)
	}
	if port == "*" {
		if !pattern {
			return origin{}, fmt.Errorf("%q: bad port", s)
		}
	} else if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return origin{}, fmt.Errorf("%q: bad port", s)
		}
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		}
	}
	u, err := url.Parse(scheme + "://" + host)
	if err != nil || u.Hostname() == "" || u.Port() != "" || strings.Contains(u.Hostname(), "*") {
		return origin{}, fmt.Errorf("%q: bad host", s)
	}
	return origin{scheme: scheme, host: strings.ToLower(host), port: port}, nil
}

// CheckOrigins reports the first entry of origins that CORSConfig's
// AllowedOrigins does not accept, with the reason.
func CheckOrigins(origins []string) error {
	for _, o := range origins {
		if _, err := parseOrigin(o, true); err != nil {
			return fmt.Errorf("webhook: CORS origin %w", err)
		}
	}
	return nil
}

// corsPolicy decides which origins may call the client API.
type corsPolicy struct {
	allowed []origin
	maxAge  string
}

func newCORSPolicy(cfg CORSConfig) *corsPolicy {
	p := &corsPolicy{maxAge: strconv.Itoa(int(cfg.MaxAge.Seconds()))}
	for _, s := range cfg.AllowedOrigins {
		o, err := parseOrigin(s, true) // validated by Config.validate
		if err == nil {
			p.allowed = append(p.allowed, o)
		}
	}
	return p
}

// allows reports whether the Origin header value o is allowed.
func (p *corsPolicy) allows(o string) bool {
	if len(p.allowed) == 0 || o == "" || o == "null" {
		return false
	}
	got, err := parseOrigin(o, false)
	if err != nil {
		return false
	}
	for _, a := range p.allowed {
		if a.scheme == got.scheme && a.host == got.host && (a.port == "*" || a.port == got.port) {
			return true
		}
	}
	return false
}

// Headers a browser may send to, and read from, the client API.
const (
	corsAllowHeaders  = "Authorization, " + HeaderUID + ", Content-Type"
	corsExposeHeaders = "Retry-After, WWW-Authenticate"
)

// cors is the CORS middleware of one client API route whose method is
// method. An allowed origin gets Access-Control-Allow-Origin naming it (never
// "*", never credentials); a preflight from it 204 with the method and the
// headers the client API reads. A disallowed origin gets no CORS headers, and
// its preflight 403. It runs before rate limits and authentication, so that
// their refusals reach the page.
func (s *Server) cors(method string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			h := c.Response().Header()
			h.Add(echo.HeaderVary, echo.HeaderOrigin)
			o := r.Header.Get(echo.HeaderOrigin)
			preflight := r.Method == http.MethodOptions && r.Header.Get(echo.HeaderAccessControlRequestMethod) != ""
			if preflight {
				h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestMethod)
				h.Add(echo.HeaderVary, echo.HeaderAccessControlRequestHeaders)
			}
			if o == "" {
				return next(c)
			}
			if !s.corsPolicy.allows(o) {
				if preflight {
					s.metrics.corsRefused.Inc()
					return c.JSON(http.StatusForbidden, errorBody{Error: "origin not allowed"})
				}
				return next(c)
			}
			h.Set(echo.HeaderAccessControlAllowOrigin, o)
			if preflight {
				h.Set(echo.HeaderAccessControlAllowMethods, method)
				h.Set(echo.HeaderAccessControlAllowHeaders, corsAllowHeaders)
				h.Set(echo.HeaderAccessControlMaxAge, s.corsPolicy.maxAge)
				return c.NoContent(http.StatusNoContent)
			}
			h.Set(echo.HeaderAccessControlExposeHeaders, corsExposeHeaders)
			return next(c)
		}
	}
}

// handleOptions answers an OPTIONS request that is not a CORS preflight.
func handleOptions(method string) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderAllow, method+", "+http.MethodOptions)
		return c.NoContent(http.StatusNoContent)
	}
}
