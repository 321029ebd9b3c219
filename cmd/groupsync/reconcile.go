package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/worker"
)

// runReconcile implements `groupsync reconcile GUID...|--all|--status`: it
// shows the last scheduled run (--status), or queues one
// reconcile job per group. Workers run them in the group's partition, so a
// reconcile never races the group's webhook jobs, and each reads the group's
// members from CometChat's REST API and brings the Virgil group in line.
func runReconcile(ctx context.Context, e env, args []string) error {
	s := newSettings("reconcile", e.getenv, join(natsOptions, queueOptions, jobKeyOptions, cometchatOptions, logOptions)...)
	all := s.fs.Bool("all", false, "reconcile every group of the CometChat app")
	status := s.fs.Bool("status", false, "show the outcome of the workers' last scheduled reconcile")
	asJSON := s.fs.Bool("json", false, "with --status: print it as JSON")
	if err := s.parse(args, e.stdout); err != nil {
		return err
	}
	guids := s.fs.Args()
	log, err := parseLogger(s, e.stderr, "console")
	if err != nil {
		return err
	}
	if *status {
		if *all || len(guids) > 0 {
			return usagef("reconcile --status takes no group ids and no --all")
		}
		return showReconcileStatus(ctx, s, e.stdout, *asJSON, log)
	}
	if *asJSON {
		return usagef("--json goes with --status")
	}
	if *all == (len(guids) > 0) {
		return usagef("reconcile takes group ids, --all or --status")
	}
	qc, err := parseQueue(s, log)
	if err != nil {
		return err
	}
	var cc *cometchat.Client
	if *all {
		ccfg, err := parseCometChat(s, true)
		if err != nil {
			return err
		}
		if cc, err = cometchat.New(*ccfg); err != nil {
			return err
		}
	}
	// Reconcile jobs are signed like webhook jobs and carry the app id the
	// workers check.
	appID, err := s.required("cometchat-app-id")
	if err != nil {
		return err
	}
	if err := parseJobKeys(s, &qc, appID, true); err != nil {
		return err
	}
	nc, q, err := openNATSQueue(ctx, s, "groupsync-reconcile", qc, log)
	if err != nil {
		return err
	}
	defer nc.Close()

	run := time.Now().UTC().Format("20060102T150405.000")
	queued := 0
	enqueue := func(guid string) error {
		guid = strings.ToLower(strings.TrimSpace(guid))
		if guid == "" {
			return nil
		}
		if _, err := q.Publish(ctx, worker.ReconcileJob(guid, run)); err != nil {
			return fmt.Errorf("queue reconcile of %s (%d queued so far; safe to run again): %w", guid, queued, err)
		}
		queued++
		return nil
	}
	if *all {
		err = cc.Groups(ctx, func(page []cometchat.Group) error {
			for _, g := range page {
				if err := enqueue(g.GUID); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stderr, "queued %d group(s)...\n", queued)
			return nil
		})
	} else {
		for _, g := range guids {
			if err = enqueue(g); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "queued %d reconcile job(s); workers apply them (follow with `groupsync jobs failed`)\n", queued)
	return nil
}
