package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Names under which requests carry the CSRF token.
const (
	// FieldCSRF is the form field of the CSRF token.
	FieldCSRF = "csrf"
	// HeaderCSRF is the request header of the CSRF token (for scripts that
	// POST JSON), and the response header every authenticated answer
	// carries it in.
	HeaderCSRF = "X-CSRF-Token"
)

// failures counts failed logins per client IP in bounded token buckets: a
// wrong password takes a token, and a client with none left is refused
// until it earns one back. It is safe for concurrent use.
type failures struct {
	limit rate.Limit
	burst int
	m     *lru.Cache[string, *rate.Limiter]
}

func newFailures(perSecond float64, burst, size int) *failures {
	m, err := lru.New[string, *rate.Limiter](size)
	if err != nil { // size validated positive
		panic(err)
	}
	return &failures{limit: rate.Limit(perSecond), burst: burst, m: m}
}

// blocked reports whether client has no failure left at now, and how long
// until it has one.
func (f *failures) blocked(client string, now time.Time) (bool, time.Duration) {
	lim, ok := f.m.Get(client)
	if !ok {
		return false, 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / float64(f.limit) * float64(time.Second))
}

// fail takes one failure of client's bucket.
func (f *failures) fail(client string, now time.Time) {
	lim, ok := f.m.Get(client)
	if !ok {
		lim = rate.NewLimiter(f.limit, f.burst)
		if prev, found, _ := f.m.PeekOrAdd(client, lim); found {
			lim = prev
		}
	}
	lim.AllowN(now, 1)
}

// clientIP is the key of r's client: its address, or its /64 for IPv6.
// The client is the connection's peer, unless the peer is one of trusted
// (a reverse proxy): then it is the rightmost X-Forwarded-For entry that is
// not a trusted proxy.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return "peer:" + r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if isTrusted(a, trusted) {
		entries := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(entries) - 1; i >= 0; i-- {
			e, err := netip.ParseAddr(strings.TrimSpace(entries[i]))
			if err != nil {
				break
			}
			a = e.Unmap()
			if !isTrusted(a, trusted) {
				break
			}
		}
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// credentials holds the digests of the console's credentials, so a
// comparison takes the same time whatever the lengths given, and the CSRF
// tokens: the one made, and those accepted.
type credentials struct {
	user, pass [32]byte
	csrf       string
	accepted   []string
}

// newCredentials derives the digests and the CSRF token of user and pass
// under key, and accepts the tokens of previous too (when set).
func newCredentials(user, pass string, key, previous []byte) credentials {
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	c := credentials{user: u, pass: p, csrf: csrfToken(u, p, key)}
	c.accepted = append(c.accepted, c.csrf)
	if previous != nil {
		c.accepted = append(c.accepted, csrfToken(u, p, previous))
	}
	return c
}

// csrfToken is the CSRF token of the credentials' digests under key: an
// HMAC of both, so it changes with the password and cannot be made without
// the key.
func csrfToken(user, pass [32]byte, key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("groupsync console csrf\x00"))
	mac.Write(user[:])
	mac.Write(pass[:])
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// check reports whether r carries the credentials; present says whether it
// carries Basic auth at all.
func (c credentials) check(r *http.Request) (ok, present bool) {
	user, pass, present := r.BasicAuth()
	if !present {
		return false, false
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	okUser := subtle.ConstantTimeCompare(u[:], c.user[:])
	okPass := subtle.ConstantTimeCompare(p[:], c.pass[:])
	return okUser&okPass == 1, true
}

// checkCSRF reports whether r carries the CSRF token, in the header or the
// form.
func (c credentials) checkCSRF(r *http.Request) bool {
	token := r.Header.Get(HeaderCSRF)
	if token == "" {
		token = r.PostFormValue(FieldCSRF)
	}
	if token == "" {
		return false
	}
	ok := 0
	for _, t := range c.accepted {
		ok |= subtle.ConstantTimeCompare([]byte(token), []byte(t))
	}
	return ok == 1
}

// retryAfter is d in whole seconds, at least 1, for a Retry-After header.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
