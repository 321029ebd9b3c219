package virgil

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	encasn1 "encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of the message info and ECIES envelope
// (docs/virgil-protocol.md section 5).
var (
	oidEnvelopedData = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidData          = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidAES256GCM     = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 46}
	oidAES256CBC     = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidEd25519       = encasn1.ObjectIdentifier{1, 3, 101, 112}
	oidKDF2          = encasn1.ObjectIdentifier{1, 0, 18033, 2, 5, 2}
	oidSHA384        = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
)

// Custom parameter names of a signed message info.
const (
	paramSignature = "VIRGIL-DATA-SIGNATURE"
	paramSignerID  = "VIRGIL-DATA-SIGNER-ID"
	// maxMessageInfoSize bounds the metadata DecryptThenVerify parses.
	maxMessageInfoSize = 1 << 20
	dataKeySize        = 32
	gcmNonceSize       = 12
	gcmTagSize         = 16
	cbcIVSize          = 16
	hmacSize           = 48
)

var (
	tagContext0 = asn1.Tag(0).ContextSpecific().Constructed()
	tagContext1 = asn1.Tag(1).ContextSpecific().Constructed()
	tagContext2 = asn1.Tag(2).ContextSpecific().Constructed()
)

// Errors of DecryptThenVerify; match them with errors.Is.
var (
	// ErrRecipientNotFound: the message is not encrypted for the key. E3Kit
	// reports a ticket it cannot open this way as "no access".
	ErrRecipientNotFound = errors.New("virgil: recipient defined with id is not found within message info during data decryption")
	// ErrSignerNotFound: none of the verifier keys has the signer's id.
	ErrSignerNotFound = errors.New("virgil: signer not found")
	// ErrMalformedMessage: the metadata or ciphertext is not in the expected format.
	ErrMalformedMessage = errors.New("virgil: malformed encrypted message")
	// ErrDecryption: a MAC or AEAD check failed (wrong key or tampered data).
	ErrDecryption = errors.New("virgil: decryption failed")
)

// Crypto performs sign-then-encrypt and decrypt-then-verify. The zero value
// uses 8-byte SHA-512 key ids and crypto/rand; it is safe for concurrent use
// when Rand is.
type Crypto struct {
	// IDScheme must be the scheme of the clients that decrypt (E3Kit's
	// useSha256Identifiers); default KeyIDSHA512.
	IDScheme KeyIDScheme
	// Rand is the source of keys, nonces and IVs; nil means crypto/rand.
	Rand io.Reader
}

