package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/webhook"
	"github.com/groupsync/groupsync/worker"
)

// exampleAppID is the CometChat app id of the example webhooks in
// testdata/cometchat; dev accepts it so the printed curl line works as is.
const exampleAppID = "5f1d2e3c4b5a6978"

// devConfig is dev mode: serve, worker, an embedded NATS and the Virgil
// emulator in one process, with credentials kept in the data dir.
type devConfig struct {
	Config
	dir     string      // absolute data dir
	secrets *devSecrets // the credentials of the data dir
}

// parseDev parses the configuration of `groupsync dev`, creating the data
// dir and its credentials on the first start.
func parseDev(e env, args []string) (*devConfig, error) {
	var cfg Config
	s, err := parseRole(e, "dev", args, "console", &cfg, join(devOptions, queueOptions, storeOptions)...)
	if err != nil {
		return nil, err
	}
	if cfg.Queue, err = parseQueue(s, cfg.Logger); err != nil {
		return nil, err
	}
	if cfg.Store, err = parseStore(s); err != nil {
		return nil, err
	}
	if cfg.Audit, err = parseAudit(s); err != nil {
		return nil, err
	}
	conc, err := s.int("concurrency", 0)
	if err != nil {
		return nil, err
	}
	skew, err := parseMaxClockSkew(s)
	if err != nil {
		return nil, err
	}
	natsPort, err := strconv.Atoi(s.mustStr("nats-port"))
	if err != nil || natsPort < -1 || natsPort > 65535 {
		return nil, usagef("nats-port: %q is not a port or -1", s.mustStr("nats-port"))
	}
	identity, err := parseOwnerIdentity(s)
	if err != nil {
		return nil, err
	}
	cc, err := parseCometChat(s, false)
	if err != nil {
		return nil, err
	}
	var clientAPI webhook.Config
	if err := parseClientAPI(s, &clientAPI, true); err != nil {
		return nil, err
	}
	anywhere, err := s.bool(devInsecureFlag)
	if err != nil {
		return nil, err
	}
	consoleAddr := s.mustStr("console-addr")
	if consoleAddr == "" {
		consoleAddr = console.DefaultAddr
	}
	exposed, err := checkDevListen(map[string]string{
		"http-addr":     s.mustStr("http-addr"),
		"emulator-addr": s.mustStr("emulator-addr"),
		"console-addr":  consoleAddr,
	}, anywhere)
	if err != nil {
		return nil, err
	}
	override, err := parseServiceKey(s)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(s.mustStr("data-dir"))
	if err != nil {
		return nil, usagef("data-dir: %v", err)
	}
	// The data dir holds every secret of the instance: owner only.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, usagef("data-dir: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, usagef("data-dir: %v", err)
	}
	sec, err := loadOrCreateDevSecrets(dir)
	if err != nil {
		return nil, err
	}
	if id := s.mustStr("cometchat-app-id"); id != "" {
		sec.CometChatAppID = id
	}
	appKey, err := virgil.ParsePrivateKeyBase64(sec.VirgilAppKey)
	if err != nil {
		return nil, fmt.Errorf("dev: secrets.json app key: %w", err)
	}
	serviceKey, err := virgil.ParsePrivateKeyBase64(sec.EmulatorService)
	if err != nil {
		return nil, fmt.Errorf("dev: secrets.json emulator key: %w", err)
	}
	ownerKey, err := devOwnerKey(filepath.Join(dir, sec.OwnerKeyFileName))
	if err != nil {
		return nil, err
	}
	ids, err := groupsync.NewIdentities([]byte(sec.IdentitySecret), identity)
	if err != nil {
		return nil, err
	}
	// Dev signs and verifies its jobs like any deployment, with the key
	// kept in secrets.json.
	cfg.Queue.JobKey, cfg.Queue.AppID = queue.JobKey(sec.JobKey), sec.CometChatAppID
	cfg.Store.KV.Replicas = cfg.Queue.Replicas
	jwt := &virgil.JWTGenerator{AppID: sec.VirgilAppID, AppKeyID: sec.VirgilAppKeyID, AppKey: appKey}
	cfg.NATS.Name = "groupsync-dev"
	cfg.Virgil = VirgilConfig{JWT: jwt} // APIURL: the emulator's
	cfg.EmbeddedNATS = &EmbeddedNATSConfig{StoreDir: filepath.Join(dir, "nats"), Port: natsPort}
	cfg.Emulator = &EmulatorConfig{
		Addr:           s.mustStr("emulator-addr"),
		AnyPortIfTaken: true,
		Emulator:       emulatorConfig(jwt, filepath.Join(dir, "emulator"), serviceKey, true, cfg.Logger),
	}
	cardsKey := serviceKey.Public() // the emulator's "virgil" signatures
	if override != nil {
		cardsKey = override
	}
	pool := worker.Config{Concurrency: conc}
	if err := parseReconcile(s, &pool, cc != nil); err != nil {
		return nil, err
	}
	cfg.Worker = &WorkerConfig{
		Pool:          pool,
		OwnerIdentity: identity,
		OwnerKey:      ownerKey,
		ServiceKey:    cardsKey,
		Identities:    ids,
		CometChat:     cc,
	}
	cfg.Serve = &webhook.Config{
		Addr:         s.mustStr("http-addr"),
		MaxClockSkew: skew,
		Username:     sec.WebhookUsername,
		Password:     sec.WebhookPassword,
		AppID:        sec.CometChatAppID,
		Identities:   ids,
		ClientAuth:   webhook.ClientAuthTrustHeader,
		Tokens:       webhook.VirgilTokens{Generator: jwt},
	}
	cfg.Serve.Limits, cfg.Serve.CORS = clientAPI.Limits, clientAPI.CORS
	cfg.Console = &ConsoleConfig{
		Console:        console.Config{Addr: consoleAddr, Username: sec.ConsoleUsername, Password: sec.ConsolePassword},
		AnyPortIfTaken: true,
	}
	// As serve: forms stay valid across restarts of the same data dir.
	setConsoleCSRFKeys(&cfg.Console.Console, cfg.Queue)
	for _, a := range exposed {
		cfg.Logger.Warn().Str("listen", a).Msgf("DEV MODE LISTENS BEYOND LOOPBACK (--%s): anyone who reaches %s can act as any user (X-CometChat-UID is trusted), inject Virgil faults and read groups; never do this on a shared network",
			devInsecureFlag, a)
	}
	return &devConfig{Config: cfg, dir: dir, secrets: sec}, nil
}

