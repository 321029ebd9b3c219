package pythia

import (
	"errors"
	"testing"
)

// FuzzDecode: no input makes the decoders or Transform panic, and every
// refusal is an *InputError.
func FuzzDecode(f *testing.F) {
	v := loadVectors(f)
	for _, tr := range v.Transforms {
		f.Add([]byte(tr.BlindedPassword), []byte(tr.TransformedTweak), []byte(tr.TransformedPassword))
	}
	f.Add([]byte{}, []byte{0}, []byte{1})
	priv := v.KeyPairs[0].PrivateKey
	f.Fuzz(func(t *testing.T, g1, g2, gt []byte) {
		if _, err := Transform(g1, []byte("tweak"), priv); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("transform: %v is not an input error", err)
		}
		if _, err := decodeG2(g2); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("decode G2: %v", err)
		}
		if _, err := decodeGT(gt); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("decode GT: %v", err)
		}
	})
}

func BenchmarkTransform(b *testing.B) {
	v := loadVectors(b)
	tr := v.Transforms[0]
	priv := v.KeyPairs[tr.KeyPair].PrivateKey
	for b.Loop() {
		if _, err := Transform(tr.BlindedPassword, tr.Tweak, priv); err != nil {
			b.Fatal(err)
		}
	}
}
