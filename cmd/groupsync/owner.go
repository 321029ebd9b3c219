package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/groupsync/groupsync/virgil"
)

// runOwner implements `groupsync owner init`.
func runOwner(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "init" {
		return usagef("owner needs a subcommand: init")
	}
	s := newSettings("owner init", e.getenv, "virgil-api-url", "virgil-app-id", "virgil-app-key-id", "virgil-app-key",
		"owner-identity", "owner-key-file", "log-level", "log-format")
	if err := s.parse(args[1:], e.stdout); err != nil {
		return err
	}
	app, err := loadVirgilApp(s)
	if err != nil {
		return err
	}
	identity := s.mustStr("owner-identity")
	if err := virgil.ValidateIdentity(identity); err != nil {
		return usagef("owner-identity: %v", err)
	}
	path := s.mustStr("owner-key-file")
	if _, err := os.Stat(path); err == nil {
		return usagef("owner key file %s exists; owner init never overwrites a key (use it, or move it away first)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("owner init: %w", err)
	}
	key, err := virgil.GenerateKey()
	if err != nil {
		return err
	}
	// Write the key before publishing, so that a published card always has
	// its key on disk. O_EXCL guards against a concurrent init.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("owner init: create key file: %w", err)
	}
	if _, err := f.WriteString(key.MarshalPKCS8Base64() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("owner init: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("owner init: write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("owner init: write key file: %w", err)
	}
	owner := virgil.NewOwner(virgil.NewClient(app.apiURL, app.gen.Source(identity)), key, identity)
	cardID, err := owner.EnsureCard(ctx)
	if err != nil {
		if errors.Is(err, virgil.ErrOwnerCardMismatch) {
			os.Remove(path)
			return fmt.Errorf("owner init: identity %s already has a card for another key; use that key (rotation: see README)", identity)
		}
		return fmt.Errorf("owner init: publish card (the key stays in %s; run again to retry): %w", path, err)
	}
	fmt.Fprintf(e.stdout, "owner identity: %s\ncard id:        %s\nkey file:       %s (mode 0600)\n", identity, cardID, path)
	return nil
}

// loadOwnerKey reads the owner's private key file.
func loadOwnerKey(path string) (*virgil.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("owner key file %s not found: create it with `groupsync owner init`", path)
		}
		return nil, usagef("owner key file: %v", err)
	}
	key, err := virgil.ParsePrivateKeyBase64(strings.TrimSpace(string(b)))
	if err != nil {
		if k2, err2 := virgil.ParsePrivateKey(b); err2 == nil {
			return k2, nil
		}
		return nil, usagef("owner key file %s: not a base64 PKCS#8 Ed25519 key", path)
	}
	return key, nil
}
