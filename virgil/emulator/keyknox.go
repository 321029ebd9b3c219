package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/groupsync/groupsync/virgil"
)

// Keyknox limits (the real service's are unknown).
const (
	maxKeyknoxName       = 1024 // root, path, key
	maxKeyknoxIdentities = 1000
)

// resetHash is the hash header of reset answers: base64(SHA-256 of nothing),
// as the reference server of the capture sends.
var resetHash = func() string {
	h := sha256.Sum256(nil)
	return base64.StdEncoding.EncodeToString(h[:])
}()

type pushRequest struct {
	Root       string    `json:"root"`
	Path       string    `json:"path"`
	Key        string    `json:"key"`
	Identities *[]string `json:"identities"`
	Meta       []byte    `json:"meta"`
	Value      []byte    `json:"value"`
}

type pullRequest struct {
	Root     string `json:"root"`
	Path     string `json:"path"`
	Key      string `json:"key"`
	Identity string `json:"identity"`
}

func decodeKeyknox(body []byte, v any) *Error {
	if err := json.Unmarshal(body, v); err != nil {
		return apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not a valid Keyknox request")
	}
	return nil
}

func badParam(format string, args ...any) *Error {
	return apiErr(http.StatusBadRequest, CodeKeyknoxInvalidParams, format, args...)
}

// checkNames validates root/path/key; required ones must be non-empty, and
// none may be the root that keeps Keyknox v1 values (backup.go).
func checkNames(required bool, names ...string) *Error {
	for _, n := range names {
		if n == keyknoxV1Root {
			return badParam("%q is reserved", n)
		}
		if n == "" && required {
			return badParam("root, path and key must not be empty")
		}
		if len(n) > maxKeyknoxName {
			return badParam("root, path or key longer than %d bytes", maxKeyknoxName)
		}
	}
	return nil
}

func checkIdentity(id string) *Error {
	if id == "" {
		return nil
	}
	if err := virgil.ValidateIdentity(id); err != nil {
		return badParam("identity is not printable ASCII or too long")
	}
	return nil
}

