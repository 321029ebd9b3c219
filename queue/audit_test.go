package queue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

func TestAuditAppendAndHistory(t *testing.T) {
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ro, err := queue.OpenAudit(ctx, nc, queue.AuditConfig{ReadOnly: true})
	if err != nil {
		t.Fatalf("OpenAudit read-only: %v", err)
	}
	if recs, err := ro.History(ctx, "g", 0); err != nil || len(recs) != 0 {
		t.Fatalf("History before the stream exists = %v, %v; want none", recs, err)
	}
	if err := ro.Append(ctx, []queue.AuditRecord{{GUID: "g", Action: "add"}}); err == nil {
		t.Fatal("a read-only trail accepted a record")
	}
	a, err := queue.OpenAudit(ctx, nc, queue.AuditConfig{})
	if err != nil {
		t.Fatalf("OpenAudit: %v", err)
	}
	// Opening again changes nothing.
	if _, err := queue.OpenAudit(ctx, nc, queue.AuditConfig{}); err != nil {
		t.Fatalf("second OpenAudit: %v", err)
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var recs []queue.AuditRecord
	for i := range 5 {
		recs = append(recs, queue.AuditRecord{GUID: "g.1 *>", UID: fmt.Sprintf("u%d", i), Action: "add",
			Trigger: "group_member_added", JobID: "j1", StreamSeq: 7, Worker: "w", AppliedAt: at})
	}
	if err := a.Append(ctx, recs); err != nil {
		t.Fatalf("Append: %v", err)
	}
	// The same job's records again are stored once.
	if err := a.Append(ctx, recs); err != nil {
		t.Fatalf("Append again: %v", err)
	}
	if err := a.Append(ctx, []queue.AuditRecord{{GUID: "g.2", Action: "delete", JobID: "j2", StreamSeq: 8, AppliedAt: at}}); err != nil {
		t.Fatalf("Append other group: %v", err)
	}
	got, err := a.History(ctx, "g.1 *>", 0)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(got) != 5 {
		t.Fatalf("History = %d records, want 5: %+v", len(got), got)
	}
	for i, r := range got {
		if r.UID != fmt.Sprintf("u%d", i) || r.Seq == 0 || !r.AppliedAt.Equal(at) || r.JobID != "j1" {
			t.Fatalf("record %d = %+v", i, r)
		}
	}
	last, err := a.History(ctx, "g.1 *>", 2)
	if err != nil || len(last) != 2 || last[0].UID != "u3" || last[1].UID != "u4" {
		t.Fatalf("History limit 2 = %+v, %v; want u3, u4", last, err)
	}
	// Pages of 2 from the newest: u3 u4, u1 u2, u0, the last without older
	// records; the other group's record between them is in none.
	var pages [][]string
	for before, older := uint64(0), true; older; {
		var page []queue.AuditRecord
		if page, older, err = a.HistoryBefore(ctx, "g.1 *>", before, 2); err != nil || len(page) == 0 {
			t.Fatalf("HistoryBefore(%d) = %+v, %v", before, page, err)
		}
		var uids []string
		for _, r := range page {
			if before != 0 && r.Seq >= before {
				t.Errorf("HistoryBefore(%d) holds seq %d", before, r.Seq)
			}
			uids = append(uids, r.UID)
		}
		pages, before = append(pages, uids), page[0].Seq
		if len(pages) > 5 {
			t.Fatalf("pages never end: %v", pages)
		}
	}
	if fmt.Sprint(pages) != "[[u3 u4] [u1 u2] [u0]]" {
		t.Errorf("pages of 2 = %v, want [[u3 u4] [u1 u2] [u0]]", pages)
	}
	if none, older, err := a.HistoryBefore(ctx, "g.1 *>", got[0].Seq, 0); err != nil || len(none) != 0 || older {
		t.Errorf("HistoryBefore the first record = %+v, older %v, %v; want none", none, older, err)
	}
	if none, err := a.History(ctx, "g.3", 0); err != nil || len(none) != 0 {
		t.Fatalf("History of a group without records = %+v, %v", none, err)
	}
	if err := a.Append(ctx, []queue.AuditRecord{{Action: "add"}}); err == nil {
		t.Fatal("Append accepted a record without a group")
	}
}

func TestAuditConfigRefused(t *testing.T) {
	srv := natstest.Run(t)
	nc := natstest.Connect(t, srv)
	for _, c := range []queue.AuditConfig{
		{Stream: "A.B"},
		{SubjectPrefix: "a.*"},
		{MaxAge: time.Second},
		{Replicas: 7},
	} {
		if _, err := queue.OpenAudit(context.Background(), nc, c); !errors.Is(err, queue.ErrInvalidConfig) {
			t.Errorf("OpenAudit(%+v) = %v, want ErrInvalidConfig", c, err)
		}
	}
}
