package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

// appEnv is the environment of a worker whose settings all parse: a Virgil
// application, an identity secret and an owner key file of the given mode.
func appEnv(t *testing.T, keyMode os.FileMode) (env []string, keyFile string) {
	t.Helper()
	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(t.TempDir(), "owner.key")
	if err := os.WriteFile(keyFile, []byte(owner.MarshalPKCS8Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, keyMode); err != nil {
		t.Fatal(err)
	}
	return []string{
		"GROUPSYNC_VIRGIL_APP_ID=app", "GROUPSYNC_VIRGIL_APP_KEY_ID=kid", "GROUPSYNC_VIRGIL_APP_KEY=" + appKey.MarshalPKCS8Base64(),
		"GROUPSYNC_IDENTITY_SECRET=an identity secret", "GROUPSYNC_OWNER_KEY_FILE=" + keyFile,
		"GROUPSYNC_NATS_URL=nats://127.0.0.1:1", "GROUPSYNC_JOB_KEY=" + strings.Repeat("k", 64), "GROUPSYNC_COMETCHAT_APP_ID=app",
	}, keyFile
}

// TestEdgesFailClosed: settings that would weaken an edge stop the command
// with one line and exit status 2.
func TestEdgesFailClosed(t *testing.T) {
	private, _ := appEnv(t, 0o600)
	open, openFile := appEnv(t, 0o644)
	other, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	emulatorURL := "GROUPSYNC_VIRGIL_API_URL=http://127.0.0.1:8271"
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"WorkerOnEmulatorWithoutServiceKey", append(private, emulatorURL), []string{"worker"}, "GROUPSYNC_VIRGIL_SERVICE_KEY"},
		{"WorkerOnLookAlikeURL", append(private, "GROUPSYNC_VIRGIL_API_URL=https://api.virgilsecurity.com.example.org"), []string{"worker"}, "virgil-service-key is required"},
		{"OwnerInitOnEmulatorWithoutServiceKey", append(private, emulatorURL), []string{"owner", "init"}, "virgil-service-key is required"},
		{"BadServiceKey", append(private, emulatorURL, "GROUPSYNC_VIRGIL_SERVICE_KEY=not-a-key"), []string{"worker"}, "virgil-service-key"},
		{"OwnerKeyReadableByOthers", append(open, "GROUPSYNC_VIRGIL_SERVICE_KEY="+other.Public().MarshalSPKIBase64()), []string{"worker"}, "chmod 600 " + openFile},
		{"DevOnAllInterfaces", nil, []string{"dev", "--data-dir", "/nonexistent/groupsync", "--http-addr", "0.0.0.0:0"}, "--dev-insecure-listen-anywhere"},
		{"DevEmulatorOnAllInterfaces", []string{"GROUPSYNC_EMULATOR_ADDR=:8271"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "emulator-addr=:8271"},
		{"BadStreamMaxBytes", []string{"GROUPSYNC_STREAM_MAX_BYTES=lots"}, []string{"jobs", "failed"}, "stream-max-bytes"},
		{"ZeroStreamMaxMsgs", []string{"GROUPSYNC_STREAM_MAX_MSGS=0"}, []string{"jobs", "failed"}, "stream-max-msgs"},
		{"ServeConsoleWithoutCredentials", append(serveEnv(private), "GROUPSYNC_CONSOLE_ADDR=127.0.0.1:0"), []string{"serve"}, "console-username, console-password not set"},
		{"ServeConsoleWithoutAddress", append(serveEnv(private), "GROUPSYNC_CONSOLE_USERNAME=ops", "GROUPSYNC_CONSOLE_PASSWORD=a-long-enough-password"), []string{"serve"}, "console-addr not set"},
		{"ServeConsoleShortPassword", append(serveEnv(private), "GROUPSYNC_CONSOLE_ADDR=127.0.0.1:0", "GROUPSYNC_CONSOLE_USERNAME=ops", "GROUPSYNC_CONSOLE_PASSWORD=short"), []string{"serve"}, "Password: 5 characters"},
		{"ServeConsolePasswordFileMissing", append(serveEnv(private), "GROUPSYNC_CONSOLE_ADDR=127.0.0.1:0", "GROUPSYNC_CONSOLE_USERNAME=ops", "GROUPSYNC_CONSOLE_PASSWORD_FILE=/nonexistent/console-password"), []string{"serve"}, "read console-password file"},
		{"DevConsoleOnAllInterfaces", []string{"GROUPSYNC_CONSOLE_ADDR=0.0.0.0:8090"}, []string{"dev", "--data-dir", "/nonexistent/groupsync"}, "console-addr=0.0.0.0:8090"},
		{"FillThresholdAboveOne", []string{"GROUPSYNC_STREAM_FILL_THRESHOLD=1.5"}, []string{"worker"}, "stream-fill-threshold"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tc.env, tc.args...)
			if code != 2 {
				t.Fatalf("groupsync %v exited %d, want 2\nstdout: %s\nstderr: %s", tc.args, code, stdout, stderr)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q: want one line mentioning %q", stderr, tc.want)
			}
		})
	}
}

