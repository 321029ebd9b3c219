package pythia

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
)

// notInG1 is a point of E(Fp) outside the group of order r: the first
// point try-and-increment finds, before the cofactor is cleared.
func notInG1(t *testing.T) []byte {
	t.Helper()
	x := big.NewInt(1)
	for {
		if y, ok := fpSqrt(g1RHS(x)); ok {
			p := g1Point{x: x, y: y}
			if _, err := p.circl(); err == nil {
				t.Fatal("the point is in G1")
			}
			return p.encode()
		}
		x = fpAdd(x, big.NewInt(1))
	}
}

func notOnCurveG1() []byte {
	x := big.NewInt(1)
	for {
		if _, ok := fpSqrt(g1RHS(x)); !ok {
			return g1Point{x: x, y: big.NewInt(0)}.encode()
		}
		x = fpAdd(x, big.NewInt(1))
	}
}

func TestTransformRejectsBadInput(t *testing.T) {
	v := loadVectors(t)
	tr := v.Transforms[0]
	priv := v.KeyPairs[tr.KeyPair].PrivateKey
	bigX := append([]byte{2}, fpBytesOf(new(big.Int).Add(fieldP, big.NewInt(1)))...)
	bad := func(b []byte, i int, c byte) []byte { b = bytes.Clone(b); b[i] = c; return b }
	cases := map[string]struct{ blinded, tweak, priv []byte }{
		"empty blinded":       {nil, tr.Tweak, priv},
		"short blinded":       {tr.BlindedPassword[:48], tr.Tweak, priv},
		"long blinded":        {append(bytes.Clone(tr.BlindedPassword), 0), tr.Tweak, priv},
		"uncompressed prefix": {bad(tr.BlindedPassword, 0, 4), tr.Tweak, priv},
		"infinity":            {bad(make([]byte, G1Size), 0, 0), tr.Tweak, priv},
		"x not below p":       {bigX, tr.Tweak, priv},
		"not on the curve":    {notOnCurveG1(), tr.Tweak, priv},
		"not in G1":           {notInG1(t), tr.Tweak, priv},
		"empty tweak":         {tr.BlindedPassword, nil, priv},
		"long tweak":          {tr.BlindedPassword, make([]byte, MaxInputSize+1), priv},
		"private key sign":    {tr.BlindedPassword, tr.Tweak, bad(priv, 0, 2)},
		"short private key":   {tr.BlindedPassword, tr.Tweak, priv[:1]},
		"long private key":    {tr.BlindedPassword, tr.Tweak, make([]byte, MaxScalarSize+1)},
	}
	for name, c := range cases {
		_, err := Transform(c.blinded, c.tweak, c.priv)
		var ie *InputError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want an *InputError", name, err)
		}
	}
	if _, err := Transform(tr.BlindedPassword, tr.Tweak, priv); err != nil {
		t.Fatalf("the good input fails: %v", err)
	}
}

func TestDecodeGTRejectsBadInput(t *testing.T) {
	v := loadVectors(t)
	good := v.Transforms[0].TransformedPassword
	if _, err := decodeGT(good); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[100] ^= 1
	cases := map[string][]byte{
		"short":           good[:GTSize-1],
		"zeros":           make([]byte, GTSize),
		"one bit flipped": flipped,
		"above p":         append(bytes.Repeat([]byte{0xff}, fpBytes), good[fpBytes:]...),
	}
	for name, b := range cases {
		if _, err := Deblind(b, v.Transforms[0].BlindingSecret); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestDecodeG2RejectsBadInput(t *testing.T) {
	v := loadVectors(t)
	tr := v.Transforms[0]
	kp := v.KeyPairs[tr.KeyPair]
	flipped := bytes.Clone(tr.TransformedTweak)
	flipped[50] ^= 1
	for name, b := range map[string][]byte{
		"short":   tr.TransformedTweak[:G2Size-1],
		"prefix":  append([]byte{4}, tr.TransformedTweak[1:]...),
		"flipped": flipped,
	} {
		_, err := Prove(tr.TransformedPassword, tr.BlindedPassword, b, KeyPair{kp.PrivateKey, kp.PublicKey}, nil)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// TestRoundTrip: a fresh blinding of the same password gives the same
// deblinded password, a proof from Prove verifies, and another tweak or
// key gives another value.
func TestRoundTrip(t *testing.T) {
	kp, err := ComputeTransformationKeyPair([]byte("brainkey"), []byte("secret"), []byte("scope"))
	if err != nil {
		t.Fatal(err)
	}
	kp2, _ := ComputeTransformationKeyPair([]byte("brainkey"), []byte("secret2"), []byte("scope"))
	seed := func(pw, tweak string, k KeyPair) []byte {
		b, err := Blind([]byte(pw), nil)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Transform(b.BlindedPassword, []byte(tweak), k.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Prove(tr.TransformedPassword, b.BlindedPassword, tr.TransformedTweak, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := Verify(tr.TransformedPassword, b.BlindedPassword, []byte(tweak), k.PublicKey, p); !ok || err != nil {
			t.Fatalf("verify = %v, %v", ok, err)
		}
		d, err := Deblind(tr.TransformedPassword, b.BlindingSecret)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := seed("pw", "alice", kp)
	if !bytes.Equal(a, seed("pw", "alice", kp)) {
		t.Error("two blindings of one password deblind differently")
	}
	if bytes.Equal(a, seed("pw", "bob", kp)) || bytes.Equal(a, seed("pw2", "alice", kp)) || bytes.Equal(a, seed("pw", "alice", kp2)) {
		t.Error("another tweak, password or key gives the same value")
	}
}
