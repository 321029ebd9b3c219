package pythia

import (
	"crypto/sha512"
	"math/big"

	"github.com/cloudflare/circl/ecc/bls12381"
)

// Points are kept affine with math/big here only where circl cannot help:
// RELIC's try-and-increment hashing and its point encodings. Everything in
// the prime-order groups (scalar multiplication, pairing) runs in circl.

// g1Point is an affine point of E: y^2 = x^3 + 4 over Fp.
type g1Point struct {
	x, y *big.Int
	inf  bool
}

var g1B = big.NewInt(4)

// g1Generator is RELIC's (and the usual) generator of G1.
var g1Generator = g1Point{
	x: mustHex("17f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"),
	y: mustHex("08b3f481e3aaa0f1a09e30ed741d8ae4fcf5e095d5d00af600db18cb2c04b3edd03cc744a2888ae40caa232946c5e7e1"),
}

func g1RHS(x *big.Int) *big.Int { return fpAdd(fpMul(fpMul(x, x), x), g1B) }

func (p g1Point) double() g1Point {
	if p.inf || p.y.Sign() == 0 {
		return g1Point{inf: true}
	}
	// l = 3x^2 / 2y
	l := fpMul(fpMul(big.NewInt(3), fpMul(p.x, p.x)), fpInv(fpAdd(p.y, p.y)))
	x := fpSub(fpSub(fpMul(l, l), p.x), p.x)
	return g1Point{x: x, y: fpSub(fpMul(l, fpSub(p.x, x)), p.y)}
}

func (p g1Point) add(q g1Point) g1Point {
	switch {
	case p.inf:
		return q
	case q.inf:
		return p
	case p.x.Cmp(q.x) == 0:
		if p.y.Cmp(q.y) == 0 {
			return p.double()
		}
		return g1Point{inf: true}
	}
	l := fpMul(fpSub(q.y, p.y), fpInv(fpSub(q.x, p.x)))
	x := fpSub(fpSub(fpMul(l, l), p.x), q.x)
	return g1Point{x: x, y: fpSub(fpMul(l, fpSub(p.x, x)), p.y)}
}

func (p g1Point) mul(k *big.Int) g1Point {
	r := g1Point{inf: true}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = r.double()
		if k.Bit(i) == 1 {
			r = r.add(p)
		}
	}
	return r
}

// hashToG1 is RELIC 0.4's ep_map with SHA-384: the digest read as a number
// mod p is the first x, incremented until x^3 + 4 is a square, y its root
// a^((p+1)/4), then multiplied by the cofactor.
func hashToG1(msg []byte) g1Point {
	d := sha512.Sum384(msg)
	x := mod(new(big.Int).SetBytes(d[:]))
	for {
		if y, ok := fpSqrt(g1RHS(x)); ok {
			return g1Point{x: x, y: y}.mul(g1Cofactor)
		}
		x = fpAdd(x, big.NewInt(1))
	}
}

// encode is RELIC's compressed ep_write_bin: 0x02 | sign, then x.
func (p g1Point) encode() []byte {
	if p.inf {
		return []byte{0}
	}
	return append([]byte{2 | byte(montBit(p.y))}, fpBytesOf(p.x)...)
}

// decodeG1 reads a 49-byte compressed point that must lie in G1.
func decodeG1(b []byte) (g1Point, error) {
	if len(b) != G1Size {
		return g1Point{}, sizeError("G1 point", len(b), G1Size)
	}
	if b[0] != 2 && b[0] != 3 {
		return g1Point{}, pointError("G1 point", "prefix must be 0x02 or 0x03")
	}
	x, ok := fpFromBytes(b[1:])
	if !ok {
		return g1Point{}, pointError("G1 point", "x is not below the field prime")
	}
	y, ok := fpSqrt(g1RHS(x))
	if !ok {
		return g1Point{}, pointError("G1 point", "not on the curve")
	}
	if montBit(y) != uint(b[0]&1) {
		y = fpNeg(y)
	}
	p := g1Point{x: x, y: y}
	if _, err := p.circl(); err != nil {
		return g1Point{}, err
	}
	return p, nil
}

// circl converts p to circl's G1 and checks that it is in the group of order r.
func (p g1Point) circl() (*bls12381.G1, error) {
	var q bls12381.G1
	if p.inf {
		return nil, pointError("G1 point", "the point at infinity")
	}
	if err := q.SetBytes(append(fpBytesOf(p.x), fpBytesOf(p.y)...)); err != nil {
		return nil, pointError("G1 point", "not in the group of order r")
	}
	return &q, nil
}

func g1FromCircl(q *bls12381.G1) g1Point {
	b := q.Bytes()
	if b[0]&0x40 != 0 {
		return g1Point{inf: true}
	}
	return g1Point{x: new(big.Int).SetBytes(b[:fpBytes]), y: new(big.Int).SetBytes(b[fpBytes:])}
}

// g2Point is an affine point of the twist E': y^2 = x^3 + 4(1 + i) over Fp2.
type g2Point struct {
	x, y fp2
	inf  bool
}

var g2B = fp2Of(4, 4)

func g2RHS(x fp2) fp2 { return x.sqr().mul(x).add(g2B) }

