package webhook

import (
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1 ,,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"PeerOnly", "198.51.100.7:5000", nil, nil, "198.51.100.7"},
		{"XFFIgnoredByDefault", "198.51.100.7:5000", []string{"203.0.113.1"}, nil, "198.51.100.7"},
		{"XFFIgnoredFromUntrustedPeer", "198.51.100.7:5000", []string{"203.0.113.1"}, proxies, "198.51.100.7"},
		{"TrustedProxy", "10.1.2.3:5000", []string{"203.0.113.1"}, proxies, "203.0.113.1"},
		{"RightmostUntrusted", "10.1.2.3:5000", []string{"6.6.6.6, 203.0.113.1, 192.0.2.1"}, proxies, "203.0.113.1"},
		{"SeveralHeaders", "10.1.2.3:5000", []string{"6.6.6.6", "203.0.113.1"}, proxies, "203.0.113.1"},
		{"GarbageStopsAtLastProxy", "10.1.2.3:5000", []string{"203.0.113.1, bogus, 192.0.2.1"}, proxies, "192.0.2.1"},
		{"AllTrusted", "10.1.2.3:5000", []string{"10.9.9.9"}, proxies, "10.9.9.9"},
		{"NoXFF", "10.1.2.3:5000", nil, proxies, "10.1.2.3"},
		{"IPv6Per64", "[2001:db8:1:2:3:4:5:6]:5000", nil, nil, "2001:db8:1:2::/64"},
		{"IPv4Mapped", "[::ffff:198.51.100.7]:5000", nil, nil, "198.51.100.7"},
		{"XFFWithPort", "[fd00::1]:5000", []string{"203.0.113.1:4711"}, proxies, "203.0.113.1"},
	} {
		r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientIP(r, tt.trusted); got != tt.want {
			t.Errorf("%s: clientIP(peer %s, XFF %q) = %q, want %q", tt.name, tt.peer, tt.xff, got, tt.want)
		}
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,proxy.example"); err == nil {
		t.Error("ParseTrustedProxies with a host name = nil error")
	}
}

func TestBucketsRetryAfter(t *testing.T) {
	b := newBuckets(0.5, 2, 10)
	now := time.Unix(1718000000, 0)
	for i := range 2 {
		if ok, _ := b.take("k", now); !ok {
			t.Fatalf("take %d of a burst of 2 refused", i+1)
		}
	}
	ok, wait := b.take("k", now)
	if ok || wait != 2*time.Second {
		t.Fatalf("third take = %v, wait %v; want refused, 2s", ok, wait)
	}
	// A refused take costs nothing: the token comes 2 s later as promised.
	if ok, _ := b.take("k", now.Add(2*time.Second)); !ok {
		t.Error("take after the promised wait refused")
	}
	if ok, _ := b.take("other", now); !ok {
		t.Error("another key's bucket is not full")
	}
	if ok, _ := newBuckets(-1, 1, 1).take("k", now); !ok {
		t.Error("a negative rate limits")
	}
}
