// Package worker is groupsync's consumer pool: it takes jobs from the queue,
// one at a time per partition, and keeps every Virgil group in step with its
// CometChat group.
//
// # A job's life
//
// The pool sees only authenticated jobs: the queue hands out a job only
// when its signature (queue.Config.JobKey or PreviousJobKey) and its
// CometChat app id check out, and dead-letters anything else as
// "unauthenticated job" before any plan is made. New refuses a queue that
// cannot check them.
//
// For each delivery the pool takes the job's idempotency lease in the Store
// (key: the job ID; value: stream sequence, delivery count and worker id;
// lifetime Config.LeaseTTL, renewed by a heartbeat that also sends
// InProgress to JetStream). A job already done is acknowledged at once; a
// job leased by another live delivery is handed back with NakWithDelay. The
// pool then reads the group's state, asks groupsync.Apply for the plan (or,
// for a reconcile job, reads the group's members through Config.Reconciler
// and asks groupsync.Reconcile), applies the plan's steps to the
// groupsync.EncryptedGroups (VirgilGroups on a *virgil.Owner), and commits:
// the new state, the user index and the job's "done" mark are written
// together, only if the caller still holds the lease and the state did not
// change meanwhile (RedisStore does it in one Lua script). A stale worker can therefore never mark a job done, and a
// concurrent change makes the job plan again from the fresh state; every
// Virgil operation is convergent, so running a plan twice changes nothing.
//
// # Failures
//
// Transient failures (Virgil 5xx and 429 with Retry-After, timeouts, Redis
// and NATS blips) are retried within the delivery with exponential backoff
// (Config.RetryInitial, RetryMax, Retries), then the job is handed back with
// NakWithDelay (Config.NakBase doubling up to NakMax, or the Retry-After).
// Permanent failures (groupsync.Permanent: a group past 100 participants, a
// malformed job) and failures on the last delivery go to the dead-letter
// stream with the reason; `groupsync jobs retry` replays them. A reconcile
// job without a Config.Reconciler is dead-lettered as ReasonNeedsReconcile.
// On shutdown, running jobs are handed back, never dead-lettered.
//
// # Members without a card, and changed cards
//
// A member without a Virgil card is kept pending in the group's state and in
// the user to groups index. Pool.UserSeen (called when the user fetches a
// Virgil token) schedules checks of that user over the next minutes, and
// Pool.Sweep (every Config.SweepInterval) checks every pending member. A
// check that finds a pending member's card, or a card other than the one a
// participant was given tickets under, queues a groupsync.TriggerCardCheck
// job (CardCheckJob) on the group's partition, so it never races the group's
// other jobs.
//
// # A loss of the store's data
//
// The store holds a marker (Marker), written when a worker first uses it;
// Meta, in JetStream, records it. A worker that finds the marker gone or
// changed (at start, or after reading a group's state for a job) knows the
// store lost its data: it writes a new marker, records when the loss was
// found, and for every job stored until Config.LossWindow after that, asks
// CometChat (Config.Reconciler) for the group's members before applying a
// membership change, keeping only what CometChat confirms
// (groupsync.Confirm). Without a Reconciler such jobs are dead-lettered
// (ReasonUnconfirmed), and Degraded says why.
//
// # Scheduled reconcile
//
// With Config.ReconcileInterval, the worker holding the "reconcile" lease in
// Meta lists CometChat's groups (Config.Groups) once per interval, skips
// those past E3Kit's participant limit by their member count, and queues a
// reconcile job per group (ReconcileJob), paced to Config.ReconcileRate
// CometChat requests per second. Each job reads the group's member count
// (MemberCounter) and members and plans with groupsync.Reconcile; what it
// repairs is counted in groupsync_reconcile_drift_total and added to the
// run's ReconcileStatus in Meta.
//
// # Stores
//
// RedisStore (go-redis) is the production Store; KVStore keeps the same data
// in JetStream key-value buckets for `groupsync dev` without Redis. Losing a
// store's data never makes a plan add or remove anyone an event did not name
// (docs/design.md, invariant 5): it only weakens the filtering of stale events
// that were in flight.
package worker