func (p g2Point) double() g2Point {
	if p.inf || p.y.isZero() {
		return g2Point{inf: true}
	}
	l := p.x.sqr().mul(fp2Of(3, 0)).mul(p.y.add(p.y).inv())
	x := l.sqr().sub(p.x).sub(p.x)
	return g2Point{x: x, y: l.mul(p.x.sub(x)).sub(p.y)}
}

func (p g2Point) add(q g2Point) g2Point {
	switch {
	case p.inf:
		return q
	case q.inf:
		return p
	case p.x.equal(q.x):
		if p.y.equal(q.y) {
			return p.double()
		}
		return g2Point{inf: true}
	}
	l := q.y.sub(p.y).mul(q.x.sub(p.x).inv())
	x := l.sqr().sub(p.x).sub(q.x)
	return g2Point{x: x, y: l.mul(p.x.sub(x)).sub(p.y)}
}

func (p g2Point) neg() g2Point {
	if p.inf {
		return p
	}
	return g2Point{x: p.x, y: p.y.neg()}
}

func (p g2Point) mul(k *big.Int) g2Point {
	r := g2Point{inf: true}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = r.double()
		if k.Bit(i) == 1 {
			r = r.add(p)
		}
	}
	return r
}

// The untwist-Frobenius-twist endomorphism psi(x, y) = (conj(x)·psiX, conj(y)·psiY).
var (
	psiX = fp2Of(1, 1).exp(new(big.Int).Div(new(big.Int).Sub(fieldP, big.NewInt(1)), big.NewInt(3))).inv()
	psiY = fp2Of(1, 1).exp(new(big.Int).Div(new(big.Int).Sub(fieldP, big.NewInt(1)), big.NewInt(2))).inv()
)

func (p g2Point) psi() g2Point {
	if p.inf {
		return p
	}
	return g2Point{x: p.x.conj().mul(psiX), y: p.y.conj().mul(psiY)}
}

// mulX multiplies by the (negative) curve parameter x.
func (p g2Point) mulX() g2Point { return p.mul(curveX).neg() }

// clearCofactorG2 is RELIC's ep2_mul_cof_b12:
// [x^2 - x - 1]P + psi([x - 1]P) + psi^2([2]P).
func clearCofactorG2(p g2Point) g2Point {
	t0 := p.mulX()
	t1 := t0.mulX()
	t2 := t1.add(t0.neg()).add(p.neg())
	t3 := t0.add(p.neg()).psi()
	t2 = t2.add(t3)
	t3 = p.double().psi().psi()
	return t2.add(t3)
}

// hashToG2 is RELIC 0.4's ep2_map with SHA-384: x = digest mod p (real),
// incremented until x^3 + b' is a square in Fp2, y = RELIC's root, then the
// cofactor is cleared.
func hashToG2(msg []byte) g2Point {
	d := sha512.Sum384(msg)
	x := fp2{mod(new(big.Int).SetBytes(d[:])), big.NewInt(0)}
	for {
		if y, ok := g2RHS(x).sqrt(); ok {
			return clearCofactorG2(g2Point{x: x, y: y})
		}
		x = fp2{fpAdd(x.a0, big.NewInt(1)), x.a1}
	}
}

// encode is RELIC's compressed ep2_write_bin: 0x02 | sign of y0, then x0 || x1.
func (p g2Point) encode() []byte {
	if p.inf {
		return []byte{0}
	}
	return append([]byte{2 | byte(montBit(p.y.a0))}, p.x.bytes()...)
}

// decodeG2 reads a 97-byte compressed point that must lie in G2.
func decodeG2(b []byte) (g2Point, error) {
	if len(b) != G2Size {
		return g2Point{}, sizeError("G2 point", len(b), G2Size)
	}
	if b[0] != 2 && b[0] != 3 {
		return g2Point{}, pointError("G2 point", "prefix must be 0x02 or 0x03")
	}
	x, ok := fp2FromBytes(b[1:])
	if !ok {
		return g2Point{}, pointError("G2 point", "x is not below the field prime")
	}
	rhs := g2RHS(x)
	y, ok := rhs.sqrt()
	if !ok || !y.sqr().equal(rhs) {
		return g2Point{}, pointError("G2 point", "not on the curve")
	}
	if montBit(y.a0) != uint(b[0]&1) {
		y = y.neg()
	}
	p := g2Point{x: x, y: y}
	if _, err := p.circl(); err != nil {
		return g2Point{}, err
	}
	return p, nil
}

// circl converts p to circl's G2 and checks that it is in the group of order r.
func (p g2Point) circl() (*bls12381.G2, error) {
	if p.inf {
		return nil, pointError("G2 point", "the point at infinity")
	}
	b := make([]byte, 0, 4*fpBytes)
	b = append(b, fpBytesOf(p.x.a1)...)
	b = append(b, fpBytesOf(p.x.a0)...)
	b = append(b, fpBytesOf(p.y.a1)...)
	b = append(b, fpBytesOf(p.y.a0)...)
	var q bls12381.G2
	if err := q.SetBytes(b); err != nil {
		return nil, pointError("G2 point", "not in the group of order r")
	}
	return &q, nil
}
