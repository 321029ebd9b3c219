// Package natsembed runs a real nats-server with JetStream inside the
// process: dev mode's NATS, and the server behind queue/natstest and the
// load and chaos harness.
//
// A Server can be shut down and started again on the same port and store
// folder, so clients reconnect by themselves and find what JetStream stored
// before.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ReadyTimeout bounds how long Start and Restart wait for the server to
// accept connections.
const ReadyTimeout = 15 * time.Second

// Server is an embedded nats-server with JetStream. Its methods are safe for
// concurrent use.
type Server struct {
	mu   sync.Mutex
	opts server.Options
	srv  *server.Server
	url  string
	down bool
}

// Start runs a nats-server with opts and JetStream on, and waits until it
// accepts connections. Host defaults to 127.0.0.1; Port -1 picks a free
// port. The port the server bound is kept for Restart. opts.StoreDir is
// required: JetStream data must live somewhere the caller chose.
func Start(opts server.Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	opts.JetStream = true
	s := &Server{opts: opts}
	srv, err := start(&s.opts)
	if err != nil {
		return nil, err
	}
	port := srv.Addr().(*net.TCPAddr).Port
	s.opts.Port = port
	s.srv = srv
	s.url = "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(port))
	return s, nil
}

func start(o *server.Options) (*server.Server, error) {
	opts := *o
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(ReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: server not ready after %v", ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("natsembed: jetstream not enabled")
	}
	return srv, nil
}

// URL returns the client URL, nats://<host>:<port>. It stays the same across
// restarts.
func (s *Server) URL() string { return s.url }

// StoreDir returns the JetStream store folder.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// NATS returns the running nats-server, or nil while it is shut down.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil
	}
	return s.srv
}

// Shutdown stops the server and waits until it has stopped. Calling it on a
// stopped server does nothing.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.down = true
}

// Restart shuts the server down if it is running and starts it again on the
// same port with the same store folder.
func (s *Server) Restart() error {
	s.Shutdown()
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := start(&s.opts)
	if err != nil {
		return fmt.Errorf("natsembed: restart: %w", err)
	}
	s.srv = srv
	s.down = false
	return nil
}
