package webhook

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// buckets is a bounded set of token buckets, one per key; the least
// recently used are dropped first (a dropped key starts again full). A nil
// *buckets allows everything. It is safe for concurrent use.
type buckets struct {
	limit rate.Limit
	burst int
	m     *lru.Cache[string, *rate.Limiter]
}

// newBuckets returns buckets of r per second and burst b, or nil when r is
// negative (no limit).
func newBuckets(r float64, b, size int) *buckets {
	if r < 0 {
		return nil
	}
	m, err := lru.New[string, *rate.Limiter](size)
	if err != nil { // size validated positive
		panic(err)
	}
	return &buckets{limit: rate.Limit(r), burst: b, m: m}
}

// take takes one token of key's bucket. When there is none it reports false
// and how long until there is.
func (b *buckets) take(key string, now time.Time) (bool, time.Duration) {
	if b == nil {
		return true, 0
	}
	lim, ok := b.m.Get(key)
	if !ok {
		lim = rate.NewLimiter(b.limit, b.burst)
		if prev, found, _ := b.m.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Minute
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// clientIP returns the bucket key of r's client: its address, or its /64
// for IPv6. The client is the connection's peer, unless the peer is one of
// trusted: then it is the rightmost X-Forwarded-For entry that is not a
// trusted proxy (or the last proxy named, when an entry does not parse, or
// the leftmost entry when every one is trusted).
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return "peer:" + r.RemoteAddr
	}
	client := ap.Addr().Unmap()
	if len(trusted) > 0 && isTrusted(client, trusted) {
		entries := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(entries) - 1; i >= 0; i-- {
			a, ok := parseForwarded(entries[i])
			if !ok {
				break
			}
			client = a
			if !isTrusted(a, trusted) {
				break
			}
		}
	}
	if client.Is6() {
		p, _ := client.Prefix(64)
		return p.String()
	}
	return client.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwarded parses one X-Forwarded-For entry: an address, possibly
// with a port.
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR
// prefixes (for LimitConfig.TrustedProxies). Empty entries are skipped.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("webhook: trusted proxy %q: want an address or a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
