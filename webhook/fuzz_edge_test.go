package webhook

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzOrigin: the policy allows only origins of the configured hosts, and
// a parsed origin parses again to itself.
func FuzzOrigin(f *testing.F) {
	for _, s := range []string{"https://app.example.com", "http://localhost:3000", "http://[::1]:8080", "null", "*",
		"https://app.example.com:443", "https://app.example.com.evil.example", "http://localhost@evil.example",
		"https://x/y", "http://a:b:c", "HTTPS://APP.EXAMPLE.COM", "http://localhost:0"} {
		f.Add(s)
	}
	p := newCORSPolicy(CORSConfig{AllowedOrigins: []string{"https://app.example.com", "http://localhost:*"}, MaxAge: time.Minute})
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOrigin(s, false)
		if err == nil {
			canon := o.scheme + "://" + o.host
			if o.port != "" {
				canon += ":" + o.port
			}
			if o2, err := parseOrigin(canon, false); err != nil || o2 != o {
				t.Fatalf("parseOrigin(%q) = %+v, but its form %q parses to %+v, %v", s, o, canon, o2, err)
			}
		}
		if p.allows(s) && (err != nil || !(o.scheme == "https" && o.host == "app.example.com" && o.port == "" ||
			o.scheme == "http" && o.host == "localhost")) {
			t.Fatalf("origin %q allowed (parsed %+v, %v)", s, o, err)
		}
	})
}

// FuzzClientIP: without trusted proxies the client is the peer, whatever
// X-Forwarded-For says.
func FuzzClientIP(f *testing.F) {
	f.Add("198.51.100.7:5000", "203.0.113.1")
	f.Add("[2001:db8::1]:1", "::1, 10.0.0.1")
	f.Add("garbage", "")
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}}}
		plain := &http.Request{RemoteAddr: peer, Header: http.Header{}}
		if got, want := clientIP(r, nil), clientIP(plain, nil); got != want {
			t.Fatalf("clientIP(peer %q, XFF %q) = %q, want the peer's %q", peer, xff, got, want)
		}
		if strings.TrimSpace(xff) == "" {
			return
		}
		_ = clientIP(r, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}) // no panic
	})
}
