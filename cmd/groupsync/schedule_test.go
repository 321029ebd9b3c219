package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/worker"
)

// TestScheduledReconcileStatus runs a worker with a CometChat API key: its
// scheduled reconcile creates a group CometChat has and groupsync never
// heard of, and `groupsync reconcile --status` (and --json) shows the run. A
// serve role without the key reports itself degraded in /readyz.
func TestScheduledReconcileStatus(t *testing.T) {
	r := newRoleSetup(t, "the job key of the schedule test, 32+ bytes")
	fake := cometchattest.Start(t)
	fake.SetGroup("backfilled", "alice")
	r.worker(func(w *WorkerConfig) {
		w.CometChat = &cometchat.Config{BaseURL: fake.URL(), APIKey: fake.APIKey}
		w.Pool = worker.Config{ReconcileInterval: time.Hour, ReconcileRate: 100}
	})

	env := []string{"GROUPSYNC_NATS_URL=" + r.nats.URL()}
	testkit.EventuallyErr(t, 30*time.Second, "the scheduled reconcile ran", func() error {
		code, out, errOut := runInProcess(t, env, "reconcile", "--status", "--json")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut)
		}
		var st worker.ReconcileStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if st.FinishedAt.IsZero() || st.Groups != 1 || st.Queued != 1 || st.Reconciled != 1 || st.Drift[worker.DriftMissing] != 1 {
			return fmt.Errorf("status %s", out)
		}
		return nil
	})
	if v, code, err := r.group("backfilled"); err != nil || code != http.StatusOK || !slices.Contains(v.Participants, testOwner) {
		t.Errorf("the reconciled group in Virgil: %d %+v %v", code, v, err)
	}
	code, out, _ := runInProcess(t, env, "reconcile", "--status")
	if code != 0 || !strings.Contains(out, "1 listed, 1 queued, 1 reconciled") || !strings.Contains(out, worker.DriftMissing+" 1") {
		t.Errorf("reconcile --status = %d:\n%s", code, out)
	}
	if code, _, errOut := runInProcess(t, env, "reconcile", "--status", "--all"); code != 2 {
		t.Errorf("reconcile --status --all = %d %s, want a usage error", code, errOut)
	}

	serve := r.serve("u", "p")
	var ready struct {
		Status   string   `json:"status"`
		Degraded []string `json:"degraded"`
	}
	waitReady(t, "http://"+serve.HTTPAddr, &ready, func() error {
		if ready.Status != "degraded" || !slices.Contains(ready.Degraded, worker.ReasonNoReconciler) {
			return fmt.Errorf("%+v", ready)
		}
		return nil
	})
}

// TestPrintReconcileStatusUnlisted: the status names the groups a run
// queued because CometChat no longer listed them, those left to later runs,
// and why a run did not look for them.
func TestPrintReconcileStatusUnlisted(t *testing.T) {
	for _, c := range []struct {
		st   worker.ReconcileStatus
		want string
	}{
		{worker.ReconcileStatus{Groups: 4, Queued: 6, Unlisted: 2}, "not listed: 2 queued\n"},
		{worker.ReconcileStatus{Queued: 2, Unlisted: 2, UnlistedLeft: 5}, "not listed: 2 queued, 5 more left to later runs\n"},
		{worker.ReconcileStatus{Error: "page 2 failed", UnlistedSkipped: "CometChat's listing of the groups was incomplete"},
			"not listed: not looked for: CometChat's listing of the groups was incomplete\n"},
	} {
		var b strings.Builder
		if err := printReconcileStatus(&b, c.st, true, false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("printReconcileStatus(%+v) =\n%s\nwant a line %q", c.st, b.String(), c.want)
		}
	}
}
