package virgil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ErrKeyFileMode is matched (errors.Is) by every *KeyFileModeError.
var ErrKeyFileMode = errors.New("virgil: private key file is not private")

// KeyFileModeError reports a private key file that group or others may read
// or write, or that is not a regular file.
type KeyFileModeError struct {
	// Path is the file as named (a symbolic link is reported by its name).
	Path string
	// Mode is the mode of the file the name leads to.
	Mode fs.FileMode
}

// Error implements error: one line, with the fix.
func (e *KeyFileModeError) Error() string {
	if !e.Mode.IsRegular() {
		return fmt.Sprintf("virgil: private key file %s is not a regular file (%v): give a plain file with mode 0600", e.Path, e.Mode.Type())
	}
	return fmt.Sprintf("virgil: private key file %s has mode %#o, so group or others can read or write it: run `chmod 600 %s`",
		e.Path, e.Mode.Perm(), e.Path)
}

// Is makes errors.Is(err, ErrKeyFileMode) true.
func (e *KeyFileModeError) Is(target error) bool { return target == ErrKeyFileMode }

// CheckKeyFileMode refuses, as ssh does, a private key file whose mode lets
// group or others read or write it (mode & 0077 != 0), with a
// *KeyFileModeError that says how to fix it. A symbolic link is followed
// (secret volumes of Kubernetes are links into a hidden folder) and the file
// it leads to is checked; it must be a regular file, so a link to a device,
// a pipe or a folder is refused too. Other errors are those of os.Stat.
func CheckKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return &KeyFileModeError{Path: path, Mode: fi.Mode()}
	}
	return nil
}

// ReadPrivateKeyFile checks path with CheckKeyFileMode, then reads the
// private key it holds: base64 of PKCS#8 DER (surrounding space ignored), or
// raw PKCS#8 DER. Errors wrap fs.ErrNotExist for a missing file,
// ErrKeyFileMode for a file others may read, and ErrInvalidKey for content
// that is not an Ed25519 key. The key itself never appears in an error.
func ReadPrivateKeyFile(path string) (*PrivateKey, error) {
	if err := CheckKeyFileMode(path); err != nil {
		if errors.Is(err, ErrKeyFileMode) {
			return nil, err
		}
		return nil, fmt.Errorf("virgil: private key file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
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
