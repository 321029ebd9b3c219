package pythia

import "math/big"

// The BLS12-381 parameters, as RELIC names them for its B12_P381 curve.
var (
	// fieldP is the base field prime p.
	fieldP = mustHex("1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab")
	// groupOrder is r, the order of G1, G2 and GT.
	groupOrder = mustHex("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001")
	// g1Cofactor is the cofactor of G1 in E(Fp).
	g1Cofactor = mustHex("396c8c005555e1568c00aaab0000aaab")
	// curveX is the absolute value of the curve parameter x (x itself is negative).
	curveX = mustHex("d201000000010000")
	// montR is RELIC's Montgomery radix 2^384 mod p: RELIC keeps field
	// elements multiplied by it, and the sign bit of a compressed point is
	// the lowest bit of that internal form.
	montR = new(big.Int).Mod(new(big.Int).Lsh(big.NewInt(1), 384), fieldP)
	// sqrtExp is (p+1)/4: p = 3 mod 4, so a^((p+1)/4) is a square root of a square a.
	sqrtExp = new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(1)), 2)
	// half is 1/2 mod p.
	half = new(big.Int).ModInverse(big.NewInt(2), fieldP)
)

// fpBytes is the size of an encoded base field element.
const fpBytes = 48

func mustHex(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic("pythia: bad constant " + s)
	}
	return n
}

// fp helpers: elements are *big.Int in [0, p).

func fpAdd(a, b *big.Int) *big.Int { return mod(new(big.Int).Add(a, b)) }
func fpSub(a, b *big.Int) *big.Int { return mod(new(big.Int).Sub(a, b)) }
func fpMul(a, b *big.Int) *big.Int { return mod(new(big.Int).Mul(a, b)) }
func fpNeg(a *big.Int) *big.Int    { return mod(new(big.Int).Neg(a)) }
func fpInv(a *big.Int) *big.Int    { return new(big.Int).ModInverse(a, fieldP) }
func mod(a *big.Int) *big.Int      { return a.Mod(a, fieldP) }

// fpSqrt is RELIC's fp_srt for p = 3 mod 4: c = a^((p+1)/4), and whether
// c^2 = a.
func fpSqrt(a *big.Int) (*big.Int, bool) {
	c := new(big.Int).Exp(a, sqrtExp, fieldP)
	return c, fpMul(c, c).Cmp(a) == 0
}

// montBit is the bit RELIC's fp_get_bit(a, 0) reads: the lowest bit of a in
// Montgomery form.
func montBit(a *big.Int) uint {
	return fpMul(a, montR).Bit(0)
}

// fpBytesOf writes a as 48 big-endian bytes (RELIC's fp_write_bin).
func fpBytesOf(a *big.Int) []byte {
	return a.FillBytes(make([]byte, fpBytes))
}

// fpFromBytes reads 48 big-endian bytes; they must encode a number below p.
func fpFromBytes(b []byte) (*big.Int, bool) {
	n := new(big.Int).SetBytes(b)
	return n, n.Cmp(fieldP) < 0
}

// fp2 is an element a0 + a1*i of Fp2 = Fp[i]/(i^2 + 1).
type fp2 struct{ a0, a1 *big.Int }

func fp2Of(a0, a1 int64) fp2 { return fp2{big.NewInt(a0), big.NewInt(a1)} }

func (a fp2) add(b fp2) fp2 { return fp2{fpAdd(a.a0, b.a0), fpAdd(a.a1, b.a1)} }
func (a fp2) sub(b fp2) fp2 { return fp2{fpSub(a.a0, b.a0), fpSub(a.a1, b.a1)} }
func (a fp2) neg() fp2      { return fp2{fpNeg(a.a0), fpNeg(a.a1)} }
func (a fp2) conj() fp2     { return fp2{new(big.Int).Set(a.a0), fpNeg(a.a1)} }
func (a fp2) isZero() bool  { return a.a0.Sign() == 0 && a.a1.Sign() == 0 }
func (a fp2) equal(b fp2) bool {
	return a.a0.Cmp(b.a0) == 0 && a.a1.Cmp(b.a1) == 0
}

func (a fp2) mul(b fp2) fp2 {
	// (a0 + a1 i)(b0 + b1 i) = a0 b0 - a1 b1 + (a0 b1 + a1 b0) i
	return fp2{
		fpSub(fpMul(a.a0, b.a0), fpMul(a.a1, b.a1)),
		fpAdd(fpMul(a.a0, b.a1), fpMul(a.a1, b.a0)),
	}
}

func (a fp2) sqr() fp2 { return a.mul(a) }

// mulXi multiplies by the non-residue 1 + i of the Fp6 tower (RELIC's fp2_mul_nor).
func (a fp2) mulXi() fp2 { return fp2{fpSub(a.a0, a.a1), fpAdd(a.a0, a.a1)} }

func (a fp2) inv() fp2 {
	n := fpInv(fpAdd(fpMul(a.a0, a.a0), fpMul(a.a1, a.a1)))
	return fp2{fpMul(a.a0, n), fpNeg(fpMul(a.a1, n))}
}

func (a fp2) exp(e *big.Int) fp2 {
	r := fp2Of(1, 0)
	for i := e.BitLen() - 1; i >= 0; i-- {
		r = r.sqr()
		if e.Bit(i) == 1 {
			r = r.mul(a)
		}
	}
	return r
}

// sqrt is RELIC's fp2_srt, root choice included (it decides which of the
// two points try-and-increment hashing lands on).
func (a fp2) sqrt() (fp2, bool) {
	norm := fpAdd(fpMul(a.a0, a.a0), fpMul(a.a1, a.a1)) // a0^2 - (-1) a1^2
	t2, ok := fpSqrt(norm)
	if !ok {
		return fp2{}, false
	}
	t1 := fpMul(fpAdd(a.a0, t2), half)
	t3, ok := fpSqrt(t1)
	if !ok {
		t1 = fpMul(fpSub(a.a0, t2), half)
		t3, _ = fpSqrt(t1)
	}
	if t3.Sign() == 0 {
		// Only a = 0, or a real non-residue a0 (never met by hashing or a
		// valid point), gets here; RELIC would divide by zero.
		return fp2Of(0, 0), a.isZero()
	}
	// The norm being a square decides that a is a square in Fp2.
	return fp2{a0: t3, a1: fpMul(a.a1, fpInv(fpAdd(t3, t3)))}, true
}

// bytes writes a0 || a1, 96 bytes (RELIC's fp2_write_bin without packing).
func (a fp2) bytes() []byte {
	return append(fpBytesOf(a.a0), fpBytesOf(a.a1)...)
}

func fp2FromBytes(b []byte) (fp2, bool) {
	a0, ok0 := fpFromBytes(b[:fpBytes])
	a1, ok1 := fpFromBytes(b[fpBytes : 2*fpBytes])
	return fp2{a0, a1}, ok0 && ok1
}
