package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue/natstest"
)

// fatalTB records a Fatalf and stops the helper the way testing does, by
// leaving the goroutine (here: a panic the caller recovers).
type fatalTB struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// run calls fn with a fatalTB and returns its Fatalf message, "" if none.
func run(t *testing.T, fn func(tb testing.TB)) (msg string) {
	f := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	fn(f)
	return ""
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	calls := 0
	msg := run(t, func(tb testing.TB) {
		testkit.Eventually(tb, 5*time.Second, "third call", func() bool { calls++; return calls == 3 })
	})
	if msg != "" || calls != 3 {
		t.Errorf("Eventually stopped after %d calls with %q, want 3 calls and no failure", calls, msg)
	}
}

func TestEventuallyErrFailsWithTheLastError(t *testing.T) {
	msg := run(t, func(tb testing.TB) {
		testkit.EventuallyErr(tb, 50*time.Millisecond, "never", func() error { return errors.New("still broken") })
	})
	if !strings.Contains(msg, "never") || !strings.Contains(msg, "still broken") {
		t.Errorf("EventuallyErr failure = %q, want what and the last error", msg)
	}
}

func TestAwaitJSONFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.json")
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = os.WriteFile(path+".tmp", []byte(`{"http_url":"http://127.0.0.1:1"}`), 0o600)
		_ = os.Rename(path+".tmp", path)
	}()
	var got struct {
		HTTPURL string `json:"http_url"`
	}
	msg := run(t, func(tb testing.TB) {
		testkit.AwaitJSONFile(tb, 5*time.Second, "written", path, &got, make(chan struct{}), func() string { return "exited" })
	})
	if msg != "" || got.HTTPURL != "http://127.0.0.1:1" {
		t.Errorf("AwaitJSONFile = %q, decoded %+v; want the file's value", msg, got)
	}

	exited := make(chan struct{})
	close(exited)
	msg = run(t, func(tb testing.TB) {
		testkit.AwaitJSONFile(tb, 50*time.Millisecond, "never written", filepath.Join(t.TempDir(), "none.json"), &got, exited, func() string { return "the process exited: status 2" })
	})
	if !strings.Contains(msg, "never written") || !strings.Contains(msg, "the process exited: status 2") {
		t.Errorf("AwaitJSONFile failure = %q, want what and the process's end", msg)
	}
}

func TestBufferConcurrentWriters(t *testing.T) {
	var b testkit.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("Buffer holds %d bytes, want 800", n)
	}
}

func TestWaitStreamEmpty(t *testing.T) {
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitStreamEmpty(t, 5*time.Second, srv.URL(), "T")
	if _, err := js.Publish(ctx, "t", []byte("job")); err != nil {
		t.Fatal(err)
	}
	if msg := run(t, func(tb testing.TB) { testkit.WaitStreamEmpty(tb, 100*time.Millisecond, srv.URL(), "T") }); !strings.Contains(msg, "1 messages left") {
		t.Errorf("WaitStreamEmpty on a stream with a message = %q, want a failure saying so", msg)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = s.Purge(context.Background())
	}()
	testkit.WaitStreamEmpty(t, 5*time.Second, srv.URL(), "T")
}

func TestLoadVector(t *testing.T) {
	var v map[string]any
	testkit.LoadVector(t, "jwt.json", &v)
	if len(v) == 0 {
		t.Error("jwt.json decoded to nothing")
	}
	if msg := run(t, func(tb testing.TB) { testkit.LoadVector(tb, "no-such-vector.json", &v) }); msg == "" {
		t.Error("LoadVector of a missing file did not fail")
	}
}
