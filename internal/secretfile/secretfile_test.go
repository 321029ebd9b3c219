package secretfile_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/secretfile"
)

const setting = "GROUPSYNC_JOB_KEY_FILE"

// write creates dir/name with content and exactly mode (not masked by the
// umask).
func write(t *testing.T, dir, name string, mode fs.FileMode, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func link(t *testing.T, target, name string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(target), name)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrivateFilesAreRead(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []fs.FileMode{0o600, 0o400, 0o700} {
		p := write(t, dir, fmt.Sprintf("private-%o", mode), mode, "the secret\n")
		if err := secretfile.Check(setting, p); err != nil {
			t.Errorf("Check(mode %#o) = %v, want nil", mode, err)
		}
		if b, err := secretfile.Read(setting, p); err != nil || string(b) != "the secret\n" {
			t.Errorf("Read(mode %#o) = %q, %v, want the content", mode, b, err)
		}
	}
	// A link is judged by the file it leads to: a link to a 0600 file
	// passes (secret volumes of Kubernetes are such links).
	l := link(t, write(t, dir, "target", 0o600, "linked secret"), "link")
	if b, err := secretfile.Read(setting, l); err != nil || string(b) != "linked secret" {
		t.Errorf("Read(link to 0600) = %q, %v, want the content", b, err)
	}
}

func TestOpenFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []fs.FileMode{0o640, 0o644, 0o604, 0o660, 0o602, 0o620, 0o666, 0o601, 0o610} {
		p := write(t, dir, fmt.Sprintf("open-%o", mode), mode, "the secret")
		for op, err := range map[string]error{
			"Check": secretfile.Check(setting, p),
			"Read":  func() error { _, err := secretfile.Read(setting, p); return err }(),
		} {
			var me *secretfile.ModeError
			if !errors.Is(err, secretfile.ErrNotPrivate) || !errors.As(err, &me) || me.Mode.Perm() != mode {
				t.Fatalf("%s(mode %#o) = %v, want a *ModeError", op, mode, err)
			}
			msg := err.Error()
			want := fmt.Sprintf("%s: %s has mode %#o, so group or others can read or write it: run `chmod 600 %s`", setting, p, mode, p)
			if msg != want {
				t.Errorf("%s(mode %#o) error\n%q, want\n%q", op, mode, msg, want)
			}
			if strings.Contains(msg, "the secret") {
				t.Errorf("%s(mode %#o) error shows the content: %q", op, mode, msg)
			}
		}
	}
	// A link to an open file is refused, and named by the link.
	l := link(t, write(t, dir, "open-target", 0o644, "the secret"), "open-link")
	if _, err := secretfile.Read(setting, l); !errors.Is(err, secretfile.ErrNotPrivate) || !strings.Contains(err.Error(), "chmod 600 "+l) {
		t.Errorf("Read(link to 0644) = %v, want ErrNotPrivate naming the link", err)
	}
}

func TestNotRegularFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o700); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"folder": folder, "link to a folder": link(t, folder, "folder-link"), "device": os.DevNull}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		cases["named pipe"] = fifo
	} else {
		t.Logf("no named pipe: %v", err)
	}
	for what, p := range cases {
		done := make(chan error, 1)
		go func() { _, err := secretfile.Read(setting, p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, secretfile.ErrNotPrivate) || !strings.Contains(err.Error(), setting+": "+p+" is not a regular file (mode ") {
				t.Errorf("Read(%s) = %v, want not a regular file, with the setting, the path and the mode", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Read(%s) blocked", what)
		}
	}
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing")
	if err := secretfile.Check(setting, p); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, secretfile.ErrNotPrivate) {
		t.Errorf("Check(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := secretfile.Read(setting, p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want fs.ErrNotExist", err)
	}
}
