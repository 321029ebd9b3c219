package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/worker"
)

// TestRosterHeartbeats runs a pool with a roster against the emulator: its
// heartbeat names it and counts the job it applied with its lag, a reader
// opened read-only before the bucket existed sees it, and the pool's last
// heartbeat says it stopped.
func TestRosterHeartbeats(t *testing.T) {
	e := newEnv(t, envOptions{kv: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := worker.OpenRoster(ctx, js, worker.RosterConfig{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenRoster(read-only, no bucket): %v", err)
	}
	if hbs, err := empty.Heartbeats(ctx); err != nil || len(hbs) != 0 {
		t.Fatalf("Heartbeats without a bucket = %v, %v; want none", hbs, err)
	}
	if _, err := js.KeyValue(ctx, worker.DefaultRosterBucket); err == nil {
		t.Fatal("a read-only roster created its bucket")
	}
	roster, err := worker.OpenRoster(ctx, js, worker.RosterConfig{})
	if err != nil {
		t.Fatalf("OpenRoster: %v", err)
	}
	e.register("alice")
	cfg := e.poolConfig()
	cfg.Roster, cfg.RosterInterval, cfg.WorkerID = roster, 100*time.Millisecond, "w-roster"
	_, stop := e.startPool(cfg, nil, nil, nil)
	g := evt{guid: "roster-group", created: 1_718_000_000}
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	e.waitMembers(g.guid, "alice")

	// The reader opened before any worker made the bucket: it sees the
	// worker now that it runs.
	reader := empty
	var hb worker.Heartbeat
	eventually(t, 10*time.Second, func() (bool, string) {
		hbs, err := reader.Heartbeats(ctx)
		if err != nil || len(hbs) != 1 {
			return false, fmt.Sprintf("heartbeats = %+v, %v; want one", hbs, err)
		}
		hb = hbs[0]
		return hb.Applied == 1, fmt.Sprintf("heartbeat = %+v, want one applied job", hb)
	})
	if hb.Worker != "w-roster" || hb.Started.IsZero() || time.Since(hb.Seen) > 5*time.Second || hb.Stopped ||
		hb.Partitions != 4 || hb.LagP50 <= 0 || hb.LagP99 < hb.LagP50 || hb.Lag.Count() != 1 || hb.Retried != 0 || hb.Failed != 0 {
		t.Fatalf("heartbeat = %+v", hb)
	}
	stop()
	hbs, err := reader.Heartbeats(ctx)
	if err != nil || len(hbs) != 1 || !hbs[0].Stopped {
		t.Fatalf("heartbeats after Stop = %+v, %v; want the pool's last one, stopped", hbs, err)
	}
}
