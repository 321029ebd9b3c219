package virgil_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

func FuzzVerifyJWT(f *testing.F) {
	b := setupJWT(f, time.Unix(1767225600, 0))
	for _, tv := range b.file.Tokens {
		f.Add(tv.Token)
	}
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		tok, claims, err := virgil.ParseToken(token)
		if err != nil {
			if claims != nil || !tok.IsZero() {
				t.Fatalf("ParseToken failed but returned %v, %v", claims, tok)
			}
		} else if virgil.ValidateIdentity(claims.Identity) != nil || tok.Value() != token {
			t.Fatalf("ParseToken accepted identity %q", claims.Identity)
		}
		c, err := virgil.VerifyJWT(token, b.file.AppID, b.keys, time.Unix(1767225700, 0))
		if err == nil && (c.AppID != b.file.AppID || c.KeyID != b.file.AppKeyID) {
			t.Fatalf("VerifyJWT accepted %+v", c)
		}
	})
}

func FuzzParseRawCard(f *testing.F) {
	var cf cardsFile
	testkit.LoadVector(f, "cards.json", &cf)
	for _, c := range cf.Cards {
		f.Add([]byte(c.PublishBody))
		f.Add([]byte(c.Served))
	}
	f.Add([]byte(`{"content_snapshot":"e30=","signatures":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := virgil.ParseRawCard(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(rc)
		if err != nil {
			t.Fatalf("Marshal of a parsed card: %v", err)
		}
		back, err := virgil.ParseRawCard(out)
		if err != nil || !bytes.Equal(back.ContentSnapshot, rc.ContentSnapshot) || back.ID() != rc.ID() {
			t.Fatalf("re-parse: %v", err)
		}
		card, err := rc.Card()
		if err != nil {
			return
		}
		if card.ID != rc.ID() || virgil.ValidateIdentity(card.Identity) != nil || card.PublicKey == nil {
			t.Fatalf("Card() accepted %+v", card)
		}
		if err := rc.VerifySignature(virgil.SignerSelf, card.PublicKey); err != nil {
			t.Fatalf("Card() accepted a card whose self signature fails: %v", err)
		}
	})
}

func FuzzDecryptThenVerify(f *testing.F) {
	kf := loadKeys(f)
	alice, owner := mustKey(f, kf, "alice"), mustKey(f, kf, "owner")
	var sf steFile
	testkit.LoadVector(f, "sign-then-encrypt.json", &sf)
	for _, c := range sf.Cases {
		f.Add(unb64(f, c.Metadata), unb64(f, c.EncryptedData))
	}
	f.Fuzz(func(t *testing.T, meta, value []byte) {
		info, err := virgil.ParseMessageInfo(meta)
		if err == nil && len(info.Nonce) != 12 {
			t.Fatalf("nonce of %d bytes accepted", len(info.Nonce))
		}
		plain, err := virgil.DecryptThenVerify(meta, value, alice, owner.Public())
		if err == nil && len(plain)+16 != len(value) {
			t.Fatalf("plaintext of %d bytes from %d", len(plain), len(value))
		}
	})
}

func FuzzParseEpochMessage(f *testing.F) {
	var sf sessionFile
	testkit.LoadVector(f, "group-session.json", &sf)
	for _, e := range sf.Epochs {
		f.Add(unb64(f, e.MessageB64))
	}
	f.Add(unb64(f, sf.GroupMessage.MessageB64))
	f.Fuzz(func(t *testing.T, data []byte) {
		if h, err := virgil.ParseGroupMessage(data); err == nil && (len(h.SessionID) != 32 || len(h.Salt) != 32) {
			t.Fatalf("ParseGroupMessage accepted %+v", h)
		}
		m, err := virgil.ParseEpochMessage(data)
		if err != nil {
			return
		}
		back, err := virgil.ParseEpochMessage(m.Marshal())
		if err != nil || back.Epoch != m.Epoch || !bytes.Equal(back.Key, m.Key) || !bytes.Equal(back.SessionID, m.SessionID) {
			t.Fatalf("re-parse of %x: %v, %v", m.Marshal(), back, err)
		}
	})
}
