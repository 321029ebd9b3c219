package cometchat

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzConfirms: whatever CometChat's stand-in answers with a 200, it passes
// only when it is a JSON object naming the caller (and its token, if any).
func FuzzConfirms(f *testing.F) {
	for _, s := range []string{
		`{"data":{"uid":"alice","authToken":"tok-alice"}}`, `{"data":{"uid":"ALICE"}}`, `{"data":{"uid":"bob"}}`,
		`{"data":{"uid":"alice","authToken":"x"}}`, `{}`, ``, `null`, `[]`, `{"data":{"uid":"alice"}} x`,
		`{"data":{"uid":"alice","uid":"bob"}}`, `{"data":{"uid":"alice"},"data":null}`, `{"data":{"uid":"al\u0069ce"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := confirms(body, "alice", "tok-alice")
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("confirms(%q) = %v, not ErrTokenInvalid", body, err)
			}
			return
		}
		var ans struct {
			Data struct {
				UID       string  `json:"uid"`
				AuthToken *string `json:"authToken"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &ans) != nil || !strings.EqualFold(ans.Data.UID, "alice") ||
			(ans.Data.AuthToken != nil && *ans.Data.AuthToken != "tok-alice") {
			t.Fatalf("confirms(%q) passed an answer that does not name alice and her token", body)
		}
	})
}

// FuzzValidToken: an accepted token or id can never change the path of the
// URL it is put in.
func FuzzValidToken(f *testing.F) {
	for _, s := range []string{"tok-alice", "..", ".", "%2e%2e", "a/b", "tök", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	c, err := New(Config{BaseURL: "https://cc.example", APIKey: "k"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidToken(s) {
			return
		}
		u := c.endpoint([]string{"users", "alice", "auth_tokens", s}, nil)
		if u.Host != "cc.example" || u.String() != "https://cc.example/v3/users/alice/auth_tokens/"+s {
			t.Fatalf("token %q makes URL %s", s, u)
		}
	})
}
