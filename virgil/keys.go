package virgil

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"filippo.io/edwards25519"
)

// Key sizes and DER prefixes of the Ed25519 formats Virgil uses.
var (
	// pkcs8Prefix is the fixed DER of an RFC 8410 Ed25519 private key up to the seed.
	pkcs8Prefix = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}
	// spkiPrefix is the fixed DER of an Ed25519 SubjectPublicKeyInfo up to the key.
	spkiPrefix = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
)

const (
	// PrivateKeyDERSize is the length of an exported Ed25519 private key (PKCS#8 DER).
	PrivateKeyDERSize = 48
	// PublicKeyDERSize is the length of an exported Ed25519 public key (SPKI DER).
	PublicKeyDERSize = 44
	// KeyIDSize is the length of a default (SHA-512 based) key identifier.
	KeyIDSize = 8
	// redacted replaces every secret in printed and marshalled output.
	redacted = "REDACTED"
)

// ErrInvalidKey is returned (wrapped) when key bytes are not an Ed25519 key in
// the format Virgil exports.
var ErrInvalidKey = errors.New("virgil: invalid key")

// KeyIDScheme selects how key identifiers are computed. E3Kit members use
// KeyIDSHA512 unless they enable useSha256Identifiers.
type KeyIDScheme int

const (
	// KeyIDSHA512 is the default identifier: the first 8 bytes of SHA-512(SPKI).
	KeyIDSHA512 KeyIDScheme = iota
	// KeyIDSHA256 is the 32-byte SHA-256(SPKI) identifier (useSha256Identifiers).
	KeyIDSHA256
)

// PublicKey is an Ed25519 public key. It is immutable and safe for concurrent use.
type PublicKey struct {
	key  ed25519.PublicKey
	spki []byte
	id   []byte

	montOnce sync.Once
	mont     []byte // X25519 form, computed on first use
	montErr  error
}

// PrivateKey is an Ed25519 private key. It is immutable and safe for concurrent
// use. It never prints its secret: String, GoString, Format, MarshalJSON and
// MarshalText all yield REDACTED.
type PrivateKey struct {
	seed []byte
	priv ed25519.PrivateKey
	pub  *PublicKey

	ecdhOnce sync.Once
	ecdhKey  *ecdh.PrivateKey // X25519 form, made on first decryption
	ecdhErr  error
}

// GenerateKey returns a new random Ed25519 key.
func GenerateKey() (*PrivateKey, error) {
	return GenerateKeyFrom(rand.Reader)
}

// GenerateKeyFrom returns a new Ed25519 key whose seed is read from r.
func GenerateKeyFrom(r io.Reader) (*PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(r, seed); err != nil {
		return nil, fmt.Errorf("virgil: generate key: %w", err)
	}
	return NewKeyFromSeed(seed)
}

// NewKeyFromSeed returns the Ed25519 key of a 32-byte RFC 8032 seed.
func NewKeyFromSeed(seed []byte) (*PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("virgil: seed of %d bytes: %w", len(seed), ErrInvalidKey)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub, err := newPublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &PrivateKey{seed: bytes.Clone(seed), priv: priv, pub: pub}, nil
}

// ParsePrivateKey parses an Ed25519 private key in PKCS#8 DER (the 48 bytes of
// exportPrivateKey) or its PEM form.
func ParsePrivateKey(der []byte) (*PrivateKey, error) {
	if b, ok := fromPEM(der, "PRIVATE KEY"); ok {
		der = b
	}
	if len(der) != PrivateKeyDERSize || !bytes.Equal(der[:len(pkcs8Prefix)], pkcs8Prefix) {
		return nil, fmt.Errorf("virgil: parse private key: not an Ed25519 PKCS#8 key: %w", ErrInvalidKey)
	}
	return NewKeyFromSeed(der[len(pkcs8Prefix):])
}

// ParsePrivateKeyBase64 parses the base64 of a PKCS#8 DER private key, the
// format of the Virgil App Key and of E3Kit's local key storage.
func ParsePrivateKeyBase64(s string) (*PrivateKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("virgil: parse private key: base64: %w", ErrInvalidKey)
	}
	return ParsePrivateKey(der)
}

// Public returns the public half of k.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// ID returns the key identifier (8 bytes, SHA-512 scheme) of k's public key.
func (k *PrivateKey) ID() []byte { return k.pub.ID() }

// Seed returns a copy of the 32-byte RFC 8032 seed. Handle it as a secret.
func (k *PrivateKey) Seed() []byte { return bytes.Clone(k.seed) }

// MarshalPKCS8 returns the 48-byte PKCS#8 DER encoding of k. Handle it as a secret.
func (k *PrivateKey) MarshalPKCS8() []byte {
	out := make([]byte, 0, PrivateKeyDERSize)
	out = append(out, pkcs8Prefix...)
	return append(out, k.seed...)
}

// MarshalPKCS8Base64 returns the base64 of MarshalPKCS8 (the App Key format).
// Handle it as a secret.
func (k *PrivateKey) MarshalPKCS8Base64() string {
	return base64.StdEncoding.EncodeToString(k.MarshalPKCS8())
}

// Equal reports whether k and o are the same key, in constant time.
func (k *PrivateKey) Equal(o *PrivateKey) bool {
	return k != nil && o != nil && subtle.ConstantTimeCompare(k.seed, o.seed) == 1
}

// String returns REDACTED.
func (k *PrivateKey) String() string { return redacted }

// GoString returns REDACTED.
func (k *PrivateKey) GoString() string { return redacted }

