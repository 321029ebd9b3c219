package pythia

import (
	"math/big"

	"github.com/cloudflare/circl/ecc/bls12381"
)

// RELIC and circl build Fp12 on the same tower (Fp2 = Fp[i]/(i^2+1), Fp6 =
// Fp2[v]/(v^3-(1+i)), Fp12 = Fp6[w]/(w^2-v)), so an element is the same 12
// coefficients a[j][k].c in both; only the byte order differs. RELIC writes
// a[0][0].c0, a[0][0].c1, a[0][1].c0 ... a[1][2].c1; circl writes the same
// 48-byte coefficients in the reverse order.

// gtElem is an element of Fp12 as RELIC indexes it: a[j][k] in Fp2.
type gtElem [2][3]fp2

func gtFromCircl(g *bls12381.Gt) gtElem {
	b, err := g.MarshalBinary()
	if err != nil || len(b) != 12*fpBytes {
		panic("pythia: circl Gt encoding changed")
	}
	var c [12]*big.Int
	for i := range 12 {
		c[11-i] = new(big.Int).SetBytes(b[i*fpBytes : (i+1)*fpBytes])
	}
	var a gtElem
	for j := range 2 {
		for k := range 3 {
			a[j][k] = fp2{c[6*j+2*k], c[6*j+2*k+1]}
		}
	}
	return a
}

func (a gtElem) circl() *bls12381.Gt {
	b := make([]byte, 0, 12*fpBytes)
	for j := 1; j >= 0; j-- {
		for k := 2; k >= 0; k-- {
			b = append(b, fpBytesOf(a[j][k].a1)...)
			b = append(b, fpBytesOf(a[j][k].a0)...)
		}
	}
	var g bls12381.Gt
	if err := g.UnmarshalBinary(b); err != nil {
		panic("pythia: circl Gt decoding changed")
	}
	return &g
}

// encodeGT is RELIC's packed fp12_write_bin of an element of the
// cyclotomic subgroup: a[0][1], a[0][2], a[1][0], a[1][2], each a0 || a1
// (the other two coefficients follow from these).
func encodeGT(g *bls12381.Gt) []byte {
	a := gtFromCircl(g)
	out := make([]byte, 0, GTSize)
	for _, c := range []fp2{a[0][1], a[0][2], a[1][0], a[1][2]} {
		out = append(out, c.bytes()...)
	}
	return out
}

// decodeGT reads a packed element and checks that it is in GT (order r).
// The missing coefficients come back as RELIC's fp12_back_cyc computes them.
func decodeGT(b []byte) (*bls12381.Gt, error) {
	if len(b) != GTSize {
		return nil, sizeError("GT element", len(b), GTSize)
	}
	var parts [4]fp2
	for i := range parts {
		c, ok := fp2FromBytes(b[i*2*fpBytes : (i+1)*2*fpBytes])
		if !ok {
			return nil, pointError("GT element", "a coefficient is not below the field prime")
		}
		parts[i] = c
	}
	g4, g3, g2, g5 := parts[0], parts[1], parts[2], parts[3]
	if g2.isZero() {
		return nil, pointError("GT element", "not a packed element of the cyclotomic subgroup")
	}
	// g1 = (xi g5^2 + 3 g4^2 - 2 g3) / (4 g2)
	t0 := g4.sqr()
	t1 := t0.sub(g3)
	t1 = t1.add(t1).add(t0)
	t0 = g5.sqr().mulXi().add(t1)
	g1 := t0.mul(g2.add(g2).add(g2.add(g2)).inv())
	// g0 = xi (2 g1^2 + g2 g5 - 3 g3 g4) + 1
	t1 = g3.mul(g4)
	t2 := g1.sqr().sub(t1)
	t2 = t2.add(t2).sub(t1).add(g2.mul(g5))
	g0 := t2.mulXi().add(fp2Of(1, 0))
	a := gtElem{{g0, g4, g3}, {g2, g1, g5}}
	g := a.circl()
	if !inGT(g) {
		return nil, pointError("GT element", "not in the group of order r")
	}
	return g, nil
}

// inGT reports whether g^r = 1, checked as g^(r-1) · g = 1.
func inGT(g *bls12381.Gt) bool {
	var s bls12381.Scalar
	s.SetBytes(new(big.Int).Sub(groupOrder, big.NewInt(1)).Bytes())
	var t bls12381.Gt
	t.Exp(g, &s)
	t.Mul(&t, g)
	return t.IsIdentity()
}

// gtExp is g^k for any k (reduced mod r).
func gtExp(g *bls12381.Gt, k *big.Int) *bls12381.Gt {
	var s bls12381.Scalar
	s.SetBytes(new(big.Int).Mod(k, groupOrder).Bytes())
	var out bls12381.Gt
	out.Exp(g, &s)
	return &out
}

// pair is RELIC's pc_map(P, Q). RELIC 0.4's optimal ate pairing for
// B12_P381 gives exactly circl's values (the vectors check it).
func pair(p *bls12381.G1, q *bls12381.G2) *bls12381.Gt { return bls12381.Pair(p, q) }
