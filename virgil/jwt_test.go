package virgil_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

type jwtFile struct {
	AppID     string `json:"app_id"`
	AppKeyID  string `json:"app_key_id"`
	AppKey    string `json:"app_key_base64"`
	AppPublic string `json:"app_public_key_base64"`
	TTL       int64  `json:"ttl_seconds"`
	Tokens    []struct {
		Identity     string          `json:"identity"`
		Ada          json.RawMessage `json:"ada"`
		Iat          int64           `json:"iat"`
		Exp          int64           `json:"exp"`
		HeaderJSON   string          `json:"header_json"`
		BodyJSON     string          `json:"body_json"`
		SigningInput string          `json:"signing_input"`
		SignatureHex string          `json:"signature_der_hex"`
		Token        string          `json:"token"`
	} `json:"tokens"`
	PlainSignature struct {
		Signer       string `json:"signer"`
		Message      string `json:"message_utf8"`
		SignatureDER string `json:"signature_der_b64"`
		SignatureRaw string `json:"signature_raw_ed25519_hex"`
	} `json:"plain_signature_example"`
}

type jwtBundle struct {
	file jwtFile
	gen  *virgil.JWTGenerator
	keys map[string]*virgil.PublicKey
}

func setupJWT(tb testing.TB, now time.Time) jwtBundle {
	tb.Helper()
	var jf jwtFile
	testkit.LoadVector(tb, "jwt.json", &jf)
	key, err := virgil.ParsePrivateKeyBase64(jf.AppKey)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := virgil.ParsePublicKeyBase64(jf.AppPublic)
	if err != nil {
		tb.Fatal(err)
	}
	return jwtBundle{
		file: jf,
		gen: &virgil.JWTGenerator{
			AppID: jf.AppID, AppKeyID: jf.AppKeyID, AppKey: key,
			TTL: time.Duration(jf.TTL) * time.Second, Now: func() time.Time { return now },
		},
		keys: map[string]*virgil.PublicKey{jf.AppKeyID: pub},
	}
}

func TestJWTGenerateMatchesVectors(t *testing.T) {
	var jf jwtFile
	testkit.LoadVector(t, "jwt.json", &jf)
	for _, tv := range jf.Tokens {
		name := tv.Identity
		if tv.Ada != nil && string(tv.Ada) != "null" {
			name += "/ada"
		}
		t.Run(name, func(t *testing.T) {
			b := setupJWT(t, time.Unix(tv.Iat, 0))
			var tok virgil.Token
			var err error
			if tv.Ada != nil && string(tv.Ada) != "null" {
				tok, err = b.gen.GenerateWithData(tv.Identity, tv.Ada)
			} else {
				tok, err = b.gen.Generate(tv.Identity)
			}
			if err != nil {
				t.Fatalf("Generate(%q): %v", tv.Identity, err)
			}
			if tok.Value() != tv.Token {
				parts := strings.Split(tok.Value(), ".")
				h, _ := base64.RawURLEncoding.DecodeString(parts[0])
				bd, _ := base64.RawURLEncoding.DecodeString(parts[1])
				t.Fatalf("Generate(%q) = header %s body %s, want %s %s", tv.Identity, h, bd, tv.HeaderJSON, tv.BodyJSON)
			}
			if !tok.ExpiresAt().Equal(time.Unix(tv.Exp, 0)) {
				t.Errorf("ExpiresAt() = %v, want %v", tok.ExpiresAt(), time.Unix(tv.Exp, 0))
			}
			c, err := virgil.VerifyJWT(tv.Token, jf.AppID, b.keys, time.Unix(tv.Iat+10, 0))
			if err != nil {
				t.Fatalf("VerifyJWT: %v", err)
			}
			if c.Identity != tv.Identity || c.AppID != jf.AppID || c.KeyID != jf.AppKeyID ||
				c.IssuedAt.Unix() != tv.Iat || c.ExpiresAt.Unix() != tv.Exp {
				t.Errorf("VerifyJWT claims = %+v", c)
			}
		})
	}
}

