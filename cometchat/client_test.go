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

func TestStrictListAnswers(t *testing.T) {
	f := cometchattest.Start(t)
	f.SetGroup("g1", "alice")
	c := newClient(t, f, 100)
	ctx := context.Background()
	for _, tt := range []struct{ name, body string }{
		{"Empty", ""},
		{"EmptyObject", "{}"},
		{"NullData", `{"data":null}`},
		{"DataNotArray", `{"data":{"uid":"alice"}}`},
		{"MemberWithoutUID", `{"data":[{"scope":"admin"}]}`},
		{"MemberWithBadUID", `{"data":[{"uid":"../x"}]}`},
		{"WrongPage", `{"data":[{"uid":"alice"}],"meta":{"pagination":{"current_page":7,"total_pages":7}}}`},
		{"Trailing", `{"data":[]} x`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.Answer("groups/g1/members", 200, tt.body)
			if m, err := c.Members(ctx, "g1"); !errors.Is(err, cometchat.ErrBadAnswer) {
				t.Errorf("Members with answer %q = %v, %v; want ErrBadAnswer", tt.body, m, err)
			}
		})
	}
	f.Answer("groups/g1/members", 0, "")
	f.Answer("groups", 200, `{"data":[{"name":"no guid"}]}`)
	if err := c.Groups(ctx, func([]cometchat.Group) error { return nil }); !errors.Is(err, cometchat.ErrBadAnswer) {
		t.Errorf("Groups with a group without guid = %v, want ErrBadAnswer", err)
	}
	f.Answer("groups", 200, `{"data":{"guid":"other"}}`)
	if _, err := c.Group(ctx, "g1"); !errors.Is(err, cometchat.ErrBadAnswer) {
		t.Errorf("Group answered with another group = %v, want ErrBadAnswer", err)
	}
	f.Answer("groups", 0, "")
	before := f.Requests()
	for _, guid := range []string{"..", "a/b", "%2e%2e", ""} {
		if _, err := c.Members(ctx, guid); !errors.Is(err, cometchat.ErrInvalidID) {
			t.Errorf("Members(%q) = %v, want ErrInvalidID", guid, err)
		}
		if _, err := c.Group(ctx, guid); !errors.Is(err, cometchat.ErrInvalidID) {
			t.Errorf("Group(%q) = %v, want ErrInvalidID", guid, err)
		}
	}
	if f.Requests() != before {
		t.Errorf("invalid guids made %d requests, want none", f.Requests()-before)
	}
}
