package virgil_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

type captureFile struct {
	GroupID   string `json:"group_id"`
	Exchanges []struct {
		Seq     int    `json:"seq"`
		Step    string `json:"step"`
		Caller  string `json:"caller"`
		Request struct {
			Method  string             `json:"method"`
			Path    string             `json:"path"`
			Headers map[string]*string `json:"headers"`
			Body    string             `json:"body_text"`
		} `json:"request"`
		Response struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body_text"`
		} `json:"response"`
	} `json:"exchanges"`
}

// staticTokens always hands out one token.
type staticTokens struct{ tok virgil.Token }

func (s staticTokens) Token(context.Context, bool) (virgil.Token, error) { return s.tok, nil }

// replayServer answers every request with a canned response and records the
// request it got.
type replayServer struct {
	mu      sync.Mutex
	status  int
	header  map[string]string
	body    string
	gotReq  *http.Request
	gotBody string
}

func (s *replayServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	s.gotReq, s.gotBody = r, string(b)
	for k, v := range s.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(s.status)
	_, _ = io.WriteString(w, s.body)
}

// TestClientRequestsMatchCapture replays every exchange of the official
// client and checks that Client sends the same method, path, body bytes and
// headers, and reads the recorded answer.
func TestClientRequestsMatchCapture(t *testing.T) {
	var cf captureFile
	testkit.LoadVector(t, "e3kit-group-capture.json", &cf)
	rs := &replayServer{}
	srv := httptest.NewServer(rs)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	kinds := map[string]int{}
	for _, ex := range cf.Exchanges {
		auth := *ex.Request.Headers["authorization"]
		tok, _, err := virgil.ParseToken(strings.TrimPrefix(auth, "Virgil "))
		if err != nil {
			t.Fatalf("seq %d: token: %v", ex.Seq, err)
		}
		c := virgil.NewClient(srv.URL+"/", staticTokens{tok})
		rs.status, rs.header, rs.body = ex.Response.Status, ex.Response.Headers, ex.Response.Body
		body := []byte(ex.Request.Body)
		path := ex.Request.Path
		var check func()
		switch {
		case path == "/card/v5":
			rc, err := virgil.ParseRawCard(body)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := c.PublishCard(ctx, rc)
			if err != nil || stored.Signature(virgil.SignerVirgil) == nil {
				t.Errorf("seq %d: PublishCard = %v, %v", ex.Seq, stored, err)
			}
		case path == "/card/v5/actions/search":
			var req struct{ Identities []string }
			_ = json.Unmarshal(body, &req)
			cards, err := c.SearchCards(ctx, req.Identities)
			var want []json.RawMessage
			_ = json.Unmarshal([]byte(ex.Response.Body), &want)
			if err != nil || len(cards) != len(want) {
				t.Errorf("seq %d: SearchCards = %d cards, %v; want %d", ex.Seq, len(cards), err, len(want))
			}
		case strings.HasPrefix(path, "/card/v5/actions/revoke/"):
			if err := c.RevokeCard(ctx, strings.TrimPrefix(path, "/card/v5/actions/revoke/")); err != nil {
				t.Errorf("seq %d: RevokeCard = %v", ex.Seq, err)
			}
		case path == "/keyknox/v2/push":
			var p virgil.KeyknoxPush
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if h := ex.Request.Headers["virgil-keyknox-previous-hash"]; h != nil {
				p.PreviousHash = *h
			}
			e, err := c.KeyknoxPush(ctx, p)
			check = func() { checkEntry(t, ex.Seq, e, err, ex.Response.Headers) }
		case path == "/keyknox/v2/pull":
			var p struct{ Root, Path, Key, Identity string }
			_ = json.Unmarshal(body, &p)
			e, err := c.KeyknoxPull(ctx, p.Root, p.Path, p.Key, p.Identity)
			check = func() { checkEntry(t, ex.Seq, e, err, ex.Response.Headers) }
		case path == "/keyknox/v2/keys":
			var p struct{ Root, Path, Identity string }
			_ = json.Unmarshal(body, &p)
			keys, err := c.KeyknoxKeys(ctx, p.Root, p.Path, p.Identity)
			var want []string
			_ = json.Unmarshal([]byte(ex.Response.Body), &want)
			if err != nil || strings.Join(keys, ",") != strings.Join(want, ",") {
				t.Errorf("seq %d: KeyknoxKeys = %v, %v; want %v", ex.Seq, keys, err, want)
			}
		case path == "/keyknox/v2/reset":
			var r virgil.KeyknoxReset
			_ = json.Unmarshal(body, &r)
			e, err := c.KeyknoxReset(ctx, r)
			check = func() { checkEntry(t, ex.Seq, e, err, ex.Response.Headers) }
		default:
			t.Fatalf("seq %d: unexpected path %s", ex.Seq, path)
		}
		if check != nil {
			check()
		}
		kinds[path[:min(len(path), 24)]]++
		got := rs.gotReq
		if got == nil {
			t.Fatalf("seq %d: no request", ex.Seq)
		}
		if got.Method != ex.Request.Method || got.URL.Path != path {
			t.Errorf("seq %d: request %s %s, want %s %s", ex.Seq, got.Method, got.URL.Path, ex.Request.Method, path)
		}
		if rs.gotBody != ex.Request.Body {
			t.Errorf("seq %d %s: body\n%s\nwant\n%s", ex.Seq, path, rs.gotBody, ex.Request.Body)
		}
		if got.Header.Get("Authorization") != auth {
			t.Errorf("seq %d: Authorization differs", ex.Seq)
		}
		if got.Header.Get("Content-Type") != "application/json" {
			t.Errorf("seq %d: Content-Type = %q", ex.Seq, got.Header.Get("Content-Type"))
		}
		wantPrev := ""
		if h := ex.Request.Headers["virgil-keyknox-previous-hash"]; h != nil {
			wantPrev = *h
		}
		if got.Header.Get("Virgil-Keyknox-Previous-Hash") != wantPrev {
			t.Errorf("seq %d: previous hash %q, want %q", ex.Seq, got.Header.Get("Virgil-Keyknox-Previous-Hash"), wantPrev)
		}
		if agent := strings.Split(got.Header.Get("Virgil-Agent"), ";"); len(agent) != 4 || agent[1] != "go" {
			t.Errorf("seq %d: Virgil-Agent = %q, want product;go;platform;version", ex.Seq, got.Header.Get("Virgil-Agent"))
		}
		rs.gotReq = nil
	}
	if len(kinds) < 7 {
		t.Errorf("replayed only %v", kinds)
	}
}

func checkEntry(t *testing.T, seq int, e *virgil.KeyknoxEntry, err error, headers map[string]string) {
	t.Helper()
	if err != nil {
		t.Errorf("seq %d: %v", seq, err)
		return
	}
	if e.Hash != headers["Virgil-Keyknox-Hash"] || e.Hash == "" {
		t.Errorf("seq %d: Hash = %q, want %q", seq, e.Hash, headers["Virgil-Keyknox-Hash"])
	}
}