func newHash() (string, *Error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", apiErr(http.StatusInternalServerError, CodeUnavailable, "no randomness")
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// valueObject is the answer of push, pull and reset.
func valueObject(owner, root, path, key string, identities []string, b blob) (response, *Error) {
	return jsonResponse(virgil.KeyknoxEntry{
		Owner: owner, Root: root, Path: path, Key: key,
		Identities: append([]string{}, identities...), Meta: b.Meta, Value: b.Value,
	})
}

// keyknoxPush serves POST /keyknox/v2/push.
func (e *Emulator) keyknoxPush(r *request) (response, *Error) {
	var req pushRequest
	if apiE := decodeKeyknox(r.body, &req); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkNames(true, req.Root, req.Path, req.Key); apiE != nil {
		return response{}, apiE
	}
	if req.Identities == nil || len(*req.Identities) == 0 {
		return response{}, badParam("identities must be a non-empty array")
	}
	ids := *req.Identities
	if len(ids) > maxKeyknoxIdentities {
		return response{}, badParam("at most %d identities", maxKeyknoxIdentities)
	}
	for _, id := range ids {
		if id == "" {
			return response{}, badParam("empty identity")
		}
		if apiE := checkIdentity(id); apiE != nil {
			return response{}, apiE
		}
	}
	if len(req.Meta) == 0 || len(req.Value) == 0 {
		return response{}, badParam("meta and value must not be empty")
	}
	hash, apiE := newHash()
	if apiE != nil {
		return response{}, apiE
	}
	previous := r.http.Header.Get(headerKeyknoxPrevious)

	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.st.entry(r.caller, req.Root, req.Path, req.Key)
	if en != nil && previous != en.Hash {
		return response{}, apiErr(http.StatusConflict, CodeInvalidPreviousHash, "invalid previous hash")
	}
	var identities []string
	if en != nil {
		identities = slices.Clone(en.Identities)
	}
	for _, id := range ids {
		if !contains(identities, id) {
			identities = append(identities, id)
		}
	}
	b := blob{Meta: req.Meta, Value: req.Value}
	ref := entryRef{Owner: r.caller, Root: req.Root, Path: req.Path, Key: req.Key}
	set := append([]string{r.caller}, ids...)
	patch := entryPatch{entryRef: ref, Identities: identities, Hash: hash, Blob: &b, SetIDs: set}
	if apiE := e.commitLocked(r, record{Patches: []entryPatch{patch}}); apiE != nil {
		return response{}, apiE
	}
	en = e.st.entry(r.caller, req.Root, req.Path, req.Key)
	e.recordLocked(pathKey{en.Owner, en.Root, en.Path})
	r.header.Set(headerKeyknoxHash, en.Hash)
	return valueObject(en.Owner, en.Root, en.Path, en.Key, en.Identities, b)
}

// keyknoxPull serves POST /keyknox/v2/pull: the caller's copy, or an empty
// value object when the entry is missing or not shared with the caller.
func (e *Emulator) keyknoxPull(r *request) (response, *Error) {
	var req pullRequest
	if apiE := decodeKeyknox(r.body, &req); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkNames(true, req.Root, req.Path, req.Key); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkIdentity(req.Identity); apiE != nil {
		return response{}, apiE
	}
	owner := req.Identity
	if owner == "" {
		owner = r.caller
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	en := e.st.entry(owner, req.Root, req.Path, req.Key)
	if en == nil || !en.readable(r.caller) {
		r.header.Set(headerKeyknoxHash, resetHash)
		return valueObject(owner, req.Root, req.Path, req.Key, nil, blob{})
	}
	r.header.Set(headerKeyknoxHash, en.Hash)
	return valueObject(en.Owner, en.Root, en.Path, en.Key, en.Identities, en.Copies[r.caller])
}

// keyknoxKeys serves POST /keyknox/v2/keys.
func (e *Emulator) keyknoxKeys(r *request) (response, *Error) {
	var req pullRequest
	if apiE := decodeKeyknox(r.body, &req); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkNames(true, req.Root, req.Path); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkIdentity(req.Identity); apiE != nil {
		return response{}, apiE
	}
	owner := req.Identity
	if owner == "" {
		owner = r.caller
	}
	keys := []string{}
	e.mu.Lock()
	for k, en := range e.st.entries[pathKey{owner, req.Root, req.Path}] {
		if en.readable(r.caller) {
			keys = append(keys, k)
		}
	}
	e.mu.Unlock()
	sortKeys(keys)
	return jsonResponse(keys)
}

// keyknoxReset serves POST /keyknox/v2/reset: with an identity other than
// the caller it revokes that identity's access to the selected entries
// (their hash stays), otherwise it deletes them.
func (e *Emulator) keyknoxReset(r *request) (response, *Error) {
	var req pullRequest
	if apiE := decodeKeyknox(r.body, &req); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkNames(true, req.Root); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkNames(false, req.Path, req.Key); apiE != nil {
		return response{}, apiE
	}
	if apiE := checkIdentity(req.Identity); apiE != nil {
		return response{}, apiE
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var selected []*entry
	pick := func(m map[string]*entry) {
		for k, en := range m {
			if req.Key == "" || k == req.Key {
				selected = append(selected, en)
			}
		}
	}
	if req.Path != "" {
		pick(e.st.entries[pathKey{r.caller, req.Root, req.Path}])
	} else {
		for pk, m := range e.st.entries {
			if pk.owner == r.caller && pk.root == req.Root {
				pick(m)
			}
		}
	}
	revokeOnly := req.Identity != "" && req.Identity != r.caller
	var change record
	for _, en := range selected {
		switch {
		case !revokeOnly:
			change.Deletes = append(change.Deletes, refOf(en))
		case en.readable(req.Identity) || contains(en.Identities, req.Identity):
			p := patchOf(en, nil, nil, []string{req.Identity})
			p.Identities = remove(en.Identities, req.Identity)
			change.Patches = append(change.Patches, p)
		}
	}
	if len(change.Patches)+len(change.Deletes) > 0 {
		if apiE := e.commitLocked(r, change); apiE != nil {
			return response{}, apiE
		}
		touched := map[pathKey]bool{}
		for _, en := range selected {
			pk := pathKey{en.Owner, en.Root, en.Path}
			if !touched[pk] {
				touched[pk] = true
				e.recordLocked(pk)
			}
		}
	}
	r.header.Set(headerKeyknoxHash, resetHash)
	return valueObject(r.caller, req.Root, req.Path, req.Key, nil, blob{})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func remove(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
