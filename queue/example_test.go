package queue_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// Example publishes a job twice, as a CometChat retry would, and consumes it
// once from its partition.
func Example() {
	// An embedded JetStream for the example; production connects to a NATS
	// server with JetStream enabled.
	dir, err := os.MkdirTemp("", "queue-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		panic("nats not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	ctx := context.Background()
	// In production the key comes from GROUPSYNC_JOB_KEY; serve and the
	// workers share it.
	key, err := queue.GenerateJobKey()
	if err != nil {
		panic(err)
	}
	q, err := queue.Open(ctx, nc, queue.Config{JobKey: key, AppID: "cometchat-app"})
	if err != nil {
		panic(err)
	}
	defer q.Close()

	job := groupsync.Job{
		ID: "3f9a0c",
		Event: groupsync.Event{
			Trigger: groupsync.TriggerMemberAdded,
			Action:  groupsync.ActionAdd,
			GUID:    "supergroup",
			Members: []groupsync.Member{{UID: "alice"}},
		},
	}
	for range 2 {
		res, err := q.Publish(ctx, job)
		if err != nil {
			panic(err)
		}
		fmt.Printf("published on %s, duplicate: %v\n", q.Subject(res.Partition), res.Duplicate)
	}

	d, err := q.Next(ctx, queue.Partition(job.Event.GUID, q.Partitions()))
	if err != nil {
		panic(err)
	}
	fmt.Printf("job %s for %s, delivery %d of %d\n", d.Job.ID, d.Job.Event.GUID, d.NumDelivered, q.MaxDeliver())
	if err := d.Ack(ctx); err != nil {
		panic(err)
	}
	// Output:
	// published on groupsync.jobs.7, duplicate: false
	// published on groupsync.jobs.7, duplicate: true
	// job 3f9a0c for supergroup, delivery 1 of 50
}