// Format prints REDACTED for every verb.
func (k *PrivateKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "REDACTED".
func (k *PrivateKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns REDACTED.
func (k *PrivateKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// x25519 returns the X25519 scalar of k: SHA-512(seed)[0:32] (clamped by X25519).
func (k *PrivateKey) x25519() []byte {
	h := sha512.Sum512(k.seed)
	return h[:32]
}

// sharedSecret returns the X25519 shared secret of k and the X25519 point
// peer. The X25519 form of k is made once (making it costs a scalar
// multiplication, as much as the exchange itself).
func (k *PrivateKey) sharedSecret(peer []byte) ([]byte, error) {
	k.ecdhOnce.Do(func() {
		scalar := k.x25519()
		defer clear(scalar)
		k.ecdhKey, k.ecdhErr = ecdh.X25519().NewPrivateKey(scalar)
	})
	if k.ecdhErr != nil {
		return nil, fmt.Errorf("virgil: x25519 scalar: %w", k.ecdhErr)
	}
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("virgil: x25519 point: %w", err)
	}
	shared, err := k.ecdhKey.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("virgil: x25519: %w", ErrDecryption)
	}
	return shared, nil
}

func newPublicKey(raw ed25519.PublicKey) (*PublicKey, error) {
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("virgil: public key of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	spki := make([]byte, 0, PublicKeyDERSize)
	spki = append(spki, spkiPrefix...)
	spki = append(spki, raw...)
	h := sha512.Sum512(spki)
	return &PublicKey{key: bytes.Clone(raw), spki: spki, id: h[:KeyIDSize]}, nil
}

// NewPublicKey returns the public key of 32 raw Ed25519 bytes.
func NewPublicKey(raw []byte) (*PublicKey, error) {
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("virgil: public key of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	if _, err := new(edwards25519.Point).SetBytes(raw); err != nil {
		return nil, fmt.Errorf("virgil: public key is not a curve point: %w", ErrInvalidKey)
	}
	return newPublicKey(raw)
}

// ParsePublicKey parses an Ed25519 SubjectPublicKeyInfo (the 44 bytes of
// exportPublicKey, a card's public_key) or its PEM form.
func ParsePublicKey(spki []byte) (*PublicKey, error) {
	if b, ok := fromPEM(spki, "PUBLIC KEY"); ok {
		spki = b
	}
	if len(spki) != PublicKeyDERSize || !bytes.Equal(spki[:len(spkiPrefix)], spkiPrefix) {
		return nil, fmt.Errorf("virgil: parse public key: not an Ed25519 SPKI: %w", ErrInvalidKey)
	}
	return NewPublicKey(spki[len(spkiPrefix):])
}

// ParsePublicKeyBase64 parses the base64 of an SPKI DER public key.
func ParsePublicKeyBase64(s string) (*PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("virgil: parse public key: base64: %w", ErrInvalidKey)
	}
	return ParsePublicKey(der)
}

// MarshalSPKI returns the 44-byte SubjectPublicKeyInfo DER of p.
func (p *PublicKey) MarshalSPKI() []byte { return bytes.Clone(p.spki) }

// MarshalSPKIBase64 returns the base64 of MarshalSPKI, as a card's public_key.
func (p *PublicKey) MarshalSPKIBase64() string { return base64.StdEncoding.EncodeToString(p.spki) }

// Raw returns a copy of the 32 raw Ed25519 public key bytes.
func (p *PublicKey) Raw() []byte { return bytes.Clone(p.key) }

// ID returns the default key identifier: SHA-512(SPKI)[0:8].
func (p *PublicKey) ID() []byte { return bytes.Clone(p.id) }

// IDFor returns the key identifier of p under scheme s.
func (p *PublicKey) IDFor(s KeyIDScheme) []byte {
	if s == KeyIDSHA256 {
		h := sha256.Sum256(p.spki)
		return h[:]
	}
	return p.ID()
}

// Equal reports whether p and o are the same key.
func (p *PublicKey) Equal(o *PublicKey) bool {
	return p != nil && o != nil && bytes.Equal(p.key, o.key)
}

// String returns the base64 SPKI of p (public information).
func (p *PublicKey) String() string { return p.MarshalSPKIBase64() }

// X25519 returns the Montgomery form u = (1+y)/(1-y) of p, the X25519 public
// key used by ECIES.
func (p *PublicKey) X25519() ([]byte, error) {
	p.montOnce.Do(func() {
		pt, err := new(edwards25519.Point).SetBytes(p.key)
		if err != nil {
			p.montErr = fmt.Errorf("virgil: convert public key to X25519: %w", ErrInvalidKey)
			return
		}
		p.mont = pt.BytesMontgomery()
	})
	return bytes.Clone(p.mont), p.montErr
}

// X25519Private returns the X25519 private scalar derived from k
// (SHA-512(seed)[0:32], unclamped). Handle it as a secret.
func (k *PrivateKey) X25519Private() []byte { return k.x25519() }

// fromPEM decodes a single-block PEM of the given type without importing
// encoding/pem's looser rules into the DER path.
func fromPEM(b []byte, typ string) ([]byte, bool) {
	s := strings.TrimSpace(string(b))
	begin, end := "-----BEGIN "+typ+"-----", "-----END "+typ+"-----"
	if !strings.HasPrefix(s, begin) || !strings.HasSuffix(s, end) {
		return nil, false
	}
	body := strings.Join(strings.Fields(s[len(begin):len(s)-len(end)]), "")
	der, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, false
	}
	return der, true
}
