package emulator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

type captureFile struct {
	GroupID   string     `json:"group_id"`
	SessionID string     `json:"session_id_hex"`
	AppID     string     `json:"app_id"`
	Exchanges []exchange `json:"exchanges"`
}

type exchange struct {
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
}

// TestReplayE3KitCapture replays every request official E3Kit clients sent
// (vectors/e3kit-group-capture.json) in order, with the captured tokens and
// the clock at each token's iat, and compares the answers: statuses, card
// lists, Keyknox bodies byte for byte, and the Keyknox hashes through a
// one-to-one mapping between the capture's hashes and ours (previous-hash
// headers are translated with it).
func TestReplayE3KitCapture(t *testing.T) {
	var cf captureFile
	testkit.LoadVector(t, "e3kit-group-capture.json", &cf)
	if len(cf.Exchanges) == 0 {
		t.Fatal("capture has no exchanges")
	}
	var clock atomic.Int64
	f := newFixture(t, func(c *emulator.Config) {
		c.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
	})
	if cf.AppID != f.app.AppID {
		t.Fatalf("capture app %s, vectors app %s", cf.AppID, f.app.AppID)
	}
	ourHash := map[string]string{}   // capture hash -> our hash
	theirHash := map[string]string{} // our hash -> capture hash
	mapHash := func(seq int, capture, ours string) {
		t.Helper()
		if ours == "" {
			t.Errorf("seq %d: no Virgil-Keyknox-Hash header", seq)
			return
		}
		if _, err := base64.StdEncoding.DecodeString(ours); err != nil {
			t.Errorf("seq %d: hash %q is not base64", seq, ours)
		}
		if o, ok := ourHash[capture]; ok && o != ours {
			t.Errorf("seq %d: capture hash %s was ours %s before, now %s", seq, capture, o, ours)
		}
		if c, ok := theirHash[ours]; ok && c != capture {
			t.Errorf("seq %d: our hash %s was capture %s before, now %s", seq, ours, c, capture)
		}
		ourHash[capture], theirHash[ours] = ours, capture
	}

	for _, ex := range cf.Exchanges {
		auth := ex.Request.Headers["authorization"]
		if auth == nil {
			t.Fatalf("seq %d: no authorization", ex.Seq)
		}
		_, claims, err := virgil.ParseToken(strings.TrimPrefix(*auth, "Virgil "))
		if err != nil {
			t.Fatalf("seq %d: %v", ex.Seq, err)
		}
		if claims.Identity != ex.Caller {
			t.Fatalf("seq %d: token of %s, caller %s", ex.Seq, claims.Identity, ex.Caller)
		}
		clock.Store(claims.IssuedAt.Unix())

		var body *bytes.Reader
		if ex.Request.Body != "" {
			body = bytes.NewReader([]byte(ex.Request.Body))
		} else {
			body = bytes.NewReader(nil)
		}
		req := httptest.NewRequest(ex.Request.Method, ex.Request.Path, body)
		for name, v := range ex.Request.Headers {
			if v == nil {
				continue
			}
			val := *v
			if name == "virgil-keyknox-previous-hash" {
				o, ok := ourHash[val]
				if !ok {
					t.Fatalf("seq %d: previous hash %s was never answered", ex.Seq, val)
				}
				val = o
			}
			req.Header.Set(name, val)
		}
		w := httptest.NewRecorder()
		f.emu.ServeHTTP(w, req)

		if w.Code != ex.Response.Status {
			t.Fatalf("seq %d (%s %s %s): status %d, want %d: %s", ex.Seq, ex.Step, ex.Request.Method, ex.Request.Path, w.Code, ex.Response.Status, w.Body.String())
		}
		got, want := w.Body.String(), ex.Response.Body
		path := ex.Request.Path
		switch {
		case path == "/card/v5":
			compareCards(t, ex.Seq, "["+got+"]", "["+want+"]", f.emu.ServiceKey())
		case path == "/card/v5/actions/search":
			compareCards(t, ex.Seq, got, want, f.emu.ServiceKey())
		case strings.HasPrefix(path, "/keyknox/v2/"):
			if got != want {
				t.Errorf("seq %d (%s %s): body\n%s\nwant\n%s", ex.Seq, ex.Step, path, got, want)
			}
			if h, ok := ex.Response.Headers["Virgil-Keyknox-Hash"]; ok {
				mapHash(ex.Seq, h, w.Header().Get("Virgil-Keyknox-Hash"))
			}
		case strings.HasPrefix(path, "/card/v5/actions/revoke/"):
			// body ignored by clients
		default:
			t.Fatalf("seq %d: unexpected path %s", ex.Seq, path)
		}
	}
	// The group is gone at the end; alice has no card.
	if v, ok := f.emu.Group("2137f9ef75295ea", cf.GroupID); ok {
		t.Errorf("group still there after delete: %+v", v)
	}
	if _, ok := f.emu.Card("alice-uid"); ok {
		t.Error("alice still has a card after unregister")
	}
	if c, ok := f.emu.Card("carol-uid"); !ok || c.PreviousCardID == "" {
		t.Errorf("carol's newest card %v should replace her first", c)
	}
	if st := f.emu.Stats(); st.Requests != uint64(len(cf.Exchanges)) || st.Rejected != 0 {
		t.Errorf("stats %+v, want %d requests and none rejected", st, len(cf.Exchanges))
	}
}

