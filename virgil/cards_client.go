package virgil

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// PublishCard publishes a self-signed raw card and returns the stored model
// (normally with the service signature appended). It checks that the
// service returned the snapshot that was sent.
func (c *Client) PublishCard(ctx context.Context, card *RawCard) (*RawCard, error) {
	resp, err := c.do(ctx, http.MethodPost, "/card/v5", card, nil)
	if err != nil {
		return nil, err
	}
	stored, err := ParseRawCard(resp.body)
	if err != nil {
		return nil, fmt.Errorf("virgil: publish card %s: %w", card.ID(), err)
	}
	if !bytes.Equal(stored.ContentSnapshot, card.ContentSnapshot) {
		return nil, fmt.Errorf("virgil: publish card %s: service returned another snapshot: %w", card.ID(), ErrInvalidCard)
	}
	return stored, nil
}

// MaxSearchIdentities is the most identities one card search may name: the
// official E3Kit client never sends more (its MAX_IDENTITIES_TO_SEARCH), so
// the service is not known to accept more. Callers search in chunks of at
// most this many; the emulator refuses larger searches.
const MaxSearchIdentities = 50

type searchRequest struct {
	Identities []string `json:"identities"`
}

// SearchCards returns the cards of the given identities as the service
// lists them (chains not linked; see LinkCards). Every card's self signature
// is checked and its identity must be one that was asked for.
func (c *Client) SearchCards(ctx context.Context, identities []string) ([]*Card, error) {
	if len(identities) == 0 {
		return nil, nil
	}
	for _, id := range identities {
		if err := ValidateIdentity(id); err != nil {
			return nil, fmt.Errorf("virgil: search cards: %w", err)
		}
	}
	resp, err := c.do(ctx, http.MethodPost, "/card/v5/actions/search", searchRequest{Identities: identities}, nil)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(resp.body, &raws); err != nil {
		return nil, fmt.Errorf("virgil: search cards: response: %w: %w", ErrInvalidCard, err)
	}
	asked := make(map[string]bool, len(identities))
	for _, id := range identities {
		asked[id] = true
	}
	cards := make([]*Card, 0, len(raws))
	for _, r := range raws {
		card, err := c.parseCard(r)
		if err != nil {
			return nil, fmt.Errorf("virgil: search cards: %w", err)
		}
		if !asked[card.Identity] {
			return nil, fmt.Errorf("virgil: search cards: received a card of %q: %w", card.Identity, ErrInvalidCard)
		}
		cards = append(cards, card)
	}
	return cards, nil
}

// parseCard parses and checks a card as served, or returns a copy of the
// card parsed from the same bytes before: the same bytes give the same
// outcome, and checking a self signature costs as much as a round trip.
func (c *Client) parseCard(raw []byte) (*Card, error) {
	digest := sha256.Sum256(raw)
	if tmpl, ok := c.cards.get(digest); ok {
		cp := *tmpl
		return &cp, nil
	}
	rc, err := ParseRawCard(raw)
	if err != nil {
		return nil, err
	}
	card, err := rc.Card()
	if err != nil {
		return nil, err
	}
	card.digest = digest
	tmpl := *card
	c.cards.put(digest, &tmpl)
	return card, nil
}

// GetCard returns the card with the given id and whether the service marks it
// superseded (replaced or revoked). An unknown id yields an error matching
// ErrCardNotFound.
func (c *Client) GetCard(ctx context.Context, id string) (card *Card, superseded bool, err error) {
	if !isCardID(id) {
		return nil, false, fmt.Errorf("virgil: get card %q: not a card id: %w", id, ErrInvalidCard)
	}
	resp, err := c.do(ctx, http.MethodGet, "/card/v5/"+id, nil, nil)
	if err != nil {
		return nil, false, err
	}
	rc, err := ParseRawCard(resp.body)
	if err != nil {
		return nil, false, fmt.Errorf("virgil: get card %s: %w", id, err)
	}
	if rc.ID() != id {
		return nil, false, fmt.Errorf("virgil: get card %s: service returned card %s: %w", id, rc.ID(), ErrInvalidCard)
	}
	card, err = rc.Card()
	if err != nil {
		return nil, false, fmt.Errorf("virgil: get card %s: %w", id, err)
	}
	return card, strings.EqualFold(resp.header.Get(headerSuperseded), "true"), nil
}

// RevokeCard revokes one of the caller's cards.
func (c *Client) RevokeCard(ctx context.Context, id string) error {
	if !isCardID(id) {
		return fmt.Errorf("virgil: revoke card %q: not a card id: %w", id, ErrInvalidCard)
	}
	_, err := c.do(ctx, http.MethodPost, "/card/v5/actions/revoke/"+url.PathEscape(id), struct{}{}, nil)
	return err
}
