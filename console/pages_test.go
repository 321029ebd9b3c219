package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/worker"
)

const created = 1_718_000_000 // the test groups' createdAt

func event(guid string, trig groupsync.Trigger, act groupsync.Action, at int64, by string, uids ...string) groupsync.Job {
	ev := groupsync.Event{Trigger: trig, Action: act, GUID: guid, AppID: testAppID, CreatedAt: created, UpdatedAt: at, By: by,
		MembersCount: -1, Received: time.Now().Unix()}
	for _, u := range uids {
		ev.Members = append(ev.Members, groupsync.Member{UID: u})
	}
	return groupsync.Job{ID: groupsync.JobID(groupsync.IdempotencyKey(ev)), Event: ev, ReceivedAt: time.Now().UTC()}
}

// groupScenario is group "team" created by alice with alice, bob, carol and
// dave (who has no Virgil card), then carol kicked by alice, applied by a
// real pool to the emulator; and a reconcile job of group "big" that fails
// (the pool has no CometChat to read it from).
type groupScenario struct {
	*testBundle
	kick, recon groupsync.Job
}

func setupGroups(t *testing.T) groupScenario {
	t.Helper()
	b := openParts(t)
	b.register(t, "alice", "bob", "carol")
	b.startPool(t)
	s := groupScenario{testBundle: b}
	b.publish(t, event("team", groupsync.TriggerGroupCreated, groupsync.ActionCreate, 0, "alice", "alice", "bob", "carol", "dave"))
	s.kick = event("team", groupsync.TriggerMemberKicked, groupsync.ActionRemove, created+30, "alice", "carol")
	b.publish(t, s.kick)
	s.recon = worker.ReconcileJob("big", "run1")
	b.publish(t, s.recon)
	b.waitSettled(t)
	testkit.EventuallyErr(t, 20*time.Second, "audit records of team", func() error {
		recs, err := b.audit.History(t.Context(), "team", 0)
		if err == nil && len(recs) < 5 {
			err = fmt.Errorf("%d records", len(recs))
		}
		return err
	})
	b.serve(t)
	return s
}

