package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/virgil"
)

// devSecrets are the credentials dev mode makes on its first start and reuses
// afterwards, kept in <data-dir>/secrets.json (mode 0600).
type devSecrets struct {
	WebhookUsername  string `json:"webhook_username"`
	WebhookPassword  string `json:"webhook_password"`
	CometChatAppID   string `json:"cometchat_app_id"`
	IdentitySecret   string `json:"identity_secret"`
	VirgilAppID      string `json:"virgil_app_id"`
	VirgilAppKeyID   string `json:"virgil_app_key_id"`
	VirgilAppKey     string `json:"virgil_app_key"`
	EmulatorService  string `json:"emulator_service_key"`
	OwnerKeyFileName string `json:"owner_key_file"`
	// JobKey signs dev's jobs; data dirs made before it existed get one on
	// their next start.
	JobKey string `json:"job_key"`
	// ConsoleUsername and ConsolePassword are the web console's
	// credentials; data dirs made before the console get them on their
	// next start.
	ConsoleUsername string `json:"console_username"`
	ConsolePassword string `json:"console_password"`
}

// fillNew gives s the secrets added since its data dir was made, and
// reports whether it changed.
func (s *devSecrets) fillNew() bool {
	changed := false
	if s.JobKey == "" {
		s.JobKey, changed = randomHex(32), true
	}
	if s.ConsoleUsername == "" || s.ConsolePassword == "" {
		s.ConsoleUsername, s.ConsolePassword, changed = "operator", randomHex(16), true
	}
	return changed
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}

// loadOrCreateDevSecrets reads dir/secrets.json or creates it (mode 0600).
// Like every secret file, it is refused when group or others may read or
// write it.
func loadOrCreateDevSecrets(dir string) (*devSecrets, error) {
	path := filepath.Join(dir, "secrets.json")
	b, err := secretfile.Read("dev secrets", path)
	if errors.Is(err, secretfile.ErrNotPrivate) {
		return nil, usagef("%v", err)
	}
	if err == nil {
		var s devSecrets
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("dev: %s is damaged (%v); remove the data dir to start afresh", path, err)
		}
		if s.fillNew() {
			if err := s.save(path); err != nil {
				return nil, err
			}
		}
		return &s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dev: read %s: %w", path, err)
	}
	appKey, err := virgil.GenerateKey()
	if err != nil {
		return nil, err
	}
	serviceKey, err := virgil.GenerateKey()
	if err != nil {
		return nil, err
	}
	s := &devSecrets{
		WebhookUsername:  "cometchat",
		WebhookPassword:  randomHex(16),
		CometChatAppID:   exampleAppID,
		IdentitySecret:   randomHex(32),
		VirgilAppID:      randomHex(16),
		VirgilAppKeyID:   randomHex(16),
		VirgilAppKey:     appKey.MarshalPKCS8Base64(),
		EmulatorService:  serviceKey.MarshalPKCS8Base64(),
		OwnerKeyFileName: "owner.key",
	}
	s.fillNew()
	if err := s.save(path); err != nil {
		return nil, err
	}
	return s, nil
}

// save writes s to path, mode 0600.
func (s *devSecrets) save(path string) error {
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, out, 0o600); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in the same folder and
// renames it into place, so readers never see a half-written file.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// devInfo is <data-dir>/dev.json, the contract of docs/design.md with programs
// that drive a dev instance.
type devInfo struct {
	HTTPURL         string        `json:"http_url"`
	VirgilAPIURL    string        `json:"virgil_api_url"`
	NATSURL         string        `json:"nats_url"`
	RedisURL        string        `json:"redis_url"`
	Webhook         devWebhook    `json:"webhook"`
	CometChatAppID  string        `json:"cometchat_app_id"`
	ClientUIDHeader string        `json:"client_uid_header"`
	Virgil          devVirgilInfo `json:"virgil"`
	OwnerIdentity   string        `json:"owner_identity"`
	Console         devConsole    `json:"console"`
}

// devConsole is how to reach dev's web console.
type devConsole struct {
	URL      string `json:"url"`
	Username string `json:"username"`
	Password string `json:"password"`
}

type devWebhook struct {
	Path     string `json:"path"`
	Username string `json:"username"`
	Password string `json:"password"`
}

type devVirgilInfo struct {
	AppID    string `json:"app_id"`
	AppKeyID string `json:"app_key_id"`
	AppKey   string `json:"app_key"`
	// ServiceKey is the public key (base64 SPKI) the owner checks every
	// card's "virgil" signature with: the emulator's, unless
	// GROUPSYNC_VIRGIL_SERVICE_KEY says otherwise.
	ServiceKey string `json:"service_key"`
}
