package virgil_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/virgil"
)

func TestReadPrivateKeyFile(t *testing.T) {
	key, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, mode fs.FileMode, content []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not masked by the umask
			t.Fatal(err)
		}
		return p
	}
	b64 := []byte(key.MarshalPKCS8Base64() + "\n")
	private := write("private.key", 0o600, b64)
	readOnly := write("readonly.key", 0o400, b64)
	der := write("der.key", 0o600, key.MarshalPKCS8())
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{private, readOnly, der, link} {
		got, err := virgil.ReadPrivateKeyFile(p)
		if err != nil || !got.Public().Equal(key.Public()) {
			t.Errorf("ReadPrivateKeyFile(%s) = %v, want the key", filepath.Base(p), err)
		}
	}

	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o602, 0o620} {
		p := write("open.key", mode, b64)
		_, err := virgil.ReadPrivateKeyFile(p)
		var me *secretfile.ModeError
		if !errors.Is(err, virgil.ErrKeyFileMode) || !errors.As(err, &me) || me.Path != p {
			t.Fatalf("ReadPrivateKeyFile(mode %#o) = %v, want ErrKeyFileMode", mode, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "chmod 600 "+p) || strings.Contains(msg, "\n") || strings.Contains(msg, key.MarshalPKCS8Base64()) {
			t.Errorf("ReadPrivateKeyFile(mode %#o) error %q: want one line with the fix and no key", mode, msg)
		}
	}
	// A link is judged by the file it leads to.
	open := write("target.key", 0o644, b64)
	openLink := filepath.Join(dir, "open-link.key")
	if err := os.Symlink(open, openLink); err != nil {
		t.Fatal(err)
	}
	if _, err := virgil.ReadPrivateKeyFile(openLink); !errors.Is(err, virgil.ErrKeyFileMode) {
		t.Errorf("ReadPrivateKeyFile(link to 0644) = %v, want ErrKeyFileMode", err)
	}
	// A folder is not a key file.
	sub := filepath.Join(dir, "folder.key")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := virgil.ReadPrivateKeyFile(sub); !errors.Is(err, virgil.ErrKeyFileMode) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadPrivateKeyFile(folder) = %v, want not a regular file", err)
	}
	if _, err := virgil.ReadPrivateKeyFile(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPrivateKeyFile(missing) = %v, want fs.ErrNotExist", err)
	}
	bad := write("bad.key", 0o600, []byte("not a key"))
	if _, err := virgil.ReadPrivateKeyFile(bad); !errors.Is(err, virgil.ErrInvalidKey) {
		t.Errorf("ReadPrivateKeyFile(garbage) = %v, want ErrInvalidKey", err)
	}
}
