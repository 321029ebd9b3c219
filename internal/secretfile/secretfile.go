// Package secretfile refuses files holding secrets that other users of the
// host could read or change, as ssh refuses such private keys. Every secret
// groupsync reads from a file goes through it: the files named by settings
// (cmd/groupsync: the _FILE of every secret, the NATS creds, NKey seed and
// TLS key files, the owner key), the NATS files queue.Connect is given, the
// keys virgil.ReadPrivateKeyFile reads, and the keys dev and the Virgil
// emulator keep in their data folders.
//
// A file passes when it is a regular file whose mode gives group and others
// nothing (mode & 0o077 == 0: 0600 and 0400 pass, 0640, 0644 and 0604 do
// not). A symbolic link is followed and the file it leads to is judged, not
// the link (secret volumes of Kubernetes are links into a hidden folder, and
// a link's own mode means nothing on Linux).
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotPrivate is matched (errors.Is) by every *ModeError.
var ErrNotPrivate = errors.New("secret file is not private")

// ModeError reports a secret file that group or others may read or write,
// or that is not a regular file. Its message is one line that names the
// setting, the path and the mode, and says how to fix it.
type ModeError struct {
	// Name is what names the file: a setting such as
	// GROUPSYNC_JOB_KEY_FILE, or what the file holds.
	Name string
	// Path is the file as named (a symbolic link is reported by its name).
	Path string
	// Mode is the mode of the file the name leads to.
	Mode fs.FileMode
}

// Error implements error: one line, with the fix.
func (e *ModeError) Error() string {
	if !e.Mode.IsRegular() {
		return fmt.Sprintf("%s: %s is not a regular file (mode %v): name a plain file with mode 0600", e.Name, e.Path, e.Mode)
	}
	return fmt.Sprintf("%s: %s has mode %#o, so group or others can read or write it: run `chmod 600 %s`",
		e.Name, e.Path, e.Mode.Perm(), e.Path)
}

// Is makes errors.Is(err, ErrNotPrivate) true.
func (e *ModeError) Is(target error) bool { return target == ErrNotPrivate }

// private returns a *ModeError for a file of mode m that is not private.
func private(name, path string, m fs.FileMode) error {
	if !m.IsRegular() || m.Perm()&0o077 != 0 {
		return &ModeError{Name: name, Path: path, Mode: m}
	}
	return nil
}

// Check refuses path, named by name (the setting), with a *ModeError when
// the file it leads to is not a regular file or group or others may read or
// write it. Other errors are those of os.Stat (fs.ErrNotExist for a
// missing file).
func Check(name, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return private(name, path, fi.Mode())
}

// Read checks path like Check and returns its content. The opened file is
// judged again, so a file put in its place between the check and the open
// is refused too; a pipe or a device is refused before it is opened. Errors
// are a *ModeError or those of opening and reading the file; none holds the
// content.
func Read(name, path string) ([]byte, error) {
	if err := Check(name, path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := private(name, path, fi.Mode()); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}
