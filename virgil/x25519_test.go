package virgil

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestX25519RFC7748 checks the ladder against the test vectors of RFC 7748
// section 5.2, including 1,000 iterations of the iterated vector.
func TestX25519RFC7748(t *testing.T) {
	for _, v := range []struct{ scalar, point, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		got, err := x25519(mustHex(t, v.scalar), mustHex(t, v.point))
		if err != nil || hex.EncodeToString(got) != v.out {
			t.Errorf("x25519(%s…) = %x, %v; want %s", v.scalar[:8], got, err, v.out)
		}
	}
	k := make([]byte, 32)
	k[0] = 9
	u := bytes.Clone(k)
	for range 1000 {
		next, err := x25519(k, u)
		if err != nil {
			t.Fatal(err)
		}
		k, u = next, k
	}
	if want := "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"; hex.EncodeToString(k) != want {
		t.Errorf("after 1,000 iterations: %x, want %s", k, want)
	}
}

// TestX25519MatchesCryptoECDH compares the ladder with crypto/ecdh on random
// scalars and points, including points with the top bit set.
func TestX25519MatchesCryptoECDH(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		scalar, point := make([]byte, 32), make([]byte, 32)
		for j := range 32 {
			scalar[j], point[j] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		if i%2 == 0 { // a real public key
			p, _ := ecdh.X25519().NewPrivateKey(point)
			point = p.PublicKey().Bytes()
		}
		priv, err := ecdh.X25519().NewPrivateKey(scalar)
		if err != nil {
			t.Fatal(err)
		}
		want, wantErr := func() ([]byte, error) {
			pub, err := ecdh.X25519().NewPublicKey(point)
			if err != nil {
				return nil, err
			}
			return priv.ECDH(pub)
		}()
		got, err := x25519(scalar, point)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("case %d: x25519 = %x, %v; crypto/ecdh = %x, %v", i, got, err, want, wantErr)
		}
	}
	// A low-order point gives all zeros: refused.
	zero := make([]byte, 32)
	if _, err := x25519(bytes.Repeat([]byte{7}, 32), zero); !errors.Is(err, ErrDecryption) {
		t.Errorf("x25519(low-order point) = %v, want ErrDecryption", err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkX25519 compares the ladder with crypto/ecdh's two steps (making
// the private key, which derives its public key, then the exchange).
func BenchmarkX25519(b *testing.B) {
	scalar, point := bytes.Repeat([]byte{3}, 32), make([]byte, 32)
	point[0] = 9
	b.Run("Ladder", func(b *testing.B) {
		for b.Loop() {
			if _, err := x25519(scalar, point); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CryptoECDH", func(b *testing.B) {
		pub, _ := ecdh.X25519().NewPublicKey(point)
		for b.Loop() {
			priv, _ := ecdh.X25519().NewPrivateKey(scalar)
			if _, err := priv.ECDH(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}
