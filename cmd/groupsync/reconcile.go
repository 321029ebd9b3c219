package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/groupsync"
)

// runReconcile implements `groupsync reconcile GUID...|--all`: it queues one
// reconcile job per group. Workers run them in the group's partition, so a
// reconcile never races the group's webhook jobs, and each reads the group's
// members from CometChat's REST API and brings the Virgil group in line.
func runReconcile(ctx context.Context, e env, args []string) error {
	s := newSettings("reconcile", e.getenv, join(natsOptions, queueOptions, jobKeyOptions, cometchatOptions, logOptions)...)
	all := s.fs.Bool("all", false, "reconcile every group of the CometChat app")
	if err := s.parse(args, e.stdout); err != nil {
		return err
	}
	guids := s.fs.Args()
	if *all == (len(guids) > 0) {
		return usagef("reconcile takes group ids or --all")
	}
	log, err := parseLogger(s, e.stderr, "console")
	if err != nil {
		return err
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
		if _, err := q.Publish(ctx, reconcileJob(guid, run)); err != nil {
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

// reconcileJob is the job that asks a worker to bring one group in line with
// CometChat. Its ID is unique per run, so a rerun is never dropped as a
// duplicate of an earlier one.
func reconcileJob(guid, run string) groupsync.Job {
	return groupsync.Job{
		ID: "reconcile-" + run + "-" + guid,
		Event: groupsync.Event{
			Trigger:      groupsync.TriggerReconcile,
			Action:       groupsync.ActionReconcile,
			GUID:         guid,
			MembersCount: -1,
		},
		ReceivedAt: time.Now().UTC(),
	}
}
