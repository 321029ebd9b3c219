package webhook_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/webhook"
)

func TestVirgilTokensVerify(t *testing.T) {
	key, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	gen := &virgil.JWTGenerator{AppID: "app-1", AppKeyID: "key-1", AppKey: key}
	b := &testBundle{logs: &testkit.Buffer{}}
	cfg := baseConfig(t, b.logs)
	cfg.Tokens = webhook.VirgilTokens{Generator: gen}
	startServer(t, cfg, stuckEnqueuer{}, b)

	r := do(t, clientRequest(t, http.MethodGet, b.url+webhook.PathVirgilJWT, "erin", "", nil))
	if r.status != http.StatusOK {
		t.Fatalf("GET virgil-jwt = %d %s", r.status, r.raw)
	}
	token, _ := r.body["virgilToken"].(string)
	claims, err := virgil.VerifyJWT(token, "app-1", map[string]*virgil.PublicKey{"key-1": key.Public()}, time.Now())
	if err != nil {
		t.Fatalf("VerifyJWT: %v", err)
	}
	if want := cfg.Identities.User("erin"); claims.Identity != want || r.body["identity"] != want {
		t.Errorf("token identity %q, answer identity %v, want %q", claims.Identity, r.body["identity"], want)
	}
	if _, err := (webhook.VirgilTokens{}).IssueToken("x"); err == nil {
		t.Error("IssueToken without a generator = nil error")
	}
}
