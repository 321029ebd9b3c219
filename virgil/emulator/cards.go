package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/groupsync/groupsync/virgil"
)

// snapshotFields are the card content fields the service checks.
type snapshotFields struct {
	Identity       *string `json:"identity"`
	PreviousCardID *string `json:"previous_card_id"`
	CreatedAt      *int64  `json:"created_at"`
	Version        *string `json:"version"`
	PublicKey      *string `json:"public_key"`
}

// publishCard serves POST /card/v5.
func (e *Emulator) publishCard(r *request) (response, *Error) {
	raw, err := virgil.ParseRawCard(r.body)
	if err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not a raw signed card")
	}
	var sf snapshotFields
	if err := json.Unmarshal(raw.ContentSnapshot, &sf); err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "content snapshot is not a JSON object")
	}
	if sf.Version == nil || *sf.Version != virgil.CardVersion {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "card version must be %q", virgil.CardVersion)
	}
	if sf.CreatedAt == nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "created_at is missing")
	}
	if sf.Identity == nil || *sf.Identity == "" || virgil.ValidateIdentity(*sf.Identity) != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeIdentityMismatch, "identity is empty or not printable ASCII")
	}
	if *sf.Identity != r.caller {
		return response{}, apiErr(http.StatusBadRequest, CodeIdentityMismatch, "card identity differs from the token identity")
	}
	if sf.PublicKey == nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidPublicKey, "public_key is missing")
	}
	der, err := base64.StdEncoding.DecodeString(*sf.PublicKey)
	if err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidPublicKey, "public_key is not base64")
	}
	pub, err := virgil.ParsePublicKey(der)
	if err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidPublicKey, "public_key does not import")
	}
	if raw.Signature(virgil.SignerSelf) == nil {
		return response{}, apiErr(http.StatusBadRequest, CodeSelfSignatureMissing, "the card has no self signature")
	}
	if raw.Signature(virgil.SignerVirgil) != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "a virgil signature must not be sent")
	}
	seen := map[string]bool{}
	for _, s := range raw.Signatures {
		if seen[s.Signer] || s.Signer == "" {
			return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "empty or repeated signer")
		}
		seen[s.Signer] = true
	}
	if err := raw.VerifySignature(virgil.SignerSelf, pub); err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeSelfSignatureInvalid, "the self signature does not verify")
	}
	parsed, err := raw.Card() // the client library's own checks, as a last word
	if err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "invalid card")
	}
	served := raw.Clone()
	if err := served.Sign(virgil.SignerVirgil, e.serviceKey); err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "signing the card failed")
	}
	c := &card{Raw: served, ID: parsed.ID, Identity: parsed.Identity, Previous: parsed.PreviousCardID}

	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.st.byID[c.ID]; dup {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "card %s already exists", c.ID)
	}
	var prev *card
	if c.Previous != "" {
		prev = e.st.byID[c.Previous]
		switch {
		case prev == nil:
			return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "previous card %s not found", c.Previous)
		case prev.Identity != c.Identity:
			return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "previous card belongs to another identity")
		case prev.superseded():
			return response{}, apiErr(http.StatusBadRequest, CodeInvalidCard, "previous card %s is already replaced or revoked", c.Previous)
		}
	}
	change := record{Cards: []*card{c}}
	if prev != nil {
		replaced := *prev
		replaced.SupersededBy = c.ID
		change.Cards = append(change.Cards, &replaced)
	}
	if apiE := e.commitLocked(r, change); apiE != nil {
		return response{}, apiE
	}
	return jsonResponse(served)
}

type searchRequest struct {
	Identities []string `json:"identities"`
}

// searchCards serves POST /card/v5/actions/search: every card of the listed
// identities that is not revoked, replaced ones included (clients link
// chains), in publication order.
func (e *Emulator) searchCards(r *request) (response, *Error) {
	var req searchRequest
	if err := json.Unmarshal(r.body, &req); err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not {\"identities\":[...]}")
	}
	if len(req.Identities) == 0 {
		return response{}, apiErr(http.StatusBadRequest, CodeEmptyIdentities, "identities must not be empty")
	}
	if len(req.Identities) > e.cfg.MaxSearchIdentities {
		return response{}, apiErr(http.StatusBadRequest, CodeEmptyIdentities, "at most %d identities per search", e.cfg.MaxSearchIdentities)
	}
	want := make(map[string]bool, len(req.Identities))
	for _, id := range req.Identities {
		if id == "" {
			return response{}, apiErr(http.StatusBadRequest, CodeIdentityMismatch, "empty identity")
		}
		want[id] = true
	}
	var found []*card
	e.mu.Lock()
	for id := range want {
		for _, c := range e.st.byIdentity[id] {
			if !c.Revoked {
				found = append(found, c)
			}
		}
	}
	slices.SortFunc(found, func(a, b *card) int { return a.order - b.order })
	out := make([]*virgil.RawCard, 0, len(found))
	for _, c := range found {
		out = append(out, c.Raw)
	}
	resp, apiE := jsonResponse(out)
	e.mu.Unlock()
	return resp, apiE
}

// getCard serves GET /card/v5/{id}.
func (e *Emulator) getCard(r *request) (response, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.st.byID[r.param]
	if c == nil {
		return response{}, apiErr(http.StatusNotFound, CodeCardNotFound, "Requested card entity not found.")
	}
	if c.superseded() {
		r.header.Set(headerSuperseded, "true")
	}
	return jsonResponse(c.Raw)
}

// revokeCard serves POST /card/v5/actions/revoke/{id}; revoking twice is
// accepted.
func (e *Emulator) revokeCard(r *request) (response, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.st.byID[r.param]
	if c == nil {
		return response{}, apiErr(http.StatusNotFound, CodeCardNotFound, "Requested card entity not found.")
	}
	if c.Identity != r.caller {
		return response{}, apiErr(http.StatusForbidden, CodeForbidden, "the card belongs to another identity")
	}
	if c.Revoked {
		return response{}, nil
	}
	revoked := *c
	revoked.Revoked = true
	if apiE := e.commitLocked(r, record{Cards: []*card{&revoked}}); apiE != nil {
		return response{}, apiE
	}
	return response{}, nil
}
