package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/virgil/emulator"
)

type valueObject struct {
	Owner      *string   `json:"owner"`
	Root       *string   `json:"root"`
	Path       *string   `json:"path"`
	Key        *string   `json:"key"`
	Identities *[]string `json:"identities"`
	Meta       *[]byte   `json:"meta"`
	Value      *[]byte   `json:"value"`
}

func decodeValue(tb testing.TB, w *httptest.ResponseRecorder) valueObject {
	tb.Helper()
	wantOK(tb, w)
	var v valueObject
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		tb.Fatal(err)
	}
	if v.Owner == nil || v.Root == nil || v.Path == nil || v.Key == nil || v.Identities == nil || v.Meta == nil || v.Value == nil {
		tb.Fatalf("value object lacks a field: %s", w.Body.String())
	}
	if h := w.Header().Get("Virgil-Keyknox-Hash"); h == "" {
		tb.Fatalf("no hash header")
	} else if _, err := base64.StdEncoding.DecodeString(h); err != nil {
		tb.Fatalf("hash %q not base64", h)
	}
	return v
}

func pushBody(key string, ids []string, meta, value string) string {
	b, _ := json.Marshal(map[string]any{
		"root": "group-sessions", "path": "p1", "key": key, "identities": ids,
		"meta": []byte(meta), "value": []byte(value),
	})
	return string(b)
}

func pullBody(key, owner string) string {
	return `{"root":"group-sessions","path":"p1","key":"` + key + `","identity":"` + owner + `"}`
}

func keysOf(tb testing.TB, f *fixture, caller, owner string) string {
	tb.Helper()
	w := f.do(caller, http.MethodPost, "/keyknox/v2/keys", `{"root":"group-sessions","path":"p1","identity":"`+owner+`"}`)
	wantOK(tb, w)
	var keys []string
	if err := json.Unmarshal(w.Body.Bytes(), &keys); err != nil || keys == nil {
		tb.Fatalf("keys answer %q", w.Body.String())
	}
	return strings.Join(keys, ",")
}

