package virgil

import (
	"errors"
	"fmt"
	"strings"

	"github.com/groupsync/groupsync/internal/secretfile"
)

// ErrKeyFileMode is matched (errors.Is) by the error of a private key file
// that group or others may read or write, or that is not a regular file
// (a *secretfile.ModeError, whose message names the file, its mode and the
// fix).
var ErrKeyFileMode = secretfile.ErrNotPrivate

// ReadPrivateKeyFile reads the private key in path, refusing, as ssh does, a
// file whose mode lets group or others read or write it (mode & 0077 != 0)
// or that is not a regular file (secretfile.Read: a symbolic link is
// followed and the file it leads to is checked). The key is base64 of
// PKCS#8 DER (surrounding space ignored), or raw PKCS#8 DER. Errors wrap
// fs.ErrNotExist for a missing file, ErrKeyFileMode for a file others may
// read, and ErrInvalidKey for content that is not an Ed25519 key. The key
// itself never appears in an error.
func ReadPrivateKeyFile(path string) (*PrivateKey, error) {
	b, err := secretfile.Read("virgil: private key file", path)
	if err != nil {
		if errors.Is(err, ErrKeyFileMode) {
			return nil, err
		}
		return nil, fmt.Errorf("virgil: private key file: %w", err)
	}
	if key, err := ParsePrivateKeyBase64(strings.TrimSpace(string(b))); err == nil {
		return key, nil
	}
	if key, err := ParsePrivateKey(b); err == nil {
		return key, nil
	}
	return nil, fmt.Errorf("virgil: private key file %s: not a base64 PKCS#8 Ed25519 key: %w", path, ErrInvalidKey)
}