func (c Crypto) rand() io.Reader {
	if c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

// SignThenEncrypt is Crypto{}.SignThenEncrypt.
func SignThenEncrypt(data []byte, signer *PrivateKey, recipients []*PublicKey) (meta, value []byte, err error) {
	return Crypto{}.SignThenEncrypt(data, signer, recipients)
}

// DecryptThenVerify is Crypto{}.DecryptThenVerify.
func DecryptThenVerify(meta, value []byte, key *PrivateKey, verifiers ...*PublicKey) ([]byte, error) {
	return Crypto{}.DecryptThenVerify(meta, value, key, verifiers...)
}

// SignThenEncrypt signs data with signer and encrypts it for every recipient
// (duplicates allowed) as virgil-crypto's signThenEncryptDetached does: meta
// is the DER message info (Keyknox "meta"), value is the AES-256-GCM
// ciphertext and tag (Keyknox "value").
func (c Crypto) SignThenEncrypt(data []byte, signer *PrivateKey, recipients []*PublicKey) (meta, value []byte, err error) {
	if len(recipients) == 0 {
		return nil, nil, errors.New("virgil: sign then encrypt: no recipients")
	}
	sig := signer.Sign(data)
	var secrets [dataKeySize + gcmNonceSize]byte
	if _, err := io.ReadFull(c.rand(), secrets[:]); err != nil {
		return nil, nil, fmt.Errorf("virgil: sign then encrypt: random: %w", err)
	}
	dataKey, nonce := secrets[:dataKeySize], secrets[dataKeySize:]
	defer clear(secrets[:])
	gcm, err := newGCM(dataKey)
	if err != nil {
		return nil, nil, err
	}
	value = gcm.Seal(nil, nonce, data, nil)

	infos := make([][]byte, 0, len(recipients))
	for _, r := range recipients {
		env, err := c.eciesWrap(dataKey, r)
		if err != nil {
			return nil, nil, err
		}
		var b cryptobyte.Builder
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2)
			b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
				b.AddASN1OctetString(r.IDFor(c.IDScheme))
			})
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidEd25519) })
			b.AddASN1OctetString(env)
		})
		infos = append(infos, b.BytesOrPanic())
	}
	params := [][]byte{
		keyValueOctets(paramSignerID, signer.Public().IDFor(c.IDScheme)),
		keyValueOctets(paramSignature, sig),
	}
	sortDER(infos)
	sortDER(params)

	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidEnvelopedData)
			b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
				b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(2)
					b.AddASN1(asn1.SET, func(b *cryptobyte.Builder) {
						for _, ri := range infos {
							b.AddBytes(ri)
						}
					})
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidData)
						b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidAES256GCM)
							b.AddASN1OctetString(nonce)
						})
					})
				})
			})
		})
		b.AddASN1(tagContext0, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SET, func(b *cryptobyte.Builder) {
				for _, p := range params {
					b.AddBytes(p)
				}
			})
		})
	})
	meta, err = b.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("virgil: sign then encrypt: encode message info: %w", err)
	}
	return meta, value, nil
}

func keyValueOctets(key string, value []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(key)) })
		b.AddASN1(tagContext2, func(b *cryptobyte.Builder) { b.AddASN1OctetString(value) })
	})
	return b.BytesOrPanic()
}

// sortDER orders the elements of a DER SET OF by their encodings.
func sortDER(elems [][]byte) { slices.SortStableFunc(elems, bytes.Compare) }

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("virgil: aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("virgil: gcm: %w", err)
	}
	return gcm, nil
}

// kdf2SHA384 is ISO 18033-2 KDF2 with SHA-384: T_i = SHA-384(z || i_be32), i = 1...
func kdf2SHA384(z []byte, n int) []byte {
	out := make([]byte, 0, n+sha512.Size384)
	var ctr [4]byte
	for i := uint32(1); len(out) < n; i++ {
		binary.BigEndian.PutUint32(ctr[:], i)
		h := sha512.New384()
		h.Write(z)
		h.Write(ctr[:])
		out = h.Sum(out)
	}
	return out[:n]
}

// eciesWrap encrypts dataKey for recipient and returns the ECIES envelope DER.
func (c Crypto) eciesWrap(dataKey []byte, recipient *PublicKey) ([]byte, error) {
	eph, err := GenerateKeyFrom(c.rand())
	if err != nil {
		return nil, err
	}
	rx, err := recipient.X25519()
	if err != nil {
		return nil, err
	}
	shared, err := x25519(eph.x25519(), rx)
	if err != nil {
		return nil, fmt.Errorf("virgil: encrypt for key %x: %w", recipient.ID(), err)
	}
	k := kdf2SHA384(shared, 80)
	defer clear(k)
	iv := make([]byte, cbcIVSize)
	if _, err := io.ReadFull(c.rand(), iv); err != nil {
		return nil, fmt.Errorf("virgil: ecies: random: %w", err)
	}
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, fmt.Errorf("virgil: ecies: %w", err)
	}
	padded := pkcs7Pad(dataKey, aes.BlockSize)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	mac := hmac.New(sha512.New384, k[32:80])
	mac.Write(ct)
	tag := mac.Sum(nil)

	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddBytes(eph.Public().spki)
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidKDF2)
			addAlgNull(b, oidSHA384)
		})
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addAlgNull(b, oidSHA384)
			b.AddASN1OctetString(tag)
		})
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256CBC)
				b.AddASN1OctetString(iv)
			})
			b.AddASN1OctetString(ct)
		})
	})
	return b.Bytes()
}

