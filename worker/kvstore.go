package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// Default bucket names of KVStore.
const (
	DefaultKVJobsBucket  = "groupsync_jobs"
	DefaultKVStateBucket = "groupsync_state"
)

// KVStore is the Store on JetStream key-value buckets, for `dev` without
// Redis. Leases and done marks live in the jobs bucket (entries expire after
// a day), group state, the user index, pending markers and checks in the
// state bucket. Every write is a compare-and-set on the entry's revision.
//
// Unlike RedisStore, a Commit is several writes: the lease is checked, then
// the state is written (compare-and-set on its revision), the index updated
// and the job marked done (compare-and-set on the lease's revision). A stale
// worker can at worst write a state that the current holder's own Commit
// then fails to overwrite with ErrConflict and re-plans from; plans are
// convergent, so this costs a retry, not correctness.
type KVStore struct {
	jobs  jetstream.KeyValue
	state jetstream.KeyValue
	now   func() time.Time
}

var _ Store = (*KVStore)(nil)

// KVConfig names the buckets of a KVStore.
type KVConfig struct {
	// JobsBucket holds leases and done marks (default "groupsync_jobs").
	JobsBucket string
	// StateBucket holds group state and the user index (default
	// "groupsync_state").
	StateBucket string
	// DoneTTL is how long done marks are kept (default DefaultDoneTTL); it
	// is the jobs bucket's maximum age.
	DoneTTL time.Duration
	// Replicas is the buckets' replica count. OpenKVStore changes existing
	// buckets to it in place; a count JetStream refuses is a
	// *queue.ReplicasError. Zero keeps the live buckets' count (1 for new
	// buckets).
	Replicas int
}

// OpenKVStore creates or opens the buckets of a KVStore on js.
func OpenKVStore(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (*KVStore, error) {
	if cfg.JobsBucket == "" {
		cfg.JobsBucket = DefaultKVJobsBucket
	}
	if cfg.StateBucket == "" {
		cfg.StateBucket = DefaultKVStateBucket
	}
	for _, b := range []string{cfg.JobsBucket, cfg.StateBucket} {
		// Zero keeps the live buckets' count (the jobs bucket's decides).
		n, err := queue.StreamReplicas(ctx, js, "KV_"+b, cfg.Replicas)
		if err != nil {
			return nil, fmt.Errorf("worker: open kv bucket %s: %w", b, err)
		}
		if cfg.Replicas == 0 {
			cfg.Replicas = n
		}
	}
	jobs, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.JobsBucket, Description: "groupsync job leases and done marks",
		TTL: doneTTL(cfg.DoneTTL), History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: open kv bucket %s: %w", cfg.JobsBucket, queue.ReplicasRefused("KV_"+cfg.JobsBucket, cfg.Replicas, err))
	}
	state, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: cfg.StateBucket, Description: "groupsync group state and user index",
		History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: open kv bucket %s: %w", cfg.StateBucket, queue.ReplicasRefused("KV_"+cfg.StateBucket, cfg.Replicas, err))
	}
	return &KVStore{jobs: jobs, state: state, now: time.Now}, nil
}

// Ping checks that JetStream answers for the store's buckets, for
// readiness probes.
func (s *KVStore) Ping(ctx context.Context) error {
	if _, err := s.jobs.Status(ctx); err != nil {
		return fmt.Errorf("worker: kv ping: %w", err)
	}
	return nil
}

