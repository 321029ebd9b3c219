package emulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/virgil/pythia"
)

// seed runs the client side of BrainKey against f as identity: blind,
// POST /pythia/v1/brainkey, deblind.
func seed(t *testing.T, f *fixture, identity, password string, brainKeyID *string) []byte {
	t.Helper()
	b, err := pythia.Blind([]byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := map[string]string{"blinded_password": base64.StdEncoding.EncodeToString(b.BlindedPassword)}
	if brainKeyID != nil {
		req["brainkey_id"] = *brainKeyID
	}
	w := f.do(identity, http.MethodPost, "/pythia/v1/brainkey", mustJSON(t, req))
	wantOK(t, w)
	var resp map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp) != 1 {
		t.Fatalf("answer %s", w.Body.String())
	}
	s, err := base64.StdEncoding.DecodeString(resp["seed"])
	if err != nil || len(s) != pythia.GTSize {
		t.Fatalf("seed %q: %v", resp["seed"], err)
	}
	d, err := pythia.Deblind(s, b.BlindingSecret)
	if err != nil {
		t.Fatalf("deblind the seed: %v", err)
	}
	return d
}

// TestBrainKeySeed: the deblinded seed depends on the password, the caller
// and the brainkey_id only (not on the blinding), and on the application's
// secrets, which a restart on the same folder keeps.
func TestBrainKeySeed(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, func(c *emulator.Config) { c.Dir = dir })
	a := seed(t, f, "alice", "pw", nil)
	if !bytes.Equal(a, seed(t, f, "alice", "pw", nil)) {
		t.Fatal("two blindings of one password give different seeds")
	}
	id, other := "work", "home"
	for name, s := range map[string][]byte{
		"another password":    seed(t, f, "alice", "pw2", nil),
		"another identity":    seed(t, f, "bob", "pw", nil),
		"a brainkey_id":       seed(t, f, "alice", "pw", &id),
		"another brainkey_id": seed(t, f, "alice", "pw", &other),
	} {
		if bytes.Equal(a, s) {
			t.Errorf("%s gives the same seed", name)
		}
	}
	if !bytes.Equal(seed(t, f, "alice", "pw", &id), seed(t, f, "alice", "pw", &id)) {
		t.Error("one brainkey_id gives different seeds")
	}

	st, err := os.Stat(filepath.Join(dir, "pythia-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("pythia-keys.json mode %v, want 0600", st.Mode().Perm())
	}
	_ = f.emu.Close()
	again := newFixture(t, func(c *emulator.Config) { c.Dir = dir })
	if !bytes.Equal(a, seed(t, again, "alice", "pw", nil)) {
		t.Error("a restarted emulator gives another seed")
	}
	fresh := newFixture(t, func(c *emulator.Config) { c.Dir = t.TempDir() })
	if bytes.Equal(a, seed(t, fresh, "alice", "pw", nil)) {
		t.Error("another emulator folder gives the same seed: the secrets are not per folder")
	}
}

// TestBrainKeyDamagedKeyFile: a damaged key file stops New instead of
// silently making new secrets (which would make every backup unreadable).
func TestBrainKeyDamagedKeyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pythia-keys.json"), []byte(`{"format":1,"apps":{`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := appConfig(t, vectorNow)
	cfg.Dir = dir
	if emu, err := emulator.New(cfg); err == nil {
		_ = emu.Close()
		t.Fatal("New accepted a damaged Pythia key file")
	}
}