func addAlgNull(b *cryptobyte.Builder, oid encasn1.ObjectIdentifier) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1NULL()
	})
}

func pkcs7Pad(b []byte, size int) []byte {
	n := size - len(b)%size
	out := make([]byte, len(b), len(b)+n)
	copy(out, b)
	for range n {
		out = append(out, byte(n))
	}
	return out
}

func pkcs7Unpad(b []byte, size int) ([]byte, bool) {
	if len(b) == 0 || len(b)%size != 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > size {
		return nil, false
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, false
		}
	}
	return b[:len(b)-n], true
}

// MessageInfo is the parsed metadata of a sign-then-encrypt message.
type MessageInfo struct {
	// Recipients are the key-transport recipients in encoded order.
	Recipients []RecipientInfo
	// Nonce is the AES-256-GCM nonce.
	Nonce []byte
	// Signature is the VIRGIL-DATA-SIGNATURE parameter (nil when absent).
	Signature []byte
	// SignerID is the VIRGIL-DATA-SIGNER-ID parameter (nil when absent).
	SignerID []byte
	// ParamOrder lists the custom parameter names in encoded order.
	ParamOrder []string
}

// RecipientInfo is one KeyTransRecipientInfo of a message info.
type RecipientInfo struct {
	// KeyID is the recipient key id (rid).
	KeyID []byte
	// Algorithm is the recipient key algorithm OID.
	Algorithm encasn1.ObjectIdentifier
	// EncryptedKey is the ECIES envelope DER.
	EncryptedKey []byte
}

func malformed(what string) error {
	return fmt.Errorf("virgil: message info: %s: %w", what, ErrMalformedMessage)
}

// ParseMessageInfo parses the DER message info of a sign-then-encrypt
// message (version 0, enveloped data with AES-256-GCM). Slices in the result
// alias meta.
func ParseMessageInfo(meta []byte) (*MessageInfo, error) {
	if len(meta) > maxMessageInfoSize {
		return nil, malformed("too large")
	}
	in := cryptobyte.String(meta)
	var top, content, enveloped, env, recipients, enc, alg cryptobyte.String
	var version, envVersion int64
	var oid encasn1.ObjectIdentifier
	if !in.ReadASN1(&top, asn1.SEQUENCE) || !in.Empty() {
		return nil, malformed("outer sequence")
	}
	if !top.ReadASN1Integer(&version) || version != 0 {
		return nil, malformed("version (only 0 is supported)")
	}
	if !top.ReadASN1(&content, asn1.SEQUENCE) ||
		!content.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidEnvelopedData) ||
		!content.ReadASN1(&enveloped, tagContext0) || !content.Empty() ||
		!enveloped.ReadASN1(&env, asn1.SEQUENCE) || !enveloped.Empty() {
		return nil, malformed("content info")
	}
	if !env.ReadASN1Integer(&envVersion) || !env.ReadASN1(&recipients, asn1.SET) {
		return nil, malformed("enveloped data")
	}
	if !env.ReadASN1(&enc, asn1.SEQUENCE) || !enc.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidData) ||
		!enc.ReadASN1(&alg, asn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidAES256GCM) {
		return nil, malformed("encrypted content info (want AES-256-GCM)")
	}
	info := &MessageInfo{}
	var nonce cryptobyte.String
	if !alg.ReadASN1(&nonce, asn1.OCTET_STRING) || len(nonce) != gcmNonceSize {
		return nil, malformed("GCM nonce")
	}
	info.Nonce = nonce
	for !recipients.Empty() {
		var elem cryptobyte.String
		var tag asn1.Tag
		if !recipients.ReadAnyASN1(&elem, &tag) {
			return nil, malformed("recipient")
		}
		if tag != asn1.SEQUENCE {
			continue // another kind of recipient (e.g. password): not ours
		}
		var v int64
		var ridWrap, rid, kalg, ek cryptobyte.String
		var koid encasn1.ObjectIdentifier
		if !elem.ReadASN1Integer(&v) || !elem.ReadASN1(&ridWrap, tagContext0) ||
			!ridWrap.ReadASN1(&rid, asn1.OCTET_STRING) || !ridWrap.Empty() ||
			!elem.ReadASN1(&kalg, asn1.SEQUENCE) || !kalg.ReadASN1ObjectIdentifier(&koid) ||
			!elem.ReadASN1(&ek, asn1.OCTET_STRING) {
			return nil, malformed("key transport recipient")
		}
		info.Recipients = append(info.Recipients, RecipientInfo{KeyID: rid, Algorithm: koid, EncryptedKey: ek})
	}
	var paramsWrap cryptobyte.String
	var hasParams bool
	if !top.ReadOptionalASN1(&paramsWrap, &hasParams, tagContext0) {
		return nil, malformed("custom parameters")
	}
	if hasParams {
		var set cryptobyte.String
		if !paramsWrap.ReadASN1(&set, asn1.SET) || !paramsWrap.Empty() {
			return nil, malformed("custom parameters set")
		}
		for !set.Empty() {
			var kv, key, valWrap cryptobyte.String
			var tag asn1.Tag
			if !set.ReadASN1(&kv, asn1.SEQUENCE) || !kv.ReadASN1(&key, asn1.UTF8String) ||
				!kv.ReadAnyASN1(&valWrap, &tag) || !kv.Empty() {
				return nil, malformed("custom parameter")
			}
			info.ParamOrder = append(info.ParamOrder, string(key))
			if tag != tagContext2 {
				if tag != tagContext0 && tag != tagContext1 {
					return nil, malformed("custom parameter value")
				}
				continue // integer and string parameters are not used here
			}
			var val cryptobyte.String
			if !valWrap.ReadASN1(&val, asn1.OCTET_STRING) || !valWrap.Empty() {
				return nil, malformed("custom parameter octets")
			}
			switch string(key) {
			case paramSignature:
				info.Signature = val
			case paramSignerID:
				info.SignerID = val
			}
		}
	}
	// Versions 1..3 would add KDF, padding or footer fields; version 0 has none.
	if !top.Empty() {
		return nil, malformed("trailing fields")
	}
	return info, nil
}

