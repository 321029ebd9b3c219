package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbeddedNATS runs a real nats-server with JetStream inside the process,
// storing its data under dir. port -1 picks a free port; a taken port falls
// back to a free one so dev never clashes with a system NATS on 4222.
func startEmbeddedNATS(dir string, port int) (*server.Server, error) {
	if port > 0 && !portFree(port) {
		port = -1
	}
	opts := &server.Options{
		ServerName: "groupsync-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "nats"),
		NoLog:      true,
		NoSigs:     true,
		// A fresh dev machine has no NATS account setup; the embedded server
		// listens on loopback only.
		MaxPayload: 1 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 15s")
	}
	return s, nil
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
