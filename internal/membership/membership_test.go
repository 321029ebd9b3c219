package membership_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
	"github.com/groupsync/groupsync/internal/membership"
	"github.com/groupsync/groupsync/worker"
)

// TestCometChat reads members, member counts and groups from the fake
// CometChat REST API; a group CometChat does not know is absent, not an
// error.
func TestCometChat(t *testing.T) {
	f := cometchattest.Start(t)
	f.SetGroup("g1", "alice", "bob")
	f.SetGroup("g2", "carol")
	cc, err := cometchat.New(cometchat.Config{BaseURL: f.URL(), APIKey: f.APIKey})
	if err != nil {
		t.Fatal(err)
	}
	m := membership.CometChat{Client: cc}
	ctx := context.Background()

	uids, ok, err := m.Members(ctx, "g1")
	slices.Sort(uids)
	if err != nil || !ok || !slices.Equal(uids, []string{"alice", "bob"}) {
		t.Errorf("Members(g1) = %v %v %v, want [alice bob] true", uids, ok, err)
	}
	if uids, ok, err := m.Members(ctx, "nope"); err != nil || ok || uids != nil {
		t.Errorf("Members(nope) = %v %v %v, want absent", uids, ok, err)
	}
	if n, ok, err := m.MemberCount(ctx, "g2"); err != nil || !ok || n != 1 {
		t.Errorf("MemberCount(g2) = %d %v %v, want 1 true", n, ok, err)
	}
	if n, ok, err := m.MemberCount(ctx, "nope"); err != nil || ok || n != 0 {
		t.Errorf("MemberCount(nope) = %d %v %v, want absent", n, ok, err)
	}
	var groups []worker.GroupCount
	if err := m.Groups(ctx, func(page []worker.GroupCount) error {
		groups = append(groups, page...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(groups, func(a, b worker.GroupCount) int {
		if a.GUID < b.GUID {
			return -1
		}
		return 1
	})
	want := []worker.GroupCount{{GUID: "g1", Members: 2}, {GUID: "g2", Members: 1}}
	if !slices.Equal(groups, want) {
		t.Errorf("Groups = %+v, want %+v", groups, want)
	}
}

// TestCometChatOtherNotFoundIsAnError: a 404 that does not say the group is
// missing (an endpoint CometChat does not have, a proxy's page) is an error,
// not a group that no longer exists, whose encrypted group a reconcile would
// delete.
func TestCometChatOtherNotFoundIsAnError(t *testing.T) {
	for _, body := range []string{
		`{"error":{"code":"ERR_NOT_FOUND","message":"no such endpoint"}}`,
		`<html><body>404 Not Found</body></html>`,
		``,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(body))
		}))
		cc, err := cometchat.New(cometchat.Config{BaseURL: srv.URL, APIKey: "test-api-key"})
		if err != nil {
			t.Fatal(err)
		}
		m := membership.CometChat{Client: cc}
		ctx := context.Background()
		if uids, ok, err := m.Members(ctx, "g1"); err == nil {
			t.Errorf("Members on a 404 %q = %v %v, nil error; want an error", body, uids, ok)
		}
		if n, ok, err := m.MemberCount(ctx, "g1"); err == nil {
			t.Errorf("MemberCount on a 404 %q = %d %v, nil error; want an error", body, n, ok)
		}
		srv.Close()
	}
}