// DecryptThenVerify opens a SignThenEncrypt message with key and verifies its
// signature: with exactly one verifier that key is used; with several, the
// one whose id equals the signer id. Errors wrap ErrRecipientNotFound,
// ErrMalformedMessage, ErrDecryption, ErrSignerNotFound or
// ErrInvalidSignature.
func (c Crypto) DecryptThenVerify(meta, value []byte, key *PrivateKey, verifiers ...*PublicKey) ([]byte, error) {
	info, err := ParseMessageInfo(meta)
	if err != nil {
		return nil, err
	}
	id := key.Public().IDFor(c.IDScheme)
	var ri *RecipientInfo
	for i := range info.Recipients {
		if bytes.Equal(info.Recipients[i].KeyID, id) {
			ri = &info.Recipients[i]
			break
		}
	}
	if ri == nil {
		return nil, fmt.Errorf("virgil: decrypt with key %x: %w", id, ErrRecipientNotFound)
	}
	if !ri.Algorithm.Equal(oidEd25519) {
		return nil, malformed("recipient key algorithm is not Ed25519")
	}
	dataKey, err := eciesUnwrap(ri.EncryptedKey, key)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	gcm, err := newGCM(dataKey)
	if err != nil {
		return nil, err
	}
	if len(value) < gcmTagSize {
		return nil, fmt.Errorf("virgil: decrypt: ciphertext shorter than the tag: %w", ErrMalformedMessage)
	}
	plain, err := gcm.Open(nil, info.Nonce, value, nil)
	if err != nil {
		return nil, fmt.Errorf("virgil: decrypt: data: %w", ErrDecryption)
	}
	var verifier *PublicKey
	switch {
	case len(verifiers) == 1:
		verifier = verifiers[0]
	default:
		for _, v := range verifiers {
			if info.SignerID != nil && bytes.Equal(v.IDFor(c.IDScheme), info.SignerID) {
				verifier = v
				break
			}
		}
		if verifier == nil {
			return nil, fmt.Errorf("virgil: verify signer %x: %w", info.SignerID, ErrSignerNotFound)
		}
	}
	if info.Signature == nil {
		return nil, fmt.Errorf("virgil: verify: message carries no signature: %w", ErrInvalidSignature)
	}
	if err := verifier.Verify(plain, info.Signature); err != nil {
		return nil, fmt.Errorf("virgil: verify decrypted data: %w", err)
	}
	return plain, nil
}

