package virgil_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

type keyVector struct {
	Identity     string `json:"identity"`
	SeedHex      string `json:"seed_hex"`
	PKCS8        string `json:"private_key_pkcs8_der_b64"`
	SPKI         string `json:"public_key_spki_der_b64"`
	RawHex       string `json:"public_key_raw_hex"`
	IDHex        string `json:"key_id_hex"`
	ID256Hex     string `json:"key_id_sha256_variant_hex"`
	X25519Priv   string `json:"derived_x25519_private_hex"`
	X25519PubHex string `json:"derived_x25519_public_hex"`
}

type keysFile struct {
	Keys   map[string]keyVector `json:"keys"`
	Random struct {
		PKCS8 string `json:"private_key_pkcs8_der_b64"`
		SPKI  string `json:"public_key_spki_der_b64"`
		IDHex string `json:"key_id_hex"`
	} `json:"random_key_example"`
}

func loadKeys(tb testing.TB) keysFile {
	tb.Helper()
	var kf keysFile
	testkit.LoadVector(tb, "keys.json", &kf)
	return kf
}

// mustKey returns the private key of the named keys.json entry.
func mustKey(tb testing.TB, kf keysFile, name string) *virgil.PrivateKey {
	tb.Helper()
	kv, ok := kf.Keys[name]
	if !ok {
		tb.Fatalf("no key %q in keys.json", name)
	}
	k, err := virgil.ParsePrivateKeyBase64(kv.PKCS8)
	if err != nil {
		tb.Fatalf("ParsePrivateKeyBase64(%s): %v", name, err)
	}
	return k
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func unb64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

// sha256Label returns the deterministic seed of the vectors for a label.
func sha256Label(label string) []byte {
	h := sha256.Sum256([]byte("groupsync/virgil-vectors/" + label))
	return h[:]
}
