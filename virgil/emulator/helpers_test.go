package emulator_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

type jwtVectors struct {
	AppID        string `json:"app_id"`
	AppKeyID     string `json:"app_key_id"`
	AppKeyBase64 string `json:"app_key_base64"`
	AppPublicKey string `json:"app_public_key_base64"`
}

type keyVector struct {
	Identity string `json:"identity"`
	PKCS8    string `json:"private_key_pkcs8_der_b64"`
	SPKI     string `json:"public_key_spki_der_b64"`
}

type cardVector struct {
	Label               string          `json:"label"`
	Identity            string          `json:"identity"`
	CreatedAt           int64           `json:"created_at"`
	CardID              string          `json:"card_id"`
	Snapshot            string          `json:"content_snapshot_utf8"`
	PublishRequestBody  string          `json:"publish_request_body"`
	ServedWithSignature json.RawMessage `json:"served_with_virgil_signature"`
}

type cardVectors struct {
	EmulatorServiceKey keyVector    `json:"emulator_service_key"`
	Cards              []cardVector `json:"cards"`
}

// fixture is an emulator with the vector application and a fixed clock.
type fixture struct {
	t    testing.TB
	emu  *emulator.Emulator
	gen  *virgil.JWTGenerator
	now  time.Time
	keys map[string]*virgil.PrivateKey // keys.json by name
	app  jwtVectors
}

// vectorNow is the clock of the golden vectors (2026-01-01T00:00:00Z).
var vectorNow = time.Unix(1767225600, 0)

func mustPrivate(tb testing.TB, b64 string) *virgil.PrivateKey {
	tb.Helper()
	k, err := virgil.ParsePrivateKeyBase64(b64)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func appConfig(tb testing.TB, now time.Time) (emulator.Config, jwtVectors) {
	tb.Helper()
	var jv jwtVectors
	testkit.LoadVector(tb, "jwt.json", &jv)
	pub, err := virgil.ParsePublicKeyBase64(jv.AppPublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	var cv cardVectors
	testkit.LoadVector(tb, "cards.json", &cv)
	return emulator.Config{
		AppID: jv.AppID, AppKeyID: jv.AppKeyID, AppPublicKey: pub,
		ServiceKey: mustPrivate(tb, cv.EmulatorServiceKey.PKCS8),
		Now:        func() time.Time { return now },
		DebugAPI:   true,
	}, jv
}

func newFixture(tb testing.TB, mod func(*emulator.Config)) *fixture {
	tb.Helper()
	cfg, jv := appConfig(tb, vectorNow)
	if mod != nil {
		mod(&cfg)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = emu.Close() })
	var kf struct {
		Keys map[string]keyVector `json:"keys"`
	}
	testkit.LoadVector(tb, "keys.json", &kf)
	keys := map[string]*virgil.PrivateKey{}
	for name, k := range kf.Keys {
		keys[name] = mustPrivate(tb, k.PKCS8)
	}
	return &fixture{
		t: tb, emu: emu, now: cfg.Now(), keys: keys, app: jv,
		gen: &virgil.JWTGenerator{
			AppID: jv.AppID, AppKeyID: jv.AppKeyID, AppKey: mustPrivate(tb, jv.AppKeyBase64),
			Now: func() time.Time { return vectorNow },
		},
	}
}

func (f *fixture) token(identity string) string {
	f.t.Helper()
	tok, err := f.gen.Generate(identity)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok.Value()
}

// do sends one request as identity ("" = no Authorization header).
func (f *fixture) do(identity, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	if identity != "" {
		req.Header.Set("Authorization", "Virgil "+f.token(identity))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.emu.ServeHTTP(w, req)
	return w
}

// apiError decodes an error body.
func apiError(tb testing.TB, w *httptest.ResponseRecorder) (code int, message string) {
	tb.Helper()
	var e struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code == nil || e.Message == nil {
		tb.Fatalf("error body %q is not {code,message}: %v", w.Body.String(), err)
	}
	return *e.Code, *e.Message
}

func wantError(tb testing.TB, w *httptest.ResponseRecorder, status, code int) {
	tb.Helper()
	if w.Code != status {
		tb.Fatalf("status %d, want %d (body %s)", w.Code, status, w.Body.String())
	}
	if got, _ := apiError(tb, w); got != code {
		tb.Fatalf("code %d, want %d (body %s)", got, code, w.Body.String())
	}
}

func wantOK(tb testing.TB, w *httptest.ResponseRecorder) {
	tb.Helper()
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d, want 200 (body %s)", w.Code, w.Body.String())
	}
}

// publishBody builds a self-signed publish body for key and identity.
func publishBody(tb testing.TB, key *virgil.PrivateKey, identity, previous string, at time.Time) (string, string) {
	tb.Helper()
	rc, err := virgil.NewRawCard(key, identity, previous, at)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b), rc.ID()
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
