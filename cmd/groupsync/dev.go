package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/webhook"
)

// exampleAppID is the CometChat app id of the example webhooks in
// testdata/cometchat; dev accepts it so the printed curl line works as is.
const exampleAppID = "5f1d2e3c4b5a6978"

var devOptions = append([]string{"http-addr", "data-dir", "redis-url", "partitions", "concurrency", "owner-identity",
	"emulator-addr", "nats-port", "cometchat-app-id", "cometchat-region", "cometchat-api-key", "cometchat-api-url"}, commonOptions...)

// runDev runs the whole system in one process: embedded NATS with
// JetStream, the Virgil emulator, the HTTP server and a worker pool.
func runDev(ctx context.Context, e env, args []string) error {
	s, log, grace, err := startRole(e, "dev", args, "console", devOptions...)
	if err != nil {
		return err
	}
	partitions, err := s.int("partitions", 1)
	if err != nil {
		return err
	}
	conc, err := s.int("concurrency", 0)
	if err != nil {
		return err
	}
	natsPort, err := strconv.Atoi(s.mustStr("nats-port"))
	if err != nil || natsPort < -1 || natsPort > 65535 {
		return usagef("nats-port: %q is not a port or -1", s.mustStr("nats-port"))
	}
	identity := s.mustStr("owner-identity")
	if err := virgil.ValidateIdentity(identity); err != nil {
		return usagef("owner-identity: %v", err)
	}
	dir, err := filepath.Abs(s.mustStr("data-dir"))
	if err != nil {
		return usagef("data-dir: %v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return usagef("data-dir: %v", err)
	}
	sec, err := loadOrCreateDevSecrets(dir)
	if err != nil {
		return err
	}
	appKey, err := virgil.ParsePrivateKeyBase64(sec.VirgilAppKey)
	if err != nil {
		return fmt.Errorf("dev: secrets.json app key: %w", err)
	}
	serviceKey, err := virgil.ParsePrivateKeyBase64(sec.EmulatorService)
	if err != nil {
		return fmt.Errorf("dev: secrets.json emulator key: %w", err)
	}
	ownerKey, err := devOwnerKey(filepath.Join(dir, sec.OwnerKeyFileName))
	if err != nil {
		return err
	}
	ids, err := groupsync.NewIdentities([]byte(sec.IdentitySecret), identity)
	if err != nil {
		return err
	}
	if id := s.mustStr("cometchat-app-id"); id != "" {
		sec.CometChatAppID = id
	}
	// With a CometChat REST key, reconcile jobs read CometChat's members.
	var reconciler *membership
	if key, err := s.str("cometchat-api-key"); err != nil {
		return err
	} else if key != "" {
		cc, err := newCometChat(s)
		if err != nil {
			return err
		}
		reconciler = &membership{cc}
	}

	// NATS.
	ns, err := startEmbeddedNATS(dir, natsPort)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	natsURL := ns.ClientURL()

	// Virgil emulator.
	app := &virgilApp{gen: &virgil.JWTGenerator{AppID: sec.VirgilAppID, AppKeyID: sec.VirgilAppKeyID, AppKey: appKey}}
	emu, emuHandler, err := newEmulator(app, filepath.Join(dir, "emulator"), serviceKey, true, log.With().Str("component", "emulator").Logger())
	if err != nil {
		return err
	}
	defer emu.Close()
	emuLn, err := listenOrAny(s.mustStr("emulator-addr"))
	if err != nil {
		return err
	}
	emuSrv := &http.Server{Handler: emuHandler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = emuSrv.Serve(emuLn) }()
	defer emuSrv.Close()
	app.apiURL = "http://" + emuLn.Addr().String()

	// Queue and store.
	sNATS := newSettings("dev", func(k string) string {
		switch k {
		case options["nats-url"].env():
			return natsURL
		case options["partitions"].env():
			return strconv.Itoa(partitions)
		}
		return ""
	}, "nats-url", "partitions")
	redisURL := s.mustStr("redis-url")
	b, err := openBackends(ctx, sNATS, log, "groupsync-dev", redisURL)
	if err != nil {
		return err
	}
	defer b.close()
	nc, q, store := b.nc, b.q, b.store

	// Workers.
	wp := &workerParts{app: app, ids: ids, ownerKey: ownerKey, identity: identity, concurrent: conc, store: redisURL}
	if reconciler != nil {
		wp.reconciler = *reconciler
	}
	pool, err := newPool(ctx, wp, q, store, prometheus.NewRegistry(), log.With().Str("component", "worker").Logger())
	if err != nil {
		return err
	}
	poolDone := make(chan error, 1)
	go func() { poolDone <- pool.Run(context.WithoutCancel(ctx)) }()

	// HTTP.
	sc := &serveConfig{app: app, ids: ids, store: redisURL, web: webhook.Config{
		Addr:       s.mustStr("http-addr"),
		Username:   sec.WebhookUsername,
		Password:   sec.WebhookPassword,
		AppID:      sec.CometChatAppID,
		Logger:     log.With().Str("component", "http").Logger(),
		Identities: ids,
		ClientAuth: webhook.ClientAuthTrustHeader,
		Tokens:     webhook.VirgilTokens{Generator: app.gen},
	}}
	srv, err := startServer(ctx, sc, q, nc, store, pool.UserSeen, log)
	if err != nil {
		return err
	}

	info := devInfo{
		HTTPURL:         "http://" + srv.Addr(),
		VirgilAPIURL:    app.apiURL,
		NATSURL:         natsURL,
		RedisURL:        redisURL,
		Webhook:         devWebhook{Path: webhook.PathWebhook, Username: sec.WebhookUsername, Password: sec.WebhookPassword},
		CometChatAppID:  sec.CometChatAppID,
		ClientUIDHeader: webhook.HeaderUID,
		Virgil:          devVirgilInfo{AppID: sec.VirgilAppID, AppKeyID: sec.VirgilAppKeyID, AppKey: sec.VirgilAppKey},
		OwnerIdentity:   identity,
	}
	out, _ := json.MarshalIndent(info, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, "dev.json"), append(out, '\n'), 0o600); err != nil {
		return err
	}
	printBanner(e, info, dir, redisURL == "")

	select {
	case <-ctx.Done():
	case err := <-poolDone:
		return fmt.Errorf("worker pool stopped: %w", err)
	}
	fmt.Fprintln(e.stdout, "shutting down...")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("http shutdown")
	}
	if err := pool.Stop(sctx); err != nil {
		log.Warn().Err(err).Msg("worker stop")
	}
	<-poolDone
	return q.Close()
}

