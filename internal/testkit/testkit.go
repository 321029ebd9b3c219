// Package testkit holds the helpers the tests of every package share:
// polling against a deadline instead of sleeping (Eventually), waiting for a
// JSON file a process under test writes (AwaitJSONFile), waiting until
// a JetStream stream holds no message (WaitStreamEmpty), a buffer that
// collects log output from several goroutines (Buffer), and the loader of the
// Virgil vectors in testdata/virgil (LoadVector).
//
// It is a test helper: import it from _test.go files only.
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pollInterval is how often Eventually asks again.
const pollInterval = 20 * time.Millisecond

// Eventually polls cond until it holds, failing tb with what when it still
// does not after timeout.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	EventuallyErr(tb, timeout, what, func() error {
		if !cond() {
			return errors.New("condition false")
		}
		return nil
	})
}

// EventuallyErr polls cond until it returns nil, failing tb with what and
// cond's last error when it still fails after timeout.
func EventuallyErr(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// AwaitJSONFile polls until path holds JSON that decodes into v, as a
// process under test writes it (groupsync dev's dev.json), failing tb with
// what and the last error after timeout. Once exited is closed, the
// process's end is that error, as died tells it (its error and log).
func AwaitJSONFile(tb testing.TB, timeout time.Duration, what, path string, v any, exited <-chan struct{}, died func() string) {
	tb.Helper()
	EventuallyErr(tb, timeout, what, func() error {
		select {
		case <-exited:
			return errors.New(died())
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	})
}

// WaitStreamEmpty waits until the JetStream stream of the NATS server at
// natsURL holds no message, failing tb after timeout. On groupsync's job
// stream (work-queue retention) that means every job queued so far has been
// applied and acknowledged, or dead-lettered: what a job does after its
// visible change (revoking access, the audit record, the done mark) is done.
func WaitStreamEmpty(tb testing.TB, timeout time.Duration, natsURL, stream string) {
	tb.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		tb.Fatalf("testkit: connect to %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	EventuallyErr(tb, timeout, "stream "+stream+" empties", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d messages left", n)
		}
		return nil
	})
}

// Buffer collects output, such as a logger's, for assertions. It is safe
// for concurrent writers and readers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// LoadVector decodes the JSON file testdata/virgil/<name> of the module
// into v, failing tb when it cannot. The vectors are read-only copies of
// Virgil's; nothing writes them.
func LoadVector(tb testing.TB, name string, v any) {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, "testdata", "virgil", name))
	if err != nil {
		tb.Fatalf("testkit: vector: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("testkit: vector %s: %v", name, err)
	}
}

// moduleRoot is the closest folder above the working directory (a test's
// package folder) holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
