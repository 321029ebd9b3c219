package groupsync_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
)

// examplesDir holds the CometChat example bodies shared by the packages.
const examplesDir = "../testdata/cometchat"

func readExample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		tb.Fatalf("read example: %v", err)
	}
	return b
}

// exampleFiles lists every example body.
func exampleFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no example bodies in %s: %v", examplesDir, err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	return names
}

// mutateJSON decodes body into a generic map, applies fn and re-encodes it.
func mutateJSON(tb testing.TB, body []byte, fn func(m map[string]any)) []byte {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("decode: %v", err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return out
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func TestParseWebhookExamples(t *testing.T) {
	const app = "5f1d2e3c4b5a6978"
	base := func(trigger groupsync.Trigger, action groupsync.Action, guid string) groupsync.Event {
		return groupsync.Event{Trigger: trigger, Action: action, AppID: app, Region: "eu", Webhook: "groupsync", GUID: guid}
	}
	with := func(e groupsync.Event, fn func(*groupsync.Event)) groupsync.Event { fn(&e); return e }
	uids := func(u ...string) []groupsync.Member {
		var ms []groupsync.Member
		for _, x := range u {
			ms = append(ms, groupsync.Member{UID: x})
		}
		return ms
	}
	want := map[string]groupsync.Event{
		"group_created.json": with(base(groupsync.TriggerGroupCreated, groupsync.ActionCreate, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.CreatedAt, e.MembersCount = "alice", uids("alice"), 1718000000, 1
		}),
		"group_deleted.json": with(base(groupsync.TriggerGroupDeleted, groupsync.ActionDelete, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.CreatedAt, e.UpdatedAt, e.MembersCount = "bob", 1718000000, 1718090000, 2
		}),
		"group_member_added.json": with(base(groupsync.TriggerMemberAdded, groupsync.ActionAdd, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.By, e.CreatedAt, e.MembersCount = "alice", uids("bob", "carol"), "alice", 1718000000, 3
		}),
		"group_member_banned.json": with(base(groupsync.TriggerMemberBanned, groupsync.ActionRemove, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.By, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", uids("carol"), "alice", 1718000000, 1718001500, 2
		}),
		"group_member_joined.json": with(base(groupsync.TriggerMemberJoined, groupsync.ActionAdd, "town-square"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", uids("dave"), 1717900000, 1718004010, 5
		}),
		"group_member_kicked.json": with(base(groupsync.TriggerMemberKicked, groupsync.ActionRemove, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.By, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", uids("carol"), "alice", 1718000000, 1718001200, 2
		}),
		"group_member_left.json": with(base(groupsync.TriggerMemberLeft, groupsync.ActionRemove, "town-square"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", uids("dave"), 1717900000, 1718005020, 4
		}),
		"group_member_scope_changed.json": with(base(groupsync.TriggerMemberScopeChanged, groupsync.ActionEnsure, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.By, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", "alice", 1718000000, 1718006010, 3
			e.Members = []groupsync.Member{{UID: "bob", Scope: "moderator", OldScope: "participant"}}
		}),
		"group_member_unbanned.json": with(base(groupsync.TriggerMemberUnbanned, groupsync.ActionNone, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.Members, e.By, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", uids("carol"), "alice", 1718000000, 1718002000, 2
		}),
		"group_owner_transferred.json": with(base(groupsync.TriggerOwnerTransferred, groupsync.ActionEnsure, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.OldOwner, e.CreatedAt, e.UpdatedAt, e.MembersCount = "bob", "alice", 1718000000, 1718007000, 3
		}),
		"group_updated.json": with(base(groupsync.TriggerGroupUpdated, groupsync.ActionNone, "project-falcon"), func(e *groupsync.Event) {
			e.Owner, e.CreatedAt, e.UpdatedAt, e.MembersCount = "alice", 1718000000, 1718003600, 3
		}),
	}
	files := exampleFiles(t)
	if len(files) != len(want) {
		t.Errorf("%d example bodies, %d expected events: every example needs a case", len(files), len(want))
	}
	for _, name := range files {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expected event for %s", name)
			}
			got, err := groupsync.ParseWebhook(readExample(t, name))
			if err != nil {
				t.Fatalf("ParseWebhook(%s) error: %v", name, err)
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("ParseWebhook(%s) =\n%+v\nwant\n%+v", name, got, w)
			}
		})
	}
}

