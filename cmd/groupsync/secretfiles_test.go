package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// secretFileCase is one setting that names a file holding a secret: the
// command that reads it, the environment besides the file, and content
// that parses.
type secretFileCase struct {
	setting string   // GROUPSYNC_X_FILE, or the variable of a secretFile option
	command string   // serve, worker or emulator
	env     []string // what the command needs besides the file
	content string
}

// secretFileCases lists every setting that names a secret file: the _FILE
// variable of every secret option, every secretFile option and the owner
// key file. TestSecretFileSettingsAreListed keeps it complete.
func secretFileCases(t *testing.T) []secretFileCase {
	t.Helper()
	base, ownerFile := appEnv(t, 0o600)
	serve := serveEnv(base)
	appKey := getenvOf(base)("GROUPSYNC_VIRGIL_APP_KEY")
	owner, err := os.ReadFile(ownerFile)
	if err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(t.TempDir(), "client.pem") // public: 0644 is fine
	if err := os.WriteFile(cert, []byte("certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	unset := func(env []string, names ...string) []string {
		env = slices.Clone(env)
		for _, n := range names {
			env = append(env, n+"=")
		}
		return env
	}
	return []secretFileCase{
		{"GROUPSYNC_NATS_TOKEN_FILE", "serve", serve, "a-nats-token"},
		{"GROUPSYNC_NATS_CREDS_FILE", "serve", serve, "-----BEGIN NATS USER JWT-----"},
		{"GROUPSYNC_NATS_NKEY_FILE", "serve", serve, "SUAIBDPBAUTW"},
		{"GROUPSYNC_NATS_TLS_KEY_FILE", "serve", append(slices.Clone(serve), "GROUPSYNC_NATS_TLS_CERT_FILE="+cert), "-----BEGIN EC PRIVATE KEY-----"},
		{"GROUPSYNC_JOB_KEY_FILE", "serve", unset(serve, "GROUPSYNC_JOB_KEY"), strings.Repeat("j", 64)},
		{"GROUPSYNC_JOB_KEY_PREVIOUS_FILE", "serve", serve, strings.Repeat("p", 64)},
		{"GROUPSYNC_VIRGIL_APP_KEY_FILE", "serve", unset(serve, "GROUPSYNC_VIRGIL_APP_KEY"), appKey},
		{"GROUPSYNC_IDENTITY_SECRET_FILE", "serve", unset(serve, "GROUPSYNC_IDENTITY_SECRET"), "an identity secret from a file"},
		{"GROUPSYNC_WEBHOOK_PASSWORD_FILE", "serve", unset(serve, "GROUPSYNC_WEBHOOK_PASSWORD"), "a webhook password"},
		{"GROUPSYNC_COMETCHAT_API_KEY_FILE", "serve", serve, "a-cometchat-api-key"},
		{"GROUPSYNC_CONSOLE_PASSWORD_FILE", "serve", append(slices.Clone(serve), "GROUPSYNC_CONSOLE_ADDR=127.0.0.1:0", "GROUPSYNC_CONSOLE_USERNAME=ops"), "a console password"},
		{"GROUPSYNC_EMULATOR_SERVICE_KEY_FILE", "emulator", base, appKey},
		{"GROUPSYNC_OWNER_KEY_FILE", "worker", base, strings.TrimSpace(string(owner))},
	}
}

// parseCommand parses the configuration of command without starting it.
func parseCommand(command string, vars []string, args ...string) error {
	e := env{getenv: getenvOf(vars), stdout: io.Discard, stderr: io.Discard}
	var err error
	switch command {
	case "serve":
		_, err = parseServe(e, args)
	case "worker":
		_, err = parseWorkerRole(e, args)
	case "emulator":
		_, err = parseEmulator(e, args)
	default:
		panic("no command " + command)
	}
	return err
}

// writeMode writes content to a new file of exactly mode.
func writeMode(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not masked by the umask
		t.Fatal(err)
	}
	return p
}

// TestSecretFileSettingsAreListed: every option that names a secret file
// has a case above, so a new secret cannot skip the mode check's test.
func TestSecretFileSettingsAreListed(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range secretFileCases(t) {
		listed[c.setting] = true
	}
	for _, o := range options {
		var want string
		switch {
		case o.secret:
			want = o.env() + "_FILE"
		case o.secretFile:
			want = o.env()
		default:
			continue
		}
		if !listed[want] {
			t.Errorf("%s names a secret file but has no case in secretFileCases", want)
		}
	}
}

