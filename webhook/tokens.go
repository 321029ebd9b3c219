package webhook

import (
	"errors"
	"fmt"

	"github.com/groupsync/groupsync/virgil"
)

// VirgilTokens is the TokenIssuer of a Virgil application: it signs JWTs
// with Generator. It is safe for concurrent use once Generator is set up.
type VirgilTokens struct {
	// Generator signs the tokens (app id, app key id, app key, lifetime).
	Generator *virgil.JWTGenerator
}

var _ TokenIssuer = VirgilTokens{}

// IssueToken returns a fresh Virgil JWT for identity. It fails when the
// generator is missing or misconfigured, or identity is not a valid Virgil
// identity.
func (v VirgilTokens) IssueToken(identity string) (string, error) {
	if v.Generator == nil {
		return "", errors.New("webhook: issue token: no JWT generator")
	}
	tok, err := v.Generator.Generate(identity)
	if err != nil {
		return "", fmt.Errorf("webhook: issue token: %w", err)
	}
	return tok.Value(), nil
}
