package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/worker/redistest"
)

// TestRedisURLs checks that GROUPSYNC_REDIS_URL reaches a store through
// Sentinel, and that a master name no Sentinel monitors is a configuration
// error (one line, exit status 2), not an outage to wait out.
func TestRedisURLs(t *testing.T) {
	primary := redistest.Start(t)
	sentinels := redistest.StartSentinels(t, primary, "groupsync", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name, url, wantErr string
	}{
		{"Sentinel", "redis+sentinel://" + sentinels[0].Addr() + "/groupsync", ""},
		{"UnknownMaster", "redis+sentinel://" + sentinels[0].Addr() + "/nosuchmaster", "nosuchmaster"},
		{"Single", primary.URL(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := parseStore(redisSettings(t, tc.url))
			if err != nil {
				t.Fatalf("parseStore(%q): %v", tc.url, err)
			}
			st, closeStore, err := openStore(ctx, sc, nil)
			if tc.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("openStore(%q) = %v, want a one-line configuration error naming %q", tc.url, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("openStore(%q): %v", tc.url, err)
			}
			defer closeStore()
			if err := st.Ping(ctx); err != nil {
				t.Errorf("Ping through %q: %v", tc.url, err)
			}
		})
	}
	if _, err := parseStore(redisSettings(t, "redis+sentinel://127.0.0.1:1")); err == nil {
		t.Error("parseStore accepted a Sentinel URL without a master name")
	}
}

// redisSettings returns the settings of a command given GROUPSYNC_REDIS_URL.
func redisSettings(t *testing.T, url string) *settings {
	t.Helper()
	s := newSettings("worker", func(k string) string {
		if k == "GROUPSYNC_REDIS_URL" {
			return url
		}
		return ""
	}, "redis-url")
	if err := s.parse(nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	return s
}
