package cometchat_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
)

func newClient(t *testing.T, f *cometchattest.Fake, perPage int) *cometchat.Client {
	t.Helper()
	c, err := cometchat.New(cometchat.Config{BaseURL: f.URL(), APIKey: f.APIKey, PerPage: perPage})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestMembersPagesUntilTotalPages(t *testing.T) {
	f := cometchattest.Start(t)
	var uids []string
	for i := range 23 {
		uids = append(uids, fmt.Sprintf("user-%02d", i))
	}
	f.SetGroup("big-group", uids...)
	c := newClient(t, f, 5) // 23 members: pages of 5, 5, 5, 5, 3

	got, err := c.Members(context.Background(), "big-group")
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	if len(got) != len(uids) {
		t.Fatalf("Members returned %d members, want %d", len(got), len(uids))
	}
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.UID] = true
	}
	for _, u := range uids {
		if !seen[u] {
			t.Errorf("member %s missing", u)
		}
	}
}

func TestGroupsExactMultipleOfPageSize(t *testing.T) {
	f := cometchattest.Start(t)
	for i := range 10 {
		f.SetGroup(fmt.Sprintf("group-%02d", i), "owner")
	}
	c := newClient(t, f, 5)
	var pages, groups int
	err := c.Groups(context.Background(), func(p []cometchat.Group) error {
		pages++
		groups += len(p)
		return nil
	})
	if err != nil {
		t.Fatalf("Groups: %v", err)
	}
	if groups != 10 || pages != 2 {
		t.Fatalf("Groups saw %d groups in %d pages, want 10 in 2 (stop at current_page >= total_pages)", groups, pages)
	}
}

func TestRetriesAfterRateLimit(t *testing.T) {
	f := cometchattest.Start(t)
	f.SetGroup("g1", "alice", "bob")
	f.RateLimit(2)
	c := newClient(t, f, 100)
	got, err := c.Members(context.Background(), "g1")
	if err != nil {
		t.Fatalf("Members after 429s: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("Members = %v, want alice and bob", got)
	}
	if f.Requests() != 3 {
		t.Fatalf("made %d requests, want 3 (two 429s honoured, then success)", f.Requests())
	}
}

func TestNotFoundAndAuth(t *testing.T) {
	f := cometchattest.Start(t)
	c := newClient(t, f, 100)
	ctx := context.Background()
	if _, err := c.Members(ctx, "missing"); !errors.Is(err, cometchat.ErrNotFound) {
		t.Errorf("Members(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := c.Group(ctx, "missing"); !errors.Is(err, cometchat.ErrNotFound) {
		t.Errorf("Group(missing) error = %v, want ErrNotFound", err)
	}
	bad, err := cometchat.New(cometchat.Config{BaseURL: f.URL(), APIKey: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	var ae *cometchat.APIError
	if _, err := bad.Group(ctx, "x"); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("Group with a wrong API key error = %v, want a 401 APIError", err)
	}
	if _, err := cometchat.New(cometchat.Config{AppID: "a"}); err == nil {
		t.Error("New without an API key succeeded")
	}
}
