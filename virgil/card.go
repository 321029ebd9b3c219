package virgil

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Card constants (docs/virgil-protocol.md section 4).
const (
	// CardVersion is the version field of every Cards v5 snapshot.
	CardVersion = "5.0"
	// SignerSelf names the card key's own signature.
	SignerSelf = "self"
	// SignerVirgil names the Cards service signature.
	SignerVirgil = "virgil"
	// VirgilCardsServiceKeyBase64 is the public key (Ed25519, SPKI DER,
	// base64) of Virgil's Cards service: every card served by VirgilAPIURL
	// carries a "virgil" signature made with it. It is the key hard-coded
	// in the official virgil-sdk (VirgilCardVerifier, used by E3Kit when its
	// apiUrl is VirgilAPIURL; docs/virgil-protocol.md section 4.5); the copy
	// in the golden vectors (testdata/virgil/cards.json,
	// virgil_cards_service_public_key_b64) was read from virgil-sdk 6.1.2,
	// and a test checks this constant against it. docs/security.md explains
	// how groupsync chooses the key (ServiceKeyFor).
	VirgilCardsServiceKeyBase64 = "MCowBQYDK2VwAyEAljOYGANYiVq1WbvVvoYIKtvZi2ji9bAhxyu6iV/LF8M="
	// VirgilAPIURL is the base URL of Virgil's cloud services.
	VirgilAPIURL = "https://api.virgilsecurity.com"
	// maxCardSize bounds the raw card JSON and snapshots this package parses.
	maxCardSize = 64 << 10
)

// ErrInvalidCard is returned (wrapped) for a card that is malformed or fails a
// signature check.
var ErrInvalidCard = errors.New("virgil: invalid card")

// ErrNoServiceKey is returned (wrapped) by ServiceKeyFor for an API URL
// that is not Virgil's when no service key was given.
var ErrNoServiceKey = errors.New("virgil: no Cards service key for this API URL")

// ServiceKeyFor returns the key that must have made the "virgil" signature
// of every card served by apiURL: override when it is not nil, the real
// Cards service key (VirgilCardsServiceKey) when apiURL is VirgilAPIURL (a
// trailing slash is ignored), and ErrNoServiceKey otherwise, so that an
// owner never runs without checking Virgil's signature.
func ServiceKeyFor(apiURL string, override *PublicKey) (*PublicKey, error) {
	switch {
	case override != nil:
		return override, nil
	case strings.TrimRight(apiURL, "/") == VirgilAPIURL:
		return VirgilCardsServiceKey(), nil
	}
	return nil, fmt.Errorf("%w %q: give the key of its card signatures", ErrNoServiceKey, apiURL)
}

// VirgilCardsServiceKey returns the public key of VirgilCardsServiceKeyBase64.
func VirgilCardsServiceKey() *PublicKey {
	k, err := ParsePublicKeyBase64(VirgilCardsServiceKeyBase64)
	if err != nil {
		panic("virgil: built-in service key does not parse: " + err.Error())
	}
	return k
}

// RawSignature is one entry of a raw card's signatures.
type RawSignature struct {
	// Signer is "self", "virgil" or another signer name.
	Signer string `json:"signer"`
	// Signature is a Virgil signature (section 2.5) over the content snapshot
	// followed by Snapshot.
	Signature []byte `json:"signature"`
	// Snapshot holds extra signed bytes; E3Kit never sets it.
	Snapshot []byte `json:"snapshot,omitempty"`
}

// RawCard is a Cards v5 raw signed model. ContentSnapshot is kept as the exact
// bytes that were signed; it is never re-serialized. Its JSON form is the
// wire format (content_snapshot and signatures base64, in the client's key
// order).
type RawCard struct {
	// ContentSnapshot is the card content JSON, as signed.
	ContentSnapshot []byte `json:"content_snapshot"`
	// Signatures are the card's signatures, "self" first.
	Signatures []RawSignature `json:"signatures"`
}

