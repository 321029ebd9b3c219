package httpserve_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/httpserve"
)

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	ln, err := httpserve.Listen(ctx, "test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &httpserve.Lifecycle{Name: "test"}
	if got := l.Addr(); got != "" {
		t.Fatalf("Addr before Bind = %q, want empty", got)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	if err := l.Bind(ln, srv); err != nil {
		t.Fatal(err)
	}
	if l.Addr() != ln.Addr().String() {
		t.Fatalf("Addr = %q, want %q", l.Addr(), ln.Addr())
	}
	if err := l.Bind(ln, srv); err == nil || !strings.HasPrefix(err.Error(), "test: ") {
		t.Fatalf("second Bind = %v, want an error naming the server", err)
	}
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(srv, ln) }()
	resp, err := http.Get("http://" + l.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q, want ok", b)
	}
	if err := l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown = %v, want nil", err)
	}
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	requireBindRefused(t, l)
}

func TestShutdownBeforeBind(t *testing.T) {
	l := &httpserve.Lifecycle{Name: "test"}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	requireBindRefused(t, l)
}

// requireBindRefused fails t unless l refuses to bind a server on a new
// listener, as it must after Shutdown.
func requireBindRefused(t *testing.T, l *httpserve.Lifecycle) {
	t.Helper()
	ln, err := httpserve.Listen(context.Background(), "test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := l.Bind(ln, &http.Server{}); err == nil {
		t.Fatal("Bind after Shutdown succeeded")
	}
}

func TestListenNamesServerAndAddress(t *testing.T) {
	ln, err := httpserve.Listen(context.Background(), "test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = httpserve.Listen(context.Background(), "test", ln.Addr().String())
	if err == nil || !strings.HasPrefix(err.Error(), "test: listen on "+ln.Addr().String()) {
		t.Fatalf("Listen on a taken address = %v", err)
	}
}

func TestGoReportsAFailure(t *testing.T) {
	ln, err := httpserve.Listen(context.Background(), "test", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	failed := make(chan error, 1)
	httpserve.Go(&http.Server{}, ln, func(err error) { failed <- err })
	select {
	case err := <-failed:
		if errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("failed got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serving a closed listener reported nothing")
	}
}
