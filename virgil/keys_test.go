package virgil_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/rs/zerolog"
)

func TestKeysMatchVectors(t *testing.T) {
	kf := loadKeys(t)
	for name, kv := range kf.Keys {
		t.Run(name, func(t *testing.T) {
			k, err := virgil.ParsePrivateKeyBase64(kv.PKCS8)
			if err != nil {
				t.Fatalf("ParsePrivateKeyBase64: %v", err)
			}
			if got := hex.EncodeToString(k.Seed()); got != kv.SeedHex {
				t.Errorf("Seed() = %s, want %s", got, kv.SeedHex)
			}
			if got := k.MarshalPKCS8Base64(); got != kv.PKCS8 {
				t.Errorf("MarshalPKCS8Base64() = %s, want %s", got, kv.PKCS8)
			}
			fromSeed, err := virgil.NewKeyFromSeed(unhex(t, kv.SeedHex))
			if err != nil || !fromSeed.Equal(k) {
				t.Errorf("NewKeyFromSeed = %v, %v; want the same key", fromSeed, err)
			}
			pub := k.Public()
			if got := pub.MarshalSPKIBase64(); got != kv.SPKI {
				t.Errorf("MarshalSPKIBase64() = %s, want %s", got, kv.SPKI)
			}
			if got := hex.EncodeToString(pub.Raw()); got != kv.RawHex {
				t.Errorf("Raw() = %s, want %s", got, kv.RawHex)
			}
			if got := hex.EncodeToString(pub.ID()); got != kv.IDHex {
				t.Errorf("ID() = %s, want %s", got, kv.IDHex)
			}
			if got := hex.EncodeToString(k.ID()); got != kv.IDHex {
				t.Errorf("private ID() = %s, want %s", got, kv.IDHex)
			}
			if got := hex.EncodeToString(pub.IDFor(virgil.KeyIDSHA256)); got != kv.ID256Hex {
				t.Errorf("IDFor(SHA256) = %s, want %s", got, kv.ID256Hex)
			}
			if got := hex.EncodeToString(k.X25519Private()); got != kv.X25519Priv {
				t.Errorf("X25519Private() = %s, want %s", got, kv.X25519Priv)
			}
			x, err := pub.X25519()
			if err != nil || hex.EncodeToString(x) != kv.X25519PubHex {
				t.Errorf("X25519() = %x, %v; want %s", x, err, kv.X25519PubHex)
			}
			parsed, err := virgil.ParsePublicKeyBase64(kv.SPKI)
			if err != nil || !parsed.Equal(pub) {
				t.Errorf("ParsePublicKeyBase64 = %v, %v; want %v", parsed, err, pub)
			}
		})
	}
	t.Run("RandomExample", func(t *testing.T) {
		k, err := virgil.ParsePrivateKeyBase64(kf.Random.PKCS8)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Public().MarshalSPKIBase64(); got != kf.Random.SPKI {
			t.Errorf("SPKI = %s, want %s", got, kf.Random.SPKI)
		}
		if got := hex.EncodeToString(k.ID()); got != kf.Random.IDHex {
			t.Errorf("ID = %s, want %s", got, kf.Random.IDHex)
		}
	})
}

func TestParseKeyPEM(t *testing.T) {
	kf := loadKeys(t)
	kv := kf.Keys["alice"]
	pem := "-----BEGIN PRIVATE KEY-----\n" + kv.PKCS8 + "\n-----END PRIVATE KEY-----\n"
	k, err := virgil.ParsePrivateKey([]byte(pem))
	if err != nil || k.MarshalPKCS8Base64() != kv.PKCS8 {
		t.Fatalf("ParsePrivateKey(PEM) = %v, %v", k, err)
	}
	pubPEM := "-----BEGIN PUBLIC KEY-----\n" + kv.SPKI + "\n-----END PUBLIC KEY-----"
	p, err := virgil.ParsePublicKey([]byte(pubPEM))
	if err != nil || p.MarshalSPKIBase64() != kv.SPKI {
		t.Fatalf("ParsePublicKey(PEM) = %v, %v", p, err)
	}
}

