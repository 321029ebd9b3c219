package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMetaBucket is the JetStream key-value bucket of Meta.
const DefaultMetaBucket = "groupsync_meta"

// Meta is what the workers keep in JetStream rather than in the Store, so
// that it outlives a loss of the Store's data: the Store's marker as last
// seen (StoreEpoch), leases of tasks that one worker runs at a time, and the
// outcome of the last scheduled reconcile. It is safe for concurrent use by
// any number of processes; every write is a compare-and-set.
type Meta struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenMeta creates or opens the bucket of a Meta on js (bucket
// DefaultMetaBucket when empty). A new bucket gets replicas copies (1 when
// 0); a live one is changed only when replicas is set and differs, so
// processes starting together do not rewrite it under each other.
func OpenMeta(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Meta, error) {
	if bucket == "" {
		bucket = DefaultMetaBucket
	}
	if kv, err := js.KeyValue(ctx, bucket); err == nil {
		st, err := kv.Status(ctx)
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if err == nil && (replicas == 0 || ok && bs.StreamInfo().Config.Replicas == replicas) {
			return &Meta{kv: kv, now: time.Now}, nil
		}
	}
	if replicas == 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "groupsync store epoch, worker leases, reconcile status",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: open kv bucket %s: %w", bucket, err)
	}
	return &Meta{kv: kv, now: time.Now}, nil
}

// StoreEpoch is the Store's marker as the workers last recorded it, and the
// last loss of the Store's data they detected.
type StoreEpoch struct {
	// Marker is the Store's marker.
	Marker string `json:"marker"`
	// LossAt is when a worker found the Store's data lost (zero if never).
	LossAt time.Time `json:"loss_at,omitzero"`
}

// get reads key into v; false when absent.
func (m *Meta) get(ctx context.Context, key string, v any) (uint64, bool, error) {
	e, err := m.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("worker: meta read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("worker: meta %s: decode: %w", key, err)
	}
	return e.Revision(), true, nil
}

// put writes v at key with a compare-and-set on rev (0: must not exist).
func (m *Meta) put(ctx context.Context, key string, v any, rev uint64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("worker: meta %s: encode: %w", key, err)
	}
	if rev == 0 {
		_, err = m.kv.Create(ctx, key, b)
	} else {
		_, err = m.kv.Update(ctx, key, b, rev)
	}
	return err
}

// update applies fn to the value at key (zero when absent) and writes it,
// retrying when another writer got there first.
func update[T any](ctx context.Context, m *Meta, key string, fn func(*T)) error {
	for range 20 {
		var v T
		rev, _, err := m.get(ctx, key, &v)
		if err != nil {
			return err
		}
		fn(&v)
		err = m.put(ctx, key, v, rev)
		if err == nil {
			return nil
		}
		if !casFailed(err) {
			return fmt.Errorf("worker: meta write %s: %w", key, err)
		}
	}
	return fmt.Errorf("worker: meta write %s: %w", key, ErrConflict)
}

// StoreEpoch returns the recorded StoreEpoch; false when none was recorded.
func (m *Meta) StoreEpoch(ctx context.Context) (StoreEpoch, bool, error) {
	var e StoreEpoch
	_, ok, err := m.get(ctx, "store.epoch", &e)
	return e, ok, err
}

// SetStoreEpoch records e.
func (m *Meta) SetStoreEpoch(ctx context.Context, e StoreEpoch) error {
	return update(ctx, m, "store.epoch", func(v *StoreEpoch) { *v = e })
}

type metaLease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// TakeLease takes lease name for holder for ttl, or renews it when holder
// has it already. It returns false when another holder's lease has not
// expired.
func (m *Meta) TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	key := "lease." + name
	var l metaLease
	rev, ok, err := m.get(ctx, key, &l)
	if err != nil {
		return false, err
	}
	now := m.now()
	if ok && l.Holder != holder && now.Before(l.Expires) {
		return false, nil
	}
	err = m.put(ctx, key, metaLease{Holder: holder, Expires: now.Add(ttl)}, rev)
	if casFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("worker: meta take lease %s: %w", name, err)
	}
	return true, nil
}

// DropLease ends holder's lease name; a lease held by another holder is
// left alone.
func (m *Meta) DropLease(ctx context.Context, name, holder string) error {
	key := "lease." + name
	var l metaLease
	rev, ok, err := m.get(ctx, key, &l)
	if err != nil || !ok || l.Holder != holder {
		return err
	}
	err = m.put(ctx, key, metaLease{Holder: holder, Expires: m.now().Add(-time.Second)}, rev)
	if err != nil && !casFailed(err) {
		return fmt.Errorf("worker: meta drop lease %s: %w", name, err)
	}
	return nil
}

// ReconcileStatus is the outcome of a scheduled reconcile run, as `groupsync
// reconcile --status` shows it.
type ReconcileStatus struct {
	// Run identifies the run; its jobs carry it in their ids.
	Run string `json:"run"`
	// Worker is the worker that listed the groups and queued the jobs.
	Worker string `json:"worker"`
	// StartedAt is when the run began.
	StartedAt time.Time `json:"started_at"`
	// FinishedAt is when every group was queued (zero while queuing, or when
	// the run stopped early).
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Groups counts the groups CometChat listed.
	Groups int `json:"groups"`
	// Queued counts the reconcile jobs queued, Unlisted included.
	Queued int `json:"queued"`
	// Unlisted counts the groups the store holds as not deleted that
	// CometChat did not list, queued after a complete listing (a lost
	// deletion webhook: their jobs find them gone and delete them).
	Unlisted int `json:"unlisted,omitempty"`
	// UnlistedLeft counts such groups past the run's bound
	// (Config.ReconcileUnlistedMax), left to later runs.
	UnlistedLeft int `json:"unlisted_left,omitempty"`
	// UnlistedSkipped says why the run did not look for such groups at all
	// ("" when it did): CometChat's listing was incomplete, or the store's
	// groups could not be read.
	UnlistedSkipped string `json:"unlisted_skipped,omitempty"`
	// Reconciled counts the queued jobs that ran to the end.
	Reconciled int `json:"reconciled"`
	// TooLarge lists groups skipped for having more members than an E3Kit
	// group can hold (at most 20 named).
	TooLarge []string `json:"too_large,omitempty"`
	// TooLargeCount counts them all.
	TooLargeCount int `json:"too_large_count,omitempty"`
	// Drift counts the repairs by kind (DriftMissing, DriftExtra, DriftUnknown,
	// DriftDeleted).
	Drift map[string]int `json:"drift,omitempty"`
	// Error is why the run stopped early, "" when it did not.
	Error string `json:"error,omitempty"`
}

// LastReconcile returns the status of the last scheduled reconcile run;
// false when none ran.
func (m *Meta) LastReconcile(ctx context.Context) (ReconcileStatus, bool, error) {
	var s ReconcileStatus
	_, ok, err := m.get(ctx, "reconcile.last", &s)
	return s, ok, err
}

// updateReconcile applies fn to the last run's status.
func (m *Meta) updateReconcile(ctx context.Context, fn func(*ReconcileStatus)) error {
	return update(ctx, m, "reconcile.last", fn)
}