func TestParseWebhookNormalises(t *testing.T) {
	body := []byte(`{"trigger":" group_member_added ","appId":" app ","unknown":{"x":[1,2]},
		"data":{"group":{"guid":"  Project-Falcon ","membersCount":"7","createdAt":1.5e3,"updatedAt":"bad","extra":true},
		"members":{"Carol":{"uid":"carol"}," bob ":{},"BOB":null,"alice":{"uid":"ALICE","joinedAt":"42"}},
		"by":{"uid":" Alice "}}}`)
	got, err := groupsync.ParseWebhook(body)
	if err != nil {
		t.Fatalf("ParseWebhook: %v", err)
	}
	want := groupsync.Event{
		Trigger: groupsync.TriggerMemberAdded, Action: groupsync.ActionAdd, AppID: "app",
		GUID: "project-falcon", By: "alice", CreatedAt: 1500, MembersCount: 7,
		Members: []groupsync.Member{{UID: "alice", JoinedAt: 42}, {UID: "bob"}, {UID: "carol"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseWebhook = %+v, want %+v", got, want)
	}

	// Members as an array are accepted too.
	arr := []byte(`{"trigger":"group_member_left","appId":"app","data":{"group":{"guid":"g"},"members":[{"uid":"z"},{"uid":"a"},{"uid":"z"}]}}`)
	got, err = groupsync.ParseWebhook(arr)
	if err != nil {
		t.Fatalf("ParseWebhook(array members): %v", err)
	}
	if uids := got.UIDs(); !reflect.DeepEqual(uids, []string{"a", "z"}) {
		t.Errorf("ParseWebhook(array members).UIDs() = %v, want [a z]", uids)
	}
	if got.MembersCount != -1 {
		t.Errorf("MembersCount without membersCount = %d, want -1", got.MembersCount)
	}
}

func TestParseWebhookActions(t *testing.T) {
	kicked := readExample(t, "group_member_kicked.json")
	removed := mutateJSON(t, kicked, func(m map[string]any) { m["trigger"] = "group_member_removed" })
	ev, err := groupsync.ParseWebhook(removed)
	if err != nil {
		t.Fatalf("ParseWebhook(group_member_removed): %v", err)
	}
	if ev.Action != groupsync.ActionRemove || ev.Trigger != groupsync.TriggerMemberRemoved {
		t.Errorf("group_member_removed: trigger %q action %q, want %q %q", ev.Trigger, ev.Action, groupsync.TriggerMemberRemoved, groupsync.ActionRemove)
	}

	// The live bug: the actor appears as the banned member.
	for _, name := range []string{"group_member_banned.json", "group_member_unbanned.json"} {
		body := mutateJSON(t, readExample(t, name), func(m map[string]any) {
			obj(m, "data")["members"] = map[string]any{"alice": map[string]any{"uid": "alice"}}
		})
		ev, err := groupsync.ParseWebhook(body)
		if err != nil {
			t.Fatalf("ParseWebhook(%s with actor as member): %v", name, err)
		}
		if ev.Action != groupsync.ActionReconcile {
			t.Errorf("ParseWebhook(%s with actor as member).Action = %q, want %q", name, ev.Action, groupsync.ActionReconcile)
		}
	}
	// A kick by oneself is a normal kick.
	body := mutateJSON(t, kicked, func(m map[string]any) {
		obj(m, "data")["members"] = map[string]any{"alice": map[string]any{"uid": "alice"}}
	})
	if ev, err := groupsync.ParseWebhook(body); err != nil || ev.Action != groupsync.ActionRemove {
		t.Errorf("ParseWebhook(self kick) = %q, %v; want %q", ev.Action, err, groupsync.ActionRemove)
	}
}

func TestParseWebhookErrors(t *testing.T) {
	added := readExample(t, "group_member_added.json")
	transferred := readExample(t, "group_owner_transferred.json")
	del := func(body []byte, path ...string) []byte {
		return mutateJSON(t, body, func(m map[string]any) {
			delete(obj(m, path[:len(path)-1]...), path[len(path)-1])
		})
	}
	set := func(body []byte, v any, path ...string) []byte {
		return mutateJSON(t, body, func(m map[string]any) {
			obj(m, path[:len(path)-1]...)[path[len(path)-1]] = v
		})
	}
	tests := []struct {
		name  string
		body  []byte
		field string // "" for ErrUnknownTrigger
	}{
		{"Empty", nil, "body"},
		{"NotJSON", []byte("trigger=group_created"), "body"},
		{"Array", []byte(`[1,2]`), "body"},
		{"Truncated", added[:len(added)/2], "body"},
		{"TrailingGarbage", append(append([]byte(nil), added...), []byte(`{}`)...), "body"},
		{"NoTrigger", del(added, "trigger"), "trigger"},
		{"TriggerNotString", set(added, 7, "trigger"), "trigger"},
		{"NoAppID", del(added, "appId"), "appId"},
		{"NoData", del(added, "data"), "data.group.guid"},
		{"DataNotObject", set(added, "x", "data"), "data"},
		{"NoGroup", del(added, "data", "group"), "data.group.guid"},
		{"NoGUID", del(added, "data", "group", "guid"), "data.group.guid"},
		{"BlankGUID", set(added, "   ", "data", "group", "guid"), "data.group.guid"},
		{"GUIDNotString", set(added, 12, "data", "group", "guid"), "data.group.guid"},
		{"GUIDTooLong", set(added, strings.Repeat("g", groupsync.MaxIDLen+1), "data", "group", "guid"), "data.group.guid"},
		{"GUIDNotASCII", set(added, "grüppe", "data", "group", "guid"), "data.group.guid"},
		{"GUIDWithSpace", set(added, "a b", "data", "group", "guid"), "data.group.guid"},
		{"NoMembers", del(added, "data", "members"), "data.members"},
		{"EmptyMembers", set(added, map[string]any{}, "data", "members"), "data.members"},
		{"MembersNotObject", set(added, "bob", "data", "members"), "data.members"},
		{"MemberUIDMismatch", set(added, map[string]any{"bob": map[string]any{"uid": "eve"}}, "data", "members"), "data.members.bob.uid"},
		{"MemberNotObject", set(added, map[string]any{"bob": 3}, "data", "members"), "data.members.bob"},
		{"NoBy", del(added, "data", "by"), "data.by.uid"},
		{"NoByUID", del(added, "data", "by", "uid"), "data.by.uid"},
		{"NoOwner", del(transferred, "data", "group", "owner"), "data.group.owner"},
		{"NoOldOwner", del(transferred, "data", "group", "oldOwner"), "data.group.oldOwner"},
		{"UnknownTrigger", set(added, "before_message", "trigger"), ""},
		{"InternalTrigger", set(added, string(groupsync.TriggerReconcile), "trigger"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := groupsync.ParseWebhook(tt.body)
			if err == nil {
				t.Fatalf("ParseWebhook = %+v, nil; want an error", ev)
			}
			if tt.field == "" {
				var ute *groupsync.UnknownTriggerError
				if !errors.Is(err, groupsync.ErrUnknownTrigger) || !errors.As(err, &ute) {
					t.Fatalf("ParseWebhook error = %v, want ErrUnknownTrigger", err)
				}
				if ev.AppID != "5f1d2e3c4b5a6978" || string(ev.Trigger) != ute.Trigger {
					t.Errorf("envelope on unknown trigger = %+v, want app id and trigger %q", ev, ute.Trigger)
				}
				return
			}
			var verr *groupsync.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("ParseWebhook error = %v (%T), want *ValidationError", err, err)
			}
			if verr.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("ParseWebhook error = %q (field %q), want field %q", err, verr.Field, tt.field)
			}
			if errors.Is(err, groupsync.ErrUnknownTrigger) {
				t.Errorf("validation error %v matches ErrUnknownTrigger", err)
			}
		})
	}
	// The message names the field exactly as the receiver reports it.
	_, err := groupsync.ParseWebhook(del(added, "data", "group", "guid"))
	if got, want := err.Error(), "groupsync: data.group.guid is required"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// reformat re-indents body and reverses the order of the keys of data.members.
func reformat(tb testing.TB, body []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, body, "\t", "      "); err != nil {
		tb.Fatalf("indent: %v", err)
	}
	// Rebuild with reversed member order (json.Marshal of a map sorts keys,
	// so write the object by hand).
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(m["data"], &data); err != nil {
		tb.Fatal(err)
	}
	if raw, ok := data["members"]; ok {
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			tb.Fatal(err)
		}
		keys := make([]string, 0, len(members))
		for k := range members {
			keys = append(keys, k)
		}
		// Reverse sorted order.
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if keys[j] > keys[i] {
					keys[i], keys[j] = keys[j], keys[i]
				}
			}
		}
		var b bytes.Buffer
		b.WriteString("{ ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ,\n ")
			}
			kb, _ := json.Marshal(strings.ToUpper(k))
			b.Write(kb)
			b.WriteString(" : ")
			b.Write(members[k])
		}
		b.WriteString(" }")
		data["members"] = b.Bytes()
		m["data"], _ = json.Marshal(data)
		body, _ = json.Marshal(m)
		out.Reset()
		if err := json.Indent(&out, body, "", "   "); err != nil {
			tb.Fatal(err)
		}
	}
	return out.Bytes()
}

