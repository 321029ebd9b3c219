// Package pythia is the Pythia protocol of Virgil's BrainKey, byte for byte
// as the official libraries (virgil-crypto-c's pythia on RELIC 0.4, shipped
// to JavaScript as @virgilsecurity/pythia-crypto) compute and encode it, on
// BLS12-381 with cloudflare/circl doing the group arithmetic and the pairing.
//
// The emulator uses the server side (ComputeTransformationKeyPair,
// Transform, Prove); tests use the client side (Blind, Deblind) and Verify.
// Encodings are RELIC's: a compressed G1 point is 49 bytes (0x02 or 0x03,
// then x), a compressed G2 point 97 bytes (0x02 or 0x03, then x0 || x1), a
// GT element 384 bytes (the four coefficients that a packed element of the
// cyclotomic subgroup keeps), a scalar a 0x00 sign byte and its minimal
// big-endian magnitude. The sign bit of a compressed point is the lowest bit
// of y (of y0 in G2) in RELIC's internal Montgomery form. Hashing to G1 and
// G2 is RELIC's try-and-increment with SHA-384. docs/pythia.md describes it
// all, with the golden vectors in testdata/virgil/pythia.json.
package pythia
