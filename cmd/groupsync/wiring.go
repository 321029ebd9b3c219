package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
)

// connectNATS connects to url and keeps reconnecting for as long as the
// process runs: a NATS restart is a blip, not a failure.
func connectNATS(url, name string, log zerolog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("nats_url", c.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// openQueue connects to NATS and provisions the job streams.
func openQueue(ctx context.Context, s *settings, log zerolog.Logger, name string) (*nats.Conn, *queue.Queue, error) {
	partitions, err := s.int("partitions", 1)
	if err != nil {
		return nil, nil, err
	}
	nc, err := connectNATS(s.mustStr("nats-url"), name, log)
	if err != nil {
		return nil, nil, err
	}
	q, err := queue.Open(ctx, nc, queue.Config{Partitions: partitions, Logger: log})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, q, nil
}

// virgilApp is the Virgil application: what signs JWTs.
type virgilApp struct {
	apiURL string
	gen    *virgil.JWTGenerator
}

func loadVirgilApp(s *settings) (*virgilApp, error) {
	appID, err := s.required("virgil-app-id")
	if err != nil {
		return nil, err
	}
	keyID, err := s.required("virgil-app-key-id")
	if err != nil {
		return nil, err
	}
	raw, err := s.required("virgil-app-key")
	if err != nil {
		return nil, err
	}
	key, err := virgil.ParsePrivateKeyBase64(raw)
	if err != nil {
		return nil, usagef("virgil-app-key: not a base64 PKCS#8 Ed25519 key: %v", err)
	}
	apiURL := ""
	if _, ok := s.values["virgil-api-url"]; ok {
		apiURL = s.mustStr("virgil-api-url")
	}
	return &virgilApp{
		apiURL: apiURL,
		gen:    &virgil.JWTGenerator{AppID: appID, AppKeyID: keyID, AppKey: key},
	}, nil
}

func loadIdentities(s *settings) (*groupsync.Identities, error) {
	secret, err := s.required("identity-secret")
	if err != nil {
		return nil, err
	}
	ids, err := groupsync.NewIdentities([]byte(secret), s.mustStr("owner-identity"))
	if err != nil {
		return nil, usagef("identity-secret: %v", err)
	}
	return ids, nil
}