func TestIdempotencyKeyStable(t *testing.T) {
	for _, name := range exampleFiles(t) {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			body := readExample(t, name)
			ev, err := groupsync.ParseWebhook(body)
			if err != nil {
				t.Fatal(err)
			}
			key := groupsync.IdempotencyKey(ev)
			if len(key) != 64 {
				t.Fatalf("IdempotencyKey = %q, want 64 hex characters", key)
			}
			if _, err := hex.DecodeString(key); err != nil {
				t.Fatalf("IdempotencyKey = %q: not hex", key)
			}
			other := reformat(t, body)
			if bytes.Equal(other, body) {
				t.Fatal("reformat changed nothing")
			}
			ev2, err := groupsync.ParseWebhook(other)
			if err != nil {
				t.Fatalf("ParseWebhook(reformatted): %v", err)
			}
			if got := groupsync.IdempotencyKey(ev2); got != key {
				t.Errorf("IdempotencyKey(reformatted %s) = %s, want %s", name, got, key)
			}
			// Extra and changed fields that carry no meaning keep the key.
			noise := mutateJSON(t, body, func(m map[string]any) {
				m["chatAPIVersion"] = "v3.0"
				g := obj(m, "data", "group")
				g["name"] = "renamed"
				g["onlineMembersCount"] = 99
				g["guid"] = " " + strings.ToUpper(g["guid"].(string)) + " "
			})
			ev3, err := groupsync.ParseWebhook(noise)
			if err != nil {
				t.Fatalf("ParseWebhook(noise): %v", err)
			}
			if got := groupsync.IdempotencyKey(ev3); got != key {
				t.Errorf("IdempotencyKey(%s with noise) = %s, want %s", name, got, key)
			}
			// Member order in the Event does not matter either.
			if len(ev.Members) > 1 {
				rev := ev
				rev.Members = append([]groupsync.Member(nil), ev.Members...)
				rev.Members[0], rev.Members[1] = rev.Members[1], rev.Members[0]
				if got := groupsync.IdempotencyKey(rev); got != key {
					t.Errorf("IdempotencyKey(reordered members) = %s, want %s", got, key)
				}
			}
		})
	}
}

