package virgil_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

type cardsFile struct {
	ServiceKey string `json:"virgil_cards_service_public_key_b64"`
	Emulator   struct {
		PKCS8 string `json:"private_key_pkcs8_der_b64"`
		SPKI  string `json:"public_key_spki_der_b64"`
	} `json:"emulator_service_key"`
	Cards []struct {
		Label       string          `json:"label"`
		Identity    string          `json:"identity"`
		CreatedAt   int64           `json:"created_at"`
		Previous    *string         `json:"previous_card_id"`
		SPKI        string          `json:"public_key_spki_der_b64"`
		Snapshot    string          `json:"content_snapshot_utf8"`
		CardID      string          `json:"card_id"`
		SelfSig     string          `json:"self_signature_der_b64"`
		PublishBody string          `json:"publish_request_body"`
		Served      json.RawMessage `json:"served_with_virgil_signature"`
	} `json:"cards"`
}

// cardKey returns the private key that made the named card of cards.json.
func cardKey(t *testing.T, kf keysFile, label string) *virgil.PrivateKey {
	t.Helper()
	if label == "alice-rotated" {
		k, err := virgil.NewKeyFromSeed(sha256Label("alice-rotated"))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	return mustKey(t, kf, label)
}

func TestNewRawCardMatchesVectors(t *testing.T) {
	kf := loadKeys(t)
	var cf cardsFile
	testkit.LoadVector(t, "cards.json", &cf)
	service, err := virgil.ParsePrivateKeyBase64(cf.Emulator.PKCS8)
	if err != nil {
		t.Fatal(err)
	}
	if got := virgil.VirgilCardsServiceKey().MarshalSPKIBase64(); got != cf.ServiceKey {
		t.Errorf("VirgilCardsServiceKey() = %s, want %s", got, cf.ServiceKey)
	}
	for _, cv := range cf.Cards {
		t.Run(cv.Label, func(t *testing.T) {
			key := cardKey(t, kf, cv.Label)
			if key.Public().MarshalSPKIBase64() != cv.SPKI {
				t.Fatalf("key of %s does not match the vector", cv.Label)
			}
			prev := ""
			if cv.Previous != nil {
				prev = *cv.Previous
			}
			rc, err := virgil.NewRawCard(key, cv.Identity, prev, time.Unix(cv.CreatedAt, 0))
			if err != nil {
				t.Fatalf("NewRawCard: %v", err)
			}
			if string(rc.ContentSnapshot) != cv.Snapshot {
				t.Errorf("snapshot = %s, want %s", rc.ContentSnapshot, cv.Snapshot)
			}
			if rc.ID() != cv.CardID {
				t.Errorf("ID() = %s, want %s", rc.ID(), cv.CardID)
			}
			if got := base64.StdEncoding.EncodeToString(rc.Signature(virgil.SignerSelf).Signature); got != cv.SelfSig {
				t.Errorf("self signature = %s, want %s", got, cv.SelfSig)
			}
			body, err := json.Marshal(rc)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != cv.PublishBody {
				t.Errorf("publish body = %s, want %s", body, cv.PublishBody)
			}
			if err := rc.Sign(virgil.SignerVirgil, service); err != nil {
				t.Fatal(err)
			}
			served, err := json.Marshal(rc)
			if err != nil {
				t.Fatal(err)
			}
			var want any
			_ = json.Unmarshal(cv.Served, &want)
			wantJSON, _ := json.Marshal(want)
			var gotAny any
			_ = json.Unmarshal(served, &gotAny)
			gotJSON, _ := json.Marshal(gotAny)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("served = %s, want %s", gotJSON, wantJSON)
			}
			if err := rc.Sign(virgil.SignerVirgil, service); err == nil {
				t.Error("second virgil signature accepted")
			}

			parsed, err := virgil.ParseRawCard(cv.Served)
			if err != nil {
				t.Fatalf("ParseRawCard(served): %v", err)
			}
			card, err := parsed.Card()
			if err != nil {
				t.Fatalf("Card(): %v", err)
			}
			if card.ID != cv.CardID || card.Identity != cv.Identity || card.PreviousCardID != prev ||
				card.CreatedAt.Unix() != cv.CreatedAt || !card.PublicKey.Equal(key.Public()) {
				t.Errorf("Card() = %+v", card)
			}
			if err := card.Verify(service.Public()); err != nil {
				t.Errorf("Verify(emulator key) = %v", err)
			}
			if err := card.Verify(virgil.VirgilCardsServiceKey()); !errors.Is(err, virgil.ErrInvalidCard) {
				t.Errorf("Verify(real Virgil key) = %v, want ErrInvalidCard", err)
			}
			if err := card.Verify(nil); err != nil {
				t.Errorf("Verify(nil) = %v", err)
			}
			unsigned, _ := virgil.ParseRawCard([]byte(cv.PublishBody))
			c2, err := unsigned.Card()
			if err != nil {
				t.Fatal(err)
			}
			if err := c2.Verify(service.Public()); !errors.Is(err, virgil.ErrInvalidCard) {
				t.Errorf("Verify(no virgil signature) = %v, want ErrInvalidCard", err)
			}
		})
	}
}

