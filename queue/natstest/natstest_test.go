package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue/natstest"
)

func TestRestartKeepsURLAndStreams(t *testing.T) {
	srv := natstest.Run(t)
	url := srv.URL()
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("kept")); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	srv.Shutdown()
	if srv.NATS() != nil {
		t.Errorf("NATS() after Shutdown is not nil")
	}
	srv.Shutdown() // a second Shutdown does nothing
	srv.Restart()
	if srv.URL() != url {
		t.Errorf("URL after Restart = %s, want %s", srv.URL(), url)
	}
	testkit.Eventually(t, 10*time.Second, "the client reconnects", func() bool { return nc.Status() == nats.CONNECTED })
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatalf("Stream after Restart: %v", err)
	}
	got, err := s.GetMsg(ctx, 1)
	if err != nil || string(got.Data) != "kept" {
		t.Fatalf("GetMsg(1) after Restart = %v, %v; want kept", got, err)
	}
}
