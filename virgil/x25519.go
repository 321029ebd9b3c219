package virgil

import (
	"crypto/subtle"
	"fmt"

	"filippo.io/edwards25519/field"
)

// x25519 returns X25519(scalar, point) (RFC 7748, section 5): the Montgomery
// ladder over the field of edwards25519, in constant time. Unlike
// crypto/ecdh, it does not first derive the public key of scalar, which
// would double the cost of wrapping a ticket key for a recipient with a
// fresh ephemeral key. A result of all zeros (a low-order point) is an
// error, as in crypto/ecdh.
func x25519(scalar, point []byte) ([]byte, error) {
	if len(scalar) != 32 || len(point) != 32 {
		return nil, fmt.Errorf("virgil: x25519: scalar of %d and point of %d bytes, want 32: %w", len(scalar), len(point), ErrDecryption)
	}
	var k [32]byte
	copy(k[:], scalar)
	defer clear(k[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64

	var x1, x2, z2, x3, z3 field.Element
	var a, aa, b, bb, e, c, d, da, cb, t field.Element
	if _, err := x1.SetBytes(point); err != nil { // ignores the top bit, as RFC 7748 asks
		return nil, fmt.Errorf("virgil: x25519 point: %w", ErrDecryption)
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()
	swap := 0
	for pos := 254; pos >= 0; pos-- {
		bit := int(k[pos/8]>>uint(pos&7)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)
		x3.Square(t.Add(&da, &cb))
		z3.Multiply(&x1, t.Square(t.Subtract(&da, &cb)))
		x2.Multiply(&aa, &bb)
		z2.Multiply(&e, t.Add(&aa, t.Mult32(&e, 121665))) // a24 = (486662 - 2) / 4
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	out := x2.Bytes()
	var zero [32]byte
	if subtle.ConstantTimeCompare(out, zero[:]) == 1 {
		return nil, fmt.Errorf("virgil: x25519: low-order point: %w", ErrDecryption)
	}
	return out, nil
}
