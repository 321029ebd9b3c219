package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
)

// defaultExplainJobs is how many of the group's last audit records explain
// prints.
const defaultExplainJobs = 20

// ExplainConfig is what `groupsync explain` reads: NATS (the queue, its
// dead letters and the audit trail), the store, and Virgil as the owner
// when configured.
type ExplainConfig struct {
	// NATS is the NATS server of the queue.
	NATS NATSConfig
	// Queue configures the job streams (as the workers do).
	Queue queue.Config
	// Store selects the worker store.
	Store StoreConfig
	// Virgil, when set, reads groups as their owner; nil: Virgil is not
	// read, and the report says so.
	Virgil *ExplainVirgil
	// HistoryLimit is how many audit records to print.
	HistoryLimit int
}

// ExplainVirgil is the owner that explain reads Virgil as: the worker's
// settings.
type ExplainVirgil struct {
	// OwnerSettings are the service, the application, the key that checks
	// the cards and the owner's identity.
	OwnerSettings
	// OwnerKey is the owner's private key.
	OwnerKey *virgil.PrivateKey
	// Identities maps uids and guids to Virgil identities.
	Identities *groupsync.Identities
}

// virgilNotRead is what explain says when it has no Virgil settings.
const virgilNotRead = "not read: no Virgil settings (give the worker's GROUPSYNC_VIRGIL_APP_KEY, _APP_ID, _APP_KEY_ID, GROUPSYNC_IDENTITY_SECRET and the owner key file to read it)"

// parseExplain reads the settings of `groupsync explain`. Virgil is read
// when the Virgil App Key is given; the other settings the worker uses to
// act as the owner are then required.
func parseExplain(s *settings, limit int, log zerolog.Logger) (ExplainConfig, error) {
	var c ExplainConfig
	var err error
	if c.NATS, err = parseNATS(s, "groupsync-explain"); err != nil {
		return c, err
	}
	if c.Queue, err = parseQueue(s, log); err != nil {
		return c, err
	}
	if c.Store, err = parseStore(s); err != nil {
		return c, err
	}
	c.HistoryLimit = limit
	appKey, err := s.str("virgil-app-key")
	if err != nil || appKey == "" {
		return c, err
	}
	v := &ExplainVirgil{}
	if v.OwnerSettings, err = parseOwnerSettings(s); err != nil {
		return c, err
	}
	if v.OwnerKey, err = loadOwnerKey(s.settingName("owner-key-file"), s.mustStr("owner-key-file")); err != nil {
		return c, err
	}
	if v.Identities, err = parseIdentities(s); err != nil {
		return c, err
	}
	c.Virgil = v
	return c, nil
}

// runExplain implements `groupsync explain GUID [UID] [--json] [--limit N]`:
// what the store and Virgil hold of a group, its last jobs and failed jobs,
// and for a uid one plain sentence with its evidence.
func runExplain(ctx context.Context, e env, args []string) error {
	s := newSettings("explain", e.getenv, join(natsOptions, queueOptions, storeOptions, virgilOptions, identityOptions, []string{"owner-key-file"}, logOptions)...)
	asJSON := s.fs.Bool("json", false, "print JSON instead of text")
	limit := s.fs.Int("limit", defaultExplainJobs, "show the group's last N jobs")
	pos, err := s.parseInterspersed(args, e.stdout)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("explain takes a group id and optionally a user id")
	}
	if *limit < 1 {
		return usagef("explain: --limit %d: want at least 1", *limit)
	}
	guid := strings.ToLower(strings.TrimSpace(pos[0]))
	uid := ""
	if len(pos) == 2 {
		uid = strings.ToLower(strings.TrimSpace(pos[1]))
	}
	if guid == "" || len(pos) == 2 && uid == "" {
		return usagef("explain: empty group or user id")
	}
	log, err := parseLogger(s, e.stderr, "console")
	if err != nil {
		return err
	}
	log = log.Level(max(log.GetLevel(), zerolog.WarnLevel))
	cfg, err := parseExplain(s, *limit, log)
	if err != nil {
		return err
	}
	in, done, err := openInspector(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer done()
	g, err := in.Group(ctx, guid)
	if err != nil {
		return err
	}
	var m *inspect.MemberReport
	if uid != "" {
		r, err := in.Explain(ctx, guid, uid)
		if err != nil {
			return err
		}
		m = &r
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if m != nil {
			return enc.Encode(struct {
				Member *inspect.MemberReport `json:"member"`
				Group  inspect.GroupReport   `json:"group"`
			}{m, g})
		}
		return enc.Encode(g)
	}
	if m != nil {
		printMember(e.stdout, *m)
		fmt.Fprintln(e.stdout)
	}
	return printGroup(e.stdout, g)
}