// TestReplayGroupViewMidway replays the capture up to the removal of bob and
// checks the introspection of the group, by method and by debug endpoint.
func TestReplayGroupViewMidway(t *testing.T) {
	var cf captureFile
	testkit.LoadVector(t, "e3kit-group-capture.json", &cf)
	var clock atomic.Int64
	f := newFixture(t, func(c *emulator.Config) {
		c.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
	})
	hashes := map[string]string{}
	check := func(step string, participants, epochs string) {
		t.Helper()
		v, ok := f.emu.Group("2137f9ef75295ea", cf.GroupID)
		if !ok {
			t.Fatalf("after %s: no group", step)
		}
		if got := strings.Join(v.Participants, ","); got != participants {
			t.Errorf("after %s: participants %s, want %s", step, got, participants)
		}
		if got := strings.Join(v.Epochs, ","); got != epochs {
			t.Errorf("after %s: epochs %s, want %s", step, got, epochs)
		}
		w := f.do("", http.MethodGet, "/_emulator/groups/"+cf.GroupID+"?owner=2137f9ef75295ea", "")
		wantOK(t, w)
		var dv emulator.GroupView
		if err := json.Unmarshal(w.Body.Bytes(), &dv); err != nil {
			t.Fatal(err)
		}
		if strings.Join(dv.Participants, ",") != participants || strings.Join(dv.Epochs, ",") != epochs {
			t.Errorf("after %s: debug endpoint %s", step, w.Body.String())
		}
	}
	for _, ex := range cf.Exchanges {
		auth := *ex.Request.Headers["authorization"]
		_, claims, err := virgil.ParseToken(strings.TrimPrefix(auth, "Virgil "))
		if err != nil {
			t.Fatal(err)
		}
		clock.Store(claims.IssuedAt.Unix())
		req := httptest.NewRequest(ex.Request.Method, ex.Request.Path, strings.NewReader(ex.Request.Body))
		req.Header.Set("Authorization", auth)
		if p := ex.Request.Headers["virgil-keyknox-previous-hash"]; p != nil {
			req.Header.Set("Virgil-Keyknox-Previous-Hash", hashes[*p])
		}
		w := httptest.NewRecorder()
		f.emu.ServeHTTP(w, req)
		if w.Code != ex.Response.Status {
			t.Fatalf("seq %d: status %d: %s", ex.Seq, w.Code, w.Body.String())
		}
		if h := ex.Response.Headers["Virgil-Keyknox-Hash"]; h != "" {
			hashes[h] = w.Header().Get("Virgil-Keyknox-Hash")
		}
		switch ex.Seq {
		case 11:
			check("create", "2137f9ef75295ea,alice-uid,bob-uid", "0")
		case 22:
			check("add carol", "2137f9ef75295ea,alice-uid,bob-uid,carol-uid", "0")
		case 31:
			check("remove bob", "2137f9ef75295ea,alice-uid,carol-uid", "0,1")
		}
		if ex.Seq == 31 {
			break
		}
	}
	// The history has one change per step that members could see, stamped
	// with the emulator's clock; the revocation of bob's old copy after the
	// new epoch changed nothing visible.
	w := f.do("", http.MethodGet, "/_emulator/groups/"+cf.GroupID+"?owner=2137f9ef75295ea&history=1", "")
	wantOK(t, w)
	var hv emulator.GroupView
	if err := json.Unmarshal(w.Body.Bytes(), &hv); err != nil {
		t.Fatal(err)
	}
	want := []string{"2137f9ef75295ea,alice-uid,bob-uid/1", "2137f9ef75295ea,alice-uid,bob-uid,carol-uid/1", "2137f9ef75295ea,alice-uid,carol-uid/2"}
	var got []string
	for i, h := range hv.History {
		got = append(got, fmt.Sprintf("%s/%d", strings.Join(h.Participants, ","), h.Epochs))
		if h.At.IsZero() || h.At.After(time.Unix(clock.Load(), 0)) || (i > 0 && h.At.Before(hv.History[i-1].At)) {
			t.Errorf("history %d at %v", i, h.At)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("history %v, want %v", got, want)
	}
	if h, dropped := f.emu.GroupHistory("2137f9ef75295ea", cf.GroupID); len(h) != len(want) || dropped != 0 || hv.HistoryDropped != 0 {
		t.Errorf("GroupHistory has %d changes, %d dropped", len(h), dropped)
	}
	w = f.do("", http.MethodGet, "/_emulator/groups/"+cf.GroupID+"?owner=alice-uid", "")
	wantError(t, w, http.StatusNotFound, emulator.CodeNotFound)
	w = f.do("", http.MethodGet, "/_emulator/groups/"+cf.GroupID, "")
	wantError(t, w, http.StatusBadRequest, emulator.CodeKeyknoxInvalidParams)
	w = f.do("", http.MethodGet, "/_emulator/cards/bob-uid", "")
	wantOK(t, w)
	if raw, err := virgil.ParseRawCard(w.Body.Bytes()); err != nil || raw.Signature(virgil.SignerVirgil) == nil {
		t.Errorf("debug card endpoint: %v, %v", raw, err)
	}
}

// compareCards compares card lists by snapshot and self signature (the
// capture's "virgil" signatures are another server's; ours must verify with
// our service key).
func compareCards(tb testing.TB, seq int, got, want string, service *virgil.PublicKey) {
	tb.Helper()
	var g, w []*virgil.RawCard
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		tb.Fatalf("seq %d: answer %q: %v", seq, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("seq %d: capture %q: %v", seq, want, err)
	}
	if len(g) != len(w) {
		tb.Fatalf("seq %d: %d cards, want %d", seq, len(g), len(w))
	}
	for i := range g {
		if !bytes.Equal(g[i].ContentSnapshot, w[i].ContentSnapshot) {
			tb.Errorf("seq %d card %d: snapshot %s, want %s", seq, i, g[i].ContentSnapshot, w[i].ContentSnapshot)
		}
		gs, ws := g[i].Signature(virgil.SignerSelf), w[i].Signature(virgil.SignerSelf)
		if gs == nil || ws == nil || !bytes.Equal(gs.Signature, ws.Signature) {
			tb.Errorf("seq %d card %d: self signature differs", seq, i)
		}
		if err := g[i].VerifySignature(virgil.SignerVirgil, service); err != nil {
			tb.Errorf("seq %d card %d: %v", seq, i, err)
		}
		if len(g[i].Signatures) != 2 {
			tb.Errorf("seq %d card %d: %d signatures, want self and virgil", seq, i, len(g[i].Signatures))
		}
	}
}
