package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

// TestOwnerRotate runs `groupsync owner rotate` between two runs of the
// workers: afterwards the owner identity has one current card, for the new
// key; every ticket opens and verifies with the new key and no longer with
// the old one; the old key is kept beside the new; and restarted workers go
// on changing the group with the new key.
func TestOwnerRotate(t *testing.T) {
	ctx := context.Background()
	c := startTestCluster(t, ClusterConfig{Workers: 1, Partitions: 2})
	users := []string{"rot-a", "rot-b", "rot-c"}
	if err := c.RegisterUsers(ctx, users); err != nil {
		t.Fatal(err)
	}
	poster := c.Poster(30 * time.Second)
	const guid = "rotate-group"
	events := []*Event{newEvent("group_created", guid, users[:2], 1718000000, 1718000000, 1718000000)}
	for _, uid := range users[:2] { // two removals: three epochs to re-key
		events = append(events, newEvent("group_member_kicked", guid, []string{uid}, 1718000000, 1718000010+int64(len(events)), 1718000010+int64(len(events))))
		events = append(events, newEvent("group_member_added", guid, []string{uid}, 1718000000, 1718000010+int64(len(events)), 1718000010+int64(len(events))))
	}
	for _, e := range events {
		if e.Accepted, e.AcceptedAt = poster.Post(e.Body); !e.Accepted {
			t.Fatalf("%s not accepted", e.Trigger)
		}
	}
	waitChecked(t, c, events)

	keyFile := filepath.Join(c.cfg.Dir, "owner.key")
	oldKey := readKey(t, keyFile)
	if out, err := c.Run(ctx, "owner", "rotate"); err == nil || !strings.Contains(err.Error(), "--workers-stopped") {
		t.Fatalf("rotate with workers possibly running: %v %s", err, out)
	}
	c.StopWorkers()
	out, err := c.Run(ctx, "owner", "rotate", "--workers-stopped")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 re-keyed") {
		t.Errorf("rotate output: %s", out)
	}
	newKey := readKey(t, keyFile)
	c.AddSecret("new owner key", newKey.MarshalPKCS8Base64())
	if newKey.Public().Equal(oldKey.Public()) {
		t.Fatal("the key file still holds the old key")
	}
	if kept := readKey(t, keyFile+".old"); !kept.Public().Equal(oldKey.Public()) {
		t.Error("the previous key was not kept in owner.key.old")
	}
	if _, err := os.Stat(keyFile + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("owner.key.new left behind: %v", err)
	}

	gen := &virgil.JWTGenerator{AppID: c.appID, AppKeyID: c.appKeyID, AppKey: c.appKey}
	client := virgil.NewClient(c.VirgilURL, gen.Source(c.Identity.Owner()))
	cards, err := client.SearchCards(ctx, []string{c.Identity.Owner()})
	if err != nil {
		t.Fatal(err)
	}
	cards = virgil.LinkCards(cards)
	if len(cards) != 1 || !cards[0].PublicKey.Equal(newKey.Public()) || cards[0].Previous == nil {
		t.Fatalf("owner cards after rotation: %d current, want one for the new key replacing the old", len(cards))
	}
	group := c.Identity.Group(guid)
	st, err := virgil.NewOwner(client, newKey, c.Identity.Owner()).State(ctx, group)
	if err != nil || len(st.Epochs) != 3 {
		t.Fatalf("state with the new key: %+v, %v (want 3 epochs)", st, err)
	}
	if _, err := virgil.NewOwner(client, oldKey, c.Identity.Owner()).State(ctx, group); !errors.Is(err, virgil.ErrInvalidTicket) {
		t.Errorf("state with the old key = %v, want ErrInvalidTicket", err)
	}

	if _, err := c.StartWorker(); err != nil {
		t.Fatal(err)
	}
	add := newEvent("group_member_added", guid, users[2:], 1718000000, 1718000100, 1718000100)
	if add.Accepted, add.AcceptedAt = poster.Post(add.Body); !add.Accepted {
		t.Fatal("add after rotation not accepted")
	}
	waitChecked(t, c, append(events, add))
	if st, err := virgil.NewOwner(client, newKey, c.Identity.Owner()).State(ctx, group); err != nil || len(st.Participants) != 4 {
		t.Errorf("after the restarted workers' add: %+v, %v", st, err)
	}
	// The same command on a JetStream KV store (as `dev` keeps it), here
	// empty: it lists no group but still replaces the key.
	c.StopWorkers()
	out, err = c.RunWith(ctx, []string{"GROUPSYNC_REDIS_URL="}, "owner", "rotate", "--workers-stopped")
	if err != nil || !strings.Contains(out, "0 re-keyed") {
		t.Errorf("rotate on a JetStream KV store: %v %s", err, out)
	}
	if third := readKey(t, keyFile); third.Public().Equal(newKey.Public()) {
		t.Error("the KV-store rotation left the key file as it was")
	} else {
		c.AddSecret("third owner key", third.MarshalPKCS8Base64())
	}
	stopAndScanLogs(t, c)
}

// waitChecked waits until no job is queued and the check finds every event
// applied. The queue must be empty too: a group may show its final members
// while jobs that change it and back are still queued (a kick, then an add).
func waitChecked(t *testing.T, c *Cluster, events []*Event) {
	t.Helper()
	testkit.EventuallyErr(t, time.Minute, "events applied", func() error {
		if msgs, _, _, err := c.QueuedJobs(context.Background()); err != nil || msgs > 0 {
			return fmt.Errorf("%d jobs still queued (%v)", msgs, err)
		}
		rep, err := c.Check(context.Background(), events)
		if err == nil && (rep.Lost != 0 || rep.Diverged != 0) {
			err = errors.New(rep.Summary())
		}
		return err
	})
}

func readKey(t *testing.T, path string) *virgil.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := virgil.ParsePrivateKeyBase64(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
