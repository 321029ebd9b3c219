// Package inspect answers operators' questions about a running groupsync:
// what the queue holds and what the workers do (Overview), which jobs failed
// and why (Failed, FailedJob) and what to do with them (Retry, RetryAll,
// Purge), what groupsync and Virgil know of a group (Group) and its audit
// trail page by page (History), and why a user is or is not a participant
// (Explain).
//
// It reads the parts the other packages own (the queue and its dead
// letters, the audit trail, the worker store, the workers' roster and
// bookkeeping, and Virgil as the groups' owner) and never writes to them,
// except Retry, RetryAll and Purge, which act on the dead letters. It never
// guesses: a part that is not configured, or could not be read, is reported
// as not read. `groupsync explain` and the web console are built on it.
//
// Nothing it returns holds a secret: job bodies are redacted (package
// redact), and no job key, signature, token or app key is ever read into a
// report.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/worker"
)

// ErrNotFound is matched (errors.Is) by the errors of Group and Explain for
// a group groupsync knows nothing of (nothing in the store, the audit trail,
// Virgil or the dead letters), and of FailedJob and Retry for an unknown
// job id.
var ErrNotFound = errors.New("inspect: not found")

// GroupReader reads a Virgil group as its owner (*virgil.Owner implements
// it).
type GroupReader interface {
	// State returns the group's epochs and the participants of the newest
	// one; Exists is false for a group without epochs.
	State(ctx context.Context, groupID string) (virgil.GroupState, error)
	// CardIDs returns the current card id of each identity that has a card.
	CardIDs(ctx context.Context, identities []string) (map[string]string, error)
}

// Heartbeats lists the worker pools heard from lately (*worker.Roster
// implements it).
type Heartbeats interface {
	// Heartbeats returns the latest heartbeat of every worker.
	Heartbeats(ctx context.Context) ([]worker.Heartbeat, error)
}

// ReconcileStatus reads the outcome of the last scheduled reconcile
// (*worker.Meta implements it).
type ReconcileStatus interface {
	// LastReconcile returns the last run's status; false when none ran.
	LastReconcile(ctx context.Context) (worker.ReconcileStatus, bool, error)
}

var (
	_ GroupReader     = (*virgil.Owner)(nil)
	_ Heartbeats      = (*worker.Roster)(nil)
	_ ReconcileStatus = (*worker.Meta)(nil)
)

// DefaultHistoryLimit is how many audit records Group returns when
// Config.HistoryLimit is 0.
const DefaultHistoryLimit = 50

// explainHistoryLimit is how many of a group's audit records Explain looks
// through for the last change about a member.
const explainHistoryLimit = 10_000

// Config is what an Inspector reads. Queue and Audit are required; every
// other part may be nil, and is then reported as not configured.
type Config struct {
	// Queue is the job queue: its backlog and its dead letters.
	Queue *queue.Queue
	// Audit is the audit trail (open it read-only).
	Audit *queue.Audit
	// Store holds the groups' state; nil: not configured.
	Store worker.StateStore
	// Virgil reads groups as their owner, e.g. a *virgil.Owner; nil: Virgil
	// is not read.
	Virgil GroupReader
	// Identities maps uids and guids to Virgil identities; required with
	// Virgil.
	Identities *groupsync.Identities
	// Workers lists the worker pools' heartbeats (a *worker.Roster); nil:
	// not configured.
	Workers Heartbeats
	// Reconcile reads the last scheduled reconcile (a *worker.Meta); nil:
	// not configured.
	Reconcile ReconcileStatus
	// HistoryLimit is how many of a group's last audit records Group
	// returns, and History per page (default DefaultHistoryLimit).
	HistoryLimit int
	// StaleAfter is how long after its last heartbeat a worker counts as
	// gone (default three roster intervals, 30 s).
	StaleAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Inspector answers the questions of the package doc. It is safe for
// concurrent use.
type Inspector struct {
	cfg Config
}

// New returns an Inspector reading cfg's parts. It fails without a Queue or
// an Audit, with Virgil but no Identities, and with a negative HistoryLimit
// or StaleAfter, reporting every one of these, joined.
func New(cfg Config) (*Inspector, error) {
	var errs []error
	if cfg.Queue == nil || cfg.Audit == nil {
		errs = append(errs, errors.New("Queue and Audit are required"))
	}
	if cfg.Virgil != nil && cfg.Identities == nil {
		errs = append(errs, errors.New("Virgil needs Identities to map uids and guids"))
	}
	if cfg.HistoryLimit < 0 || cfg.StaleAfter < 0 {
		errs = append(errs, fmt.Errorf("HistoryLimit %d, StaleAfter %v: must not be negative", cfg.HistoryLimit, cfg.StaleAfter))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("inspect: config: %w", errors.Join(errs...))
	}
	if cfg.HistoryLimit == 0 {
		cfg.HistoryLimit = DefaultHistoryLimit
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = 3 * worker.DefaultRosterInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Inspector{cfg: cfg}, nil
}

// Not-read reasons, as reports carry them.
const (
	// NotConfigured: the part was not given to the Inspector.
	NotConfigured = "not configured"
)
