package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/virgil/interop"
)

const (
	owner = "2137f9ef75295ea"
	alice = "alice-uid"
	bob   = "bob-uid"
	carol = "carol-uid"
)

type jwtVectors struct {
	AppID     string `json:"app_id"`
	AppKeyID  string `json:"app_key_id"`
	AppKey    string `json:"app_key_base64"`
	AppPublic string `json:"app_public_key_base64"`
}

type keysFile struct {
	Keys map[string]struct {
		PKCS8 string `json:"private_key_pkcs8_der_b64"`
	} `json:"keys"`
}

// outcomes indexes the capture's outcomes[] by step and "what".
type outcomes map[string]map[string]json.RawMessage

func loadOutcomes(tb testing.TB) (outcomes, string) {
	var cf struct {
		GroupID  string `json:"group_id"`
		Outcomes []struct {
			Step         string `json:"step"`
			Observations []struct {
				What  string          `json:"what"`
				Value json.RawMessage `json:"value"`
			} `json:"observations"`
		} `json:"outcomes"`
	}
	testkit.LoadVector(tb, "e3kit-group-capture.json", &cf)
	o := outcomes{}
	for _, s := range cf.Outcomes {
		o[s.Step] = map[string]json.RawMessage{}
		for _, ob := range s.Observations {
			o[s.Step][ob.What] = ob.Value
		}
	}
	return o, cf.GroupID
}

func (o outcomes) participants(tb testing.TB, step, what string) []string {
	tb.Helper()
	raw, ok := o[step][what]
	if !ok {
		tb.Fatalf("capture has no outcome %q / %q", step, what)
	}
	var p []string
	if err := json.Unmarshal(raw, &p); err != nil {
		tb.Fatalf("outcome %q / %q: %v", step, what, err)
	}
	return p
}

type wantErr struct {
	Name  string `json:"error_name"`
	Code  *int   `json:"group_error_code"`
	Error string `json:"message"`
}

func (o outcomes) failure(tb testing.TB, step, what string) wantErr {
	tb.Helper()
	raw, ok := o[step][what]
	if !ok {
		tb.Fatalf("capture has no outcome %q / %q", step, what)
	}
	var w wantErr
	if err := json.Unmarshal(raw, &w); err != nil {
		tb.Fatal(err)
	}
	return w
}

// expectFailure checks err against a captured failure: same error name,
// group error code and message.
func expectFailure(tb testing.TB, err error, w wantErr) {
	tb.Helper()
	var e *interop.E3KitError
	if !errors.As(err, &e) {
		tb.Fatalf("got %v, want E3Kit %s", err, w.Name)
	}
	code := 0
	if w.Code != nil {
		code = *w.Code
	}
	if e.Name != w.Name || int(e.GroupErrorCode) != code || e.Message != w.Error {
		tb.Fatalf("got %s/%d %q, want %s/%d %q", e.Name, e.GroupErrorCode, e.Message, w.Name, code, w.Error)
	}
}

func sameList(tb testing.TB, what string, got, want []string) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("%s: %v, want %v", what, got, want)
	}
}

// vectorApp is the Virgil application of the vectors (jwt.json), served
// by a fresh emulator over HTTP, with the vectors' keys (keys.json).
type vectorApp struct {
	emu  *emulator.Emulator
	url  string
	gen  *virgil.JWTGenerator
	app  jwtVectors
	keys keysFile
}

