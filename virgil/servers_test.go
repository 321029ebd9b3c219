package virgil_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

// newEmulator starts virgil/emulator for the app of gen, behind a faults
// wrapper, and returns its URL.
func newEmulator(tb testing.TB, gen *virgil.JWTGenerator, service *virgil.PrivateKey) (*emulator.Emulator, *faults, string) {
	tb.Helper()
	emu, err := emulator.New(emulator.Config{
		AppID: gen.AppID, AppKeyID: gen.AppKeyID, AppPublicKey: gen.AppKey.Public(), ServiceKey: service,
	})
	if err != nil {
		tb.Fatalf("emulator.New: %v", err)
	}
	tb.Cleanup(func() { _ = emu.Close() })
	fl := &faults{next: emu}
	srv := httptest.NewServer(fl)
	tb.Cleanup(srv.Close)
	return emu, fl, srv.URL
}

func writeInjected(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": 0, "message": "injected failure"})
}

// faults wraps a Virgil server: it counts requests and, while fail is set,
// answers the requests it selects with 503 instead of serving them, to
// simulate a crash or an outage in the middle of an operation.
type faults struct {
	next     http.Handler
	mu       sync.Mutex
	requests int
	fail     func(path string, body []byte) bool
}

func (f *faults) setFail(fail func(path string, body []byte) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *faults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests++
	fail := f.fail
	f.mu.Unlock()
	if fail != nil && fail(r.URL.Path, body) {
		writeInjected(w)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	f.next.ServeHTTP(w, r)
}