func TestBrainKeyBadRequests(t *testing.T) {
	f := newFixture(t, nil)
	good, err := pythia.Blind([]byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	notInGroup := bytes.Clone(good.BlindedPassword)
	notInGroup[10] ^= 1 // another x: off the curve or outside G1
	cases := []struct {
		name, body   string
		status, code int
	}{
		{"not JSON", `{`, 400, emulator.CodeInvalidJSON},
		{"an array", `[]`, 400, emulator.CodeInvalidJSON},
		{"unknown field", `{"blinded_password":"` + b64(good.BlindedPassword) + `","tweak":"x"}`, 400, emulator.CodeInvalidJSON},
		{"trailing data", `{"blinded_password":"` + b64(good.BlindedPassword) + `"} {}`, 400, emulator.CodeInvalidJSON},
		{"number", `{"blinded_password":5}`, 400, emulator.CodeInvalidJSON},
		{"missing", `{}`, 400, emulator.CodePythiaInvalidParams},
		{"bad base64", `{"blinded_password":"***"}`, 400, emulator.CodePythiaInvalidParams},
		{"url base64", `{"blinded_password":"` + base64.RawURLEncoding.EncodeToString(good.BlindedPassword) + `"}`, 400, emulator.CodePythiaInvalidParams},
		{"short", `{"blinded_password":"` + b64(good.BlindedPassword[:48]) + `"}`, 400, emulator.CodePythiaInvalidParams},
		{"long", `{"blinded_password":"` + b64(append(bytes.Clone(good.BlindedPassword), 0)) + `"}`, 400, emulator.CodePythiaInvalidParams},
		{"a GT element", `{"blinded_password":"` + b64(make([]byte, pythia.GTSize)) + `"}`, 400, emulator.CodePythiaInvalidParams},
		{"bad prefix", `{"blinded_password":"` + b64(append([]byte{4}, good.BlindedPassword[1:]...)) + `"}`, 400, emulator.CodePythiaInvalidParams},
		{"not a group point", `{"blinded_password":"` + b64(notInGroup) + `"}`, 400, emulator.CodePythiaInvalidParams},
		{"empty brainkey_id", `{"blinded_password":"` + b64(good.BlindedPassword) + `","brainkey_id":""}`, 400, emulator.CodePythiaInvalidParams},
		{"long brainkey_id", `{"blinded_password":"` + b64(good.BlindedPassword) + `","brainkey_id":"` + strings.Repeat("k", 129) + `"}`, 400, emulator.CodePythiaInvalidParams},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, f.do("alice", http.MethodPost, "/pythia/v1/brainkey", c.body), c.status, c.code)
		})
	}
	body := `{"blinded_password":"` + b64(good.BlindedPassword) + `"}`
	wantError(t, f.do("", http.MethodPost, "/pythia/v1/brainkey", body), 401, emulator.CodeAuthMissing)
	wantError(t, f.do("", http.MethodPost, "/pythia/v1/brainkey", body, "Authorization", "Virgil not.a.jwt"), 401, emulator.CodeTokenInvalid)
	wantError(t, f.do("", http.MethodPost, "/pythia/v1/brainkey", body, "Authorization", "Bearer "+f.token("alice")), 401, emulator.CodeAuthMissing)
	wantError(t, f.do("alice", http.MethodGet, "/pythia/v1/brainkey", ""), 405, emulator.CodeMethodNotAllowed)
	wantError(t, f.do("alice", http.MethodPost, "/pythia/v1/password", body), 404, emulator.CodeNotFound)
	wantOK(t, f.do("alice", http.MethodPost, "/pythia/v1/brainkey", body))
}

type v1Value struct {
	Meta    *string `json:"meta"`
	Value   *string `json:"value"`
	Version *string `json:"version"`
}

func decodeV1(t *testing.T, w interface {
	Header() http.Header
}, body []byte) (v1Value, string) {
	t.Helper()
	var v v1Value
	if err := json.Unmarshal(body, &v); err != nil || v.Meta == nil || v.Value == nil || v.Version == nil {
		t.Fatalf("v1 answer %s: %v", body, err)
	}
	h := w.Header().Get("Virgil-Keyknox-Hash")
	if _, err := base64.StdEncoding.DecodeString(h); h == "" || err != nil {
		t.Fatalf("hash header %q", h)
	}
	return v, h
}

func v1Body(meta, value string) string {
	return `{"meta":"` + base64.StdEncoding.EncodeToString([]byte(meta)) + `","value":"` + base64.StdEncoding.EncodeToString([]byte(value)) + `"}`
}

