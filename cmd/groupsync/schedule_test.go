package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/webhook"
	"github.com/groupsync/groupsync/worker"
)

// TestScheduledReconcileStatus runs a worker with a CometChat API key: its
// scheduled reconcile creates a group CometChat has and groupsync never
// heard of, and `groupsync reconcile --status` (and --json) shows the run. A
// serve role without the key reports itself degraded in /readyz.
func TestScheduledReconcileStatus(t *testing.T) {
	log := zerolog.New(zerolog.NewTestWriter(t))
	ns := natstest.Run(t)
	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	jwt := &virgil.JWTGenerator{AppID: "app-id", AppKeyID: "app-key-id", AppKey: appKey}
	emu := mustOpen(t, &Main{Config: Config{Logger: log,
		Emulator: &EmulatorConfig{Addr: "127.0.0.1:0", Emulator: emulatorConfig(jwt, "", nil, true, log)}}})
	const owner = "2137f9ef75295ea"
	ids, err := groupsync.NewIdentities([]byte("identity secret of the test"), owner)
	if err != nil {
		t.Fatal(err)
	}
	ownerKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	fake := cometchattest.Start(t)
	fake.SetGroup("backfilled", "alice")
	base := Config{
		Logger:          log,
		ShutdownTimeout: 10 * time.Second,
		NATS:            NATSConfig{URL: ns.URL(), Name: "test"},
		Queue:           queue.Config{Partitions: 2, JobKey: queue.JobKey("the job key of the schedule test, 32+ bytes"), AppID: exampleAppID},
		Virgil:          VirgilConfig{APIURL: emu.VirgilURL, JWT: jwt},
	}
	wc := base
	wc.Worker = &WorkerConfig{OwnerIdentity: owner, OwnerKey: ownerKey, ServiceKey: emu.Emulator.ServiceKey(), Identities: ids,
		CometChat: &cometchat.Config{BaseURL: fake.URL(), APIKey: fake.APIKey},
		Pool:      worker.Config{ReconcileInterval: time.Hour, ReconcileRate: 100}}
	mustOpen(t, &Main{Config: wc})

	env := []string{"GROUPSYNC_NATS_URL=" + ns.URL()}
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
	var v groupView
	if code, err := getJSON(emu.VirgilURL+"/_emulator/groups/"+ids.Group("backfilled")+"?owner="+owner, &v); err != nil || code != http.StatusOK || !slices.Contains(v.Participants, owner) {
		t.Errorf("the reconciled group in Virgil: %d %+v %v", code, v, err)
	}
	code, out, _ := runInProcess(t, env, "reconcile", "--status")
	if code != 0 || !strings.Contains(out, "1 listed, 1 queued, 1 reconciled") || !strings.Contains(out, worker.DriftMissing+" 1") {
		t.Errorf("reconcile --status = %d:\n%s", code, out)
	}
	if code, _, errOut := runInProcess(t, env, "reconcile", "--status", "--all"); code != 2 {
		t.Errorf("reconcile --status --all = %d %s, want a usage error", code, errOut)
	}

	sc := base
	sc.Serve = &webhook.Config{Addr: "127.0.0.1:0", Username: "u", Password: "p", AppID: exampleAppID,
		Identities: ids, ClientAuth: webhook.ClientAuthTrustHeader, Tokens: webhook.VirgilTokens{Generator: jwt}}
	serve := mustOpen(t, &Main{Config: sc})
	var ready struct {
		Status   string   `json:"status"`
		Degraded []string `json:"degraded"`
	}
	testkit.EventuallyErr(t, 30*time.Second, "/readyz", func() error {
		code, err := getJSON("http://"+serve.HTTPAddr+"/readyz", &ready)
		if err == nil && (code != http.StatusOK || ready.Status != "degraded" || !slices.Contains(ready.Degraded, worker.ReasonNoReconciler)) {
			err = fmt.Errorf("status %d %+v", code, ready)
		}
		return err
	})
}
