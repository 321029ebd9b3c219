package groupsync_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/groupsync/groupsync/groupsync"
)

// webhookBody writes ev back as a CometChat envelope, the inverse of
// ParseWebhook for a normalised event.
func webhookBody(tb testing.TB, ev groupsync.Event) []byte {
	tb.Helper()
	group := map[string]any{"guid": ev.GUID}
	if ev.Owner != "" {
		group["owner"] = ev.Owner
	}
	if ev.OldOwner != "" {
		group["oldOwner"] = ev.OldOwner
	}
	if ev.CreatedAt != 0 {
		group["createdAt"] = ev.CreatedAt
	}
	if ev.UpdatedAt != 0 {
		group["updatedAt"] = ev.UpdatedAt
	}
	if ev.MembersCount >= 0 {
		group["membersCount"] = ev.MembersCount
	}
	data := map[string]any{"group": group}
	if len(ev.Members) > 0 {
		members := map[string]any{}
		for _, m := range ev.Members {
			o := map[string]any{"uid": m.UID}
			if m.Scope != "" {
				o["scope"] = m.Scope
			}
			if m.OldScope != "" {
				o["oldScope"] = m.OldScope
			}
			if m.JoinedAt != 0 {
				o["joinedAt"] = m.JoinedAt
			}
			members[m.UID] = o
		}
		data["members"] = members
	}
	if ev.By != "" {
		data["by"] = map[string]any{"uid": ev.By}
	}
	env := map[string]any{"trigger": ev.Trigger, "appId": ev.AppID, "data": data}
	if ev.Region != "" {
		env["region"] = ev.Region
	}
	if ev.Webhook != "" {
		env["webhook"] = ev.Webhook
	}
	b, err := json.Marshal(env)
	if err != nil {
		tb.Fatalf("encode webhook body: %v", err)
	}
	return b
}

// FuzzParseWebhook decodes arbitrary bodies, re-encodes the Event as JSON and
// as a webhook body, and decodes both again: no panic, errors only of the
// documented kinds, and a parsed event is a fixed point of normalisation.
func FuzzParseWebhook(f *testing.F) {
	for _, name := range exampleFiles(f) {
		f.Add(readExample(f, name))
	}
	f.Add([]byte(`{"trigger":"group_member_added","appId":"a","data":{"group":{"guid":"G"},"members":[{"uid":"B"},{"uid":"b"}],"by":{"uid":"x"}}}`))
	f.Add([]byte(`{"trigger":"group_member_banned","appId":"a","data":{"group":{"guid":"g","updatedAt":"12"},"members":{"x":null},"by":{"uid":"X"}}}`))
	f.Add([]byte(`{"trigger":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := groupsync.ParseWebhook(body)
		if err != nil {
			var verr *groupsync.ValidationError
			if !errors.As(err, &verr) && !errors.Is(err, groupsync.ErrUnknownTrigger) {
				t.Fatalf("ParseWebhook error %v (%T) is neither a ValidationError nor ErrUnknownTrigger", err, err)
			}
			if verr != nil && verr.Field == "" {
				t.Fatalf("ValidationError without field: %v", err)
			}
			return
		}
		key := groupsync.IdempotencyKey(ev)

		// Event -> JSON -> Event.
		js, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("marshal Event: %v", err)
		}
		var back groupsync.Event
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("unmarshal Event %s: %v", js, err)
		}
		if !reflect.DeepEqual(back, ev) {
			t.Fatalf("Event JSON round trip:\n got %+v\nwant %+v", back, ev)
		}

		// Event -> webhook body -> Event: normalisation is idempotent.
		again, err := groupsync.ParseWebhook(webhookBody(t, ev))
		if err != nil {
			t.Fatalf("ParseWebhook(re-encoded %+v): %v", ev, err)
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("re-parsed event:\n got %+v\nwant %+v", again, ev)
		}
		if k := groupsync.IdempotencyKey(again); k != key {
			t.Fatalf("IdempotencyKey changed on re-encoding: %s, want %s", k, key)
		}
	})
}
