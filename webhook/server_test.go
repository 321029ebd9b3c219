package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/webhook"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*webhook.Config)
		wants []string // parts of the error
	}{
		{"NoCredentials", func(c *webhook.Config) { c.Username, c.Password = "", "" }, []string{"Username is required", "Password is required"}},
		{"NoPassword", func(c *webhook.Config) { c.Password = "" }, []string{"Password is required"}},
		{"NoAppID", func(c *webhook.Config) { c.AppID = "" }, []string{"AppID is required"}},
		{"NoIdentities", func(c *webhook.Config) { c.Identities = nil }, []string{"Identities is required"}},
		{"NoTokens", func(c *webhook.Config) { c.Tokens = nil }, []string{"Tokens is required"}},
		{"BadClientAuth", func(c *webhook.Config) { c.ClientAuth = "none" }, []string{`ClientAuth "none"`}},
		{"CometChatWithoutKey", func(c *webhook.Config) { c.ClientAuth = webhook.ClientAuthCometChat }, []string{"CometChat.APIKey is required"}},
		{"CometChatBadURL", func(c *webhook.Config) {
			c.ClientAuth, c.CometChat.APIKey, c.CometChat.APIURL = webhook.ClientAuthCometChat, "k", "ftp://x"
		}, []string{"API URL"}},
		{"NegativeTimeout", func(c *webhook.Config) { c.PublishTimeout = -time.Second }, []string{"PublishTimeout"}},
		{"HugeBody", func(c *webhook.Config) { c.MaxBodyBytes = 1 << 40 }, []string{"MaxBodyBytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(t, io.Discard)
			tt.mod(&cfg)
			_, err := webhook.New(cfg, stuckEnqueuer{})
			if err == nil {
				t.Fatal("New = nil error, want a config error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) || !strings.HasPrefix(err.Error(), "webhook: ") {
					t.Errorf("New error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	// Defaults: the regional CometChat URL needs only the app id.
	cfg := baseConfig(t, io.Discard)
	cfg.ClientAuth, cfg.CometChat.APIKey = webhook.ClientAuthCometChat, "k"
	if _, err := webhook.New(cfg, stuckEnqueuer{}); err != nil {
		t.Errorf("New with the regional CometChat URL: %v", err)
	}
	if _, err := webhook.New(baseConfig(t, io.Discard), nil); err == nil {
		t.Error("New with a nil Enqueuer = nil error")
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	var redisDown, virgilHangs atomic.Bool
	redisDown.Store(true)
	checks := map[string]func(context.Context) error{
		"nats": func(context.Context) error { return nil },
		"redis": func(context.Context) error {
			if redisDown.Load() {
				return errors.New("redis down")
			}
			return nil
		},
		"virgil": func(ctx context.Context) error {
			if virgilHangs.Load() {
				<-block // ignores ctx
			}
			return nil
		},
	}
	var degraded atomic.Bool
	_, b := setup(t, func(c *webhook.Config) {
		c.ReadyChecks = checks
		c.ReadyTimeout = 100 * time.Millisecond
		c.Degraded = func() []string {
			if degraded.Load() {
				return []string{"no CometChat API key"}
			}
			return nil
		}
	})
	get := func(path string) response {
		req, _ := http.NewRequest(http.MethodGet, b.url+path, nil)
		return do(t, req)
	}
	if r := get(webhook.PathHealth); r.status != http.StatusOK {
		t.Errorf("healthz = %d %s", r.status, r.raw)
	}
	r := get(webhook.PathReady)
	if r.status != http.StatusServiceUnavailable || !reflect.DeepEqual(r.body["failing"], []any{"redis"}) {
		t.Errorf("readyz = %d %s, want 503 failing [redis]", r.status, r.raw)
	}
	// A check that never answers fails by the deadline.
	redisDown.Store(false)
	virgilHangs.Store(true)
	r = get(webhook.PathReady)
	if r.status != http.StatusServiceUnavailable || !reflect.DeepEqual(r.body["failing"], []any{"virgil"}) {
		t.Errorf("readyz with a hanging check = %d %s, want 503 failing [virgil]", r.status, r.raw)
	}
	virgilHangs.Store(false)
	if r := get(webhook.PathReady); r.status != http.StatusOK || r.body["status"] != "ready" {
		t.Errorf("readyz with passing checks = %d %s, want 200 ready", r.status, r.raw)
	}
	// /metrics runs the checks too: each dependency is up or down.
	redisDown.Store(true)
	r = get(webhook.PathMetrics)
	for _, want := range []string{`groupsync_dependency_up{check="redis"} 0`, `groupsync_dependency_up{check="virgil"} 1`} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("metrics with Redis down lack %q", want)
		}
	}
	redisDown.Store(false)
	if r = get(webhook.PathMetrics); !strings.Contains(r.raw, `groupsync_dependency_up{check="redis"} 1`) {
		t.Errorf("metrics with Redis back lack groupsync_dependency_up{check=\"redis\"} 1")
	}
	// Ready but degraded: 200 with the reasons.
	degraded.Store(true)
	if r := get(webhook.PathReady); r.status != http.StatusOK || r.body["status"] != "degraded" ||
		!reflect.DeepEqual(r.body["degraded"], []any{"no CometChat API key"}) {
		t.Errorf("readyz when degraded = %d %s, want 200 degraded with the reason", r.status, r.raw)
	}
	degraded.Store(false)

	// Metrics count webhooks by trigger and outcome.
	body := readExample(t, "group_created.json")
	post(t, b.url, body)
	post(t, b.url, body)
	post(t, b.url, []byte(`{"trigger":"before_message","appId":"`+appID+`"}`))
	bad := webhookRequest(t, b.url, body)
	bad.SetBasicAuth("x", "y")
	do(t, bad)
	r = get(webhook.PathMetrics)
	for _, want := range []string{
		`groupsync_webhook_requests_total{outcome="accepted",trigger="group_created"} 2`,
		`groupsync_webhook_requests_total{outcome="ignored",trigger="other"} 1`,
		`groupsync_webhook_requests_total{outcome="unauthorized",trigger="none"} 1`,
		`groupsync_webhook_publish_seconds_count 2`,
	} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The registry given in Config holds them too.
	mfs, err := b.reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Errorf("Gather: %d families, %v", len(mfs), err)
	}
}

func TestServeAndShutdown(t *testing.T) {
	cfg := baseConfig(t, io.Discard)
	cfg.Registerer = prometheus.NewRegistry()
	srv, err := webhook.New(cfg, stuckEnqueuer{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	testkit.Eventually(t, 5*time.Second, "Addr set", func() bool { return srv.Addr() == ln.Addr().String() })
	req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+webhook.PathHealth, nil)
	if r := do(t, req); r.status != http.StatusOK {
		t.Fatalf("healthz = %d", r.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}
	if err := srv.Start(ctx); err == nil {
		t.Error("Start after Shutdown = nil error")
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	logs := &testkit.Buffer{}
	cc := cometchattest.Start(t)
	cc.APIKey = apiKey
	cc.AddToken("alice", "tok-alice-S3cret")
	b := &testBundle{logs: logs}
	cfg := baseConfig(t, logs)
	cfg.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	cfg.ClientAuth = webhook.ClientAuthCometChat
	cfg.CometChat = webhook.CometChatConfig{APIURL: cc.URL(), APIKey: apiKey}
	startServer(t, cfg, stuckEnqueuer{}, b)

	body := readExample(t, "group_member_added.json")
	bad := webhookRequest(t, b.url, body)
	bad.SetBasicAuth(webhookUser, "wrong-"+webhookPass)
	do(t, bad)
	do(t, webhookRequest(t, b.url, []byte(`{"trigger":"group_member_added","appId":"`+appID+`","data":{"group":{}}}`)))
	do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "alice", "tok-alice-S3cret", nil))
	do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "alice", "wrong-tok-S3cret", nil))
	cc.Answer("users/", http.StatusBadGateway, "")
	do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "alice", "other-tok-S3cret", nil))

	out := logs.String()
	if !strings.Contains(out, `"status":401`) || !strings.Contains(out, `"status":503`) {
		t.Fatalf("expected request logs, got:\n%s", out)
	}
	for _, secret := range []string{webhookPass, apiKey, "S3cret", "Basic ", "Bearer ", "Alice Ng", "jwt-for-"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
}

// fillError is a failing check's error with a public reason.
type fillError struct{}

func (fillError) Error() string  { return "queue: stream GROUPSYNC is 95% full" }
func (fillError) Reason() string { return "stream GROUPSYNC is 95% full" }

// TestReadyReasons: /readyz shows the reason of a check whose error has a
// public one, and only the name of the others.
func TestReadyReasons(t *testing.T) {
	_, b := setup(t, func(c *webhook.Config) {
		c.ReadyChecks = map[string]func(context.Context) error{
			"queue_fill": func(context.Context) error { return fmt.Errorf("wrapped: %w", fillError{}) },
			"store":      func(context.Context) error { return errors.New("dial tcp 10.1.2.3:6379: secret-ish detail") },
		}
	})
	req, _ := http.NewRequest(http.MethodGet, b.url+webhook.PathReady, nil)
	r := do(t, req)
	want := map[string]any{"queue_fill": "stream GROUPSYNC is 95% full"}
	if r.status != http.StatusServiceUnavailable || !reflect.DeepEqual(r.body["reasons"], want) ||
		!reflect.DeepEqual(r.body["failing"], []any{"queue_fill", "store"}) || strings.Contains(r.raw, "10.1.2.3") {
		t.Errorf("readyz = %d %s, want 503 with the fill reason only", r.status, r.raw)
	}
}
