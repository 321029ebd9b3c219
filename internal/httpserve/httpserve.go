// Package httpserve is the lifecycle the HTTP servers of groupsync (the
// webhook and client API server, the web console) share: bind a listener,
// serve one http.Server on it, tell the address bound, and stop taking
// requests while those under way finish. Each server keeps its own handler,
// timeouts and logging: the caller builds the http.Server.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Listen binds addr over TCP; ctx bounds the bind only. The error names the
// server (name) and the address.
func Listen(ctx context.Context, name, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	return ln, nil
}

// Lifecycle holds one server's http.Server from Bind to Shutdown. Name
// prefixes its errors. The zero value with a Name is ready; its methods are
// safe for concurrent use. A Lifecycle binds at most one server, and none
// after Shutdown.
type Lifecycle struct {
	// Name names the server in errors ("console", "webhook").
	Name string

	mu       sync.Mutex
	srv      *http.Server
	addr     string
	shutdown bool
}

// Bind makes srv the server of ln and records ln's address (Addr). It
// fails when a server is already bound or Shutdown was called; it leaves
// ln open either way.
func (l *Lifecycle) Bind(ln net.Listener, srv *http.Server) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shutdown {
		return fmt.Errorf("%s: server was shut down", l.Name)
	}
	if l.srv != nil {
		return fmt.Errorf("%s: server is already serving", l.Name)
	}
	l.srv, l.addr = srv, ln.Addr().String()
	return nil
}

// Addr is the address bound (with the port chosen for ":0"), or "" before
// Bind.
func (l *Lifecycle) Addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr
}

// Shutdown stops the bound server taking requests and waits, until ctx
// ends, for those under way; after it, Bind fails. It may be called more
// than once, and before Bind.
func (l *Lifecycle) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.shutdown = true
	srv := l.srv
	l.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", l.Name, err)
	}
	return nil
}

// Serve serves srv on ln until srv shuts down, and then returns nil; any
// other end is returned.
func Serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Go serves srv on ln in the background (Serve), and hands failed an end
// other than a shutdown.
func Go(srv *http.Server, ln net.Listener, failed func(error)) {
	go func() {
		if err := Serve(srv, ln); err != nil {
			failed(err)
		}
	}()
}