func TestIdempotencyKeyDiffers(t *testing.T) {
	base, err := groupsync.ParseWebhook(readExample(t, "group_member_scope_changed.json"))
	if err != nil {
		t.Fatal(err)
	}
	transfer, err := groupsync.ParseWebhook(readExample(t, "group_owner_transferred.json"))
	if err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		name string
		from groupsync.Event
		fn   func(*groupsync.Event)
	}{
		{"AppID", base, func(e *groupsync.Event) { e.AppID = "other" }},
		{"Webhook", base, func(e *groupsync.Event) { e.Webhook = "other" }},
		{"Trigger", base, func(e *groupsync.Event) { e.Trigger = groupsync.TriggerMemberAdded }},
		{"GUID", base, func(e *groupsync.Event) { e.GUID = "other" }},
		{"MemberUID", base, func(e *groupsync.Event) {
			e.Members = []groupsync.Member{{UID: "carol", Scope: "moderator", OldScope: "participant"}}
		}},
		{"ExtraMember", base, func(e *groupsync.Event) {
			e.Members = append(append([]groupsync.Member(nil), e.Members...), groupsync.Member{UID: "zed"})
		}},
		{"NoMembers", base, func(e *groupsync.Event) { e.Members = nil }},
		{"Scope", base, func(e *groupsync.Event) {
			e.Members = []groupsync.Member{{UID: "bob", Scope: "admin", OldScope: "participant"}}
		}},
		{"OldScope", base, func(e *groupsync.Event) {
			e.Members = []groupsync.Member{{UID: "bob", Scope: "moderator", OldScope: "admin"}}
		}},
		{"By", base, func(e *groupsync.Event) { e.By = "carol" }},
		{"UpdatedAt", base, func(e *groupsync.Event) { e.UpdatedAt++ }},
		{"CreatedAt", base, func(e *groupsync.Event) { e.CreatedAt++ }},
		{"Owner", transfer, func(e *groupsync.Event) { e.Owner = "carol" }},
		{"OldOwner", transfer, func(e *groupsync.Event) { e.OldOwner = "carol" }},
		// Length prefixes keep field boundaries: moving a character from one
		// field to the next changes the key.
		{"Boundary", base, func(e *groupsync.Event) { e.GUID, e.By = "project-falco", "nalice" }},
	}
	seen := map[string]string{groupsync.IdempotencyKey(base): "base", groupsync.IdempotencyKey(transfer): "transfer"}
	for _, c := range changes {
		e := c.from
		c.fn(&e)
		key := groupsync.IdempotencyKey(e)
		if prev, dup := seen[key]; dup {
			t.Errorf("IdempotencyKey after changing %s = %s, same as %s", c.name, key, prev)
		}
		seen[key] = c.name
	}
}