// eciesUnwrap opens an ECIES envelope with key and returns the data key.
func eciesUnwrap(envelope []byte, key *PrivateKey) ([]byte, error) {
	in := cryptobyte.String(envelope)
	var env, spki, kdf, kdfHash, mac, macAlg, macTag, cbc, cbcAlg, iv, ct cryptobyte.String
	var v int64
	var oid encasn1.ObjectIdentifier
	if !in.ReadASN1(&env, asn1.SEQUENCE) || !in.Empty() || !env.ReadASN1Integer(&v) || v != 0 ||
		!env.ReadASN1Element(&spki, asn1.SEQUENCE) {
		return nil, fmt.Errorf("virgil: ecies envelope: %w", ErrMalformedMessage)
	}
	eph, err := ParsePublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("virgil: ecies originator: %w: %w", ErrMalformedMessage, err)
	}
	if !env.ReadASN1(&kdf, asn1.SEQUENCE) || !kdf.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidKDF2) ||
		!kdf.ReadASN1(&kdfHash, asn1.SEQUENCE) || !kdfHash.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSHA384) {
		return nil, fmt.Errorf("virgil: ecies kdf (want KDF2-SHA384): %w", ErrMalformedMessage)
	}
	if !env.ReadASN1(&mac, asn1.SEQUENCE) || !mac.ReadASN1(&macAlg, asn1.SEQUENCE) ||
		!macAlg.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSHA384) ||
		!mac.ReadASN1(&macTag, asn1.OCTET_STRING) || len(macTag) != hmacSize {
		return nil, fmt.Errorf("virgil: ecies mac (want HMAC-SHA384): %w", ErrMalformedMessage)
	}
	if !env.ReadASN1(&cbc, asn1.SEQUENCE) || !cbc.ReadASN1(&cbcAlg, asn1.SEQUENCE) ||
		!cbcAlg.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidAES256CBC) ||
		!cbcAlg.ReadASN1(&iv, asn1.OCTET_STRING) || len(iv) != cbcIVSize ||
		!cbc.ReadASN1(&ct, asn1.OCTET_STRING) || len(ct) == 0 || len(ct)%aes.BlockSize != 0 || !env.Empty() {
		return nil, fmt.Errorf("virgil: ecies cipher (want AES-256-CBC): %w", ErrMalformedMessage)
	}
	ex, err := eph.X25519()
	if err != nil {
		return nil, fmt.Errorf("virgil: ecies originator: %w: %w", ErrMalformedMessage, err)
	}
	shared, err := key.sharedSecret(ex)
	if err != nil {
		return nil, err
	}
	k := kdf2SHA384(shared, 80)
	defer clear(k)
	h := hmac.New(sha512.New384, k[32:80])
	h.Write(ct)
	if subtle.ConstantTimeCompare(h.Sum(nil), macTag) != 1 {
		return nil, fmt.Errorf("virgil: ecies mac: %w", ErrDecryption)
	}
	block, err := aes.NewCipher(k[:32])
	if err != nil {
		return nil, fmt.Errorf("virgil: ecies: %w", err)
	}
	padded := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(padded, ct)
	dataKey, ok := pkcs7Unpad(padded, aes.BlockSize)
	if !ok || len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("virgil: ecies data key: %w", ErrDecryption)
	}
	return dataKey, nil
}
