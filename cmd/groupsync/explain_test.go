package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/worker"
)

// TestExplain runs the emulator and a worker in the test process, applies a
// group's creation with a member who has no card and a kick, lets a
// reconcile job fail, then runs `groupsync explain` as an operator would,
// with the worker's Virgil settings and without them.
func TestExplain(t *testing.T) {
	r := newRoleSetup(t, "the job key of the explain test, 32+ bytes")
	wm := r.worker(nil)
	emu, jwt, ids, ns := r.emu, r.jwt, r.ids, r.nats

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, uid := range []string{"alice", "bob", "carol"} {
		key, err := virgil.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := virgil.NewRawCard(key, ids.User(uid), "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := virgil.NewClient(emu.VirgilURL, jwt.Source(ids.User(uid))).PublishCard(ctx, rc); err != nil {
			t.Fatalf("publish card of %s: %v", uid, err)
		}
	}
	const created = 1_718_000_000
	ev := func(trig groupsync.Trigger, act groupsync.Action, at int64, uids ...string) groupsync.Job {
		e := groupsync.Event{Trigger: trig, Action: act, GUID: "team", AppID: exampleAppID, CreatedAt: created, UpdatedAt: at,
			By: "alice", MembersCount: -1, Received: time.Now().Unix()}
		for _, u := range uids {
			e.Members = append(e.Members, groupsync.Member{UID: u})
		}
		return groupsync.Job{ID: groupsync.JobID(groupsync.IdempotencyKey(e)), Event: e, ReceivedAt: time.Now().UTC()}
	}
	kick := ev(groupsync.TriggerMemberKicked, groupsync.ActionRemove, created+30, "carol")
	recon := worker.ReconcileJob("big", "run1")
	for _, j := range []groupsync.Job{ev(groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "bob", "carol", "dave"), kick, recon} {
		if _, err := wm.Queue.Publish(ctx, j); err != nil {
			t.Fatalf("publish %s: %v", j.ID, err)
		}
	}
	testkit.EventuallyErr(t, 30*time.Second, "the kick and the failed reconcile", func() error {
		recs, err := wm.Audit.History(ctx, "team", 0)
		if err != nil || len(recs) < 5 {
			return fmt.Errorf("%d audit records, %v", len(recs), err)
		}
		failed, err := wm.Queue.Failed(ctx)
		if err != nil || len(failed) != 1 {
			return fmt.Errorf("failed jobs %+v, %v", failed, err)
		}
		return nil
	})

	keyFile := filepath.Join(t.TempDir(), "owner.key")
	if err := os.WriteFile(keyFile, []byte(r.ownerKey.MarshalPKCS8Base64()), 0o600); err != nil {
		t.Fatal(err)
	}
	bare := []string{"GROUPSYNC_NATS_URL=" + ns.URL(), "GROUPSYNC_PARTITIONS=2"}
	full := append(slices.Clone(bare),
		"GROUPSYNC_VIRGIL_API_URL="+emu.VirgilURL,
		"GROUPSYNC_VIRGIL_APP_ID="+jwt.AppID,
		"GROUPSYNC_VIRGIL_APP_KEY_ID="+jwt.AppKeyID,
		"GROUPSYNC_VIRGIL_APP_KEY="+jwt.AppKey.MarshalPKCS8Base64(),
		"GROUPSYNC_VIRGIL_SERVICE_KEY="+emu.Emulator.ServiceKey().MarshalSPKIBase64(),
		"GROUPSYNC_IDENTITY_SECRET="+testIdentitySecret,
		"GROUPSYNC_OWNER_KEY_FILE="+keyFile,
	)
	// No output may show a secret: the App Key, the owner key, the job
	// key, the identity secret or a job's signature.
	secrets := []string{jwt.AppKey.MarshalPKCS8Base64(), r.ownerKey.MarshalPKCS8Base64(), string(r.base.Queue.JobKey), testIdentitySecret}
	explain := func(env []string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"explain"}, args...), getenvOf(env), &out, &errb)
		for _, sec := range secrets {
			if strings.Contains(out.String()+errb.String(), sec) {
				t.Errorf("explain %v shows a secret", args)
			}
		}
		if strings.Contains(out.String(), queue.HeaderSignature) {
			t.Errorf("explain %v shows a job signature", args)
		}
		return code, out.String(), errb.String()
	}
	at := time.Unix(created+30, 0).UTC().Format(time.RFC3339)

	t.Run("Kicked", func(t *testing.T) {
		code, out, errs := explain(full, "TEAM", "carol")
		if code != 0 {
			t.Fatalf("explain team carol: exit %d: %s", code, errs)
		}
		want := fmt.Sprintf("carol is not a participant: kicked by alice at %s, job %s; no later add", at, kick.ID)
		if first, _, _ := strings.Cut(out, "\n"); first != want {
			t.Errorf("explain team carol first line = %q, want %q\n%s", first, want, out)
		}
		for _, s := range []string{"virgil:       does not list them", "store: exists; 2 participant(s), 1 pending, 1 removed",
			"participants   alice, bob", "2 epoch(s) kept (0 to 1), newest 1", "failed jobs: none", kick.ID} {
			if !strings.Contains(out, s) {
				t.Errorf("explain team carol lacks %q:\n%s", s, out)
			}
		}
	})

	t.Run("Pending", func(t *testing.T) {
		code, out, errs := explain(full, "team", "dave")
		first, _, _ := strings.Cut(out, "\n")
		if code != 0 || !strings.HasPrefix(first, "dave is pending: they have no Virgil card yet (added at the group's creation by alice") ||
			!strings.HasSuffix(first, "; they join when they first log in") {
			t.Errorf("explain team dave: exit %d, first line %q, %s", code, first, errs)
		}
	})

	t.Run("JSON", func(t *testing.T) {
		code, out, errs := explain(full, "team", "--json")
		var g inspect.GroupReport
		if code != 0 || json.Unmarshal([]byte(out), &g) != nil {
			t.Fatalf("explain team --json: exit %d, %q %s", code, out, errs)
		}
		if !g.Virgil.Read || !slices.Equal(g.Virgil.Participants, []string{"alice", "bob"}) || len(g.Store.Pending) != 1 || len(g.History) != 5 {
			t.Errorf("explain team --json = %+v", g)
		}
		code, out, errs = explain(full, "team", "carol", "--json")
		var m struct {
			Member inspect.MemberReport `json:"member"`
			Group  inspect.GroupReport  `json:"group"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil || !strings.HasPrefix(m.Member.Sentence, "carol is not a participant: kicked by alice") ||
			m.Member.InVirgil == nil || *m.Member.InVirgil || m.Group.GUID != "team" {
			t.Errorf("explain team carol --json: exit %d, %q %s", code, out, errs)
		}
	})

	t.Run("WithoutVirgil", func(t *testing.T) {
		code, out, errs := explain(bare, "team", "bob")
		first, _, _ := strings.Cut(out, "\n")
		if code != 0 || !strings.HasPrefix(first, "bob is a participant: added at the group's creation by alice") || strings.Contains(first, "Virgil") {
			t.Errorf("explain team bob without Virgil: exit %d, first line %q, %s", code, first, errs)
		}
		if !strings.Contains(out, "virgil: not read: no Virgil settings") || strings.Contains(out, "participants   alice") {
			t.Errorf("explain without Virgil does not say Virgil was not read:\n%s", out)
		}
	})

	// Another identity secret maps every name elsewhere: the command
	// must show that Virgil does not have the group, never agree.
	t.Run("WrongIdentitySecret", func(t *testing.T) {
		wrong := append(slices.Clone(full), "GROUPSYNC_IDENTITY_SECRET=another identity secret, not the workers'")
		code, out, _ := explain(wrong, "team", "bob")
		if code != 0 || !strings.Contains(out, "yet Virgil does not list them") || !strings.Contains(out, "does not exist") {
			t.Errorf("explain with a wrong identity secret: exit %d\n%s", code, out)
		}
	})

	t.Run("FailedJobOfAGroup", func(t *testing.T) {
		code, out, errs := explain(full, "big")
		if code != 0 || !strings.Contains(out, recon.ID) || !strings.Contains(out, "needs reconcile") || !strings.Contains(out, "failed jobs (1;") {
			t.Errorf("explain big: exit %d, %s\n%s", code, errs, out)
		}
	})

	t.Run("UnknownGroup", func(t *testing.T) {
		code, out, errs := explain(full, "nobody")
		if code != 1 || out != "" || !strings.Contains(errs, "not found") || strings.Count(errs, "\n") != 1 {
			t.Errorf("explain nobody: exit %d, stdout %q, stderr %q; want exit 1 and one line saying not found", code, out, errs)
		}
	})

	t.Run("BadUsage", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			env  []string
			args []string
		}{
			{"NoGroup", full, nil},
			{"ThreeIDs", full, []string{"a", "b", "c"}},
			{"BadLimit", full, []string{"team", "--limit", "0"}},
			{"UnknownFlag", full, []string{"team", "--nope"}},
			{"VirgilWithoutIdentitySecret", append(slices.Clone(full), "GROUPSYNC_IDENTITY_SECRET="), []string{"team"}},
			{"VirgilWithoutOwnerKey", append(slices.Clone(full), "GROUPSYNC_OWNER_KEY_FILE="+keyFile+".missing"), []string{"team"}},
		} {
			code, out, errs := explain(tc.env, tc.args...)
			if code != 2 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "groupsync explain: ") {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and one line", tc.name, code, out, errs)
			}
		}
	})
}