// serveEnv is env plus what serve needs besides: webhook credentials, and
// a client API that needs no CometChat key.
func serveEnv(env []string) []string {
	return append(slices.Clone(env), "GROUPSYNC_WEBHOOK_USERNAME=cometchat", "GROUPSYNC_WEBHOOK_PASSWORD=webhook-password", "GROUPSYNC_CLIENT_AUTH=trust-header")
}

// TestServeConsoleSettings: the console is off in serve unless configured;
// its password may come from a file, and it shares serve's trusted proxies.
func TestServeConsoleSettings(t *testing.T) {
	private, _ := appEnv(t, 0o600)
	parse := func(extra ...string) Config {
		t.Helper()
		cfg, err := parseServe(env{getenv: getenvOf(append(serveEnv(private), extra...)), stdout: io.Discard, stderr: io.Discard}, nil)
		if err != nil {
			t.Fatalf("parseServe: %v", err)
		}
		return cfg
	}
	if cfg := parse(); cfg.Console != nil {
		t.Errorf("serve without console settings runs a console: %+v", cfg.Console)
	}
	file := filepath.Join(t.TempDir(), "console-password")
	if err := os.WriteFile(file, []byte("a password from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := parse("GROUPSYNC_CONSOLE_ADDR=127.0.0.1:9000", "GROUPSYNC_CONSOLE_USERNAME=ops", "GROUPSYNC_CONSOLE_PASSWORD_FILE="+file,
		"GROUPSYNC_CLIENT_TRUSTED_PROXIES=10.0.0.0/8")
	if cfg.Console == nil {
		t.Fatal("serve with every console setting runs no console")
	}
	c := cfg.Console.Console
	if c.Addr != "127.0.0.1:9000" || c.Username != "ops" || c.Password != "a password from a file" || len(c.TrustedProxies) != 1 || cfg.Console.AnyPortIfTaken {
		t.Errorf("console config = %+v, want the settings, the file's password trimmed, the trusted proxy", c)
	}
}

func TestLoadOwnerKeyMode(t *testing.T) {
	_, private := appEnv(t, 0o600)
	if _, err := loadOwnerKey("GROUPSYNC_OWNER_KEY_FILE", private); err != nil {
		t.Errorf("loadOwnerKey(0600) = %v, want the key", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o660, 0o604} {
		_, file := appEnv(t, mode)
		_, err := loadOwnerKey("GROUPSYNC_OWNER_KEY_FILE", file)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "chmod 600 "+file) {
			t.Errorf("loadOwnerKey(%#o) = %v, want a usage error with the chmod fix", mode, err)
		}
	}
}

var listeningAddr = regexp.MustCompile(`"addr":"(127\.0\.0\.1:\d+)"`)

// startEmulator runs `groupsync emulator` in the process and returns its URL.
func startEmulator(t *testing.T, env ...string) string {
	t.Helper()
	p := startInProcess(t, env, "emulator", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	var url string
	testkit.EventuallyErr(t, 30*time.Second, "emulator listening", func() error {
		m := listeningAddr.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return fmt.Errorf("no address logged yet: %s", p.stderr.String())
		}
		url = "http://" + m[1]
		return nil
	})
	return url
}

// TestEmulatorDebugAPIIsOptIn: `groupsync emulator` serves its fault API
// only when asked, and always publishes its service key.
func TestEmulatorDebugAPIIsOptIn(t *testing.T) {
	env, _ := appEnv(t, 0o600)
	service, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	env = append(env, "GROUPSYNC_EMULATOR_SERVICE_KEY="+service.MarshalPKCS8Base64())
	off := startEmulator(t, env...)
	for _, path := range []string{"/_emulator/stats", "/_emulator/groups/some-group-id"} {
		if code, err := getJSON(off+path, nil); err != nil || code != http.StatusNotFound {
			t.Errorf("GET %s without the debug API = %d, %v, want 404", path, code, err)
		}
	}
	resp, err := http.Post(off+"/_emulator/fault", "application/json", strings.NewReader(`{"status":503}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /_emulator/fault without the debug API = %d, want 404", resp.StatusCode)
	}
	var sk emulator.ServiceKeyResponse
	if code, err := getJSON(off+emulator.ServiceKeyPath, &sk); err != nil || code != http.StatusOK || sk.ServiceKey != service.Public().MarshalSPKIBase64() {
		t.Errorf("GET %s = %d %+v, %v, want the service key", emulator.ServiceKeyPath, code, sk, err)
	}
	on := startEmulator(t, append(env, "GROUPSYNC_EMULATOR_DEBUG_API=true")...)
	if code, err := getJSON(on+"/_emulator/stats", nil); err != nil || code != http.StatusOK {
		t.Errorf("GET /_emulator/stats with the debug API = %d, %v, want 200", code, err)
	}
}

// TestDevRefusesCardsWithoutVirgilSignature runs dev as it ships, with the
// owner told to expect another Cards service key than the one the emulator
// signs with: a member's card then lacks a valid Virgil signature, and the
// member gets no ticket. It also checks dev's data dir mode and that dev
// listens beyond loopback only with the loud flag, saying so.
func TestDevRefusesCardsWithoutVirgilSignature(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	other, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := startInProcess(t, []string{"GROUPSYNC_VIRGIL_SERVICE_KEY=" + other.Public().MarshalSPKIBase64()},
		"dev", "--data-dir", dir, "--http-addr", "0.0.0.0:0", "--dev-insecure-listen-anywhere",
		"--emulator-addr", "127.0.0.1:0", "--nats-port", "-1", "--partitions", "4")
	d := awaitDev(t, p, dir)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode = %v, %v, want 0700", fi.Mode().Perm(), err)
	}
	if !strings.Contains(d.proc.stderr.String(), "DEV MODE LISTENS BEYOND LOOPBACK") {
		t.Errorf("dev on 0.0.0.0 did not warn loudly:\n%s", d.proc.stderr.String())
	}
	if d.info.Virgil.ServiceKey != other.Public().MarshalSPKIBase64() {
		t.Errorf("dev.json virgil.service_key = %q, want the configured key", d.info.Virgil.ServiceKey)
	}

	// alice publishes a card, as E3Kit does: the emulator signs it with its
	// own key, which is not the one the owner expects.
	appKey, err := virgil.ParsePrivateKeyBase64(d.info.Virgil.AppKey)
	if err != nil {
		t.Fatal(err)
	}
	jwt := &virgil.JWTGenerator{AppID: d.info.Virgil.AppID, AppKeyID: d.info.Virgil.AppKeyID, AppKey: appKey}
	secret := readSecret(t, dir)
	ids := mustIdentities(t, secret, d.info.OwnerIdentity)
	alice := ids.User("alice")
	key, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	card, err := virgil.NewRawCard(key, alice, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := virgil.NewClient(d.info.VirgilAPIURL, jwt.Source(alice)).PublishCard(ctx, card); err != nil {
		t.Fatalf("publish alice's card: %v", err)
	}
	body, _ := json.Marshal(map[string]any{
		"trigger": "group_created", "appId": d.info.CometChatAppID,
		"data": map[string]any{
			"group":   map[string]any{"guid": "signed-by-another", "createdAt": 1718000000},
			"members": map[string]any{"alice": map[string]any{"uid": "alice"}},
		},
	})
	if code, out := d.postWebhook(t, body); code != http.StatusOK {
		t.Fatalf("webhook answered %d %s", code, out)
	}
	groupID := ids.Group("signed-by-another")
	testkit.EventuallyErr(t, 60*time.Second, "the group exists without alice, and the refusal is logged", func() error {
		v, code, err := d.group(groupID)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("group: %d, %v", code, err)
		}
		if len(v.Participants) != 1 || v.Participants[0] != d.info.OwnerIdentity {
			return fmt.Errorf("participants %v, want the owner alone", v.Participants)
		}
		if !strings.Contains(d.proc.stderr.String(), "no valid Virgil signature") {
			return errors.New("no refusal in the log yet")
		}
		return nil
	})
}

func mustIdentities(t *testing.T, secret, owner string) *groupsync.Identities {
	t.Helper()
	ids, err := groupsync.NewIdentities([]byte(secret), owner)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