func TestGroupPages(t *testing.T) {
	s := setupGroups(t)

	t.Run("GroupJSON", func(t *testing.T) {
		var g inspect.GroupReport
		s.getJSON(t, "/groups/team", &g)
		names := func(ms []inspect.Member) []string {
			out := []string{}
			for _, m := range ms {
				out = append(out, m.UID)
			}
			return out
		}
		if got := names(g.Store.Participants); !slices.Equal(got, []string{"alice", "bob"}) {
			t.Errorf("participants = %v, want [alice bob]", got)
		}
		if got := names(g.Store.Pending); !slices.Equal(got, []string{"dave"}) {
			t.Errorf("pending = %v, want [dave]", got)
		}
		if !g.Virgil.Read || !slices.Equal(g.Virgil.Participants, []string{"alice", "bob"}) {
			t.Errorf("virgil = %+v, want alice and bob", g.Virgil)
		}
		if len(g.History) != 5 {
			t.Errorf("history has %d records, want 5", len(g.History))
		}
	})

	t.Run("GroupHTML", func(t *testing.T) {
		resp := s.do(t, "GET", "/groups/team", nil, htmlAccept)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /groups/team = %d", resp.StatusCode)
		}
		for _, want := range []string{
			`<table id="participants">`, `href="/groups/team/members/alice"`, `href="/groups/team/members/dave"`,
			`no Virgil card yet`, `<ol class="timeline" id="history"`, `<strong>remove</strong> <a href="/groups/team/members/carol">carol</a>`,
			`<label for="explain-uid">`, `action="/groups/team/members"`, s.ids.Group("team"),
			`<p class="notice" id="virgil-status">In step:`,
		} {
			if !strings.Contains(resp.body, want) {
				t.Errorf("GET /groups/team lacks %q", want)
			}
		}
	})

	t.Run("ExplainKicked", func(t *testing.T) {
		want := fmt.Sprintf("carol is not a participant: kicked by alice at %s, job %s; no later add",
			time.Unix(created+30, 0).UTC().Format(time.RFC3339), s.kick.ID)
		var m inspect.MemberReport
		s.getJSON(t, "/groups/team/members/carol", &m)
		if m.Sentence != want {
			t.Errorf("explain carol = %q, want %q", m.Sentence, want)
		}
		resp := s.do(t, "GET", "/groups/team/members/carol", nil)
		if !strings.Contains(resp.body, `<p class="sentence" id="explanation" role="status">`+want+`</p>`) {
			t.Errorf("the member page does not show %q:\n%s", want, resp.body)
		}
	})

	t.Run("ExplainPending", func(t *testing.T) {
		var m inspect.MemberReport
		s.getJSON(t, "/groups/team/members/dave", &m)
		if !strings.HasPrefix(m.Sentence, "dave is pending: they have no Virgil card yet") || m.InVirgil == nil || *m.InVirgil {
			t.Errorf("explain dave = %+v", m)
		}
		resp := s.do(t, "GET", "/groups/team/members/dave", nil)
		if !strings.Contains(resp.body, "dave is pending") || !strings.Contains(resp.body, `<dd id="in-virgil">not listed as a participant</dd>`) {
			t.Errorf("the member page of dave lacks the explanation:\n%s", resp.body)
		}
		resp = s.do(t, "GET", "/groups/team/members/alice", nil)
		if !strings.Contains(resp.body, `<dd id="in-virgil">listed as a participant</dd>`) {
			t.Errorf("the member page of alice does not say Virgil lists her:\n%s", resp.body)
		}
	})

	t.Run("Forms", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/groups?guid=team", "/groups/team"},
			{"/groups/team/members?uid=dave", "/groups/team/members/dave"},
			{"/groups/team/members?uid=" + url.QueryEscape("a/b c"), "/groups/team/members/a%2Fb%20c"},
		} {
			resp := s.do(t, "GET", tc.path, nil)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
				t.Errorf("GET %s = %d to %q, want 303 to %q", tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.want)
			}
		}
		if resp := s.do(t, "GET", "/groups", nil); resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, `<label for="find-guid">`) {
			t.Errorf("GET /groups = %d, want the find form", resp.StatusCode)
		}
	})

	t.Run("UnknownGroupIs404", func(t *testing.T) {
		for _, path := range []string{"/groups/no-such-group", "/groups/no-such-group/members/alice"} {
			for _, accept := range []reqOpt{jsonAccept, htmlAccept} {
				if resp := s.do(t, "GET", path, nil, accept); resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
				}
			}
		}
	})

	t.Run("Overview", func(t *testing.T) {
		// A fresh job, so the worker's last minute (shortened by the
		// test's roster interval) counts one applied.
		s.publish(t, event("team", groupsync.TriggerMemberAdded, groupsync.ActionAdd, created+60, "alice", "frank"))
		var ov inspect.Overview
		testkit.EventuallyErr(t, 10*time.Second, "the worker's heartbeat", func() error {
			s.getJSON(t, "/", &ov)
			if len(ov.Workers) != 1 || !ov.Workers[0].Live || ov.Activity == nil || ov.Activity.Applied < 1 || ov.Waiting != 0 {
				return fmt.Errorf("overview %+v", ov)
			}
			return nil
		})
		if len(ov.Partitions) != 1 || ov.Failed != 1 || ov.Waiting != 0 || ov.ReconcileNote != "none has run yet" {
			t.Errorf("overview = %+v, want 1 partition, 1 failed job, none waiting, no reconcile yet", ov)
		}
		resp := s.do(t, "GET", "/", nil)
		for _, want := range []string{`<table id="partitions">`, `<table id="workers">`, "w-console", `<span class="status-ok">live</span>`, `id="failed-count"><a href="/failed">1</a>`, "none has run yet"} {
			if !strings.Contains(resp.body, want) {
				t.Errorf("the overview lacks %q", want)
			}
		}
	})

	t.Run("GroupFailedJobs", func(t *testing.T) {
		var g inspect.GroupReport
		s.getJSON(t, "/groups/big", &g)
		if len(g.Failed) != 1 || g.Failed[0].ID != s.recon.ID {
			t.Fatalf("group big failed = %+v, want the reconcile job", g.Failed)
		}
		resp := s.do(t, "GET", "/groups/big", nil)
		if !strings.Contains(resp.body, `href="/failed/`+url.PathEscape(s.recon.ID)+`"`) {
			t.Errorf("the group page does not link its failed job")
		}
		if !strings.Contains(resp.body, `<input type="hidden" name="id" value="`+s.recon.ID+`">`) || !strings.Contains(resp.body, `id="group-retry"`) {
			t.Errorf("the group page offers no retry of its failed job")
		}
		if !strings.Contains(resp.body, `<p class="warn" id="virgil-status">Virgil holds no such group: see its failed jobs below.</p>`) {
			t.Errorf("the page of a group Virgil does not hold does not say so")
		}
	})

	// Last: it changes the group behind groupsync's back.
	t.Run("OutOfStep", func(t *testing.T) {
		ctx, cancel := testContext()
		defer cancel()
		if err := s.owner.Remove(ctx, s.ids.Group("team"), []string{s.ids.User("bob")}); err != nil {
			t.Fatalf("remove bob in Virgil: %v", err)
		}
		resp := s.do(t, "GET", "/groups/team", nil)
		if !strings.Contains(resp.body, `<p class="error" id="virgil-status">Out of step:`) ||
			!strings.Contains(resp.body, `<dt>Missing in Virgil</dt><dd class="status-bad"><a href="/groups/team/members/bob">bob</a></dd>`) {
			t.Errorf("the group page does not show bob missing in Virgil:\n%s", resp.body)
		}
		var m inspect.MemberReport
		s.getJSON(t, "/groups/team/members/bob", &m)
		if !strings.HasPrefix(m.Sentence, "bob is a participant") || !strings.HasSuffix(m.Sentence, "yet Virgil does not list them: look for a failed job, or run groupsync reconcile") {
			t.Errorf("explain bob = %q, want a participant Virgil does not list", m.Sentence)
		}
	})
}