func TestRawCardErrors(t *testing.T) {
	kf := loadKeys(t)
	alice := mustKey(t, kf, "alice")
	bob := mustKey(t, kf, "bob")
	good, err := virgil.NewRawCard(alice, "alice-uid", "", time.Unix(1767225600, 0))
	if err != nil {
		t.Fatal(err)
	}
	withSnapshot := func(snap string, signer *virgil.PrivateKey) *virgil.RawCard {
		return &virgil.RawCard{ContentSnapshot: []byte(snap), Signatures: []virgil.RawSignature{
			{Signer: virgil.SignerSelf, Signature: signer.Sign([]byte(snap))},
		}}
	}
	spki := alice.Public().MarshalSPKIBase64()
	tests := []struct {
		name string
		card *virgil.RawCard
	}{
		{"WrongSelfKey", withSnapshot(string(good.ContentSnapshot), bob)},
		{"NoSelfSignature", &virgil.RawCard{ContentSnapshot: good.ContentSnapshot}},
		{"NotJSON", withSnapshot("{", alice)},
		{"NoIdentity", withSnapshot(`{"created_at":1,"version":"5.0","public_key":"`+spki+`"}`, alice)},
		{"WrongVersion", withSnapshot(`{"identity":"a","created_at":1,"version":"4.0","public_key":"`+spki+`"}`, alice)},
		{"BadKey", withSnapshot(`{"identity":"a","created_at":1,"version":"5.0","public_key":"AAAA"}`, alice)},
		{"BadPrevious", withSnapshot(`{"identity":"a","previous_card_id":"xyz","created_at":1,"version":"5.0","public_key":"`+spki+`"}`, alice)},
		{"NonASCIIIdentity", withSnapshot(`{"identity":"é","created_at":1,"version":"5.0","public_key":"`+spki+`"}`, alice)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.card.Card(); !errors.Is(err, virgil.ErrInvalidCard) {
				t.Fatalf("Card() = %v, want ErrInvalidCard", err)
			}
		})
	}
	for _, in := range []string{"", "[]", `{"content_snapshot":""}`, `{"content_snapshot":"!"}`} {
		if _, err := virgil.ParseRawCard([]byte(in)); !errors.Is(err, virgil.ErrInvalidCard) {
			t.Errorf("ParseRawCard(%q) = %v, want ErrInvalidCard", in, err)
		}
	}
	if _, err := virgil.NewRawCard(alice, "alice-uid", "not-an-id", time.Now()); !errors.Is(err, virgil.ErrInvalidCard) {
		t.Errorf("NewRawCard(bad previous) = %v", err)
	}
	if _, err := virgil.NewRawCard(alice, "ünicode", "", time.Now()); !errors.Is(err, virgil.ErrInvalidIdentity) {
		t.Errorf("NewRawCard(non-ASCII identity) = %v", err)
	}
}

func TestLinkCards(t *testing.T) {
	kf := loadKeys(t)
	mk := func(key *virgil.PrivateKey, id, prev string, at int64) *virgil.Card {
		t.Helper()
		rc, err := virgil.NewRawCard(key, id, prev, time.Unix(at, 0))
		if err != nil {
			t.Fatal(err)
		}
		c, err := rc.Card()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1 := mk(mustKey(t, kf, "alice"), "alice-uid", "", 1)
	a2 := mk(mustKey(t, kf, "bob"), "alice-uid", a1.ID, 2)
	a3 := mk(mustKey(t, kf, "carol"), "alice-uid", a2.ID, 3)
	b1 := mk(mustKey(t, kf, "bob"), "bob-uid", "", 1)
	// A card naming a card of another identity does not outdate it.
	c1 := mk(mustKey(t, kf, "carol"), "carol-uid", b1.ID, 1)
	got := virgil.LinkCards([]*virgil.Card{a2, b1, a3, a1, c1})
	ids := make([]string, 0, len(got))
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	want := []string{b1.ID, a3.ID, c1.ID}
	if len(ids) != len(want) {
		t.Fatalf("LinkCards = %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("LinkCards = %v, want %v", ids, want)
		}
	}
	if a3.Previous != a2 || a2.Previous != a1 || !a1.Outdated || !a2.Outdated || b1.Outdated {
		t.Errorf("links: a3.Previous=%v a2.Previous=%v outdated a1=%v a2=%v b1=%v", a3.Previous, a2.Previous, a1.Outdated, a2.Outdated, b1.Outdated)
	}
}
