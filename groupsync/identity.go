package groupsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// DefaultOwnerIdentity is the Virgil identity that owns every group unless
// configured otherwise. It is the identity the hosted CometChat extension used.
const DefaultOwnerIdentity = "2137f9ef75295ea"

// MinIdentitySecret is the shortest identity secret NewIdentities accepts.
const MinIdentitySecret = 16

// identityLen is the length of a mapped identity: 32 hex characters (16 bytes
// of HMAC), above E3Kit's 10-byte group id minimum.
const identityLen = 32

// ErrWeakIdentitySecret is returned by NewIdentities for a secret shorter than
// MinIdentitySecret bytes.
var ErrWeakIdentitySecret = errors.New("groupsync: identity secret too short")

// Identities maps CometChat uids and guids to Virgil identities with a keyed,
// deterministic function: hex(HMAC-SHA256(secret, "user:"+uid))[:32] for users
// and the same over "group:"+guid for groups. The mapping needs no storage, is
// the same in every process, keeps users and groups apart, and never yields the
// owner identity. The secret must never change for a deployment: every group
// and user would get a new identity.
//
// Identities is safe for concurrent use.
type Identities struct {
	secret []byte
	owner  string
}

// NewIdentities returns the mapping keyed by secret for a deployment whose
// group owner is owner. It returns ErrWeakIdentitySecret for a short secret.
func NewIdentities(secret []byte, owner string) (*Identities, error) {
	if len(secret) < MinIdentitySecret {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrWeakIdentitySecret, len(secret), MinIdentitySecret)
	}
	if owner == "" {
		owner = DefaultOwnerIdentity
	}
	if len(owner) == identityLen {
		return nil, fmt.Errorf("groupsync: owner identity %q has the length of a mapped identity", owner)
	}
	return &Identities{secret: append([]byte(nil), secret...), owner: owner}, nil
}

// Owner returns the Virgil identity of the group owner.
func (m *Identities) Owner() string { return m.owner }

// User returns the Virgil identity of CometChat user uid.
func (m *Identities) User(uid string) string { return m.derive("user:", uid) }

// Group returns the Virgil identity of CometChat group guid. It is the E3Kit
// group id that members pass to loadGroup.
func (m *Identities) Group(guid string) string { return m.derive("group:", guid) }

// Users maps every uid with User, keeping the order.
func (m *Identities) Users(uids []string) []string {
	ids := make([]string, len(uids))
	for i, uid := range uids {
		ids[i] = m.User(uid)
	}
	return ids
}

func (m *Identities) derive(namespace, name string) string {
	mac := hmac.New(sha256.New, m.secret)
	mac.Write([]byte(namespace))
	mac.Write([]byte(name))
	// 32 characters: never equal to the default 15-character owner identity,
	// and NewIdentities refuses an owner identity of this length.
	return hex.EncodeToString(mac.Sum(nil))[:identityLen]
}
