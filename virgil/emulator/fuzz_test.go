package emulator_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil/emulator"
)

var fuzzPaths = []string{
	"/card/v5", "/card/v5/actions/search", "/keyknox/v2/push",
	"/keyknox/v2/pull", "/keyknox/v2/keys", "/keyknox/v2/reset",
}

// FuzzRequestBodies sends arbitrary bodies to every POST endpoint: the
// emulator must not panic, must answer 200 or a JSON {code,message} error
// with a 4xx status, and must refuse bodies over the limit with 413.
func FuzzRequestBodies(f *testing.F) {
	var cf captureFile
	testkit.LoadVector(f, "e3kit-group-capture.json", &cf)
	for _, ex := range cf.Exchanges {
		for i, p := range fuzzPaths {
			if ex.Request.Path == p {
				f.Add(uint8(i), ex.Request.Body)
			}
		}
	}
	var cv cardVectors
	testkit.LoadVector(f, "cards.json", &cv)
	for _, c := range cv.Cards {
		f.Add(uint8(0), c.PublishRequestBody)
	}
	f.Add(uint8(2), `{"root":"r","path":"p","key":"k","identities":["a","a"],"meta":"AA==","value":"AA=="}`)
	f.Add(uint8(5), `{"root":"r","identity":"a"}`)

	const limit = 8 << 10
	fx := newFixture(f, func(c *emulator.Config) { c.MaxBodyBytes = limit })
	tok := fx.token("alice-uid")
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := fuzzPaths[int(which)%len(fuzzPaths)]
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Virgil "+tok)
		w := httptest.NewRecorder()
		fx.emu.ServeHTTP(w, req)
		if len(body) > limit {
			if w.Code != 413 {
				t.Fatalf("%d-byte body: status %d, want 413", len(body), w.Code)
			}
			return
		}
		switch {
		case w.Code == 200:
			if w.Body.Len() > 0 && !json.Valid(w.Body.Bytes()) {
				t.Fatalf("200 with non-JSON body %q", w.Body.String())
			}
		case w.Code >= 400 && w.Code < 500:
			var e struct {
				Code    *int    `json:"code"`
				Message *string `json:"message"`
			}
			if err := json.NewDecoder(bytes.NewReader(w.Body.Bytes())).Decode(&e); err != nil || e.Code == nil || e.Message == nil {
				t.Fatalf("error body %q", w.Body.String())
			}
		default:
			t.Fatalf("status %d for %s %q", w.Code, path, body)
		}
	})
}
