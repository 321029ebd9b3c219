package pythia

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/cloudflare/circl/ecc/bls12381"
)

// Sizes of the encoded values.
const (
	// G1Size is a compressed G1 point: blinded passwords and transformation public keys.
	G1Size = 1 + fpBytes
	// G2Size is a compressed G2 point: transformed tweaks.
	G2Size = 1 + 2*fpBytes
	// GTSize is a packed GT element: transformed and deblinded passwords.
	GTSize = 8 * fpBytes
	// MaxScalarSize bounds an encoded scalar (a sign byte and the magnitude).
	MaxScalarSize = G1Size + 1
	// MaxInputSize bounds passwords, tweaks, key ids and secrets; they must
	// not be empty either.
	MaxInputSize = 128
)

// ErrInvalid is matched (errors.Is) by every error about a malformed input.
var ErrInvalid = errors.New("pythia: invalid input")

// InputError describes a malformed input: a wrong size, a value that is not
// a point of the expected group, a bad scalar.
type InputError struct {
	// What names the input ("G1 point", "tweak", ...).
	What string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *InputError) Error() string { return "pythia: " + e.What + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InputError) Is(target error) bool { return target == ErrInvalid }

func sizeError(what string, got, want int) error {
	return &InputError{What: what, Reason: fmt.Sprintf("%d bytes, want %d", got, want)}
}

func pointError(what, reason string) error { return &InputError{What: what, Reason: reason} }

func checkInput(what string, b []byte) error {
	if len(b) < 1 || len(b) > MaxInputSize {
		return &InputError{What: what, Reason: fmt.Sprintf("%d bytes, want 1 to %d", len(b), MaxInputSize)}
	}
	return nil
}

// encodeScalar is the library's bn_write_buf: a sign byte (0: positive,
// 1: negative) and the minimal big-endian magnitude (one zero byte for zero).
func encodeScalar(k *big.Int) []byte {
	b := k.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	sign := byte(0)
	if k.Sign() < 0 {
		sign = 1
	}
	return append([]byte{sign}, b...)
}

// decodeScalar reads an encoded scalar: the sign byte is 0 (positive) or
// 1 (negative; the library's blinding secrets can be negative).
func decodeScalar(what string, b []byte) (*big.Int, error) {
	if len(b) < 2 || len(b) > MaxScalarSize {
		return nil, &InputError{What: what, Reason: fmt.Sprintf("%d bytes, want 2 to %d", len(b), MaxScalarSize)}
	}
	n := new(big.Int).SetBytes(b[1:])
	switch b[0] {
	case 0:
		return n, nil
	case 1:
		return n.Neg(n), nil
	}
	return nil, &InputError{What: what, Reason: "the sign byte must be 0 or 1"}
}

// KeyPair is a transformation key pair.
type KeyPair struct {
	// PrivateKey is the encoded scalar kw.
	PrivateKey []byte
	// PublicKey is g1^kw, a compressed G1 point.
	PublicKey []byte
}

// ComputeTransformationKeyPair derives the key pair of (keyID, secret,
// scopeSecret) as the official library does: kw = HMAC-SHA384(key: secret,
// scopeSecret || keyID) as a number mod r, public key g1^kw. Each input is
// 1 to MaxInputSize bytes.
func ComputeTransformationKeyPair(keyID, secret, scopeSecret []byte) (KeyPair, error) {
	for _, in := range []struct {
		what string
		b    []byte
	}{{"transformation key id", keyID}, {"pythia secret", secret}, {"pythia scope secret", scopeSecret}} {
		if err := checkInput(in.what, in.b); err != nil {
			return KeyPair{}, err
		}
	}
	mac := hmac.New(sha512.New384, secret)
	mac.Write(scopeSecret)
	mac.Write(keyID)
	kw := new(big.Int).Mod(new(big.Int).SetBytes(mac.Sum(nil)), groupOrder)
	pub, err := g1Mul(g1Generator, kw)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{PrivateKey: encodeScalar(kw), PublicKey: pub.encode()}, nil
}

// g1Mul is [k]p computed in circl (p must be in G1).
func g1Mul(p g1Point, k *big.Int) (g1Point, error) {
	q, err := p.circl()
	if err != nil {
		return g1Point{}, err
	}
	var s bls12381.Scalar
	s.SetBytes(new(big.Int).Mod(k, groupOrder).Bytes())
	var out bls12381.G1
	out.ScalarMult(&s, q)
	return g1FromCircl(&out), nil
}

// Transformation is the server's answer to a blinded password.
type Transformation struct {
	// TransformedPassword is e(x^kw, H2(tweak)), a packed GT element (the
	// BrainKey "seed").
	TransformedPassword []byte
	// TransformedTweak is H2(tweak), a compressed G2 point.
	TransformedTweak []byte
}