// ParseRawCard parses the JSON of a raw signed model. It checks the JSON shape
// only; use (*RawCard).Card to parse and check the content.
func ParseRawCard(data []byte) (*RawCard, error) {
	if len(data) > maxCardSize {
		return nil, fmt.Errorf("virgil: parse raw card: larger than %d bytes: %w", maxCardSize, ErrInvalidCard)
	}
	var rc RawCard
	if err := json.Unmarshal(data, &rc); err != nil {
		return nil, fmt.Errorf("virgil: parse raw card: %w: %w", ErrInvalidCard, err)
	}
	if len(rc.ContentSnapshot) == 0 {
		return nil, fmt.Errorf("virgil: parse raw card: empty content_snapshot: %w", ErrInvalidCard)
	}
	return &rc, nil
}

// MarshalJSON returns the wire JSON of c.
func (c *RawCard) MarshalJSON() ([]byte, error) {
	type plain RawCard // no MarshalJSON: avoids recursion
	p := plain(*c)
	if p.Signatures == nil {
		p.Signatures = []RawSignature{}
	}
	return json.Marshal(p)
}

// ID returns the card id: hex(SHA-512(ContentSnapshot)[0:32]).
func (c *RawCard) ID() string { return CardID(c.ContentSnapshot) }

// CardID returns hex(SHA-512(snapshot)[0:32]), the id of the card with that
// content snapshot.
func CardID(snapshot []byte) string {
	h := sha512.Sum512(snapshot)
	return hex.EncodeToString(h[:32])
}

// Signature returns the signature entry of signer, or nil.
func (c *RawCard) Signature(signer string) *RawSignature {
	for i := range c.Signatures {
		if c.Signatures[i].Signer == signer {
			return &c.Signatures[i]
		}
	}
	return nil
}

// Sign appends a signature by key under the signer name (for example
// SignerVirgil for a Cards service). It fails when signer already signed.
func (c *RawCard) Sign(signer string, key *PrivateKey) error {
	if c.Signature(signer) != nil {
		return fmt.Errorf("virgil: sign card %s: already signed by %q: %w", c.ID(), signer, ErrInvalidCard)
	}
	c.Signatures = append(c.Signatures, RawSignature{Signer: signer, Signature: key.Sign(c.ContentSnapshot)})
	return nil
}

// VerifySignature checks signer's signature on c with key.
func (c *RawCard) VerifySignature(signer string, key *PublicKey) error {
	s := c.Signature(signer)
	if s == nil {
		return fmt.Errorf("virgil: card %s: no %q signature: %w", c.ID(), signer, ErrInvalidCard)
	}
	signed := append(bytes.Clone(c.ContentSnapshot), s.Snapshot...)
	if err := key.Verify(signed, s.Signature); err != nil {
		return fmt.Errorf("virgil: card %s: %q signature: %w: %w", c.ID(), signer, ErrInvalidCard, err)
	}
	return nil
}

// Clone returns a deep copy of c.
func (c *RawCard) Clone() *RawCard {
	out := &RawCard{ContentSnapshot: bytes.Clone(c.ContentSnapshot)}
	for _, s := range c.Signatures {
		out.Signatures = append(out.Signatures, RawSignature{
			Signer: s.Signer, Signature: bytes.Clone(s.Signature), Snapshot: bytes.Clone(s.Snapshot),
		})
	}
	return out
}

// NewRawCard builds and self-signs the card E3Kit publishes for key and
// identity: the snapshot is byte-identical to the JavaScript SDK's. previous
// is the id of the card it replaces ("" for a first card). createdAt is kept
// to the second.
func NewRawCard(key *PrivateKey, identity, previous string, createdAt time.Time) (*RawCard, error) {
	if err := ValidateIdentity(identity); err != nil {
		return nil, fmt.Errorf("virgil: new card: %w", err)
	}
	if previous != "" && !isCardID(previous) {
		return nil, fmt.Errorf("virgil: new card: previous card id %q is not 64 hex characters: %w", previous, ErrInvalidCard)
	}
	var b bytes.Buffer
	b.WriteString(`{"identity":`)
	b.Write(jsonString(identity))
	if previous != "" {
		b.WriteString(`,"previous_card_id":"` + previous + `"`)
	}
	b.WriteString(`,"created_at":` + strconv.FormatInt(createdAt.Unix(), 10))
	b.WriteString(`,"version":"` + CardVersion + `","public_key":"` + key.Public().MarshalSPKIBase64() + `"}`)
	rc := &RawCard{ContentSnapshot: b.Bytes()}
	if err := rc.Sign(SignerSelf, key); err != nil {
		return nil, err
	}
	return rc, nil
}

