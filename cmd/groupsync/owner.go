package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"

	"github.com/groupsync/groupsync/internal/secretfile"
	"github.com/groupsync/groupsync/virgil"
)

// runOwner implements `groupsync owner init|rotate`.
func runOwner(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "rotate" {
		return runOwnerRotate(ctx, e, args[1:])
	}
	if len(args) == 0 || args[0] != "init" {
		return usagef("owner needs a subcommand: init or rotate")
	}
	s := newSettings("owner init", e.getenv, join(virgilOptions, []string{"owner-identity", "owner-key-file"}, logOptions)...)
	if err := s.parse(args[1:], e.stdout); err != nil {
		return err
	}
	o, err := parseOwnerSettings(s)
	if err != nil {
		return err
	}
	identity := o.OwnerIdentity
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
	if err := writeKeyFile(path, key); err != nil {
		return fmt.Errorf("owner init: %w", err)
	}
	cardID, err := o.owner(key).EnsureCard(ctx)
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

// loadOwnerKey reads the owner's private key file, named by setting,
// refusing one that group or others may read or write, or that is not a
// regular file (virgil.ReadPrivateKeyFile); the refusal names the setting.
func loadOwnerKey(setting, path string) (*virgil.PrivateKey, error) {
	key, err := virgil.ReadPrivateKeyFile(path)
	var me *secretfile.ModeError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, usagef("owner key file %s not found: create it with `groupsync owner init`", path)
	case errors.As(err, &me):
		named := *me
		named.Name = setting
		return nil, usagef("%v", &named)
	case errors.Is(err, virgil.ErrInvalidKey):
		return nil, usagef("owner key file %s: not a base64 PKCS#8 Ed25519 key", path)
	case err != nil:
		return nil, usagef("owner key file: %v", err)
	}
	return key, nil
}

// runOwnerRotate implements `groupsync owner rotate`: a new owner key, a card
// for it that replaces the current one, and every ticket of every group the
// store knows re-signed and re-encrypted with it. The new key is written to
// <owner-key-file>.new before anything is published; once every group is
// done the current key moves to <owner-key-file>.old and the new one takes
// its place. Running it again after a failure resumes.
func runOwnerRotate(ctx context.Context, e env, args []string) error {
	s := newSettings("owner rotate", e.getenv, join(virgilOptions, identityOptions, []string{"owner-key-file", "stream-replicas"}, natsOptions, storeOptions, logOptions)...)
	stopped := s.fs.Bool("workers-stopped", false, "confirm that no worker runs: workers sign tickets with the key they started with")
	if err := s.parse(args, e.stdout); err != nil {
		return err
	}
	if !*stopped {
		return usagef("owner rotate: stop every worker first (they sign tickets with the key they started with), then run it with --workers-stopped")
	}
	o, err := parseOwnerSettings(s)
	if err != nil {
		return err
	}
	identity := o.OwnerIdentity
	ids, err := parseIdentities(s)
	if err != nil {
		return err
	}
	sc, err := parseStore(s)
	if err != nil {
		return err
	}
	if sc.KV.Replicas, err = parseReplicas(s); err != nil {
		return err
	}
	log, err := parseLogger(s, e.stderr, "console")
	if err != nil {
		return err
	}
	path, setting := s.mustStr("owner-key-file"), s.settingName("owner-key-file")
	newPath, oldPath := path+".new", path+".old"

	// The current key; after an interruption between the two renames it is
	// already in the .old file.
	current, err := loadOwnerKey(setting, path)
	swapped := false
	if err != nil && !fileExists(path) && fileExists(oldPath) && fileExists(newPath) {
		swapped = true
		current, err = loadOwnerKey(setting, oldPath)
	}
	if err != nil {
		return err
	}
	next, err := newOrResumedKey(setting, newPath)
	if err != nil {
		return err
	}

	var nc *nats.Conn
	if sc.RedisURL == "" { // the store is JetStream KV
		natsCfg, err := parseNATS(s, "groupsync-owner-rotate")
		if err != nil {
			return err
		}
		if nc, err = connectNATS(natsCfg, log); err != nil {
			return err
		}
		defer nc.Close()
	}
	store, closeStore, err := openStore(ctx, sc, nc)
	if err != nil {
		return err
	}
	defer closeStore()
	guids, err := store.Groups(ctx)
	if err != nil {
		return fmt.Errorf("owner rotate: list groups: %w", err)
	}
	groups := make([]string, len(guids))
	for i, g := range guids {
		groups[i] = ids.Group(g)
	}
	fmt.Fprintf(e.stderr, "rotating the owner key of %s over %d group(s)...\n", identity, len(groups))
	rotated, err := o.owner(current).RotateKey(ctx, next, groups)
	if err != nil {
		return fmt.Errorf("owner rotate: interrupted (the new key is in %s; run the same command again to resume): %w", newPath, err)
	}
	cardID, err := rotated.EnsureCard(ctx)
	if err != nil {
		return fmt.Errorf("owner rotate: check the new card (run the same command again): %w", err)
	}
	if !swapped {
		if err := os.Rename(path, oldPath); err != nil {
			return fmt.Errorf("owner rotate: keep the previous key: %w", err)
		}
	}
	if err := os.Rename(newPath, path); err != nil {
		return fmt.Errorf("owner rotate: install the new key (it is in %s; run again to finish): %w", newPath, err)
	}
	syncDir(filepath.Dir(path))
	fmt.Fprintf(e.stdout, "owner identity: %s\ncard id:        %s (replaces the previous card)\ngroups:         %d re-keyed\nkey file:       %s (previous key in %s: delete it once the workers run)\nstart the workers again\n",
		identity, cardID, len(groups), path, oldPath)
	return nil
}

// newOrResumedKey returns the key in path, or generates one and writes it
// there (synced, mode 0600) before it is used anywhere.
func newOrResumedKey(setting, path string) (*virgil.PrivateKey, error) {
	if fileExists(path) {
		return loadOwnerKey(setting, path)
	}
	key, err := virgil.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(path, key); err != nil {
		return nil, fmt.Errorf("owner rotate: %w", err)
	}
	return key, nil
}

// writeKeyFile creates path (never overwriting) with key in base64 PKCS#8,
// synced to disk.
func writeKeyFile(path string, key *virgil.PrivateKey) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(key.MarshalPKCS8Base64() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// syncDir makes a rename or a new file in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