func TestParseKeyErrors(t *testing.T) {
	kf := loadKeys(t)
	priv := unb64(t, kf.Keys["bob"].PKCS8)
	pub := unb64(t, kf.Keys["bob"].SPKI)
	badOID := bytes.Clone(priv)
	badOID[11] = 0x6e // X25519 OID instead of Ed25519
	tests := []struct {
		name string
		fn   func() error
	}{
		{"PrivateEmpty", func() error { _, err := virgil.ParsePrivateKey(nil); return err }},
		{"PrivateShort", func() error { _, err := virgil.ParsePrivateKey(priv[:47]); return err }},
		{"PrivateLong", func() error { _, err := virgil.ParsePrivateKey(append(bytes.Clone(priv), 0)); return err }},
		{"PrivateX25519OID", func() error { _, err := virgil.ParsePrivateKey(badOID); return err }},
		{"PrivateIsPublic", func() error { _, err := virgil.ParsePrivateKey(pub); return err }},
		{"PrivateBadBase64", func() error { _, err := virgil.ParsePrivateKeyBase64("!!"); return err }},
		{"PublicIsPrivate", func() error { _, err := virgil.ParsePublicKey(priv); return err }},
		{"PublicShort", func() error { _, err := virgil.ParsePublicKey(pub[:43]); return err }},
		{"PublicNotOnCurve", func() error {
			bad := bytes.Clone(pub)
			copy(bad[12:], make([]byte, 32))
			bad[12] = 2 // y = 2 has no x on the curve
			_, err := virgil.ParsePublicKey(bad)
			return err
		}},
		{"SeedSize", func() error { _, err := virgil.NewKeyFromSeed(make([]byte, 31)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, virgil.ErrInvalidKey) {
				t.Fatalf("error = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestSignMatchesVector(t *testing.T) {
	kf := loadKeys(t)
	var jf jwtFile
	testkit.LoadVector(t, "jwt.json", &jf)
	ex := jf.PlainSignature
	owner := mustKey(t, kf, ex.Signer)
	sig := owner.Sign([]byte(ex.Message))
	if got := base64.StdEncoding.EncodeToString(sig); got != ex.SignatureDER {
		t.Fatalf("Sign() = %s, want %s", got, ex.SignatureDER)
	}
	if got := hex.EncodeToString(sig[len(sig)-64:]); got != ex.SignatureRaw {
		t.Errorf("raw = %s, want %s", got, ex.SignatureRaw)
	}
	if err := owner.Public().Verify([]byte(ex.Message), sig); err != nil {
		t.Errorf("Verify(own signature) = %v", err)
	}
	if err := owner.Public().Verify([]byte(ex.Message+"!"), sig); !errors.Is(err, virgil.ErrInvalidSignature) {
		t.Errorf("Verify(other data) = %v, want ErrInvalidSignature", err)
	}
	if err := mustKey(t, kf, "alice").Public().Verify([]byte(ex.Message), sig); !errors.Is(err, virgil.ErrInvalidSignature) {
		t.Errorf("Verify(other key) = %v, want ErrInvalidSignature", err)
	}
	bad := bytes.Clone(sig)
	bad[10] ^= 1 // SHA-384 OID: algorithm must be SHA-512
	if err := owner.Public().Verify([]byte(ex.Message), bad); !errors.Is(err, virgil.ErrInvalidSignature) {
		t.Errorf("Verify(other OID) = %v, want ErrInvalidSignature", err)
	}
	if err := owner.Public().Verify([]byte(ex.Message), sig[:82]); !errors.Is(err, virgil.ErrInvalidSignature) {
		t.Errorf("Verify(truncated) = %v, want ErrInvalidSignature", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.Equal(b) || a.Public().Equal(b.Public()) {
		t.Fatal("two generated keys are equal")
	}
	back, err := virgil.ParsePrivateKey(a.MarshalPKCS8())
	if err != nil || !back.Equal(a) {
		t.Fatalf("ParsePrivateKey(MarshalPKCS8()) = %v, %v", back, err)
	}
	pub, err := virgil.ParsePublicKey(a.Public().MarshalSPKI())
	if err != nil || !pub.Equal(a.Public()) {
		t.Fatalf("ParsePublicKey(MarshalSPKI()) = %v, %v", pub, err)
	}
}

// secretOutputs renders v every way a program might print or log it.
func secretOutputs(t *testing.T, v any) string {
	t.Helper()
	var out strings.Builder
	fmt.Fprintf(&out, "%v %+v %#v %s %x %q\n", v, v, v, v, v, v)
	j, err := json.Marshal(map[string]any{"v": v})
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	log := zerolog.New(&out)
	log.Info().Interface("i", v).Any("a", v).Msg("secret")
	if s, ok := v.(fmt.Stringer); ok {
		log.Info().Stringer("s", s).Msg("secret")
	}
	return out.String()
}

func TestSecretsRedacted(t *testing.T) {
	kf := loadKeys(t)
	kv := kf.Keys["owner"]
	k := mustKey(t, kf, "owner")
	var jf jwtFile
	testkit.LoadVector(t, "jwt.json", &jf)
	tok, _, err := virgil.ParseToken(jf.Tokens[0].Token)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		v       any
		secrets []string
	}{
		{"PrivateKey", k, []string{kv.PKCS8, kv.SeedHex, kv.SeedHex[:16], string(unhex(t, kv.SeedHex))}},
		{"Token", tok, []string{jf.Tokens[0].Token, strings.Split(jf.Tokens[0].Token, ".")[2]}},
		{"TokenPointer", &tok, []string{jf.Tokens[0].Token}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := secretOutputs(t, tt.v)
			for _, s := range tt.secrets {
				if strings.Contains(out, s) {
					t.Errorf("output leaks a secret: %s", out)
				}
			}
			if !strings.Contains(out, "REDACTED") {
				t.Errorf("output does not say REDACTED: %s", out)
			}
		})
	}
}