// devOwnerKey loads the owner key of dev mode, creating it on first start.
func devOwnerKey(path string) (*virgil.PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		key, err := virgil.GenerateKey()
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, []byte(key.MarshalPKCS8Base64()+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("dev: owner key: %w", err)
		}
	}
	return loadOwnerKey(path)
}

// listenOrAny listens on addr, or on a free port of the same host when
// addr's port is taken.
func listenOrAny(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		return nil, usagef("listen address %q: %v", addr, splitErr)
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}

func printBanner(e env, info devInfo, dir string, kv bool) {
	store := info.RedisURL
	if kv {
		store = "JetStream KV on the embedded NATS (set GROUPSYNC_REDIS_URL to use Redis)"
	}
	w := e.stdout
	fmt.Fprintf(w, `
groupsync dev is running (data in %s)

  webhooks     POST %s%s   Basic auth %s / %s, app id %s
  client API   GET  %s/v1/virgil-jwt, POST %s/v1/get-identities
               header %s: <uid> is trusted without a CometChat token (dev only)
  Virgil       %s (local emulator; groups at /_emulator/groups/<group id>?owner=%s)
  NATS         %s
  store        %s
  details      %s

Try it:
  curl -u %s:%s -H 'Content-Type: application/json' --data @testdata/cometchat/group_created.json %s%s
  curl -H '%s: alice' %s/v1/virgil-jwt

Ctrl-C stops it; starting again on the same data dir keeps every group and job.
`, dir, info.HTTPURL, info.Webhook.Path, info.Webhook.Username, info.Webhook.Password, info.CometChatAppID,
		info.HTTPURL, info.HTTPURL, info.ClientUIDHeader, info.VirgilAPIURL, info.OwnerIdentity, info.NATSURL, store,
		filepath.Join(dir, "dev.json"),
		info.Webhook.Username, info.Webhook.Password, info.HTTPURL, info.Webhook.Path, info.ClientUIDHeader, info.HTTPURL)
}
