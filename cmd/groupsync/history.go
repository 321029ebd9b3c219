package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/queue"
)

// runHistory implements `groupsync history GUID [--json] [--limit N]`: the
// group's audit trail, oldest first.
func runHistory(ctx context.Context, e env, args []string) error {
	s := newSettings("history", e.getenv, join(natsOptions, logOptions)...)
	asJSON := s.fs.Bool("json", false, "print JSON instead of a table")
	limit := s.fs.Int("limit", queue.DefaultHistoryLimit, "show the last N records")
	pos, err := s.parseInterspersed(args, e.stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("history takes one group id")
	}
	if *limit < 1 {
		return usagef("history: --limit %d: want at least 1", *limit)
	}
	guid := strings.ToLower(strings.TrimSpace(pos[0]))
	log, err := parseLogger(s, e.stderr, "console")
	if err != nil {
		return err
	}
	log = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
	natsCfg, err := parseNATS(s, "groupsync-history")
	if err != nil {
		return err
	}
	nc, err := connectNATS(natsCfg, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	audit, err := queue.OpenAudit(ctx, nc, queue.AuditConfig{ReadOnly: true})
	if err != nil {
		return err
	}
	recs, err := audit.History(ctx, guid, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if recs == nil {
			recs = []queue.AuditRecord{}
		}
		return enc.Encode(recs)
	}
	if len(recs) == 0 {
		fmt.Fprintf(e.stdout, "no changes recorded for group %s\n", guid)
		return nil
	}
	return printHistory(e, recs)
}

// parseInterspersed parses args whose flags may come after the positional
// arguments (groupsync history GUID --json) and returns the positional ones.
func (s *settings) parseInterspersed(args []string, out io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := s.parse(args, out); err != nil {
			return nil, err
		}
		rest := s.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printHistory prints audit records as a table.
func printHistory(e env, recs []queue.AuditRecord) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APPLIED AT\tACTION\tUID\tTRIGGER\tBY\tEVENT AT\tEPOCH\tJOB\tSEQ\tWORKER")
	for _, r := range recs {
		action := r.Action
		if r.Pending {
			action += " (pending)"
		}
		if r.Unknown > 0 {
			action += fmt.Sprintf(" (%d unknown removed)", r.Unknown)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.AppliedAt.UTC().Format(time.RFC3339), action,
			dash(r.UID), r.Trigger, dash(r.By), fmtTime(r.EventAt), fmtEpoch(r.Epoch), r.JobID, r.StreamSeq, r.Worker)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtEpoch(e *uint32) string {
	if e == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*e), 10)
}
