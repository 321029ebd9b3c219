package virgil

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// GroupSessionsRoot is the Keyknox root of every E3Kit group ticket.
const GroupSessionsRoot = "group-sessions"

// KeyknoxEntry is a Keyknox v2 value object.
type KeyknoxEntry struct {
	// Owner is the identity that owns the entry.
	Owner string `json:"owner"`
	// Root is the entry's root (GroupSessionsRoot for group tickets).
	Root string `json:"root"`
	// Path is the entry's path (a group's session id, hex).
	Path string `json:"path"`
	// Key is the entry's key (a decimal epoch number).
	Key string `json:"key"`
	// Identities are all identities the entry is shared with.
	Identities []string `json:"identities"`
	// Meta is the caller's copy of the metadata (empty when it has none).
	Meta []byte `json:"meta"`
	// Value is the caller's copy of the value (empty when it has none).
	Value []byte `json:"value"`
	// Hash is the Virgil-Keyknox-Hash of the answer, to send back as the
	// previous hash of the next push.
	Hash string `json:"-"`
}

// Empty reports whether the entry carries no value (missing or unreadable).
func (e *KeyknoxEntry) Empty() bool { return len(e.Meta) == 0 && len(e.Value) == 0 }

// KeyknoxPush is the body of a push.
type KeyknoxPush struct {
	// Root, with Path and Key, addresses the entry.
	Root string `json:"root"`
	// Path is the entry's path.
	Path string `json:"path"`
	// Key is the entry's key.
	Key string `json:"key"`
	// Identities are shared with (added to the entry's list); each gets a
	// copy of Meta and Value.
	Identities []string `json:"identities"`
	// Meta is the sign-then-encrypt message info.
	Meta []byte `json:"meta"`
	// Value is the sign-then-encrypt ciphertext.
	Value []byte `json:"value"`
	// PreviousHash is sent as Virgil-Keyknox-Previous-Hash when not empty;
	// it must be the hash of the last pull or push of an existing entry.
	PreviousHash string `json:"-"`
}

// KeyknoxReset selects what a reset removes: with Identity (not the caller)
// that identity's access to the selected entries, otherwise the entries.
type KeyknoxReset struct {
	// Root selects the caller's entries under it (required).
	Root string `json:"root"`
	// Path narrows the selection to one path when not empty.
	Path string `json:"path,omitempty"`
	// Key narrows the selection to one key when not empty.
	Key string `json:"key,omitempty"`
	// Identity, when set and not the caller, loses access instead of the
	// entries being deleted.
	Identity string `json:"identity,omitempty"`
}

type keyknoxPull struct {
	Root     string `json:"root"`
	Path     string `json:"path"`
	Key      string `json:"key"`
	Identity string `json:"identity"`
}

type keyknoxKeys struct {
	Root     string `json:"root"`
	Path     string `json:"path"`
	Identity string `json:"identity"`
}

func (c *Client) keyknoxEntry(resp *response, op string) (*KeyknoxEntry, error) {
	var e KeyknoxEntry
	if err := json.Unmarshal(resp.body, &e); err != nil {
		return nil, fmt.Errorf("virgil: keyknox %s: response: %w", op, err)
	}
	if (len(e.Meta) == 0) != (len(e.Value) == 0) {
		return nil, fmt.Errorf("virgil: keyknox %s: only one of meta and value is empty", op)
	}
	e.Hash = resp.header.Get(headerHash)
	return &e, nil
}

// KeyknoxPush writes an entry owned by the caller, sharing it with
// p.Identities (added to those already listed). A push to an existing entry
// without its current hash fails with an error matching
// ErrInvalidPreviousHash.
func (c *Client) KeyknoxPush(ctx context.Context, p KeyknoxPush) (*KeyknoxEntry, error) {
	if len(p.Identities) == 0 || len(p.Meta) == 0 || len(p.Value) == 0 {
		return nil, errors.New("virgil: keyknox push: identities, meta and value are required")
	}
	var h http.Header
	if p.PreviousHash != "" {
		h = http.Header{headerPreviousHash: {p.PreviousHash}}
	}
	resp, err := c.do(ctx, http.MethodPost, "/keyknox/v2/push", p, h)
	if err != nil {
		return nil, err
	}
	return c.keyknoxEntry(resp, "push")
}

// KeyknoxPull reads the caller's copy of the entry (root, path, key) owned by
// owner. A missing or unreadable entry comes back Empty, not as an error.
func (c *Client) KeyknoxPull(ctx context.Context, root, path, key, owner string) (*KeyknoxEntry, error) {
	resp, err := c.do(ctx, http.MethodPost, "/keyknox/v2/pull", keyknoxPull{Root: root, Path: path, Key: key, Identity: owner}, nil)
	if err != nil {
		return nil, err
	}
	return c.keyknoxEntry(resp, "pull")
}

// KeyknoxKeys lists the keys under (root, path) owned by owner that the
// caller can read.
func (c *Client) KeyknoxKeys(ctx context.Context, root, path, owner string) ([]string, error) {
	resp, err := c.do(ctx, http.MethodPost, "/keyknox/v2/keys", keyknoxKeys{Root: root, Path: path, Identity: owner}, nil)
	if err != nil {
		return nil, err
	}
	var keys []string
	if err := json.Unmarshal(resp.body, &keys); err != nil {
		return nil, fmt.Errorf("virgil: keyknox keys: response: %w", err)
	}
	return keys, nil
}

// KeyknoxReset deletes the caller's selected entries, or removes r.Identity's
// access to them. It is idempotent.
func (c *Client) KeyknoxReset(ctx context.Context, r KeyknoxReset) (*KeyknoxEntry, error) {
	if r.Root == "" {
		return nil, errors.New("virgil: keyknox reset: root is required")
	}
	resp, err := c.do(ctx, http.MethodPost, "/keyknox/v2/reset", r, nil)
	if err != nil {
		return nil, err
	}
	return c.keyknoxEntry(resp, "reset")
}

// MarshalJSON writes the value object with every field present: nil
// identities as [] and nil meta/value as "" (clients reject missing fields).
func (e KeyknoxEntry) MarshalJSON() ([]byte, error) {
	type plain KeyknoxEntry // no MarshalJSON: avoids recursion
	p := plain(e)
	if p.Identities == nil {
		p.Identities = []string{}
	}
	if p.Meta == nil {
		p.Meta = []byte{}
	}
	if p.Value == nil {
		p.Value = []byte{}
	}
	return json.Marshal(p)
}
