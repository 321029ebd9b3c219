// Package queue carries groupsync jobs on NATS JetStream: it provisions the
// streams and consumers, publishes jobs without duplicates, hands them out one
// at a time per partition, and keeps the jobs that failed for good so an
// operator can list, replay or drop them.
//
// # Streams and subjects
//
// Jobs live in the stream GROUPSYNC (Config.Stream): file storage, work-queue
// retention (a job is removed once acknowledged or terminated), and a duplicate
// window of two minutes (Config.DuplicateWindow). Each job is published with
// its ID as Nats-Msg-Id, so CometChat's retries of the same webhook, which
// produce the same job ID, are stored once; Publish reports the second copy as
// a duplicate.
//
// Jobs that failed for good live in GROUPSYNC_DLQ (Config.DeadLetterStream),
// on the subject groupsync.dlq: file storage, limits retention, kept 30 days
// (Config.DeadLetterMaxAge).
//
// # Partitions and ordering
//
// A job goes to the subject groupsync.jobs.<p> (Config.SubjectPrefix), where p
// is Partition(guid, Config.Partitions): FNV-1a of the group id modulo the
// partition count, so every job of a group lands on the same partition. Each
// partition has one durable pull consumer, groupsync-p00, groupsync-p01, …,
// with explicit acks and at most one unacknowledged job. Whatever the number of
// worker processes calling Next on a partition, a partition hands out its next
// job only once the previous one is settled: jobs of one group never run
// concurrently, and they run in the order JetStream stored them. Throughput
// grows with the number of partitions. One exception: a worker that overruns
// Config.AckWait without calling Delivery.InProgress sees its job redelivered
// while it still runs, so workers must fence completion (docs/design.md,
// invariant 3).
//
// A job handed back with NakWithDelay, or whose ack wait ran out, keeps its
// place: JetStream counts it as pending until it is redelivered, so its
// partition (every group on it, not only the job's own) waits for the delay.
// Workers should therefore nak with delays of seconds, not minutes, and
// dead-letter what will not succeed soon. The order has limits all the same:
// it is the order in which jobs were stored, which concurrent webhooks may not
// preserve; a job retried from the dead letters is queued behind the jobs
// stored meanwhile; and changing the partition count moves groups between
// partitions (below). groupsync accepts this because applying a group's events
// is convergent under reordering (see docs/design.md and docs/convergence.md).
//
// # Changing the partition count
//
// Every process sharing the streams must use the same count. Open creates the
// consumers of the configured count and never deletes any. After raising the
// count, a group may move to another partition; jobs already queued on its old
// partition are still delivered, possibly after newer ones on the new partition
// (convergent, as above); existing consumers keep their place in the stream. After lowering the count, the consumers of the
// partitions dropped are kept and Open logs a warning for each that still holds
// jobs: those jobs are delivered only by workers still running with the former
// count, so lower the count only once the former partitions are drained
// (Stats shows the backlog of each partition).
//
// # Deliveries, retries and dead letters
//
// A worker settles each Delivery once: Ack on success, NakWithDelay for a
// transient failure, DeadLetter for a permanent one. InProgress extends the
// ack wait of a long job. A job gets Config.MaxDeliver deliveries; on the last
// one (Delivery.LastAttempt) a failing worker dead-letters it. Ack waits for
// JetStream's confirmation, one attempt at most Config.AckTimeout, and sends
// the acknowledgement again after an attempt that timed out or found nobody
// answering, within Config.AckWait: when the node leading a partition's
// consumer dies, the acknowledgement reaches the new leader as soon as one is
// elected, instead of the partition waiting for a redelivery. An
// acknowledgement never confirmed leaves the job to be redelivered, which
// the worker then finds done. The consumers
// allow one extra delivery that Next uses to dead-letter, by itself, a job
// whose last delivery was never settled (its worker crashed), so no job stays
// stuck. Next also dead-letters a message that does not decode as a job
// (reason "malformed job").
//
// DeadLetter stores the job's body unchanged in the dead-letter stream with
// headers for the reason, the original subject, the attempts, the job ID, the
// trigger, the group and the failure time (HeaderReason and the others), and
// only then terminates the original (Term: servers before 2.10.4 ignore
// TermWithReason, so it is not used). Failed lists dead letters; Retry and
// RetryAll queue them again under a fresh Nats-Msg-Id and remove them from the
// dead-letter stream once the new copy is stored; Purge drops them.
//
// # Connecting
//
// Every groupsync process connects with Connect and a ConnectConfig: one
// server or a comma-separated list of cluster nodes, credentials (user and
// password or a token in the URL, a token, an NKey seed file or a .creds
// file) and TLS (an authority for the servers' certificates, a client
// certificate). The connection reconnects forever with a jittered pause, so
// processes spread out after a node dies; messages never hold the URLs'
// user information (package redact).
//
// # Signed jobs
//
// NATS credentials decide who may publish on the job subjects; the job key
// decides what a worker will apply. Publish signs each job's body, byte for
// byte, with HMAC-SHA256 under Config.JobKey and sends the signature in the
// HeaderSignature header. Next verifies it with Config.JobKey or
// Config.PreviousJobKey and checks the job's app id against Config.AppID
// before it hands the job out; a job that fails either check is moved to
// the dead letters with the reason "unauthenticated job" and reaches no
// worker. Retry keeps a dead letter's signature, so a job queued by hand
// without the key stays unauthenticated however often it is retried, and
// re-signs with Config.JobKey a job whose signature an accepted key made.
// The signature covers the body only: someone who can publish on the job
// subjects can replay a job that was signed, which the workers' idempotency
// marks and ordering of events absorb (see docs/design.md); NATS credentials keep
// them off the subjects in the first place.
//
// To rotate the key without stopping anything: give every process the new
// key as PreviousJobKey (restarting them one by one), then swap the two
// (new key as JobKey, old as PreviousJobKey), then, once the job stream has
// no jobs signed with the old key left, drop PreviousJobKey.
//
// # Replicas
//
// Config.Replicas sets the replica count of both streams. Open creates them
// with it and changes a live stream's count in place when it differs
// (JetStream moves the data); when JetStream refuses (a server without
// clustering, fewer servers than replicas) Open fails with a
// *ReplicasError, which explains why on one line and leaves the streams as
// they were. Other streams and key-value buckets of groupsync take the same
// count and report refusals through ReplicasRefused.
//
// # Compatibility
//
// The package uses only features of NATS Server 2.9: one filter subject per
// consumer, no consumer metadata, no TermWithReason.
package queue