// openInspector connects to NATS and opens what cfg names, read-only where
// it can: the queue, the audit trail, the store and the owner. done closes
// them.
func openInspector(ctx context.Context, cfg ExplainConfig, log zerolog.Logger) (*inspect.Inspector, func(), error) {
	nc, q, err := openQueue(ctx, cfg.NATS, cfg.Queue, log)
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){nc.Close}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*inspect.Inspector, func(), error) {
		done()
		return nil, nil, err
	}
	audit, err := queue.OpenAudit(ctx, nc, queue.AuditConfig{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	st, closeStore, err := openStore(ctx, cfg.Store, nc)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = closeStore() })
	ic := inspect.Config{Queue: q, Audit: audit, Store: st, HistoryLimit: cfg.HistoryLimit}
	if v := cfg.Virgil; v != nil {
		ic.Virgil = v.owner(v.OwnerKey)
		ic.Identities = v.Identities
	}
	in, err := inspect.New(ic)
	if err != nil {
		return fail(err)
	}
	return in, done, nil
}

// printMember prints a member's sentence and its evidence.
func printMember(w io.Writer, m inspect.MemberReport) {
	fmt.Fprintln(w, m.Sentence)
	switch {
	case m.Stored == nil:
		fmt.Fprintf(w, "  stored:       no state for %s in group %s\n", m.UID, m.GUID)
	default:
		fmt.Fprintf(w, "  stored:       %s\n", memberState(*m.Stored))
	}
	if m.Last == nil {
		fmt.Fprintln(w, "  last change:  none in the audit trail")
	} else {
		r := m.Last
		fmt.Fprintf(w, "  last change:  %s (%s) by %s, event at %s, job %s (seq %d), applied %s by %s\n",
			auditAction(*r), r.Trigger, dash(r.By), fmtTime(r.EventAt), r.JobID, r.StreamSeq, fmtTime(r.AppliedAt), r.Worker)
	}
	switch {
	case m.InVirgil == nil:
		fmt.Fprintf(w, "  virgil:       %s\n", virgilNote(m.VirgilNote))
	case *m.InVirgil:
		fmt.Fprintln(w, "  virgil:       lists them as a participant")
	default:
		fmt.Fprintln(w, "  virgil:       does not list them as a participant")
	}
	if c := m.CardChanged; c != nil {
		fmt.Fprintf(w, "  card changed: given the key under card %s, their card is now %s; a card check re-adds them\n", c.Stored, dash(c.Current))
	}
	fmt.Fprintf(w, "  failed jobs:  %d of the group (listed below)\n", len(m.Failed))
}