// TestKeyknoxV1: push, pull, previous-hash check, per-identity values,
// reset, and persistence across a restart.
func TestKeyknoxV1(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, func(c *emulator.Config) { c.Dir = dir })

	w := f.do("alice", http.MethodGet, "/keyknox/v1", "")
	wantOK(t, w)
	v, emptyHash := decodeV1(t, w, w.Body.Bytes())
	if *v.Meta != "" || *v.Value != "" {
		t.Fatalf("pull of nothing: %s", w.Body.String())
	}
	// The first push carries the hash of the empty pull, as CloudKeyStorage does.
	w = f.do("alice", http.MethodPut, "/keyknox/v1", v1Body("m1", "v1"), "Virgil-Keyknox-Previous-Hash", emptyHash)
	wantOK(t, w)
	v, h1 := decodeV1(t, w, w.Body.Bytes())
	if *v.Value != base64.StdEncoding.EncodeToString([]byte("v1")) {
		t.Fatalf("push answer %s", w.Body.String())
	}
	wantError(t, f.do("alice", http.MethodPut, "/keyknox/v1", v1Body("m2", "v2")), 409, emulator.CodeInvalidPreviousHash)
	wantError(t, f.do("alice", http.MethodPut, "/keyknox/v1", v1Body("m2", "v2"), "Virgil-Keyknox-Previous-Hash", emptyHash), 409, emulator.CodeInvalidPreviousHash)
	w = f.do("alice", http.MethodPut, "/keyknox/v1", v1Body("m2", "v2"), "Virgil-Keyknox-Previous-Hash", h1)
	wantOK(t, w)
	_, h2 := decodeV1(t, w, w.Body.Bytes())
	if h2 == h1 {
		t.Fatal("a push kept the hash")
	}

	// Bob has his own value; v2 cannot reach the v1 values.
	w = f.do("bob", http.MethodGet, "/keyknox/v1", "")
	if v, _ := decodeV1(t, w, w.Body.Bytes()); *v.Value != "" {
		t.Fatalf("bob sees %s", w.Body.String())
	}
	wantError(t, f.do("alice", http.MethodPost, "/keyknox/v2/pull", `{"root":"(keyknox v1)","path":"(value)","key":"(value)"}`), 400, emulator.CodeKeyknoxInvalidParams)
	wantError(t, f.do("alice", http.MethodPost, "/keyknox/v2/reset", `{"root":"(keyknox v1)"}`), 400, emulator.CodeKeyknoxInvalidParams)

	_ = f.emu.Close()
	f = newFixture(t, func(c *emulator.Config) { c.Dir = dir })
	w = f.do("alice", http.MethodGet, "/keyknox/v1", "")
	wantOK(t, w)
	v, h := decodeV1(t, w, w.Body.Bytes())
	if h != h2 || *v.Meta != base64.StdEncoding.EncodeToString([]byte("m2")) || *v.Value != base64.StdEncoding.EncodeToString([]byte("v2")) {
		t.Fatalf("after a restart: %s (hash %s, want %s)", w.Body.String(), h, h2)
	}

	w = f.do("alice", http.MethodPost, "/keyknox/v1/reset", "")
	wantOK(t, w)
	if v, _ := decodeV1(t, w, w.Body.Bytes()); *v.Value != "" {
		t.Fatalf("reset answer %s", w.Body.String())
	}
	w = f.do("alice", http.MethodGet, "/keyknox/v1", "")
	if v, _ := decodeV1(t, w, w.Body.Bytes()); *v.Value != "" {
		t.Fatalf("pull after reset: %s", w.Body.String())
	}
	// After a reset a push needs no previous hash.
	wantOK(t, f.do("alice", http.MethodPut, "/keyknox/v1", v1Body("m3", "v3")))
	wantOK(t, f.do("bob", http.MethodPost, "/keyknox/v1/reset", "{}"))
}