func TestKeyknoxModel(t *testing.T) {
	f := newFixture(t, nil)
	const owner = "owner-id"

	// Create: owner listed twice (as E3Kit's remove does), deduplicated.
	w := f.do(owner, "POST", "/keyknox/v2/push", pushBody("0", []string{owner, owner, "alice", "bob"}, "m0", "v0"))
	v := decodeValue(t, w)
	h0 := w.Header().Get("Virgil-Keyknox-Hash")
	if got := strings.Join(*v.Identities, ","); got != "owner-id,alice,bob" || *v.Owner != owner || string(*v.Meta) != "m0" {
		t.Fatalf("push answer %s", w.Body.String())
	}
	// Second push without or with a wrong previous hash: 409/50010.
	wantError(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m1", "v1")), http.StatusConflict, emulator.CodeInvalidPreviousHash)
	wantError(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m1", "v1"), "Virgil-Keyknox-Previous-Hash", "AAAA"), http.StatusConflict, emulator.CodeInvalidPreviousHash)

	// Add carol with the right hash: union of identities, per-identity copies.
	w = f.do(owner, "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m1", "v1"), "Virgil-Keyknox-Previous-Hash", h0)
	v = decodeValue(t, w)
	h1 := w.Header().Get("Virgil-Keyknox-Hash")
	if h1 == h0 {
		t.Error("hash unchanged by a push")
	}
	if got := strings.Join(*v.Identities, ","); got != "owner-id,alice,bob,carol" {
		t.Errorf("identities after add: %s", got)
	}
	for _, tc := range []struct{ caller, meta string }{{owner, "m1"}, {"alice", "m0"}, {"bob", "m0"}, {"carol", "m1"}, {"mallory", ""}} {
		v := decodeValue(t, f.do(tc.caller, "POST", "/keyknox/v2/pull", pullBody("0", owner)))
		if string(*v.Meta) != tc.meta {
			t.Errorf("%s pulls meta %q, want %q", tc.caller, *v.Meta, tc.meta)
		}
		if tc.meta == "" && (len(*v.Identities) != 0 || len(*v.Value) != 0) {
			t.Errorf("%s without access sees %s", tc.caller, f.do(tc.caller, "POST", "/keyknox/v2/pull", pullBody("0", owner)).Body.String())
		}
	}
	// pull without identity means the caller's own entries.
	if v := decodeValue(t, f.do("alice", "POST", "/keyknox/v2/pull", `{"root":"group-sessions","path":"p1","key":"0"}`)); len(*v.Meta) != 0 {
		t.Error("alice pulled the owner's entry as her own")
	}

	// New epoch for alice and carol only; keys by access.
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("1", []string{owner, "alice", "carol"}, "n", "n")))
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("10", []string{owner}, "x", "x")))
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("2", []string{owner, "alice", "carol"}, "n", "n")))
	for _, tc := range []struct{ caller, keys string }{{owner, "0,1,2,10"}, {"alice", "0,1,2"}, {"bob", "0"}, {"mallory", ""}} {
		if got := keysOf(t, f, tc.caller, owner); got != tc.keys {
			t.Errorf("keys for %s: %q, want %q", tc.caller, got, tc.keys)
		}
	}

	// Reset bob's access to all epochs: entries stay, hash stays.
	w = f.do(owner, "POST", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1","identity":"bob"}`)
	v = decodeValue(t, w)
	if *v.Key != "" || *v.Path != "p1" || len(*v.Identities) != 0 || *v.Owner != owner {
		t.Errorf("reset answer %s", w.Body.String())
	}
	if got := keysOf(t, f, "bob", owner); got != "" {
		t.Errorf("bob still has keys %q", got)
	}
	w = f.do(owner, "POST", "/keyknox/v2/pull", pullBody("0", owner))
	v = decodeValue(t, w)
	if w.Header().Get("Virgil-Keyknox-Hash") != h1 {
		t.Error("removing an identity changed the hash")
	}
	if got := strings.Join(*v.Identities, ","); got != "owner-id,alice,carol" {
		t.Errorf("identities after reset of bob: %s", got)
	}
	// reAdd: reset one key for carol, push with the pull's hash.
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1","key":"0","identity":"carol"}`))
	if v := decodeValue(t, f.do("carol", "POST", "/keyknox/v2/pull", pullBody("0", owner))); len(*v.Meta) != 0 {
		t.Error("carol can still read epoch 0")
	}
	if v := decodeValue(t, f.do("carol", "POST", "/keyknox/v2/pull", pullBody("1", owner))); string(*v.Meta) != "n" {
		t.Error("carol lost epoch 1 by a reset of epoch 0")
	}
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("0", []string{"carol"}, "m2", "v2"), "Virgil-Keyknox-Previous-Hash", h1))

	// Another owner's reset touches nothing of ours.
	wantOK(t, f.do("alice", "POST", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1"}`))
	if got := keysOf(t, f, owner, owner); got != "0,1,2,10" {
		t.Errorf("keys after a stranger's reset: %q", got)
	}
	// Reset with identity = caller deletes; reset of one key deletes one.
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1","key":"10","identity":"owner-id"}`))
	if got := keysOf(t, f, owner, owner); got != "0,1,2" {
		t.Errorf("keys after deleting 10: %q", got)
	}
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/reset", `{"root":"group-sessions","path":"p1"}`))
	if got := keysOf(t, f, "alice", owner); got != "" {
		t.Errorf("keys after deleting the group: %q", got)
	}
	// After delete, a push without previous hash creates again.
	wantOK(t, f.do(owner, "POST", "/keyknox/v2/push", pushBody("0", []string{owner}, "m", "v")))
}

func TestKeyknoxRefusals(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name, path, body string
		status, code     int
	}{
		{"push not json", "/keyknox/v2/push", `{"root":`, 400, emulator.CodeInvalidJSON},
		{"push bad base64", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","identities":["a"],"meta":"%%","value":"AA=="}`, 400, emulator.CodeInvalidJSON},
		{"push no root", "/keyknox/v2/push", `{"path":"p","key":"k","identities":["a"],"meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push no key", "/keyknox/v2/push", `{"root":"r","path":"p","identities":["a"],"meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push no identities", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push empty identities", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","identities":[],"meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push empty identity", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","identities":[""],"meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push non-ascii identity", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","identities":["é"],"meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push empty meta", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","identities":["a"],"meta":"","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push no value", "/keyknox/v2/push", `{"root":"r","path":"p","key":"k","identities":["a"],"meta":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"push long key", "/keyknox/v2/push", `{"root":"r","path":"p","key":"` + strings.Repeat("k", 2000) + `","identities":["a"],"meta":"AA==","value":"AA=="}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"pull no key", "/keyknox/v2/pull", `{"root":"r","path":"p"}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"pull null", "/keyknox/v2/pull", `null`, 400, emulator.CodeKeyknoxInvalidParams},
		{"keys no path", "/keyknox/v2/keys", `{"root":"r"}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"keys bad identity", "/keyknox/v2/keys", `{"root":"r","path":"p","identity":"a\u0001"}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"reset no root", "/keyknox/v2/reset", `{"path":"p"}`, 400, emulator.CodeKeyknoxInvalidParams},
		{"reset trailing garbage", "/keyknox/v2/reset", `{"root":"r"} x`, 400, emulator.CodeInvalidJSON},
		{"keys with GET", "/keyknox/v2/keys", ``, 405, emulator.CodeMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPost
			if tc.status == 405 {
				method = http.MethodGet
			}
			wantError(t, f.do("alice", method, tc.path, tc.body), tc.status, tc.code)
		})
	}
}
