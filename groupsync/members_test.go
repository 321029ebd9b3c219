package groupsync_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
)

// bigCreated returns a group_created body naming n members, as an object
// keyed by uid or, with array, as a list; members come before the group, so
// the group can only be read past them.
func bigCreated(n int, array bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"trigger":"group_created","appId":"app-1","data":{"members":`)
	open, end := byte('{'), byte('}')
	if array {
		open, end = '[', ']'
	}
	b.WriteByte(open)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if array {
			fmt.Fprintf(&b, `{"uid":"u%d","scope":"p,\"x\"{[]"}`, i)
		} else {
			fmt.Fprintf(&b, `"u%d":{}`, i)
		}
	}
	b.WriteByte(end)
	b.WriteString(`,"group":{"guid":"big-group","createdAt":1718000000,"membersCount":` + fmt.Sprint(n) + `}}}`)
	return b.Bytes()
}

func TestTooManyMembers(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		array   bool
		wantErr bool
	}{
		{"ObjectAtTheCap", groupsync.MaxEventMembers, false, false},
		{"ObjectPastTheCap", groupsync.MaxEventMembers + 1, false, true},
		{"ArrayAtTheCap", groupsync.MaxEventMembers, true, false},
		{"ArrayPastTheCap", groupsync.MaxEventMembers + 1, true, true},
		{"HundredThousand", 100_000, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := bigCreated(tt.n, tt.array)
			job, err := groupsync.NewJob(body, time.Unix(1718000000, 0))
			if !tt.wantErr {
				if err != nil || len(job.Event.Members) != tt.n {
					t.Fatalf("NewJob(%d members) = %d members, %v", tt.n, len(job.Event.Members), err)
				}
				return
			}
			var tm *groupsync.TooManyMembersError
			if !errors.Is(err, groupsync.ErrTooManyMembers) || !errors.As(err, &tm) || tm.Count != tt.n {
				t.Fatalf("NewJob(%d members) error = %v, want *TooManyMembersError{Count: %d}", tt.n, err, tt.n)
			}
			ev := job.Event
			if ev.GUID != "big-group" || ev.Trigger != groupsync.TriggerGroupCreated || ev.AppID != "app-1" ||
				ev.MembersCount != tt.n || ev.Members != nil || job.ID == "" || job.BodySHA256 == "" {
				t.Errorf("NewJob(%d members) job = %+v, want the event without members, with an id", tt.n, job)
			}
			again, _ := groupsync.NewJob(body, time.Unix(1718000100, 0))
			if groupsync.ContentKey(again.ID) != groupsync.ContentKey(job.ID) {
				t.Errorf("a retry of the same body got id %s, want the content key of %s", again.ID, job.ID)
			}
		})
	}
}

// TestTooManyMembersAllocations: the members past the cap are counted, not
// decoded: parsing a 1 MiB body of 100,000 members allocates about what the
// cap's 1000 members take (some 320 KB), not the body's worth (decoding
// every member allocated about 40 MB).
func TestTooManyMembersAllocations(t *testing.T) {
	body := bigCreated(100_000, false)
	if len(body) < 1<<20 {
		t.Fatalf("body is %d bytes, want at least 1 MiB", len(body))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 5
	for range runs {
		if _, err := groupsync.ParseWebhook(body); !errors.Is(err, groupsync.ErrTooManyMembers) {
			t.Fatalf("ParseWebhook = %v, want ErrTooManyMembers", err)
		}
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("ParseWebhook of a %d-byte body of 100,000 members: %d bytes allocated", len(body), perRun)
	if perRun > 1<<20 {
		t.Errorf("ParseWebhook allocated %d bytes for a body of 100,000 members, want at most 1 MiB", perRun)
	}
}

// BenchmarkParseWebhookTooManyMembers reports the allocations of refusing
// a 1 MiB body of 100,000 members.
func BenchmarkParseWebhookTooManyMembers(b *testing.B) {
	body := bigCreated(100_000, false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := groupsync.ParseWebhook(body); !errors.Is(err, groupsync.ErrTooManyMembers) {
			b.Fatal(err)
		}
	}
}