func memberState(m groupsync.MemberState) string {
	var what string
	switch {
	case !m.In:
		what = "removed"
	case m.Pending && m.PendingReason != "":
		what = "pending (" + m.PendingReason + ")"
	case m.Pending:
		what = "pending (no Virgil card yet)"
	default:
		what = "participant, card " + dash(m.CardID)
	}
	at := "-"
	if m.Stamp.At != 0 {
		at = time.Unix(m.Stamp.At, 0).UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s; decided by the event at %s, job at stream sequence %d", what, at, m.Stamp.Seq)
}

func auditAction(r queue.AuditRecord) string {
	if r.Pending {
		return r.Action + " (pending)"
	}
	return r.Action
}

func virgilNote(note string) string {
	if note == inspect.NotConfigured {
		return virgilNotRead
	}
	return note
}

// printGroup prints a group report as text.
func printGroup(w io.Writer, g inspect.GroupReport) error {
	fmt.Fprintf(w, "group %s\n\n", g.GUID)
	st := g.Store
	if !st.Read {
		fmt.Fprintf(w, "store: not read (%s)\n", st.Note)
	} else {
		life := string(st.Lifecycle)
		switch {
		case st.Lifecycle == groupsync.LifecycleUnknown:
			life = "no event said whether it exists"
		case !st.Deleted.IsZero():
			life += " at " + fmtTime(st.Deleted)
		}
		fmt.Fprintf(w, "store: %s; %d participant(s), %d pending, %d removed\n", life, len(st.Participants), len(st.Pending), len(st.Removed))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, m := range st.Participants {
			fmt.Fprintf(tw, "  participant\t%s\tsince %s\tcard %s\n", m.UID, memberAt(m), dash(m.CardID))
		}
		for _, m := range st.Pending {
			why := "no Virgil card yet; joins at their first login"
			if m.PendingReason != "" {
				why = m.PendingReason
			}
			fmt.Fprintf(tw, "  pending\t%s\tsince %s\t%s\n", m.UID, memberAt(m), why)
		}
		for _, m := range st.Removed {
			fmt.Fprintf(tw, "  removed\t%s\tat %s\t\n", m.UID, memberAt(m))
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w)
	v := g.Virgil
	switch {
	case !v.Read:
		fmt.Fprintf(w, "virgil: %s\n", virgilNote(v.Note))
	case !v.Exists:
		fmt.Fprintf(w, "virgil: group %s does not exist\n", v.GroupID)
	default:
		fmt.Fprintf(w, "virgil: group %s, %d epoch(s) kept (%s), newest %d\n", v.GroupID, len(v.Epochs), epochRange(v.Epochs), v.Latest)
		fmt.Fprintf(w, "  participants   %s\n", list(v.Participants))
		if len(v.Unknown) > 0 {
			fmt.Fprintf(w, "  not mapped     %d identit(ies) no known user maps to: %s\n", len(v.Unknown), strings.Join(v.Unknown, " "))
		}
	}
	if v.Read {
		if len(v.Missing) > 0 {
			fmt.Fprintf(w, "  missing        %s (stored as participants, not in Virgil: look for a failed job, or run groupsync reconcile)\n", list(v.Missing))
		}
		if len(v.Extra) > 0 {
			fmt.Fprintf(w, "  extra          %s (in Virgil, not stored as participants: run groupsync reconcile)\n", list(v.Extra))
		}
		for _, c := range v.CardChanged {
			fmt.Fprintf(w, "  card changed   %s: key given under card %s, current card %s\n", c.UID, c.Stored, dash(c.Current))
		}
		if v.Note != "" {
			fmt.Fprintf(w, "  note           %s\n", v.Note)
		}
	}
	fmt.Fprintln(w)
	if len(g.History) == 0 {
		fmt.Fprintln(w, "last jobs: none recorded")
	} else {
		fmt.Fprintf(w, "last jobs (%d):\n", len(g.History))
		if err := printHistory(env{stdout: w}, g.History); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(g.Failed) == 0 {
		fmt.Fprintln(w, "failed jobs: none")
		return nil
	}
	fmt.Fprintf(w, "failed jobs (%d; replay with groupsync jobs retry ID):\n", len(g.Failed))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTRIGGER\tATTEMPTS\tFAILED AT\tERROR")
	for _, f := range g.Failed {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", f.ID, f.Trigger, f.Attempts, fmtTime(f.FailedAt), f.Error)
	}
	return tw.Flush()
}

func memberAt(m inspect.Member) string {
	if !m.At.IsZero() {
		return fmtTime(m.At)
	}
	if m.Seq != 0 {
		return fmt.Sprintf("job seq %d", m.Seq)
	}
	return "-"
}

func list(uids []string) string {
	if len(uids) == 0 {
		return "none"
	}
	return strings.Join(uids, ", ")
}

func epochRange(e []uint32) string {
	if len(e) == 0 {
		return "none"
	}
	if len(e) == 1 {
		return fmt.Sprint(e[0])
	}
	return fmt.Sprintf("%d to %d", e[0], e[len(e)-1])
}