// runDev runs the whole system in one process: embedded NATS with
// JetStream, the Virgil emulator, the HTTP server and a worker pool.
func runDev(ctx context.Context, e env, args []string) error {
	dc, err := parseDev(e, args)
	if err != nil {
		return err
	}
	started := func(m *Main) error {
		info := dc.info(m)
		out, _ := json.MarshalIndent(info, "", "  ")
		if err := writeFileAtomic(filepath.Join(dc.dir, "dev.json"), append(out, '\n'), 0o600); err != nil {
			return err
		}
		printBanner(e, info, dc.dir, dc.Store.RedisURL == "")
		return nil
	}
	stopping := func() { fmt.Fprintln(e.stdout, "shutting down...") }
	return runMain(ctx, dc.Config, started, stopping)
}

// info is what dev.json tells programs about the running instance m.
func (dc *devConfig) info(m *Main) devInfo {
	sec := dc.secrets
	return devInfo{
		HTTPURL:         "http://" + m.HTTPAddr,
		VirgilAPIURL:    m.VirgilURL,
		NATSURL:         m.NATSURL,
		RedisURL:        dc.Store.RedisURL,
		Webhook:         devWebhook{Path: webhook.PathWebhook, Username: sec.WebhookUsername, Password: sec.WebhookPassword},
		CometChatAppID:  sec.CometChatAppID,
		ClientUIDHeader: webhook.HeaderUID,
		Virgil:          devVirgilInfo{AppID: sec.VirgilAppID, AppKeyID: sec.VirgilAppKeyID, AppKey: sec.VirgilAppKey, ServiceKey: dc.Worker.ServiceKey.MarshalSPKIBase64()},
		OwnerIdentity:   dc.Worker.OwnerIdentity,
		Console:         devConsole{URL: "http://" + m.ConsoleAddr, Username: sec.ConsoleUsername, Password: sec.ConsolePassword},
	}
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
	return loadOwnerKey("dev owner key", path)
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
               browser pages on http://localhost:*, http://127.0.0.1:* may call it (CORS)
  console      %s/   Basic auth %s / %s (failed jobs, groups, why a member is or is not in a group)
  Virgil       %s (local emulator; groups at /_emulator/groups/<group id>?owner=%s)
  NATS         %s
  store        %s
  details      %s

Try it:
  curl -u %s:%s -H 'Content-Type: application/json' --data @testdata/cometchat/group_created.json %s%s
  curl -H '%s: alice' %s/v1/virgil-jwt

Ctrl-C stops it; starting again on the same data dir keeps every group and job.
`, dir, info.HTTPURL, info.Webhook.Path, info.Webhook.Username, info.Webhook.Password, info.CometChatAppID,
		info.HTTPURL, info.HTTPURL, info.ClientUIDHeader, info.Console.URL, info.Console.Username, info.Console.Password, info.VirgilAPIURL, info.OwnerIdentity, info.NATSURL, store,
		filepath.Join(dir, "dev.json"),
		info.Webhook.Username, info.Webhook.Password, info.HTTPURL, info.Webhook.Path, info.ClientUIDHeader, info.HTTPURL)
}
