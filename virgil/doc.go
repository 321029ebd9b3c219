// Package virgil implements, in pure Go, the parts of the Virgil Security
// protocol that a server needs to own E3Kit groups: it is the group
// initiator that E3Kit members load their groups from.
//
// # Scheme
//
// Every key is Ed25519. A private key travels as 48-byte PKCS#8 DER (the App
// Key format), a public key as 44-byte SubjectPublicKeyInfo DER, and a key's
// id is SHA-512(SPKI)[0:8] (or SHA-256(SPKI) for clients that enable
// useSha256Identifiers). A Virgil signature is Ed25519 over SHA-512(data),
// wrapped in DER with the SHA-512 algorithm identifier.
//
// Clients authenticate with a Virgil JWT ("VEDS512"): base64url JSON header
// and claims signed with the application key. Each identity publishes a Cards
// v5 card: a JSON content snapshot (kept as the exact signed bytes) with a
// "self" signature by the card key and a "virgil" signature by the Cards
// service; a card id is hex(SHA-512(snapshot)[0:32]).
//
// A group is a Keyknox v2 entry per epoch under root "group-sessions" and
// path hex(SHA-512(group id)[0:32]), owned by the initiator. Each entry holds
// an epoch message (session id, epoch number, 32-byte random key; protobuf)
// that is signed by the owner and encrypted to the owner and every
// participant ("sign-then-encrypt detached"): AES-256-GCM for the data, and
// per recipient an ECIES envelope (ephemeral Ed25519 key converted to X25519,
// KDF2-SHA384, AES-256-CBC and HMAC-SHA384) around the data key; the DER
// "message info" lists the recipients by key id and carries the signature.
// Adding a member re-encrypts every epoch for it; removing one writes a new
// epoch for the others and then revokes its access to all epochs.
//
// # Using the package
//
// Keys: GenerateKey, ParsePrivateKey, ParsePublicKey, PrivateKey.Sign and
// PublicKey.Verify. Tokens: JWTGenerator, VerifyJWT and CachingTokenSource.
// Cards: NewRawCard, ParseRawCard, RawCard.Card and LinkCards. Envelopes:
// Crypto.SignThenEncrypt and Crypto.DecryptThenVerify. Sessions: SessionID,
// EpochMessage. Services: Client speaks Cards v5 and Keyknox v2 over HTTP, and
// Owner performs the convergent group operations (create, add, remove,
// re-add, delete) that keep a Virgil group equal to a wanted member list.
//
// Secrets (PrivateKey, Token, EpochMessage keys) print as REDACTED through
// fmt, encoding/json and loggers that use them.
//
// The wire formats are specified in docs/virgil-protocol.md and checked
// against golden vectors made by the official JavaScript libraries
// (testdata/virgil).
package virgil