// Transform is the server side of Pythia: it transforms a blinded password
// (a compressed G1 point) with the tweak and the transformation private key.
// It is deterministic. Malformed inputs give an *InputError.
func Transform(blindedPassword, tweak, privateKey []byte) (Transformation, error) {
	x, err := decodeG1(blindedPassword)
	if err != nil {
		return Transformation{}, fmt.Errorf("pythia: transform: blinded password: %w", err)
	}
	if err := checkInput("tweak", tweak); err != nil {
		return Transformation{}, err
	}
	kw, err := decodeScalar("transformation private key", privateKey)
	if err != nil {
		return Transformation{}, err
	}
	t := hashToG2(tweak)
	tc, err := t.circl()
	if err != nil {
		return Transformation{}, fmt.Errorf("pythia: transform: hashed tweak: %w", err)
	}
	xkw, err := g1Mul(x, kw)
	if err != nil {
		return Transformation{}, err
	}
	xc, err := xkw.circl()
	if err != nil {
		return Transformation{}, fmt.Errorf("pythia: transform: %w", err)
	}
	return Transformation{TransformedPassword: encodeGT(pair(xc, tc)), TransformedTweak: t.encode()}, nil
}

// Proof is a zero-knowledge proof that a transformation used the private
// key of a public key.
type Proof struct {
	// C and U are encoded scalars.
	C, U []byte
}

// Prove proves that transformedPassword was made from blindedPassword and
// transformedTweak with the key pair. rand supplies the nonce (nil:
// crypto/rand).
func Prove(transformedPassword, blindedPassword, transformedTweak []byte, kp KeyPair, random io.Reader) (Proof, error) {
	if random == nil {
		random = rand.Reader
	}
	v, err := randScalar(random)
	if err != nil {
		return Proof{}, err
	}
	return proveWithNonce(transformedPassword, blindedPassword, transformedTweak, kp, v)
}

func randScalar(random io.Reader) (*big.Int, error) {
	for {
		b := make([]byte, 32)
		if _, err := io.ReadFull(random, b); err != nil {
			return nil, fmt.Errorf("pythia: random: %w", err)
		}
		v := new(big.Int).SetBytes(b)
		if v.Sign() > 0 && v.Cmp(groupOrder) < 0 {
			return v, nil
		}
	}
}

func proveWithNonce(transformedPassword, blindedPassword, transformedTweak []byte, kp KeyPair, v *big.Int) (Proof, error) {
	y, err := decodeGT(transformedPassword)
	if err != nil {
		return Proof{}, fmt.Errorf("pythia: prove: transformed password: %w", err)
	}
	x, err := decodeG1(blindedPassword)
	if err != nil {
		return Proof{}, fmt.Errorf("pythia: prove: blinded password: %w", err)
	}
	t, err := decodeG2(transformedTweak)
	if err != nil {
		return Proof{}, fmt.Errorf("pythia: prove: transformed tweak: %w", err)
	}
	kw, err := decodeScalar("transformation private key", kp.PrivateKey)
	if err != nil {
		return Proof{}, err
	}
	p, err := decodeG1(kp.PublicKey)
	if err != nil {
		return Proof{}, fmt.Errorf("pythia: prove: transformation public key: %w", err)
	}
	xc, _ := x.circl()
	tc, _ := t.circl()
	beta := pair(xc, tc)
	t1, err := g1Mul(g1Generator, v)
	if err != nil {
		return Proof{}, err
	}
	t2 := gtExp(beta, v)
	c := hashZ(g1Generator.encode(), p.encode(), encodeGT(beta), encodeGT(y), t1.encode(), encodeGT(t2))
	u := new(big.Int).Sub(v, new(big.Int).Mul(c, kw))
	u.Mod(u, groupOrder)
	return Proof{C: encodeScalar(c), U: encodeScalar(u)}, nil
}

// hashZ is the library's challenge: the first 32 bytes of
// HMAC-SHA384(key: "TAG_RELIC_HASH_ZMESSAGE_HASH_Z\x00", the concatenated
// encodings), as a number.
func hashZ(parts ...[]byte) *big.Int {
	mac := hmac.New(sha512.New384, []byte("TAG_RELIC_HASH_ZMESSAGE_HASH_Z\x00"))
	for _, p := range parts {
		mac.Write(p)
	}
	return new(big.Int).SetBytes(mac.Sum(nil)[:32])
}

