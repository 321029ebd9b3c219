package virgil

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// JWT constants (docs/virgil-protocol.md section 3).
const (
	jwtAlg          = "VEDS512"
	jwtTyp          = "JWT"
	jwtCty          = "virgil-jwt;v=1"
	jwtIssuerPrefix = "virgil-"
	jwtSubPrefix    = "identity-"
	// DefaultTokenTTL is the lifetime of generated tokens when JWTGenerator.TTL
	// is zero; it is the JavaScript generator's default.
	DefaultTokenTTL = 20 * time.Minute
	// maxTokenSize bounds the tokens VerifyJWT and ParseToken accept.
	maxTokenSize = 16 << 10
)

// Virgil service error codes known to clients (docs/virgil-protocol.md section 10).
const (
	// CodeCardNotFound is the Cards error for an unknown card id.
	CodeCardNotFound = 10001
	// CodeAuthMissing is the error for a missing or unsupported Authorization header.
	CodeAuthMissing = 20300
	// CodeTokenInvalid is the error for a malformed token, a bad signature, an
	// unknown key id or a wrong issuer.
	CodeTokenInvalid = 20303
	// CodeTokenExpired is the error for an expired token; clients fetch a fresh
	// token and retry once.
	CodeTokenExpired = 20304
	// CodeInvalidPreviousHash is the Keyknox error for a push whose previous
	// hash does not match the stored entry.
	CodeInvalidPreviousHash = 50010
)

// Sentinel reasons of a TokenError, for errors.Is.
var (
	// ErrTokenMalformed: the token is not three base64url parts of valid JSON
	// with the Virgil header and claims.
	ErrTokenMalformed = errors.New("virgil: malformed token")
	// ErrTokenUnknownKey: the header kid names no known application key.
	ErrTokenUnknownKey = errors.New("virgil: token signed with an unknown key id")
	// ErrTokenSignature: the signature does not verify.
	ErrTokenSignature = errors.New("virgil: token signature does not verify")
	// ErrTokenIssuer: the issuer is not the expected application.
	ErrTokenIssuer = errors.New("virgil: token issued for another application")
	// ErrTokenExpired: the token expired (exp < now).
	ErrTokenExpired = errors.New("virgil: token expired")
)

// TokenError is returned by VerifyJWT and ParseToken. Reason is one of the
// ErrToken* sentinels, matched by errors.Is.
type TokenError struct {
	// Reason is the ErrToken* sentinel.
	Reason error
	// Detail says what exactly was wrong; it never contains the token.
	Detail string
}

// Error implements error.
func (e *TokenError) Error() string {
	if e.Detail == "" {
		return e.Reason.Error()
	}
	return e.Reason.Error() + ": " + e.Detail
}

// Unwrap returns Reason.
func (e *TokenError) Unwrap() error { return e.Reason }

// Code returns the Virgil service error code for e: CodeTokenExpired for an
// expired token, CodeTokenInvalid otherwise.
func (e *TokenError) Code() int {
	if errors.Is(e.Reason, ErrTokenExpired) {
		return CodeTokenExpired
	}
	return CodeTokenInvalid
}