// startVectorApp starts the emulator of the vector application.
func startVectorApp(t *testing.T) *vectorApp {
	t.Helper()
	a := &vectorApp{}
	testkit.LoadVector(t, "jwt.json", &a.app)
	testkit.LoadVector(t, "keys.json", &a.keys)
	pub, err := virgil.ParsePublicKeyBase64(a.app.AppPublic)
	if err != nil {
		t.Fatal(err)
	}
	appKey, err := virgil.ParsePrivateKeyBase64(a.app.AppKey)
	if err != nil {
		t.Fatal(err)
	}
	a.gen = &virgil.JWTGenerator{AppID: a.app.AppID, AppKeyID: a.app.AppKeyID, AppKey: appKey}
	if a.emu, err = emulator.New(emulator.Config{AppID: a.app.AppID, AppKeyID: a.app.AppKeyID, AppPublicKey: pub}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.emu)
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// driver starts the official E3Kit client against a's emulator, with
// tokens signed by the application key.
func (a *vectorApp) driver(t *testing.T) *interop.Driver {
	t.Helper()
	return interop.Start(t, interop.Config{
		APIURL: a.url,
		App:    &interop.App{AppID: a.app.AppID, AppKeyID: a.app.AppKeyID, AppKey: a.app.AppKey},
	})
}

// goOwner returns the project's virgil.Owner for the owner identity, with
// the vectors' owner key and its card published.
func (a *vectorApp) goOwner(ctx context.Context, t *testing.T) *virgil.Owner {
	t.Helper()
	ownerKey, err := virgil.ParsePrivateKeyBase64(a.keys.Keys["owner"].PKCS8)
	if err != nil {
		t.Fatal(err)
	}
	o := virgil.NewOwner(virgil.NewClient(a.url, a.gen.Source(owner)), ownerKey, owner,
		virgil.WithServiceKey(a.emu.ServiceKey()))
	if _, err := o.EnsureCard(ctx); err != nil {
		t.Fatalf("owner card: %v", err)
	}
	return o
}

// setup starts the emulator for the vector application and the driver.
func setup(t *testing.T) (*emulator.Emulator, *interop.Driver, keysFile) {
	t.Helper()
	a := startVectorApp(t)
	return a.emu, a.driver(t), a.keys
}

// TestE3KitGroupFlow runs the flow of vectors/e3kit-group-capture.json with
// official E3Kit clients (owner 2137f9ef75295ea included) against the
// emulator and checks every outcome the capture recorded, plus messages
// across epochs.
func TestE3KitGroupFlow(t *testing.T) {
	out, groupID := loadOutcomes(t)
	emu, d, kf := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if e3, node, err := d.Ping(ctx); err != nil || e3 != "2.5.1" {
		t.Fatalf("driver ping: %s %s %v", e3, node, err)
	}

	// In the capture's order: search answers list cards in publication order,
	// which E3Kit's remove turns into the order of the new epoch's identities.
	for _, u := range []struct{ name, id string }{{"owner", owner}, {"alice", alice}, {"bob", bob}, {"carol", carol}} {
		name, id := u.name, u.id
		must(d.RegisterWithKey(ctx, id, kf.Keys[name].PKCS8))
		got, err := d.Init(ctx, id, interop.UserOptions{})
		must(err)
		if got != id {
			t.Fatalf("identity %q, want %q", got, id)
		}
	}
	_, err := d.FindUsers(ctx, owner, "nobody-uid")
	expectFailure(t, err, out.failure(t, "findUsers:unknown", "findUsers of an unregistered identity"))

	p, err := d.CreateGroup(ctx, owner, groupID, alice, bob)
	must(err)
	sameList(t, "owner after create", p, out.participants(t, "owner:createGroup", "owner participants"))
	if v, ok := emu.Group(owner, groupID); !ok || !reflect.DeepEqual(v.Participants, []string{owner, alice, bob}) || len(v.Epochs) != 1 {
		t.Fatalf("emulator view after create: %+v %v", v, ok)
	}
	p, err = d.LoadGroup(ctx, alice, groupID, owner)
	must(err)
	sameList(t, "alice load", p, out.participants(t, "alice:loadGroup", "alice participants"))
	p, err = d.LoadGroup(ctx, bob, groupID, owner)
	must(err)
	sameList(t, "bob load", p, out.participants(t, "bob:loadGroup", "bob participants"))

	_, err = d.Add(ctx, bob, groupID, carol)
	expectFailure(t, err, out.failure(t, "bob:cannot-edit", "bob tries to add carol"))

	p, err = d.Add(ctx, owner, groupID, carol)
	must(err)
	sameList(t, "owner after add", p, out.participants(t, "owner:add[carol]", "owner participants"))
	p, err = d.Update(ctx, alice, groupID)
	must(err)
	sameList(t, "alice after add", p, out.participants(t, "alice:update-after-add", "alice participants"))
	p, err = d.LoadGroup(ctx, carol, groupID, owner)
	must(err)
	sameList(t, "carol load", p, out.participants(t, "carol:loadGroup", "carol participants"))
	_, err = d.Add(ctx, owner, groupID, carol)
	expectFailure(t, err, out.failure(t, "owner:add-duplicate", "owner adds carol again"))

	// History: a message of epoch 0 reaches everyone, carol included.
	c0, err := d.Encrypt(ctx, bob, groupID, "epoch zero from bob")
	must(err)
	for _, u := range []string{owner, alice, carol} {
		text, err := d.Decrypt(ctx, u, groupID, c0, bob)
		must(err)
		if text != "epoch zero from bob" {
			t.Fatalf("%s decrypted %q", u, text)
		}
	}

	p, err = d.Remove(ctx, owner, groupID, bob)
	must(err)
	sameList(t, "owner after remove", p, out.participants(t, "owner:remove[bob]", "owner participants"))
	_, err = d.Update(ctx, bob, groupID)
	expectFailure(t, err, out.failure(t, "bob:update-after-remove", "bob update after removal"))
	_, err = d.LoadGroup(ctx, bob, groupID, owner)
	expectFailure(t, err, out.failure(t, "bob:update-after-remove", "bob loadGroup after removal"))
	p, err = d.Update(ctx, alice, groupID)
	must(err)
	sameList(t, "alice after remove", p, out.participants(t, "alice:update-after-remove", "alice participants"))
	c1, err := d.Encrypt(ctx, alice, groupID, "epoch one from alice")
	must(err)
	_, err = d.Decrypt(ctx, bob, groupID, c1, alice)
	expectFailure(t, err, out.failure(t, "alice:update-after-remove", "bob decrypts epoch-1 message with his stale group"))
	if v, _ := emu.Group(owner, groupID); !reflect.DeepEqual(v.Epochs, []string{"0", "1"}) || !reflect.DeepEqual(v.Participants, []string{owner, alice, carol}) {
		t.Fatalf("emulator view after remove: %+v", v)
	}

	must(d.Cleanup(ctx, carol))
	must(d.RotatePrivateKey(ctx, carol))
	_, err = d.LoadGroup(ctx, carol, groupID, owner)
	expectFailure(t, err, out.failure(t, "carol:loadGroup-with-new-key", "carol loadGroup before reAdd"))
	_, card, err := d.ReAdd(ctx, owner, groupID, carol)
	must(err)
	var hasPrev bool
	must(json.Unmarshal(out[("owner:reAdd[carol]")]["carol card has previousCard"], &hasPrev))
	if card.HasPreviousCard != hasPrev || card.PreviousCardID == "" {
		t.Fatalf("carol's card after rotation: %+v", card)
	}
	p, err = d.LoadGroup(ctx, carol, groupID, owner)
	must(err)
	sameList(t, "carol after reAdd", p, out.participants(t, "carol:loadGroup-after-reAdd", "carol participants"))
	for _, c := range []struct{ cipher, sender, text string }{{c0, bob, "epoch zero from bob"}, {c1, alice, "epoch one from alice"}} {
		text, err := d.Decrypt(ctx, carol, groupID, c.cipher, c.sender)
		must(err)
		if text != c.text {
			t.Fatalf("carol decrypted %q, want %q", text, c.text)
		}
	}

	must(d.DeleteGroup(ctx, owner, groupID))
	if _, ok := emu.Group(owner, groupID); ok {
		t.Fatal("group still in the emulator after delete")
	}
	_, err = d.Update(ctx, alice, groupID)
	expectFailure(t, err, out.failure(t, "alice:update-after-delete", "alice update after delete"))

	must(d.Unregister(ctx, alice))
	_, err = d.FindUsers(ctx, owner, alice)
	expectFailure(t, err, out.failure(t, "owner:findUsers-after-revoke", "owner looks up a revoked identity"))
	if interop.ErrorName(err) != "UsersNotFoundError" {
		t.Fatalf("ErrorName = %q", interop.ErrorName(err))
	}
	if st := emu.Stats(); st.Faults != 0 || st.Requests == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDriverErrors checks the driver's own failure paths: unknown users'
// groups, bad ops, and that the error carries the E3Kit code.
func TestDriverErrors(t *testing.T) {
	_, d, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := d.Call(ctx, "noSuchOp", "x-user", nil, nil)
	if interop.ErrorName(err) != "Error" {
		t.Fatalf("unknown op: %v", err)
	}
	if err := d.Register(ctx, "short-user"); err != nil {
		t.Fatal(err)
	}
	if err := d.Register(ctx, "short-user"); interop.ErrorName(err) != "IdentityAlreadyExistsError" {
		t.Fatalf("second register: %v", err)
	}
	_, err = d.CreateGroup(ctx, "short-user", "tooshort")
	if interop.ErrorName(err) == "" {
		t.Fatalf("short group id accepted: %v", err)
	}
	_, err = d.Update(ctx, "short-user", "no-such-group-id")
	if interop.ErrorName(err) != "LocalGroupNotFound" {
		t.Fatalf("update of unknown group: %v", err)
	}
	_, err = d.LoadGroup(ctx, "short-user", "no-such-group-id", "short-user")
	if interop.GroupCode(err) != interop.NoAccess {
		t.Fatalf("load of a group that does not exist: %v (code %s)", err, interop.GroupCode(err))
	}
	got := []string{interop.NoAccess.String(), interop.RemoteGroupNotFound.String(), interop.GroupErrorCode(99).String()}
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"GroupErrorCode(99)", "NoAccess", "RemoteGroupNotFound"}) {
		t.Fatalf("names %v", got)
	}
}