func TestKeyknoxV1BadRequests(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		name, body   string
		status, code int
	}{
		{"not JSON", `{`, 400, emulator.CodeInvalidJSON},
		{"unknown field", `{"meta":"bQ==","value":"dg==","root":"x"}`, 400, emulator.CodeInvalidJSON},
		{"bytes as numbers", `{"meta":1,"value":2}`, 400, emulator.CodeInvalidJSON},
		{"missing value", `{"meta":"bQ=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"null meta", `{"meta":null,"value":"dg=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"bad base64", `{"meta":"b","value":"dg=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"empty value", `{"meta":"bQ==","value":""}`, 400, emulator.CodeKeyknoxInvalidParams},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, f.do("alice", http.MethodPut, "/keyknox/v1", c.body), c.status, c.code)
		})
	}
	wantError(t, f.do("alice", http.MethodPost, "/keyknox/v1/reset", `{"root":"e3kit"}`), 400, emulator.CodeInvalidJSON)
	wantError(t, f.do("alice", http.MethodPost, "/keyknox/v1", v1Body("m", "v")), 405, emulator.CodeMethodNotAllowed)
	wantError(t, f.do("alice", http.MethodDelete, "/keyknox/v1", ""), 405, emulator.CodeMethodNotAllowed)
	wantError(t, f.do("alice", http.MethodGet, "/keyknox/v1/reset", ""), 405, emulator.CodeMethodNotAllowed)
	wantError(t, f.do("", http.MethodGet, "/keyknox/v1", ""), 401, emulator.CodeAuthMissing)
	wantError(t, f.do("", http.MethodPut, "/keyknox/v1", v1Body("m", "v"), "Authorization", "Virgil a.b.c"), 401, emulator.CodeTokenInvalid)
	wantError(t, f.do("", http.MethodPost, "/keyknox/v1/reset", "", "Authorization", "Virgil"), 401, emulator.CodeAuthMissing)
	// Nothing was stored by the refused requests.
	w := f.do("alice", http.MethodGet, "/keyknox/v1", "")
	if v, _ := decodeV1(t, w, w.Body.Bytes()); *v.Value != "" {
		t.Fatalf("a refused push stored %s", w.Body.String())
	}
}

// TestBackupExpiredToken: an expired token is 401/20304 on every backup
// endpoint, as elsewhere, so clients refresh it and retry.
func TestBackupExpiredToken(t *testing.T) {
	f := newFixture(t, func(c *emulator.Config) {
		c.Now = func() time.Time { return vectorNow.Add(24 * time.Hour) }
	})
	b, err := pythia.Blind([]byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"blinded_password":"` + base64.StdEncoding.EncodeToString(b.BlindedPassword) + `"}`
	wantError(t, f.do("alice", http.MethodPost, "/pythia/v1/brainkey", body), 401, emulator.CodeTokenExpired)
	wantError(t, f.do("alice", http.MethodPut, "/keyknox/v1", v1Body("m", "v")), 401, emulator.CodeTokenExpired)
	wantError(t, f.do("alice", http.MethodGet, "/keyknox/v1", ""), 401, emulator.CodeTokenExpired)
	wantError(t, f.do("alice", http.MethodPost, "/keyknox/v1/reset", ""), 401, emulator.CodeTokenExpired)
}

// TestDiskKeysMustBePrivate: the service key and the Pythia keys the
// emulator keeps in its folder are written with mode 0600, read again on
// the next start, and refused when group or others may read them.
func TestDiskKeysMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	open := func() (*emulator.Emulator, error) {
		cfg, _ := appConfig(t, vectorNow)
		cfg.Dir, cfg.ServiceKey = dir, nil // the service key kept in the folder
		return emulator.New(cfg)
	}
	emu, err := open()
	if err != nil {
		t.Fatal(err)
	}
	key := emu.ServiceKey()
	emu.Close()
	for _, name := range []string{"service-key.der", "pythia-keys.json"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("%s: mode %v, want a file of mode 0600", name, fi.Mode())
		}
	}
	again, err := open()
	if err != nil {
		t.Fatalf("second start on its own files: %v", err)
	}
	if !again.ServiceKey().Equal(key) {
		t.Error("the second start made a new service key")
	}
	again.Close()
	for _, name := range []string{"service-key.der", "pythia-keys.json"} {
		p := filepath.Join(dir, name)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if emu, err := open(); !errors.Is(err, secretfile.ErrNotPrivate) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			if emu != nil {
				emu.Close()
			}
			t.Errorf("start with %s of mode 0644: %v, want it refused with the fix", name, err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