// enc makes any id a valid KV key token.
func enc(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func dec(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err
}

// kvJob is the value of a job key.
type kvJob struct {
	Lease   string `json:"lease,omitempty"`
	Expires int64  `json:"expires,omitempty"` // Unix ms
	Done    bool   `json:"done,omitempty"`
}

func (s *KVStore) getJob(ctx context.Context, jobID string) (kvJob, uint64, error) {
	e, err := s.jobs.Get(ctx, "j."+enc(jobID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return kvJob{}, 0, nil
	}
	if err != nil {
		return kvJob{}, 0, fmt.Errorf("worker: kv read job %s: %w", jobID, err)
	}
	var j kvJob
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return kvJob{}, 0, fmt.Errorf("worker: kv job %s: decode: %w", jobID, err)
	}
	return j, e.Revision(), nil
}

// putJob writes j with a compare-and-set on rev (0: must not exist).
func (s *KVStore) putJob(ctx context.Context, jobID string, j kvJob, rev uint64) error {
	b, _ := json.Marshal(j)
	var err error
	if rev == 0 {
		_, err = s.jobs.Create(ctx, "j."+enc(jobID), b)
	} else {
		_, err = s.jobs.Update(ctx, "j."+enc(jobID), b, rev)
	}
	return err
}

func casFailed(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// Acquire implements Deduper.
func (s *KVStore) Acquire(ctx context.Context, jobID string, l Lease, ttl time.Duration) (LeaseStatus, error) {
	for range 10 {
		j, rev, err := s.getJob(ctx, jobID)
		if err != nil {
			return 0, err
		}
		now := s.now().UnixMilli()
		switch {
		case j.Done:
			return LeaseDone, nil
		case rev != 0 && j.Lease != l.String() && j.Expires > now:
			return LeaseHeld, nil
		}
		err = s.putJob(ctx, jobID, kvJob{Lease: l.String(), Expires: now + ttl.Milliseconds()}, rev)
		if err == nil {
			return LeaseAcquired, nil
		}
		if !casFailed(err) {
			return 0, fmt.Errorf("worker: kv acquire lease of job %s: %w", jobID, err)
		}
	}
	return 0, fmt.Errorf("worker: kv acquire lease of job %s: %w", jobID, ErrConflict)
}

// Extend implements Deduper.
func (s *KVStore) Extend(ctx context.Context, jobID string, l Lease, ttl time.Duration) error {
	j, rev, err := s.getJob(ctx, jobID)
	if err != nil {
		return err
	}
	if rev == 0 || j.Done || j.Lease != l.String() {
		return fmt.Errorf("worker: extend lease of job %s: %w", jobID, ErrLeaseLost)
	}
	err = s.putJob(ctx, jobID, kvJob{Lease: l.String(), Expires: s.now().UnixMilli() + ttl.Milliseconds()}, rev)
	if casFailed(err) {
		return fmt.Errorf("worker: extend lease of job %s: %w", jobID, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("worker: kv extend lease of job %s: %w", jobID, err)
	}
	return nil
}

// Release implements Deduper.
func (s *KVStore) Release(ctx context.Context, jobID string, l Lease) error {
	j, rev, err := s.getJob(ctx, jobID)
	if err != nil || rev == 0 || j.Done || j.Lease != l.String() {
		return err
	}
	err = s.jobs.Delete(ctx, "j."+enc(jobID), jetstream.LastRevision(rev))
	if err != nil && !casFailed(err) {
		return fmt.Errorf("worker: kv release lease of job %s: %w", jobID, err)
	}
	return nil
}

// Group implements StateStore. The version is the entry's revision.
func (s *KVStore) Group(ctx context.Context, guid string) (groupsync.GroupState, uint64, error) {
	e, err := s.state.Get(ctx, "g."+enc(guid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return groupsync.GroupState{}, 0, nil
	}
	if err != nil {
		return groupsync.GroupState{}, 0, fmt.Errorf("worker: kv read group %s: %w", guid, err)
	}
	var st groupsync.GroupState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return groupsync.GroupState{}, 0, fmt.Errorf("worker: kv group %s: decode state: %w", guid, err)
	}
	return st, e.Revision(), nil
}

// Commit implements StateStore.
func (s *KVStore) Commit(ctx context.Context, c Commit) error {
	var j kvJob
	var jrev uint64
	if c.JobID != "" {
		var err error
		if j, jrev, err = s.getJob(ctx, c.JobID); err != nil {
			return err
		}
		if jrev == 0 || j.Done || j.Lease != c.Lease.String() {
			return fmt.Errorf("worker: commit job %s: %w", c.JobID, ErrLeaseLost)
		}
	}
	b, err := json.Marshal(c.State)
	if err != nil {
		return fmt.Errorf("worker: encode state of group %s: %w", c.GUID, err)
	}
	if c.Version == 0 {
		_, err = s.state.Create(ctx, "g."+enc(c.GUID), b)
	} else {
		_, err = s.state.Update(ctx, "g."+enc(c.GUID), b, c.Version)
	}
	if casFailed(err) {
		return fmt.Errorf("worker: commit job %s on group %s: %w", c.JobID, c.GUID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("worker: kv write group %s: %w", c.GUID, err)
	}
	for uid, e := range c.State.Index() {
		if err := s.index(ctx, uid, c.GUID, indexValue(e)); err != nil {
			return err
		}
	}
	if c.JobID != "" {
		err := s.putJob(ctx, c.JobID, kvJob{Done: true}, jrev)
		if casFailed(err) {
			return fmt.Errorf("worker: commit job %s: %w", c.JobID, ErrLeaseLost)
		}
		if err != nil {
			return fmt.Errorf("worker: kv mark job %s done: %w", c.JobID, err)
		}
	}
	return nil
}

// index sets (or with val "" removes) guid in uid's index entry, and the
// user's pending marker.
func (s *KVStore) index(ctx context.Context, uid, guid, val string) error {
	key := "u." + enc(uid)
	for range 20 {
		m := map[string]string{}
		var rev uint64
		e, err := s.state.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("worker: kv read index of user %s: %w", uid, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &m); err != nil {
				return fmt.Errorf("worker: kv index of user %s: decode: %w", uid, err)
			}
		}
		if cur, ok := m[guid]; (ok && cur == val) || (!ok && val == "") {
			return nil // unchanged
		}
		if val == "" {
			delete(m, guid)
		} else {
			m[guid] = val
		}
		b, _ := json.Marshal(m)
		if rev == 0 {
			_, err = s.state.Create(ctx, key, b)
		} else {
			_, err = s.state.Update(ctx, key, b, rev)
		}
		if casFailed(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("worker: kv write index of user %s: %w", uid, err)
		}
		return s.markPending(ctx, uid, m)
	}
	return fmt.Errorf("worker: kv index of user %s: %w", uid, ErrConflict)
}

func (s *KVStore) markPending(ctx context.Context, uid string, m map[string]string) error {
	pending := false
	for _, v := range m {
		if v == "p" {
			pending = true
			break
		}
	}
	key := "p." + enc(uid)
	var err error
	if pending {
		_, err = s.state.Put(ctx, key, []byte{1})
	} else {
		err = s.state.Delete(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("worker: kv pending marker of user %s: %w", uid, err)
	}
	return nil
}

// UserGroups implements UserIndex.
func (s *KVStore) UserGroups(ctx context.Context, uid string) (map[string]groupsync.IndexEntry, error) {
	e, err := s.state.Get(ctx, "u."+enc(uid))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return map[string]groupsync.IndexEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("worker: kv read index of user %s: %w", uid, err)
	}
	var m map[string]string
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, fmt.Errorf("worker: kv index of user %s: decode: %w", uid, err)
	}
	out := make(map[string]groupsync.IndexEntry, len(m))
	for g, v := range m {
		ie, err := parseIndexValue(v)
		if err != nil {
			return nil, err
		}
		out[g] = ie
	}
	return out, nil
}

// keys lists the keys of the state bucket under prefix ("p.", "c."),
// decoded.
func (s *KVStore) keys(ctx context.Context, prefix string) ([]string, error) {
	l, err := s.state.ListKeysFiltered(ctx, prefix+">")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("worker: kv list %s keys: %w", prefix, err)
	}
	defer l.Stop()
	var out []string
	for k := range l.Keys() {
		id, err := dec(strings.TrimPrefix(k, prefix))
		if err != nil {
			continue
		}
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// Groups implements StateStore.
func (s *KVStore) Groups(ctx context.Context) ([]string, error) {
	return s.keys(ctx, "g.")
}

// PendingUsers implements UserIndex.
func (s *KVStore) PendingUsers(ctx context.Context) ([]string, error) {
	return s.keys(ctx, "p.")
}

type kvCheck struct {
	At      int64 `json:"at"`
	Attempt int   `json:"attempt"`
}

// ScheduleCheck implements CheckSchedule.
func (s *KVStore) ScheduleCheck(ctx context.Context, c Check, at time.Time) error {
	b, _ := json.Marshal(kvCheck{At: at.UnixMilli(), Attempt: c.Attempt})
	if _, err := s.state.Put(ctx, "c."+enc(c.UID), b); err != nil {
		return fmt.Errorf("worker: kv schedule check of user %s: %w", c.UID, err)
	}
	return nil
}

// DueChecks implements CheckSchedule. A check is claimed by deleting its
// entry at the revision read.
func (s *KVStore) DueChecks(ctx context.Context, now time.Time, max int) ([]Check, error) {
	uids, err := s.keys(ctx, "c.")
	if err != nil {
		return nil, err
	}
	var out []Check
	for _, uid := range uids {
		if len(out) >= max {
			break
		}
		e, err := s.state.Get(ctx, "c."+enc(uid))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("worker: kv read check of user %s: %w", uid, err)
		}
		var c kvCheck
		if json.Unmarshal(e.Value(), &c) != nil || c.At > now.UnixMilli() {
			continue
		}
		err = s.state.Delete(ctx, "c."+enc(uid), jetstream.LastRevision(e.Revision()))
		if casFailed(err) {
			continue // claimed by another worker
		}
		if err != nil {
			return out, fmt.Errorf("worker: kv claim check of user %s: %w", uid, err)
		}
		out = append(out, Check{UID: uid, Attempt: c.Attempt})
	}
	return out, nil
}
