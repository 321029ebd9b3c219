package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/worker"
)

// openMeta opens the workers' bookkeeping in JetStream (worker.Meta), with
// the streams' replica count (0: as it is, 1 for a new bucket).
func openMeta(ctx context.Context, nc *nats.Conn, replicas int) (*worker.Meta, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return worker.OpenMeta(ctx, js, "", replicas)
}

// openRoster opens the bucket where worker pools write their heartbeats
// (worker.Roster), with the streams' replica count (0: as it is, 1 for a new
// bucket); readOnly opens it without creating it.
func openRoster(ctx context.Context, nc *nats.Conn, replicas int, readOnly bool) (*worker.Roster, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return worker.OpenRoster(ctx, js, worker.RosterConfig{Replicas: replicas, ReadOnly: readOnly})
}

// printReconcileStatus writes the last scheduled reconcile's outcome, as a
// table or (asJSON) as one JSON object (null when none ran).
func printReconcileStatus(w io.Writer, st worker.ReconcileStatus, ok, asJSON bool) error {
	if asJSON {
		var v any
		if ok {
			v = st
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if !ok {
		_, err := fmt.Fprintln(w, "no scheduled reconcile has run yet (workers run one every --reconcile-interval when a CometChat API key is set)")
		return err
	}
	outcome := "finished queuing at " + st.FinishedAt.Format(time.RFC3339)
	switch {
	case st.Error != "":
		outcome = "stopped early: " + st.Error
	case st.FinishedAt.IsZero():
		outcome = "queuing (or its worker stopped; another takes over)"
	}
	drift := "none"
	if len(st.Drift) > 0 {
		kinds := make([]string, 0, len(st.Drift))
		for k, n := range st.Drift {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(kinds)
		drift = strings.Join(kinds, ", ")
	}
	tooLarge := fmt.Sprint(st.TooLargeCount)
	if st.TooLargeCount > 0 {
		tooLarge += " (" + strings.Join(st.TooLarge, " ") + ")"
	}
	// Groups the store holds as existing that CometChat did not list: their
	// deletion webhooks were lost.
	unlisted := fmt.Sprintf("%d queued", st.Unlisted)
	switch {
	case st.UnlistedSkipped != "":
		unlisted = "not looked for: " + st.UnlistedSkipped
	case st.UnlistedLeft > 0:
		unlisted += fmt.Sprintf(", %d more left to later runs", st.UnlistedLeft)
	}
	_, err := fmt.Fprintf(w, "run:        %s\nworker:     %s\nstarted:    %s\noutcome:    %s\ngroups:     %d listed, %d queued, %d reconciled\ntoo large:  %s\nnot listed: %s\ndrift:      %s\n",
		st.Run, st.Worker, st.StartedAt.Format(time.RFC3339), outcome, st.Groups, st.Queued, st.Reconciled, tooLarge, unlisted, drift)
	return err
}

// reconcileSettings reads the scheduled reconcile's interval and rate and the
// loss checks' window.
func reconcileSettings(s *settings) (interval time.Duration, rate float64, lossWindow time.Duration, err error) {
	if interval, err = s.duration("reconcile-interval"); err != nil {
		return
	}
	if rate, err = s.float("reconcile-rate"); err != nil {
		return
	}
	if lossWindow, err = s.duration("loss-window"); err != nil {
		return
	}
	if lossWindow < time.Minute {
		err = usagef("loss-window: %s is shorter than CometChat's retries (+10 s, +30 s) plus the queue's lag; use at least 1m", lossWindow)
	}
	return
}

// showReconcileStatus implements `groupsync reconcile --status [--json]`.
func showReconcileStatus(ctx context.Context, s *settings, out io.Writer, asJSON bool, log zerolog.Logger) error {
	nc, err := parseNATS(s, "groupsync-reconcile-status")
	if err != nil {
		return err
	}
	conn, err := connectNATS(nc, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	meta, err := openMeta(ctx, conn, 0)
	if err != nil {
		return err
	}
	st, ok, err := meta.LastReconcile(ctx)
	if err != nil {
		return fmt.Errorf("reconcile status: %w", err)
	}
	return printReconcileStatus(out, st, ok, asJSON)
}
