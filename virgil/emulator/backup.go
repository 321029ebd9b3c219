// Key backup: Pythia BrainKey (POST /pythia/v1/brainkey) and Keyknox v1
// (PUT and GET /keyknox/v1, POST /keyknox/v1/reset), as E3Kit's
// backupPrivateKey, restorePrivateKey, changePassword and
// resetPrivateKeyBackup use them (docs/pythia.md).

package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/virgil/pythia"
)

// Error codes of the backup endpoints (placeholders: the real service's
// codes for these cases are unknown; 60007, its BrainKey throttling code,
// is never answered).
const (
	// CodePythiaInvalidParams: a bad BrainKey request (400): blinded
	// password not base64, not 49 bytes, not a point of G1; bad brainkey_id.
	CodePythiaInvalidParams = 60000
)

// pythiaKeysFile keeps the per-application Pythia secrets in Config.Dir.
const pythiaKeysFile = "pythia-keys.json"

// brainKeyTransformationKeyID is the transformation key id of BrainKey seeds.
const brainKeyTransformationKeyID = "brainkey"

// maxBrainKeyID bounds brainkey_id (the real service's limit is unknown).
const maxBrainKeyID = 128

// Keyknox v1 values are kept as Keyknox entries of the caller under a root
// that Keyknox v2 requests may not name (keyknox.go refuses it).
const (
	keyknoxV1Root    = "(keyknox v1)"
	keyknoxV1Name    = "(value)"
	keyknoxV1Version = "1.0"
)

// appPythia is one application's Pythia secrets.
type appPythia struct {
	Secret      []byte `json:"pythia_secret"`
	ScopeSecret []byte `json:"pythia_scope_secret"`
}

// pythiaKeysDisk is the content of pythiaKeysFile.
type pythiaKeysDisk struct {
	Format int                   `json:"format"`
	Apps   map[string]*appPythia `json:"apps"`
}

// pythiaKeys holds the BrainKey transformation key of the application:
// derived from its secrets, which are created once and kept (mode 0600) in
// Config.Dir, or in memory without one.
type pythiaKeys struct {
	once sync.Once
	kp   pythia.KeyPair
	err  error
}

// loadPythia reads or creates the application's Pythia secrets and derives
// its transformation key. New calls it, so a damaged file stops the
// emulator at start.
func (e *Emulator) loadPythia() error {
	e.pythia.once.Do(func() {
		app, err := e.pythiaSecrets()
		if err == nil {
			e.pythia.kp, err = pythia.ComputeTransformationKeyPair([]byte(brainKeyTransformationKeyID), app.Secret, app.ScopeSecret)
		}
		e.pythia.err = err
	})
	return e.pythia.err
}

func newAppPythia() (*appPythia, error) {
	app := &appPythia{Secret: make([]byte, 32), ScopeSecret: make([]byte, 32)}
	if _, err := rand.Read(app.Secret); err != nil {
		return nil, fmt.Errorf("emulator: pythia secret: %w", err)
	}
	if _, err := rand.Read(app.ScopeSecret); err != nil {
		return nil, fmt.Errorf("emulator: pythia secret: %w", err)
	}
	return app, nil
}

// pythiaSecrets returns the secrets of Config.AppID, creating and storing
// them on first use.
func (e *Emulator) pythiaSecrets() (*appPythia, error) {
	if e.cfg.Dir == "" {
		return newAppPythia()
	}
	p := filepath.Join(e.cfg.Dir, pythiaKeysFile)
	disk := pythiaKeysDisk{Format: 1, Apps: map[string]*appPythia{}}
	b, err := secretfile.Read("emulator: Pythia key file", p)
	switch {
	case errors.Is(err, secretfile.ErrNotPrivate):
		return nil, err
	case err == nil:
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&disk); err != nil || disk.Format != 1 || disk.Apps == nil {
			return nil, fmt.Errorf("emulator: %s is not a Pythia key file (format 1)", p)
		}
		if app := disk.Apps[e.cfg.AppID]; app != nil {
			if len(app.Secret) < 16 || len(app.Secret) > pythia.MaxInputSize || len(app.ScopeSecret) < 16 || len(app.ScopeSecret) > pythia.MaxInputSize {
				return nil, fmt.Errorf("emulator: %s: the secrets of application %s have bad sizes", p, e.cfg.AppID)
			}
			return app, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("emulator: read Pythia keys: %w", err)
	}
	app, err := newAppPythia()
	if err != nil {
		return nil, err
	}
	disk.Apps[e.cfg.AppID] = app
	out, err := json.MarshalIndent(disk, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("emulator: encode Pythia keys: %w", err)
	}
	if err := writeFileAtomic(e.cfg.Dir, pythiaKeysFile, append(out, '\n'), 0o600); err != nil {
		return nil, err
	}
	return app, nil
}

// brainKeyTweak binds a seed to the caller and the BrainKey id: SHA-256 of
// "brainkey", NUL, the identity (printable ASCII, so without NUL) and, when
// an id is given, NUL and the id.
func brainKeyTweak(identity string, brainKeyID *string) []byte {
	h := sha256.New()
	h.Write([]byte(brainKeyTransformationKeyID + "\x00" + identity))
	if brainKeyID != nil {
		h.Write([]byte("\x00" + *brainKeyID))
	}
	return h.Sum(nil)
}

// decodeStrict decodes a JSON object body into v, refusing unknown fields
// and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

func pythiaErr(format string, args ...any) *Error {
	return apiErr(http.StatusBadRequest, CodePythiaInvalidParams, format, args...)
}