func isCardID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Card is a parsed and checked card.
type Card struct {
	// ID is the card id.
	ID string
	// Identity is the card's identity.
	Identity string
	// PublicKey is the card key.
	PublicKey *PublicKey
	// PreviousCardID is the id of the card this one replaces, or "".
	PreviousCardID string
	// CreatedAt is the creation time (seconds).
	CreatedAt time.Time
	// Version is the snapshot version ("5.0").
	Version string
	// Raw is the raw signed model the card was parsed from.
	Raw *RawCard
	// Outdated is set by LinkCards when another card replaces this one.
	Outdated bool
	// Previous is set by LinkCards to the card this one replaces, when found.
	Previous *Card

	digest [32]byte // SHA-256 of the bytes it was parsed from, when served
}

type cardContent struct {
	Identity       *string `json:"identity"`
	PreviousCardID string  `json:"previous_card_id"`
	CreatedAt      *int64  `json:"created_at"`
	Version        string  `json:"version"`
	PublicKey      *string `json:"public_key"`
}

// Card parses c's content snapshot and checks the self signature. It does not
// check the service signature (see Card.Verify).
func (c *RawCard) Card() (*Card, error) {
	id := c.ID()
	if len(c.ContentSnapshot) > maxCardSize {
		return nil, fmt.Errorf("virgil: card %s: snapshot larger than %d bytes: %w", id, maxCardSize, ErrInvalidCard)
	}
	var cc cardContent
	if err := json.Unmarshal(c.ContentSnapshot, &cc); err != nil {
		return nil, fmt.Errorf("virgil: card %s: snapshot: %w: %w", id, ErrInvalidCard, err)
	}
	if cc.Identity == nil || cc.CreatedAt == nil || cc.PublicKey == nil {
		return nil, fmt.Errorf("virgil: card %s: snapshot lacks identity, created_at or public_key: %w", id, ErrInvalidCard)
	}
	if cc.Version != CardVersion {
		return nil, fmt.Errorf("virgil: card %s: version %q: %w", id, cc.Version, ErrInvalidCard)
	}
	if err := ValidateIdentity(*cc.Identity); err != nil {
		return nil, fmt.Errorf("virgil: card %s: %w: %w", id, ErrInvalidCard, err)
	}
	if cc.PreviousCardID != "" && !isCardID(cc.PreviousCardID) {
		return nil, fmt.Errorf("virgil: card %s: previous_card_id %q: %w", id, cc.PreviousCardID, ErrInvalidCard)
	}
	der, err := base64.StdEncoding.DecodeString(*cc.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("virgil: card %s: public_key base64: %w", id, ErrInvalidCard)
	}
	pub, err := ParsePublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("virgil: card %s: %w: %w", id, ErrInvalidCard, err)
	}
	if err := c.VerifySignature(SignerSelf, pub); err != nil {
		return nil, err
	}
	return &Card{
		ID: id, Identity: *cc.Identity, PublicKey: pub, PreviousCardID: cc.PreviousCardID,
		CreatedAt: time.Unix(*cc.CreatedAt, 0), Version: cc.Version, Raw: c,
	}, nil
}

// Verify checks the service ("virgil") signature of c with serviceKey; a nil
// serviceKey skips the check. The self signature was checked by RawCard.Card.
func (c *Card) Verify(serviceKey *PublicKey) error {
	if serviceKey == nil {
		return nil
	}
	return c.Raw.VerifySignature(SignerVirgil, serviceKey)
}

// LinkCards links card chains as the official CardManager does: a card named
// by another card's previous_card_id is marked Outdated, attached as that
// card's Previous and dropped. The result keeps the input order.
func LinkCards(cards []*Card) []*Card {
	byID := make(map[string]*Card, len(cards))
	for _, c := range cards {
		byID[c.ID] = c
	}
	for _, c := range cards {
		if c.PreviousCardID == "" {
			continue
		}
		if prev, ok := byID[c.PreviousCardID]; ok && prev.Identity == c.Identity {
			prev.Outdated = true
			c.Previous = prev
		}
	}
	out := make([]*Card, 0, len(cards))
	for _, c := range cards {
		if !c.Outdated {
			out = append(out, c)
		}
	}
	return out
}
