package virgil

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
)

// signaturePrefix is the DER of a Virgil signature up to the raw Ed25519
// signature: SEQUENCE { AlgorithmIdentifier { sha512, NULL }, OCTET STRING(64) }.
var signaturePrefix = []byte{
	0x30, 0x51,
	0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00,
	0x04, 0x40,
}

// SignatureSize is the length of a Virgil signature (DER).
const SignatureSize = 83

// ErrInvalidSignature is returned (wrapped) when a signature is malformed or
// does not verify.
var ErrInvalidSignature = errors.New("virgil: invalid signature")

// Sign returns the Virgil signature of data: Ed25519 over SHA-512(data),
// wrapped in DER with the SHA-512 algorithm identifier (83 bytes). It is
// deterministic.
func (k *PrivateKey) Sign(data []byte) []byte {
	h := sha512.Sum512(data)
	raw := ed25519.Sign(k.priv, h[:])
	out := make([]byte, 0, SignatureSize)
	out = append(out, signaturePrefix...)
	return append(out, raw...)
}

// Verify checks a Virgil signature of data made by p's private key. It returns
// an error wrapping ErrInvalidSignature when the signature is malformed, names
// another hash or does not verify.
func (p *PublicKey) Verify(data, signature []byte) error {
	raw, err := parseSignature(signature)
	if err != nil {
		return err
	}
	h := sha512.Sum512(data)
	if !ed25519.Verify(p.key, h[:], raw) {
		return fmt.Errorf("virgil: verify signature: %w", ErrInvalidSignature)
	}
	return nil
}

// parseSignature returns the raw Ed25519 signature inside a Virgil signature.
func parseSignature(sig []byte) ([]byte, error) {
	if len(sig) != SignatureSize || !bytes.Equal(sig[:len(signaturePrefix)], signaturePrefix) {
		return nil, fmt.Errorf("virgil: signature is not a SHA-512 Ed25519 signature: %w", ErrInvalidSignature)
	}
	return sig[len(signaturePrefix):], nil
}
