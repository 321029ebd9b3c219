package pythia

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
)

// hexBytes is a hex string in the vector file.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type vectorFile struct {
	Library  string `json:"library"`
	KeyPairs []struct {
		TransformationKeyID, PythiaSecret, PythiaScopeSecret hexBytes
		PrivateKey, PublicKey                                hexBytes
	} `json:"keyPairs"`
	Transforms []struct {
		Password, Tweak, BlindedPassword, BlindingSecret hexBytes
		KeyPair                                          int
		TransformedPassword, TransformedTweak            hexBytes
		ProofValueC, ProofValueU                         hexBytes
		Verified                                         bool
		DeblindedPassword                                hexBytes
	} `json:"transforms"`
	Blinds []struct {
		Password, Tweak, BlindedPassword, BlindingSecret hexBytes
		KeyPair                                          int
		TransformedPassword, DeblindedPassword           hexBytes
	} `json:"blinds"`
	UpdateTokens []struct {
		OldKeyPair, NewKeyPair                             int
		Token, DeblindedPassword, UpdatedDeblindedPassword hexBytes
	} `json:"updateTokens"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	var v vectorFile
	testkit.LoadVector(t, "pythia.json", &v)
	if len(v.KeyPairs) == 0 || len(v.Transforms) == 0 {
		t.Fatal("no vectors")
	}
	return v
}

// TestVectorKeyPairs: ComputeTransformationKeyPair gives the official
// library's private and public keys byte for byte.
func TestVectorKeyPairs(t *testing.T) {
	v := loadVectors(t)
	for i, kp := range v.KeyPairs {
		got, err := ComputeTransformationKeyPair(kp.TransformationKeyID, kp.PythiaSecret, kp.PythiaScopeSecret)
		if err != nil {
			t.Fatalf("key pair %d: %v", i, err)
		}
		mustEqual(t, "key pair private key", i, got.PrivateKey, kp.PrivateKey)
		mustEqual(t, "key pair public key", i, got.PublicKey, kp.PublicKey)
	}
}

// TestVectorTransforms: transform, prove (with the nonce the library drew,
// recovered from its proof), verify, blind (with the library's r) and
// deblind reproduce the official outputs byte for byte.
func TestVectorTransforms(t *testing.T) {
	v := loadVectors(t)
	for i, tr := range v.Transforms {
		kp := v.KeyPairs[tr.KeyPair]
		got, err := Transform(tr.BlindedPassword, tr.Tweak, kp.PrivateKey)
		if err != nil {
			t.Fatalf("transform %d: %v", i, err)
		}
		mustEqual(t, "transformed password", i, got.TransformedPassword, tr.TransformedPassword)
		mustEqual(t, "transformed tweak", i, got.TransformedTweak, tr.TransformedTweak)

		c, _ := decodeScalar("c", tr.ProofValueC)
		u, _ := decodeScalar("u", tr.ProofValueU)
		kw, _ := decodeScalar("kw", kp.PrivateKey)
		nonce := new(big.Int).Mod(new(big.Int).Add(u, new(big.Int).Mul(c, kw)), groupOrder)
		proof, err := proveWithNonce(tr.TransformedPassword, tr.BlindedPassword, tr.TransformedTweak, KeyPair{kp.PrivateKey, kp.PublicKey}, nonce)
		if err != nil {
			t.Fatalf("prove %d: %v", i, err)
		}
		mustEqual(t, "proof value c", i, proof.C, tr.ProofValueC)
		mustEqual(t, "proof value u", i, proof.U, tr.ProofValueU)

		ok, err := Verify(tr.TransformedPassword, tr.BlindedPassword, tr.Tweak, kp.PublicKey, Proof{tr.ProofValueC, tr.ProofValueU})
		if err != nil || ok != tr.Verified || !ok {
			t.Errorf("verify %d = %v, %v; want true", i, ok, err)
		}
		// A proof for another tweak must not verify.
		ok, err = Verify(tr.TransformedPassword, tr.BlindedPassword, append([]byte("other "), tr.Tweak...), kp.PublicKey, Proof{tr.ProofValueC, tr.ProofValueU})
		if err != nil || ok {
			t.Errorf("verify %d with another tweak = %v, %v; want false", i, ok, err)
		}

		checkBlind(t, i, tr.Password, tr.BlindingSecret, tr.BlindedPassword)
		d, err := Deblind(tr.TransformedPassword, tr.BlindingSecret)
		if err != nil {
			t.Fatalf("deblind %d: %v", i, err)
		}
		mustEqual(t, "deblinded password", i, d, tr.DeblindedPassword)
	}
}

// checkBlind blinds with the r behind the library's blinding secret and
// expects its blinded password and secret.
func checkBlind(t *testing.T, i int, password, secret, blinded []byte) {
	t.Helper()
	rInv, err := decodeScalar("blinding secret", secret)
	if err != nil {
		t.Fatalf("blind %d: %v", i, err)
	}
	r := new(big.Int).ModInverse(new(big.Int).Mod(rInv, groupOrder), groupOrder)
	b, err := blindWith(password, r)
	if err != nil {
		t.Fatalf("blind %d: %v", i, err)
	}
	mustEqual(t, "blinded password", i, b.BlindedPassword, blinded)
	mustEqual(t, "blinding secret", i, b.BlindingSecret, secret)
}

// TestVectorBlinds: one password blinded twice deblinds to one value.
func TestVectorBlinds(t *testing.T) {
	v := loadVectors(t)
	if len(v.Blinds) < 2 {
		t.Fatal("want two blinds")
	}
	for i, b := range v.Blinds {
		checkBlind(t, i, b.Password, b.BlindingSecret, b.BlindedPassword)
		got, err := Transform(b.BlindedPassword, b.Tweak, v.KeyPairs[b.KeyPair].PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "transformed password", i, got.TransformedPassword, b.TransformedPassword)
		d, err := Deblind(got.TransformedPassword, b.BlindingSecret)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "deblinded password", i, d, b.DeblindedPassword)
	}
	if bytes.Equal(v.Blinds[0].BlindedPassword, v.Blinds[1].BlindedPassword) || !bytes.Equal(v.Blinds[0].DeblindedPassword, v.Blinds[1].DeblindedPassword) {
		t.Error("the two blinds of one password should differ and deblind to one value")
	}
}

// TestVectorUpdateTokens: password update tokens and updated deblinded passwords.
func TestVectorUpdateTokens(t *testing.T) {
	v := loadVectors(t)
	for i, u := range v.UpdateTokens {
		tok, err := PasswordUpdateToken(v.KeyPairs[u.OldKeyPair].PrivateKey, v.KeyPairs[u.NewKeyPair].PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "update token", i, tok, u.Token)
		d, err := UpdateDeblindedWithToken(u.DeblindedPassword, u.Token)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "updated deblinded password", i, d, u.UpdatedDeblindedPassword)
	}
}

func mustEqual(t *testing.T, what string, i int, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s %d:\n got %x\nwant %x", what, i, got, want)
	}
}
