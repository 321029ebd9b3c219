package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/groupsync/groupsync/groupsync"
)

// Errors of the stores that callers branch on.
var (
	// ErrLeaseLost: the job's lease is not (or no longer) held by the caller,
	// so it must not complete the job. Another delivery owns it now.
	ErrLeaseLost = errors.New("worker: job lease lost")
	// ErrConflict: the group state changed since it was read; read it again.
	ErrConflict = errors.New("worker: group state changed concurrently")
)

// Lease identifies one delivery's claim on a job: the job's stream sequence,
// the delivery count and the worker. Two deliveries of the same job never
// share a lease, so completion can be fenced on it.
type Lease struct {
	// Seq is the job's stream sequence.
	Seq uint64
	// Delivery is the delivery count (1 on the first).
	Delivery uint64
	// Worker is the id of the worker process.
	Worker string
}

// String encodes the lease as stored: "lease:<seq>:<delivery>:<worker>".
func (l Lease) String() string {
	return "lease:" + strconv.FormatUint(l.Seq, 10) + ":" + strconv.FormatUint(l.Delivery, 10) + ":" + l.Worker
}

// LeaseStatus is the outcome of Deduper.Acquire.
type LeaseStatus int

// The outcomes of Acquire.
const (
	// LeaseAcquired: the caller holds the job's lease and may run it.
	LeaseAcquired LeaseStatus = iota + 1
	// LeaseDone: the job completed before; acknowledge it without running.
	LeaseDone
	// LeaseHeld: another delivery holds a lease that has not expired; try
	// again once it expires.
	LeaseHeld
)

// String returns the status name.
func (s LeaseStatus) String() string {
	switch s {
	case LeaseAcquired:
		return "acquired"
	case LeaseDone:
		return "done"
	case LeaseHeld:
		return "held"
	}
	return "unknown"
}

// Deduper is the idempotency store: a fenced lease per job ID, which becomes
// "done" only through StateStore.Commit by the lease's holder.
type Deduper interface {
	// Acquire takes the lease of jobID for ttl unless the job is done
	// (LeaseDone) or another unexpired lease holds it (LeaseHeld). Taking a
	// lease the caller already holds renews it.
	Acquire(ctx context.Context, jobID string, l Lease, ttl time.Duration) (LeaseStatus, error)
	// Extend renews the caller's lease for ttl; ErrLeaseLost when it no
	// longer holds it.
	Extend(ctx context.Context, jobID string, l Lease, ttl time.Duration) error
	// Release drops the caller's lease so another delivery can run the job at
	// once. Releasing a lease one does not hold does nothing.
	Release(ctx context.Context, jobID string, l Lease) error
}

// Commit is the completion of a job: the group's new state, written only if
// the state is still at Version and the caller still holds Lease, after
// which the job is done for DoneTTL.
type Commit struct {
	// JobID is the job completed.
	JobID string
	// Lease is the caller's lease of the job.
	Lease Lease
	// GUID is the group whose state is written.
	GUID string
	// Version is the version StateStore.Group returned with the state the
	// caller started from (0 for a group without state).
	Version uint64
	// State is the group's new state.
	State groupsync.GroupState
	// DoneTTL is how long the job is remembered as done.
	DoneTTL time.Duration
}

// StateStore keeps each group's groupsync.GroupState and the user to groups
// index derived from it.
type StateStore interface {
	// Group returns the stored state of guid and its version; a group never
	// stored (or whose state was lost) has the zero state and version 0.
	Group(ctx context.Context, guid string) (groupsync.GroupState, uint64, error)
	// Commit writes c.State and the index entries of its members, and marks
	// the job done. ErrLeaseLost when the caller no longer holds c.Lease
	// (nothing is written); ErrConflict when the state is no longer at
	// c.Version (nothing is written).
	Commit(ctx context.Context, c Commit) error
	// Groups returns the guids of every group with stored state, sorted
	// (groups deleted in CometChat included: their Virgil group may still
	// hold tickets until the delete job ran).
	Groups(ctx context.Context) ([]string, error)
}

// UserIndex answers which groups a user is in, for members waiting for a
// Virgil card and members whose card changed.
type UserIndex interface {
	// UserGroups returns the groups uid is in, with their index entries.
	UserGroups(ctx context.Context, uid string) (map[string]groupsync.IndexEntry, error)
	// PendingUsers returns the users waiting for a Virgil card in at least
	// one group.
	PendingUsers(ctx context.Context) ([]string, error)
}

// Check is a scheduled re-check of one user's cards.
type Check struct {
	// UID is the user to check.
	UID string
	// Attempt counts the checks made since the user was last seen (0 first).
	Attempt int
}

// CheckSchedule holds the due times of user card re-checks, shared by every
// worker process.
type CheckSchedule interface {
	// ScheduleCheck makes uid due at at, replacing any earlier schedule.
	ScheduleCheck(ctx context.Context, c Check, at time.Time) error
	// DueChecks claims and returns up to max checks due at now; a claimed
	// check is handed to one caller only.
	DueChecks(ctx context.Context, now time.Time, max int) ([]Check, error)
}

// Store is everything the worker pool keeps outside the queue. RedisStore
// and KVStore implement it; both are safe for concurrent use by any number
// of processes.
type Store interface {
	Deduper
	StateStore
	UserIndex
	CheckSchedule
	Marker
}

// Marker is the store's initialisation mark. It is written when a worker
// first uses the store and vanishes with the store's data, so a worker that
// finds it missing or changed knows the data was lost (see Meta).
type Marker interface {
	// Marker returns the mark in place, "" when there is none.
	Marker(ctx context.Context) (string, error)
	// InitMarker writes mark unless the store has one, and returns the mark
	// in place.
	InitMarker(ctx context.Context, mark string) (string, error)
}

// indexValue encodes an index entry as stored: "p" for pending, "c:<card
// id>" for a participant ("c:" when the card is unknown), "" to delete.
func indexValue(e groupsync.IndexEntry) string {
	switch {
	case !e.In:
		return ""
	case e.Pending:
		return "p"
	}
	return "c:" + e.CardID
}

func parseIndexValue(v string) (groupsync.IndexEntry, error) {
	switch {
	case v == "p":
		return groupsync.IndexEntry{In: true, Pending: true}, nil
	case strings.HasPrefix(v, "c:"):
		return groupsync.IndexEntry{In: true, CardID: v[2:]}, nil
	}
	return groupsync.IndexEntry{}, fmt.Errorf("worker: bad index entry %q", v)
}
