package virgil

import (
	"errors"
	"fmt"
)

// ErrInvalidIdentity is returned (wrapped) for an identity that is empty or not
// printable ASCII; E3Kit clients cannot use such identities.
var ErrInvalidIdentity = errors.New("virgil: invalid identity")

// MaxIdentityLength bounds identities accepted by this package.
const MaxIdentityLength = 1024

// ValidateIdentity reports whether id is usable as a Virgil identity:
// non-empty, at most MaxIdentityLength bytes, printable ASCII only.
func ValidateIdentity(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidIdentity)
	}
	if len(id) > MaxIdentityLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidIdentity, MaxIdentityLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: %q has a byte outside printable ASCII at %d", ErrInvalidIdentity, id, i)
		}
	}
	return nil
}