func TestVerifyJWTErrors(t *testing.T) {
	b := setupJWT(t, time.Unix(1767225600, 0))
	tv := b.file.Tokens[0]
	iat := time.Unix(tv.Iat, 0)
	other, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	forged := &virgil.JWTGenerator{AppID: b.file.AppID, AppKeyID: b.file.AppKeyID, AppKey: other, Now: b.gen.Now}
	forgedTok, err := forged.Generate("alice-uid")
	if err != nil {
		t.Fatal(err)
	}
	otherApp := *b.gen
	otherApp.AppID = "other-app"
	otherAppTok, err := otherApp.Generate("alice-uid")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tv.Token, ".")
	badHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"x","typ":"JWT","cty":"virgil-jwt;v=1"}`))
	noSub := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"virgil-x","sub":"alice","iat":1,"exp":2}`))
	tests := []struct {
		name  string
		token string
		keys  map[string]*virgil.PublicKey
		now   time.Time
		want  error
		code  int
	}{
		{"Expired", tv.Token, b.keys, time.Unix(tv.Exp+1, 0), virgil.ErrTokenExpired, virgil.CodeTokenExpired},
		{"Empty", "", b.keys, iat, virgil.ErrTokenMalformed, virgil.CodeTokenInvalid},
		{"TwoParts", parts[0] + "." + parts[1], b.keys, iat, virgil.ErrTokenMalformed, virgil.CodeTokenInvalid},
		{"BadBase64", parts[0] + ".*." + parts[2], b.keys, iat, virgil.ErrTokenMalformed, virgil.CodeTokenInvalid},
		{"WrongAlg", badHeader + "." + parts[1] + "." + parts[2], b.keys, iat, virgil.ErrTokenMalformed, virgil.CodeTokenInvalid},
		{"SubWithoutPrefix", parts[0] + "." + noSub + "." + parts[2], b.keys, iat, virgil.ErrTokenMalformed, virgil.CodeTokenInvalid},
		{"UnknownKid", tv.Token, map[string]*virgil.PublicKey{"other": b.keys[b.file.AppKeyID]}, iat, virgil.ErrTokenUnknownKey, virgil.CodeTokenInvalid},
		{"Forged", forgedTok.Value(), b.keys, iat, virgil.ErrTokenSignature, virgil.CodeTokenInvalid},
		{"ForgedAndExpired", forgedTok.Value(), b.keys, iat.Add(time.Hour), virgil.ErrTokenSignature, virgil.CodeTokenInvalid},
		{"TamperedBody", parts[0] + "." + noSub + "x." + parts[2], b.keys, iat, virgil.ErrTokenMalformed, virgil.CodeTokenInvalid},
		{"OtherApp", otherAppTok.Value(), b.keys, iat, virgil.ErrTokenIssuer, virgil.CodeTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := virgil.VerifyJWT(tt.token, b.file.AppID, tt.keys, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyJWT() = %v, want %v", err, tt.want)
			}
			var te *virgil.TokenError
			if !errors.As(err, &te) || te.Code() != tt.code {
				t.Fatalf("VerifyJWT() = %#v, want a *TokenError with code %d", err, tt.code)
			}
			if strings.Contains(err.Error(), parts[2]) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
	// exp == now is still valid (the check is exp < now).
	if _, err := virgil.VerifyJWT(tv.Token, b.file.AppID, b.keys, time.Unix(tv.Exp, 0)); err != nil {
		t.Errorf("VerifyJWT(at exp) = %v, want nil", err)
	}
}

func TestJWTGenerateRejects(t *testing.T) {
	b := setupJWT(t, time.Unix(1767225600, 0))
	for _, id := range []string{"", "müller", "tab\there"} {
		if _, err := b.gen.Generate(id); !errors.Is(err, virgil.ErrInvalidIdentity) {
			t.Errorf("Generate(%q) = %v, want ErrInvalidIdentity", id, err)
		}
	}
	if _, err := b.gen.GenerateWithData("alice-uid", json.RawMessage("{")); err == nil {
		t.Error("GenerateWithData(invalid JSON) = nil error")
	}
	if _, err := (&virgil.JWTGenerator{}).Generate("alice-uid"); err == nil {
		t.Error("Generate on an empty generator = nil error")
	}
}

func TestCachingTokenSource(t *testing.T) {
	now := time.Unix(1767225600, 0)
	b := setupJWT(t, now)
	clock := func() time.Time { return now }
	b.gen.Now = clock
	fetches := 0
	src := virgil.NewCachingTokenSource(func(context.Context) (virgil.Token, error) {
		fetches++
		return b.gen.Generate("2137f9ef75295ea")
	}, time.Minute, clock)
	ctx := context.Background()
	step := func(name string, refresh bool, wantFetches int) {
		t.Helper()
		tok, err := src.Token(ctx, refresh)
		if err != nil || tok.IsZero() {
			t.Fatalf("%s: Token() = %v, %v", name, tok, err)
		}
		if fetches != wantFetches {
			t.Fatalf("%s: fetches = %d, want %d", name, fetches, wantFetches)
		}
	}
	step("first", false, 1)
	step("cached", false, 1)
	now = now.Add(18 * time.Minute)
	step("still cached", false, 1)
	step("refresh forced", true, 2)
	now = now.Add(20*time.Minute - 30*time.Second) // within the minute margin of the new token
	step("near expiry", false, 3)
	src2 := virgil.NewCachingTokenSource(func(context.Context) (virgil.Token, error) {
		return virgil.Token{}, errors.New("down")
	}, 0, nil)
	if _, err := src2.Token(ctx, false); err == nil || !strings.HasPrefix(err.Error(), "virgil: ") {
		t.Errorf("Token() of a failing fetch = %v, want a virgil: error", err)
	}
}
