package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
)

// runJobs implements `groupsync jobs failed|retry|purge`.
func runJobs(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usagef("jobs needs a subcommand: failed, retry or purge")
	}
	sub, args := args[0], args[1:]
	s := newSettings("jobs "+sub, e.getenv, join(natsOptions, queueOptions, jobKeyOptions, logOptions)...)
	asJSON := s.fs.Bool("json", false, "print JSON instead of a table")
	all := false
	if sub == "retry" {
		s.fs.BoolVar(&all, "all", false, "retry every failed job")
	}
	if err := s.parse(args, e.stdout); err != nil {
		return err
	}
	log, err := parseLogger(s, e.stderr, "console")
	if err != nil {
		return err
	}
	log = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
	qc, err := parseQueue(s, log)
	if err != nil {
		return err
	}
	if sub == "retry" && all == (s.fs.NArg() > 0) {
		return usagef("jobs retry takes job ids or --all (see groupsync jobs failed)")
	}
	if sub != "failed" && sub != "retry" && sub != "purge" {
		return usagef("unknown jobs subcommand %q: use failed, retry or purge", sub)
	}
	// The job key is optional here: retry keeps each job's signature, and
	// with the key re-signs those an accepted key made (a rotation).
	if err := parseJobKeys(s, &qc, "", false); err != nil {
		return err
	}
	nc, q, err := openNATSQueue(ctx, s, "groupsync-jobs", qc, log)
	if err != nil {
		return err
	}
	defer nc.Close()

	switch sub {
	case "failed":
		if s.fs.NArg() > 0 {
			return usagef("jobs failed takes no arguments")
		}
		jobs, err := q.Failed(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if jobs == nil {
				return enc.Encode([]any{})
			}
			return enc.Encode(jobs)
		}
		if len(jobs) == 0 {
			fmt.Fprintln(e.stdout, "no failed jobs")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTRIGGER\tGROUP\tATTEMPTS\tFAILED AT\tERROR")
		for _, j := range jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Trigger, j.GUID, j.Attempts, j.FailedAt.UTC().Format(time.RFC3339), j.Error)
		}
		return tw.Flush()
	case "retry":
		ids := s.fs.Args()
		var n int
		if all {
			n, err = q.RetryAll(ctx)
		} else {
			n, err = q.Retry(ctx, ids...)
		}
		if err != nil {
			return err
		}
		return report(e, *asJSON, "retried", n)
	case "purge":
		if s.fs.NArg() > 0 {
			return usagef("jobs purge takes no arguments")
		}
		n, err := q.Purge(ctx)
		if err != nil {
			return err
		}
		return report(e, *asJSON, "purged", n)
	default:
		return usagef("unknown jobs subcommand %q: use failed, retry or purge", sub)
	}
}

func report(e env, asJSON bool, verb string, n int) error {
	if asJSON {
		return json.NewEncoder(e.stdout).Encode(map[string]int{verb: n})
	}
	fmt.Fprintf(e.stdout, "%s %d job(s)\n", verb, n)
	return nil
}
