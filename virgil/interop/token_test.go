package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/virgil/interop"
)

// TestTokenURLAndFaults gets users' tokens from a token endpoint (the shape
// of groupsync's GET /v1/virgil-jwt) and checks that service failures
// injected by the emulator reach the caller as E3Kit errors with the status.
func TestTokenURLAndFaults(t *testing.T) {
	app := startVectorApp(t)
	emu, gen := app.emu, app.gen
	var served atomic.Int64
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer test-session" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		uid := r.Header.Get("X-CometChat-UID")
		tok, err := gen.Generate("id-" + uid)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"virgilToken": tok.Value(), "identity": "id-" + uid})
	}))
	t.Cleanup(tokens.Close)

	d := interop.Start(t, interop.Config{
		APIURL: app.url, TokenURL: tokens.URL,
		TokenHeaders: map[string]string{"Authorization": "Bearer test-session"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	id, err := d.Init(ctx, "dave", interop.UserOptions{})
	if err != nil || id != "id-dave" {
		t.Fatalf("init dave: %q %v", id, err)
	}
	if err := d.Register(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if c, ok := emu.Card("id-dave"); !ok || c.Identity != "id-dave" {
		t.Fatalf("dave's card: %v %v", c, ok)
	}
	if served.Load() == 0 {
		t.Fatal("token endpoint never asked")
	}
	// A user whose token endpoint refuses it cannot start.
	_, err = d.Init(ctx, "eve", interop.UserOptions{TokenHeaders: map[string]string{"Authorization": "Bearer wrong"}})
	if err == nil {
		t.Fatal("eve initialized without a valid session")
	}

	emu.SetFault(emulator.Fault{Status: http.StatusServiceUnavailable})
	_, err = d.FindUsers(ctx, "dave", "id-dave")
	var e *interop.E3KitError
	if !errors.As(err, &e) || e.Name != "VirgilHttpError" || e.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("findUsers under a 503 fault: %v", err)
	}
	_, err = d.LoadGroup(ctx, "dave", "some-group-id-123", "id-dave")
	if !errors.As(err, &e) || e.HTTPStatus != http.StatusServiceUnavailable {
		t.Fatalf("loadGroup under a 503 fault: %v", err)
	}
	if emu.Stats().Faults < 2 {
		t.Fatalf("stats %+v", emu.Stats())
	}
	emu.ClearFault()
	if _, err := d.FindUsers(ctx, "dave", "id-dave"); err != nil {
		t.Fatal(err)
	}
}
