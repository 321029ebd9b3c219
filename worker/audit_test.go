package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// TestAuditTrailRecordsAppliedChanges applies jobs through the pool against
// the emulator and reads the group's history back: one record per member
// and change, in order, with the job, its stream sequence, the epoch after
// it and the worker; a job that changes nothing and a duplicate add nothing.
func TestAuditTrailRecordsAppliedChanges(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	audit, err := queue.OpenAudit(ctx, e.nc, queue.AuditConfig{})
	if err != nil {
		t.Fatalf("OpenAudit: %v", err)
	}
	e.register("alice", "bob", "carol")
	cfg := e.poolConfig()
	cfg.Audit = audit
	cfg.WorkerID = "w-audit"
	e.startPool(cfg, nil, nil, nil)

	g := evt{guid: "audit-group", created: 1_718_000_000}
	T := g.created
	e.publish(job(g.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob", "dave")))
	e.waitMembers(g.guid, "alice", "bob")
	kick := g.ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, T+30, "bob")
	kick.By = "alice"
	kj := job(kick)
	e.publish(kj)
	e.waitMembers(g.guid, "alice")
	e.publish(job(g.ev(groupsync.TriggerGroupUpdated, groupsync.ActionNone, T+31)))
	e.publishCopy(kj)
	e.waitSettled()

	var recs []queue.AuditRecord
	eventually(t, 10*time.Second, func() (bool, string) {
		recs, err = audit.History(ctx, g.guid, 0)
		return err == nil && len(recs) >= 4, fmt.Sprintf("history: %d records, err %v", len(recs), err)
	})
	var got []string
	for _, r := range recs {
		s := r.Action + ":" + r.UID
		if r.Pending {
			s += ":pending"
		}
		got = append(got, s)
		if r.GUID != g.guid || r.Worker != "w-audit" || r.JobID == "" || r.StreamSeq == 0 || r.Seq == 0 || r.AppliedAt.IsZero() {
			t.Errorf("incomplete record %+v", r)
		}
	}
	want := "create:alice create:bob create:dave:pending remove:bob"
	if strings.Join(got, " ") != want {
		t.Fatalf("history = %v, want %s", got, want)
	}
	rm := recs[3]
	if rm.JobID != kj.ID || rm.By != "alice" || rm.Trigger != string(groupsync.TriggerMemberKicked) ||
		!rm.EventAt.Equal(time.Unix(T+30, 0)) || rm.Epoch == nil || *rm.Epoch != 1 {
		t.Fatalf("kick record = %+v, want job %s by alice at %d, epoch 1", rm, kj.ID, T+30)
	}
	if recs[0].Epoch == nil || *recs[0].Epoch != 0 {
		t.Fatalf("create record epoch = %v, want 0", recs[0].Epoch)
	}
	if other, err := audit.History(ctx, "another-group", 0); err != nil || len(other) != 0 {
		t.Fatalf("history of another group = %v, %v; want none", other, err)
	}
}

// TestAuditAppendFailureIsCounted: when the audit trail cannot take a
// record (its stream is gone), the change stays applied and the failure is
// counted, so an alert can see a trail with holes; a working trail counts
// its appends.
func TestAuditAppendFailureIsCounted(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	audit, err := queue.OpenAudit(ctx, e.nc, queue.AuditConfig{})
	if err != nil {
		t.Fatalf("OpenAudit: %v", err)
	}
	e.register("alice", "bob")
	reg := prometheus.NewRegistry()
	cfg := e.poolConfig()
	cfg.Audit = audit
	cfg.Registerer = reg
	e.startPool(cfg, nil, nil, nil)

	ok := evt{guid: "audited-group", created: 1_718_000_000}
	e.publish(job(ok.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice")))
	e.waitMembers(ok.guid, "alice")
	eventually(t, 10*time.Second, func() (bool, string) {
		missing := missingMetrics(t, reg, "groupsync_worker_audit_appends_total/result=appended")
		return len(missing) == 0, fmt.Sprintf("metrics not recorded: %v", missing)
	})
	if missing := missingMetrics(t, reg, "groupsync_worker_audit_appends_total/result=failed"); len(missing) == 0 {
		t.Fatal("a working audit trail counted a failed append")
	}

	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, queue.DefaultAuditStream); err != nil {
		t.Fatalf("delete the audit stream: %v", err)
	}
	lost := evt{guid: "unaudited-group", created: 1_718_000_000}
	e.publish(job(lost.ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "bob")))
	e.waitMembers(lost.guid, "bob")
	eventually(t, 30*time.Second, func() (bool, string) {
		missing := missingMetrics(t, reg, "groupsync_worker_audit_appends_total/result=failed")
		return len(missing) == 0, fmt.Sprintf("metrics not recorded: %v", missing)
	})
}