func TestNewJob(t *testing.T) {
	body := readExample(t, "group_member_added.json")
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.FixedZone("x", 3600))
	job, err := groupsync.NewJob(body, now)
	if err != nil {
		t.Fatalf("NewJob: %v", err)
	}
	ev, _ := groupsync.ParseWebhook(body)
	ev.Received = now.Unix()
	sum := sha256.Sum256(body)
	if groupsync.ContentKey(job.ID) != groupsync.IdempotencyKey(ev) || !reflect.DeepEqual(job.Event, ev) ||
		job.BodySHA256 != hex.EncodeToString(sum[:]) || !job.ReceivedAt.Equal(now) || job.ReceivedAt.Location() != time.UTC {
		t.Errorf("NewJob = %+v", job)
	}
	other, err := groupsync.NewJob(reformat(t, body), now)
	if err != nil {
		t.Fatal(err)
	}
	// Every delivery is a job of its own; the content key is shared.
	if groupsync.ContentKey(other.ID) != groupsync.ContentKey(job.ID) || other.ID == job.ID || other.BodySHA256 == job.BodySHA256 {
		t.Errorf("NewJob(reformatted): id %s body %s; want the content key of %s, another id and a different body hash", other.ID, other.BodySHA256, job.ID)
	}
	if _, err := groupsync.NewJob([]byte(`{}`), now); err == nil {
		t.Error("NewJob({}) = nil error")
	}
}

func TestClampTimes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	skew := 5 * time.Minute
	limit := now.Add(skew).Unix()
	tests := []struct {
		name                string
		created, updated    int64
		joined              int64
		want                []string
		wantCreated, wantUp int64
	}{
		{"PastTimesStay", 1_700_000_000, 1_799_999_000, 1_799_999_000, nil, 1_700_000_000, 1_799_999_000},
		{"WithinTheSkewStay", limit, limit, limit, nil, limit, limit},
		{"ForgedUpdatedAt", 1_700_000_000, 9_000_000_000_000_000, 0, []string{"data.group.updatedAt=9000000000000000"}, 1_700_000_000, 0},
		{"FutureCreatedAt", limit + 1, 0, 0, []string{"data.group.createdAt=" + fmt.Sprint(limit+1)}, 0, 0},
		{"FutureJoinedAt", 0, 0, limit + 60, []string{"data.members.carol.joinedAt=" + fmt.Sprint(limit+60)}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := groupsync.Event{Trigger: groupsync.TriggerMemberAdded, Action: groupsync.ActionAdd, GUID: "g", CreatedAt: tt.created, UpdatedAt: tt.updated,
				Members: []groupsync.Member{{UID: "carol", JoinedAt: tt.joined}}}
			j := groupsync.Job{Event: ev, ReceivedAt: now}
			got := j.ClampTimes(skew)
			if !slices.Equal(got, tt.want) || j.Event.CreatedAt != tt.wantCreated || j.Event.UpdatedAt != tt.wantUp || j.Event.Clamped != (len(tt.want) > 0) {
				t.Errorf("ClampTimes(%+v) = %v, event %+v; want %v", ev, got, j.Event, tt.want)
			}
			if len(tt.want) > 0 && j.Event.Members[0].JoinedAt > limit {
				t.Errorf("ClampTimes left joinedAt %d", j.Event.Members[0].JoinedAt)
			}
			if ev.Members[0].JoinedAt != tt.joined {
				t.Error("ClampTimes changed the members of the event it was given")
			}
		})
	}
}