// brainKeySeed serves POST /pythia/v1/brainkey: {"blinded_password",
// "brainkey_id"?} → {"seed"}.
func (e *Emulator) brainKeySeed(r *request) (response, *Error) {
	var req struct {
		BlindedPassword *string `json:"blinded_password"`
		BrainKeyID      *string `json:"brainkey_id"`
	}
	if err := decodeStrict(r.body, &req); err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not a valid BrainKey request")
	}
	if req.BlindedPassword == nil {
		return response{}, pythiaErr("blinded_password is required")
	}
	blinded, err := base64.StdEncoding.Strict().DecodeString(*req.BlindedPassword)
	if err != nil {
		return response{}, pythiaErr("blinded_password is not base64")
	}
	if len(blinded) != pythia.G1Size {
		return response{}, pythiaErr("blinded_password has %d bytes, want %d", len(blinded), pythia.G1Size)
	}
	if id := req.BrainKeyID; id != nil && (*id == "" || len(*id) > maxBrainKeyID) {
		return response{}, pythiaErr("brainkey_id must have 1 to %d bytes", maxBrainKeyID)
	}
	if err := e.loadPythia(); err != nil {
		e.log.Error().Err(err).Msg("emulator: Pythia keys unavailable")
		return response{}, apiErr(http.StatusInternalServerError, CodeUnavailable, "Pythia keys unavailable")
	}
	tr, err := pythia.Transform(blinded, brainKeyTweak(r.caller, req.BrainKeyID), e.pythia.kp.PrivateKey)
	if errors.Is(err, pythia.ErrInvalid) {
		return response{}, pythiaErr("blinded_password is not a point of G1")
	}
	if err != nil {
		e.log.Error().Err(err).Msg("emulator: Pythia transform failed")
		return response{}, apiErr(http.StatusInternalServerError, CodeUnavailable, "transform failed")
	}
	return jsonResponse(struct {
		Seed string `json:"seed"`
	}{base64.StdEncoding.EncodeToString(tr.TransformedPassword)})
}

// keyknoxV1Value is the answer of every Keyknox v1 endpoint: base64 meta
// and value (empty strings when there is none) and a version.
type keyknoxV1Value struct {
	Meta    string `json:"meta"`
	Value   string `json:"value"`
	Version string `json:"version"`
}

func keyknoxV1Answer(b blob) (response, *Error) {
	return jsonResponse(keyknoxV1Value{
		Meta:    base64.StdEncoding.EncodeToString(b.Meta),
		Value:   base64.StdEncoding.EncodeToString(b.Value),
		Version: keyknoxV1Version,
	})
}

// keyknoxV1Push serves PUT /keyknox/v1: {"meta","value"} (base64, both
// non-empty), with Virgil-Keyknox-Previous-Hash when the caller's value
// exists (409/50010 when it is not the current hash).
func (e *Emulator) keyknoxV1Push(r *request) (response, *Error) {
	var req struct {
		Meta  *string `json:"meta"`
		Value *string `json:"value"`
	}
	if err := decodeStrict(r.body, &req); err != nil {
		return response{}, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not a valid Keyknox request")
	}
	if req.Meta == nil || req.Value == nil {
		return response{}, badParam("meta and value are required")
	}
	meta, err1 := base64.StdEncoding.Strict().DecodeString(*req.Meta)
	value, err2 := base64.StdEncoding.Strict().DecodeString(*req.Value)
	if err1 != nil || err2 != nil {
		return response{}, badParam("meta and value must be base64")
	}
	if len(meta) == 0 || len(value) == 0 {
		return response{}, badParam("meta and value must not be empty")
	}
	hash, apiE := newHash()
	if apiE != nil {
		return response{}, apiE
	}
	previous := r.http.Header.Get(headerKeyknoxPrevious)

	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.st.entry(r.caller, keyknoxV1Root, keyknoxV1Name, keyknoxV1Name)
	if en != nil && previous != en.Hash {
		return response{}, apiErr(http.StatusConflict, CodeInvalidPreviousHash, "invalid previous hash")
	}
	ref := entry{Owner: r.caller, Root: keyknoxV1Root, Path: keyknoxV1Name, Key: keyknoxV1Name, Identities: []string{}, Hash: hash}
	b := blob{Meta: meta, Value: value}
	if apiE := e.commitLocked(r, record{Patches: []entryPatch{patchOf(&ref, &b, []string{r.caller}, nil)}}); apiE != nil {
		return response{}, apiE
	}
	r.header.Set(headerKeyknoxHash, hash)
	return keyknoxV1Answer(b)
}

// keyknoxV1Pull serves GET /keyknox/v1: the caller's value, or empty meta
// and value when there is none.
func (e *Emulator) keyknoxV1Pull(r *request) (response, *Error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.st.entry(r.caller, keyknoxV1Root, keyknoxV1Name, keyknoxV1Name)
	if en == nil {
		r.header.Set(headerKeyknoxHash, resetHash)
		return keyknoxV1Answer(blob{})
	}
	r.header.Set(headerKeyknoxHash, en.Hash)
	return keyknoxV1Answer(en.Copies[r.caller])
}

// keyknoxV1Reset serves POST /keyknox/v1/reset: deletes the caller's value.
// The client sends no body; an empty JSON object is accepted too.
func (e *Emulator) keyknoxV1Reset(r *request) (response, *Error) {
	if len(bytes.TrimSpace(r.body)) > 0 {
		if err := decodeStrict(r.body, &struct{}{}); err != nil {
			return response{}, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body of a Keyknox v1 reset must be empty")
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if en := e.st.entry(r.caller, keyknoxV1Root, keyknoxV1Name, keyknoxV1Name); en != nil {
		if apiE := e.commitLocked(r, record{Deletes: []entryRef{refOf(en)}}); apiE != nil {
			return response{}, apiE
		}
	}
	r.header.Set(headerKeyknoxHash, resetHash)
	return keyknoxV1Answer(blob{})
}