func tokenErr(reason error, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Token is a Virgil JWT. It is a bearer secret: String, GoString, Format,
// MarshalJSON and MarshalText yield REDACTED; Value returns the raw string.
type Token struct {
	raw     string
	expires time.Time
}

// Value returns the raw token string for the Authorization header.
func (t Token) Value() string { return t.raw }

// IsZero reports whether t holds no token.
func (t Token) IsZero() bool { return t.raw == "" }

// ExpiresAt returns the token's exp claim (zero when unknown).
func (t Token) ExpiresAt() time.Time { return t.expires }

// String returns REDACTED.
func (t Token) String() string { return redacted }

// GoString returns REDACTED.
func (t Token) GoString() string { return redacted }

// Format prints REDACTED for every verb.
func (t Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON returns the JSON string "REDACTED".
func (t Token) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns REDACTED.
func (t Token) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Claims are the verified contents of a Virgil JWT.
type Claims struct {
	// KeyID is the header kid (the App Key id).
	KeyID string
	// AppID is iss without the "virgil-" prefix.
	AppID string
	// Identity is sub without the "identity-" prefix.
	Identity string
	// IssuedAt and ExpiresAt are iat and exp.
	IssuedAt, ExpiresAt time.Time
	// Additional is the raw "ada" claim, nil when absent.
	Additional json.RawMessage
}

// JWTGenerator makes Virgil JWTs for an application, byte-identical to the
// JavaScript JwtGenerator. It is safe for concurrent use once configured.
type JWTGenerator struct {
	// AppID is the Virgil application id (iss is "virgil-" + AppID).
	AppID string
	// AppKeyID is the id of AppKey (the header kid).
	AppKeyID string
	// AppKey signs the tokens.
	AppKey *PrivateKey
	// TTL is the token lifetime; zero means DefaultTokenTTL.
	TTL time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Generate returns a token for identity, valid from now for TTL.
func (g *JWTGenerator) Generate(identity string) (Token, error) {
	return g.GenerateWithData(identity, nil)
}

// GenerateWithData returns a token for identity with additional data ("ada")
// when ada is not nil; ada must be valid JSON.
func (g *JWTGenerator) GenerateWithData(identity string, ada json.RawMessage) (Token, error) {
	if g.AppKey == nil || g.AppID == "" || g.AppKeyID == "" {
		return Token{}, errors.New("virgil: generate token: generator needs AppID, AppKeyID and AppKey")
	}
	if err := ValidateIdentity(identity); err != nil {
		return Token{}, fmt.Errorf("virgil: generate token: %w", err)
	}
	if ada != nil && !json.Valid(ada) {
		return Token{}, errors.New("virgil: generate token: additional data is not valid JSON")
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	ttl := g.TTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	iat := now().Unix()
	exp := iat + int64(ttl/time.Second)

	var header, body bytes.Buffer
	header.WriteString(`{"alg":"` + jwtAlg + `","kid":`)
	header.Write(jsonString(g.AppKeyID))
	header.WriteString(`,"typ":"` + jwtTyp + `","cty":"` + jwtCty + `"}`)
	body.WriteString(`{"iss":`)
	body.Write(jsonString(jwtIssuerPrefix + g.AppID))
	body.WriteString(`,"sub":`)
	body.Write(jsonString(jwtSubPrefix + identity))
	body.WriteString(`,"iat":` + strconv.FormatInt(iat, 10) + `,"exp":` + strconv.FormatInt(exp, 10))
	if ada != nil {
		var compact bytes.Buffer
		if err := json.Compact(&compact, ada); err != nil {
			return Token{}, fmt.Errorf("virgil: generate token: additional data: %w", err)
		}
		body.WriteString(`,"ada":`)
		body.Write(compact.Bytes())
	}
	body.WriteByte('}')

	input := b64url(header.Bytes()) + "." + b64url(body.Bytes())
	sig := g.AppKey.Sign([]byte(input))
	return Token{raw: input + "." + b64url(sig), expires: time.Unix(exp, 0)}, nil
}

// jsonString encodes s as a JSON string without HTML escaping, as
// JavaScript's JSON.stringify does.
func jsonString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
	Cty string `json:"cty"`
}

type jwtBody struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Iat *int64          `json:"iat"`
	Exp *int64          `json:"exp"`
	Ada json.RawMessage `json:"ada,omitempty"`
}

// parsedJWT is a syntactically valid token before any signature check.
type parsedJWT struct {
	input  string
	sig    []byte
	claims Claims
}

func parseJWT(token string) (*parsedJWT, error) {
	if len(token) > maxTokenSize {
		return nil, tokenErr(ErrTokenMalformed, "longer than %d bytes", maxTokenSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, tokenErr(ErrTokenMalformed, "want 3 parts, got %d", len(parts))
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	bb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, tokenErr(ErrTokenMalformed, "base64url")
	}
	var h jwtHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, tokenErr(ErrTokenMalformed, "header JSON")
	}
	if h.Alg != jwtAlg || h.Typ != jwtTyp || h.Cty != jwtCty {
		return nil, tokenErr(ErrTokenMalformed, "header alg/typ/cty %q/%q/%q", h.Alg, h.Typ, h.Cty)
	}
	var b jwtBody
	if err := json.Unmarshal(bb, &b); err != nil {
		return nil, tokenErr(ErrTokenMalformed, "body JSON")
	}
	if b.Iat == nil || b.Exp == nil {
		return nil, tokenErr(ErrTokenMalformed, "missing iat or exp")
	}
	appID, ok1 := strings.CutPrefix(b.Iss, jwtIssuerPrefix)
	identity, ok2 := strings.CutPrefix(b.Sub, jwtSubPrefix)
	if !ok1 || !ok2 {
		return nil, tokenErr(ErrTokenMalformed, "iss or sub without its prefix")
	}
	if err := ValidateIdentity(identity); err != nil {
		return nil, tokenErr(ErrTokenMalformed, "identity: %v", err)
	}
	return &parsedJWT{
		input: parts[0] + "." + parts[1],
		sig:   sig,
		claims: Claims{
			KeyID: h.Kid, AppID: appID, Identity: identity,
			IssuedAt: time.Unix(*b.Iat, 0), ExpiresAt: time.Unix(*b.Exp, 0),
			Additional: b.Ada,
		},
	}, nil
}

// ParseToken parses a token string WITHOUT verifying its signature or
// expiry, to learn its claims (for example the expiry of a token received
// from a token endpoint). Errors are *TokenError with ErrTokenMalformed.
func ParseToken(token string) (Token, *Claims, error) {
	p, err := parseJWT(token)
	if err != nil {
		return Token{}, nil, err
	}
	return Token{raw: token, expires: p.claims.ExpiresAt}, &p.claims, nil
}

// VerifyJWT verifies token as the Virgil services do: Virgil header, kid
// present in keys, signature, iss == "virgil-"+appID and exp >= now. Errors
// are *TokenError; errors.Is distinguishes ErrTokenExpired (code 20304) from
// ErrTokenMalformed, ErrTokenUnknownKey, ErrTokenSignature and ErrTokenIssuer
// (code 20303).
func VerifyJWT(token, appID string, keys map[string]*PublicKey, now time.Time) (*Claims, error) {
	p, err := parseJWT(token)
	if err != nil {
		return nil, err
	}
	key := keys[p.claims.KeyID]
	if key == nil {
		return nil, tokenErr(ErrTokenUnknownKey, "kid %q", p.claims.KeyID)
	}
	if err := key.Verify([]byte(p.input), p.sig); err != nil {
		return nil, tokenErr(ErrTokenSignature, "kid %q", p.claims.KeyID)
	}
	if p.claims.AppID != appID {
		return nil, tokenErr(ErrTokenIssuer, "app id %q", p.claims.AppID)
	}
	if p.claims.ExpiresAt.Unix() < now.Unix() {
		return nil, tokenErr(ErrTokenExpired, "expired at %s", p.claims.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return &p.claims, nil
}