func TestFailedJobDetailRedactsTheBody(t *testing.T) {
	b := setup(t)
	const token, password = "tok-3b9f0d2a77e1", "pw-9a8b7c6d5e4f"
	job := event("vault", groupsync.TriggerMemberAdded, groupsync.ActionAdd, created+5, "alice", "erin")
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	// A body with secrets a sender might have put in: the console must
	// show neither them nor the job's signature.
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["auth_token"] = token
	m["event"].(map[string]any)["password"] = password
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sig := testJobKey.Sign(body)
	ctx, cancel := testContext()
	defer cancel()
	msg := &nats.Msg{Subject: b.q.Subject(0), Data: body, Header: nats.Header{}}
	msg.Header.Set(queue.HeaderSignature, sig)
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(job.ID)); err != nil {
		t.Fatal(err)
	}
	d, err := b.q.Next(ctx, 0)
	if err != nil || d == nil || d.Job.ID != job.ID {
		t.Fatalf("Next = %v, %v; want the job", d, err)
	}
	if err := d.DeadLetter(ctx, "virgil: add erin: https://api.example/v5?token="+token); err != nil {
		t.Fatal(err)
	}
	if sigs := b.signatures(t); !slices.Equal(sigs, []string{sig}) {
		t.Fatalf("dead letter signatures = %v, want the job's (the test must see it to prove it is not shown)", sigs)
	}

	path := "/failed/" + url.PathEscape(job.ID)
	var detail inspect.FailedDetail
	b.getJSON(t, path, &detail)
	if detail.ID != job.ID || !detail.Replayable || !strings.Contains(string(detail.Body), "REDACTED") || !strings.Contains(string(detail.Body), `"erin"`) {
		t.Errorf("GET %s = %+v, want the job with its body redacted", path, detail)
	}
	html := b.do(t, "GET", path, nil)
	for _, want := range []string{`<pre id="failed-body"`, "REDACTED", "erin", `<button type="submit" id="retry-one">`, `name="id" value="` + job.ID + `"`} {
		if !strings.Contains(html.body, want) {
			t.Errorf("GET %s lacks %q", path, want)
		}
	}
	for _, p := range []string{path, "/failed", "/failed?q=erin", "/groups/vault", "/"} {
		for _, accept := range []reqOpt{jsonAccept, htmlAccept} {
			resp := b.do(t, "GET", p, nil, accept)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d", p, resp.StatusCode)
			}
			for what, secret := range map[string]string{"token": token, "password": password, "job signature": sig, "job key": string(testJobKey), "console password": testPass} {
				if strings.Contains(resp.body, secret) {
					t.Errorf("GET %s shows the %s", p, what)
				}
			}
		}
	}
	if resp := b.do(t, "GET", "/failed/no-such-job", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /failed/no-such-job = %d, want 404", resp.StatusCode)
	}
	// Retried from its page.
	resp := b.post(t, console.PathRetry, url.Values{"id": {job.ID}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry from the detail page = %d", resp.StatusCode)
	}
	if ids := b.failedIDs(t); len(ids) != 0 {
		t.Errorf("dead letters after the retry = %v, want none", ids)
	}
}

// TestOverviewShowsUnlistedGroups: the overview names the groups the last
// scheduled reconcile queued because CometChat no longer listed them, and
// why a run did not look for them.
func TestOverviewShowsUnlistedGroups(t *testing.T) {
	b := setup(t)
	kv, err := b.js.KeyValue(t.Context(), worker.DefaultMetaBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		st   worker.ReconcileStatus
		want string
	}{
		{worker.ReconcileStatus{Run: "r1", Groups: 4, Queued: 6, Unlisted: 2, UnlistedLeft: 5}, "2 queued (held as existing, not listed by CometChat), 5 more left to later runs"},
		{worker.ReconcileStatus{Run: "r2", Error: "page 2 failed", UnlistedSkipped: "CometChat's listing of the groups was incomplete"}, "not looked for: CometChat&#39;s listing of the groups was incomplete"},
	} {
		v, err := json.Marshal(c.st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(t.Context(), "reconcile.last", v); err != nil {
			t.Fatal(err)
		}
		if resp := b.do(t, "GET", "/", nil); !strings.Contains(resp.body, c.want) {
			t.Errorf("GET / with status %+v does not show %q:\n%s", c.st, c.want, resp.body)
		}
	}
}