// Verify checks a proof made by Prove for the tweak (not the transformed
// tweak) and the transformation public key.
func Verify(transformedPassword, blindedPassword, tweak, publicKey []byte, proof Proof) (bool, error) {
	y, err := decodeGT(transformedPassword)
	if err != nil {
		return false, fmt.Errorf("pythia: verify: transformed password: %w", err)
	}
	x, err := decodeG1(blindedPassword)
	if err != nil {
		return false, fmt.Errorf("pythia: verify: blinded password: %w", err)
	}
	if err := checkInput("tweak", tweak); err != nil {
		return false, err
	}
	p, err := decodeG1(publicKey)
	if err != nil {
		return false, fmt.Errorf("pythia: verify: transformation public key: %w", err)
	}
	c, err := decodeScalar("proof value c", proof.C)
	if err != nil {
		return false, err
	}
	u, err := decodeScalar("proof value u", proof.U)
	if err != nil {
		return false, err
	}
	tc, err := hashToG2(tweak).circl()
	if err != nil {
		return false, fmt.Errorf("pythia: verify: hashed tweak: %w", err)
	}
	xc, _ := x.circl()
	beta := pair(xc, tc)
	pc, err := g1Mul(p, c)
	if err != nil {
		return false, err
	}
	qu, err := g1Mul(g1Generator, u)
	if err != nil {
		return false, err
	}
	t1 := qu.add(pc)
	var t2 bls12381.Gt
	t2.Mul(gtExp(beta, u), gtExp(y, c))
	c2 := hashZ(g1Generator.encode(), p.encode(), encodeGT(beta), encodeGT(y), t1.encode(), encodeGT(&t2))
	return c2.Cmp(c) == 0, nil
}

// Blinding is a client's blinded password and the secret that removes the
// blinding.
type Blinding struct {
	// BlindedPassword is H1(password)^r, a compressed G1 point.
	BlindedPassword []byte
	// BlindingSecret is 1/r mod the group order, an encoded scalar.
	BlindingSecret []byte
}

// Blind is the client's first step: H1(password)^r for a random r (rand
// nil: crypto/rand).
func Blind(password []byte, random io.Reader) (Blinding, error) {
	if random == nil {
		random = rand.Reader
	}
	r, err := randScalar(random)
	if err != nil {
		return Blinding{}, err
	}
	return blindWith(password, r)
}

func blindWith(password []byte, r *big.Int) (Blinding, error) {
	if err := checkInput("password", password); err != nil {
		return Blinding{}, err
	}
	x, err := g1Mul(hashToG1(password), r)
	if err != nil {
		return Blinding{}, fmt.Errorf("pythia: blind: %w", err)
	}
	return Blinding{BlindedPassword: x.encode(), BlindingSecret: encodeScalar(bezoutInverse(r))}, nil
}

// bezoutInverse is 1/r mod the group order as the library's extended
// Euclid leaves it: the representative of least magnitude, negative when
// the positive one is above half the order.
func bezoutInverse(r *big.Int) *big.Int {
	s := new(big.Int).ModInverse(r, groupOrder)
	if s.Cmp(new(big.Int).Rsh(groupOrder, 1)) > 0 {
		s.Sub(s, groupOrder)
	}
	return s
}

// Deblind is the client's last step: transformedPassword^blindingSecret, a
// packed GT element that depends only on the password, the tweak and the
// transformation key.
func Deblind(transformedPassword, blindingSecret []byte) ([]byte, error) {
	y, err := decodeGT(transformedPassword)
	if err != nil {
		return nil, fmt.Errorf("pythia: deblind: %w", err)
	}
	rInv, err := decodeScalar("blinding secret", blindingSecret)
	if err != nil {
		return nil, err
	}
	return encodeGT(gtExp(y, rInv)), nil
}

// PasswordUpdateToken is the token that moves deblinded passwords from the
// old transformation private key to the new one: kw_new / kw_old mod r.
func PasswordUpdateToken(oldPrivateKey, newPrivateKey []byte) ([]byte, error) {
	kw0, err := decodeScalar("old transformation private key", oldPrivateKey)
	if err != nil {
		return nil, err
	}
	kw1, err := decodeScalar("new transformation private key", newPrivateKey)
	if err != nil {
		return nil, err
	}
	inv := new(big.Int).ModInverse(new(big.Int).Mod(kw0, groupOrder), groupOrder)
	if inv == nil {
		return nil, &InputError{What: "old transformation private key", Reason: "not invertible"}
	}
	return encodeScalar(inv.Mul(inv, kw1).Mod(inv, groupOrder)), nil
}

// UpdateDeblindedWithToken is deblindedPassword^token: the deblinded
// password the new transformation key would have given.
func UpdateDeblindedWithToken(deblindedPassword, token []byte) ([]byte, error) {
	z, err := decodeGT(deblindedPassword)
	if err != nil {
		return nil, fmt.Errorf("pythia: update deblinded password: %w", err)
	}
	d, err := decodeScalar("password update token", token)
	if err != nil {
		return nil, err
	}
	return encodeGT(gtExp(z, d)), nil
}