// TestSecretFilesMustBePrivate: each setting naming a secret file accepts a
// regular file of mode 0600 (or 0400, or a link to one), and refuses one
// that group or others may read or write, or a folder, with a usage error
// of one line naming the setting, the path, the mode and the fix.
func TestSecretFilesMustBePrivate(t *testing.T) {
	for _, c := range secretFileCases(t) {
		t.Run(c.setting, func(t *testing.T) {
			private := writeMode(t, c.content, 0o600)
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(private, link); err != nil {
				t.Fatal(err)
			}
			for what, p := range map[string]string{"0600": private, "0400": writeMode(t, c.content, 0o400), "link to 0600": link} {
				if err := parseCommand(c.command, append(slices.Clone(c.env), c.setting+"="+p)); err != nil {
					t.Errorf("%s of mode %s: %v, want it accepted", c.setting, what, err)
				}
			}
			for _, mode := range []os.FileMode{0o640, 0o644, 0o604} {
				p := writeMode(t, c.content, mode)
				err := parseCommand(c.command, append(slices.Clone(c.env), c.setting+"="+p))
				want := fmt.Sprintf("%s: %s has mode %#o, so group or others can read or write it: run `chmod 600 %s`", c.setting, p, mode, p)
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
					t.Errorf("%s of mode %#o: %v\nwant a usage error with %q", c.setting, mode, err, want)
				}
				if err != nil && strings.Contains(err.Error(), c.content) {
					t.Errorf("%s of mode %#o: the error shows the secret: %v", c.setting, mode, err)
				}
			}
			for what, p := range map[string]string{"folder": t.TempDir(), "link to 0644": symlinkTo(t, writeMode(t, c.content, 0o644))} {
				err := parseCommand(c.command, append(slices.Clone(c.env), c.setting+"="+p))
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.setting+": "+p) {
					t.Errorf("%s naming a %s: %v, want a usage error naming the setting and the path", c.setting, what, err)
				}
			}
		})
	}
}

func symlinkTo(t *testing.T, target string) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// TestSecretFilesRefusedTogether: the command line and the process: every
// secret file that is not private is named in one line, exit status 2,
// and a file given by flag is named by its flag.
func TestSecretFilesRefusedTogether(t *testing.T) {
	base, _ := appEnv(t, 0o600)
	jobKey := writeMode(t, strings.Repeat("j", 64), 0o644)
	password := writeMode(t, "a webhook password", 0o640)
	seed := writeMode(t, "SUAIBDPBAUTW", 0o604)
	env := append(serveEnv(base), "GROUPSYNC_JOB_KEY=", "GROUPSYNC_WEBHOOK_PASSWORD=", "GROUPSYNC_WEBHOOK_PASSWORD_FILE="+password, "GROUPSYNC_NATS_NKEY_FILE="+seed)
	code, stdout, stderr := runInProcess(t, env, "serve", "--job-key-file", jobKey)
	if code != 2 {
		t.Fatalf("serve exited %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || strings.Count(stderr, "`; ") != 2 {
		t.Errorf("stderr has %d lines, want one with the three refusals apart (\"; \"):\n%s", len(lines), stderr)
	}
	for _, want := range []string{
		"--job-key-file: " + jobKey + " has mode 0644", "chmod 600 " + jobKey,
		"GROUPSYNC_WEBHOOK_PASSWORD_FILE: " + password + " has mode 0640", "chmod 600 " + password,
		"GROUPSYNC_NATS_NKEY_FILE: " + seed + " has mode 0604", "chmod 600 " + seed,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	if strings.Contains(stderr, "a webhook password") || strings.Contains(stderr, strings.Repeat("j", 64)) {
		t.Errorf("stderr shows a secret: %s", stderr)
	}
}

// checkDevFileModes: the files dev writes in its data dir (its secrets, the
// owner key, dev.json, the emulator's state and keys) are 0600, and the
// folders it makes for them 0700.
func checkDevFileModes(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"secrets.json", "owner.key", "dev.json"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode() != 0o600 {
			t.Errorf("dev's %s: %v, %v, want a regular file of mode 0600", name, fi.Mode(), err)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dev's data dir: %v, %v, want mode 0700", fi.Mode(), err)
	}
	emulator := filepath.Join(dir, "emulator")
	entries, err := os.ReadDir(emulator)
	if err != nil {
		t.Fatalf("dev's emulator folder: %v", err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = os.ModeDir | 0o700
		}
		if fi.Mode() != want {
			t.Errorf("dev's emulator/%s: mode %v, want %v", e.Name(), fi.Mode(), want)
		}
	}
}

// TestDevSecretFiles: dev's first start writes its secrets and the owner
// key with mode 0600 and a second start reads them; a secrets file or owner
// key that group or others may read stops dev with the fix.
func TestDevSecretFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	parse := func() error {
		_, err := parseDev(env{getenv: getenvOf(nil), stdout: io.Discard, stderr: io.Discard},
			[]string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--emulator-addr", "127.0.0.1:0"})
		return err
	}
	if err := parse(); err != nil {
		t.Fatalf("dev's first start: %v", err)
	}
	for _, name := range []string{"secrets.json", "owner.key"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode() != 0o600 {
			t.Errorf("dev wrote %s with mode %v (%v), want 0600", name, fi.Mode(), err)
		}
	}
	if err := parse(); err != nil {
		t.Fatalf("dev's second start on the files it wrote: %v", err)
	}
	for _, tc := range []struct{ file, name string }{{"secrets.json", "dev secrets"}, {"owner.key", "dev owner key"}} {
		p := filepath.Join(dir, tc.file)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		err := parse()
		var ue *usageError
		if want := tc.name + ": " + p + " has mode 0644, so group or others can read or write it: run `chmod 600 " + p + "`"; !errors.As(err, &ue) || err.Error() != want {
			t.Errorf("dev with %s of mode 0644: %v, want the usage error %q", tc.file, err, want)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := parse(); err != nil {
		t.Fatalf("dev after chmod 600: %v", err)
	}
}
