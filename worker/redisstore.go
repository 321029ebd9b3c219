package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/groupsync/groupsync/groupsync"
)

// DefaultRedisPrefix prefixes every key RedisStore writes.
const DefaultRedisPrefix = "groupsync:"

// RedisStore is the Store on Redis. Keys, under the prefix:
//
//	job:<id>      lease "lease:<seq>:<delivery>:<worker>" (PX TTL) or "done" (DoneTTL)
//	group:<guid>  hash {v: version, s: JSON GroupState}
//	user:<uid>    hash guid -> "p" (pending) | "c:<card id>"
//	pending       set of uids pending in some group
//	checks        sorted set uid -> due time (ms); checks:attempt hash uid -> attempt
//	marker        the store's initialisation mark (see Marker)
//
// Acquire, Extend, Release, Commit and DueChecks are Lua scripts, so each is
// atomic; Commit checks the lease and the state version and writes state,
// index and "done" together. On Redis Cluster the prefix becomes a hash tag
// ("{groupsync}:"), so every key lives in one hash slot and the scripts,
// which touch a group's and its users' keys together, run unchanged; the
// cluster then gives failover, not sharding, to groupsync's keys.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a Store on rdb with keys under prefix
// (DefaultRedisPrefix when empty). It does not take ownership of rdb.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	if _, ok := rdb.(*redis.ClusterClient); ok {
		prefix = hashTag(prefix)
	}
	return &RedisStore{rdb: rdb, prefix: prefix}
}

// Ping checks that Redis answers, for readiness probes.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("worker: redis ping: %w", err)
	}
	return nil
}

func (s *RedisStore) key(kind, id string) string { return s.prefix + kind + ":" + id }

var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == 'done' then return 'DONE' end
if cur and cur ~= ARGV[1] then return 'HELD' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'OK'
`)

var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'LOST' end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 'OK'
`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 'OK'
`)

// Acquire implements Deduper.
func (s *RedisStore) Acquire(ctx context.Context, jobID string, l Lease, ttl time.Duration) (LeaseStatus, error) {
	res, err := acquireScript.Run(ctx, s.rdb, []string{s.key("job", jobID)}, l.String(), ttl.Milliseconds()).Text()
	if err != nil {
		return 0, fmt.Errorf("worker: redis acquire lease of job %s: %w", jobID, err)
	}
	switch res {
	case "OK":
		return LeaseAcquired, nil
	case "DONE":
		return LeaseDone, nil
	case "HELD":
		return LeaseHeld, nil
	}
	return 0, fmt.Errorf("worker: redis acquire lease of job %s: unexpected answer %q", jobID, res)
}

// Extend implements Deduper.
func (s *RedisStore) Extend(ctx context.Context, jobID string, l Lease, ttl time.Duration) error {
	res, err := extendScript.Run(ctx, s.rdb, []string{s.key("job", jobID)}, l.String(), ttl.Milliseconds()).Text()
	if err != nil {
		return fmt.Errorf("worker: redis extend lease of job %s: %w", jobID, err)
	}
	if res != "OK" {
		return fmt.Errorf("worker: extend lease of job %s: %w", jobID, ErrLeaseLost)
	}
	return nil
}

// Release implements Deduper.
func (s *RedisStore) Release(ctx context.Context, jobID string, l Lease) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{s.key("job", jobID)}, l.String()).Err(); err != nil {
		return fmt.Errorf("worker: redis release lease of job %s: %w", jobID, err)
	}
	return nil
}

// Group implements StateStore.
func (s *RedisStore) Group(ctx context.Context, guid string) (groupsync.GroupState, uint64, error) {
	vals, err := s.rdb.HMGet(ctx, s.key("group", guid), "v", "s").Result()
	if err != nil {
		return groupsync.GroupState{}, 0, fmt.Errorf("worker: redis read group %s: %w", guid, err)
	}
	vs, _ := vals[0].(string)
	ss, _ := vals[1].(string)
	if vs == "" || ss == "" {
		return groupsync.GroupState{}, 0, nil
	}
	v, err := strconv.ParseUint(vs, 10, 64)
	if err != nil {
		return groupsync.GroupState{}, 0, fmt.Errorf("worker: redis group %s: bad version %q", guid, vs)
	}
	var st groupsync.GroupState
	if err := json.Unmarshal([]byte(ss), &st); err != nil {
		return groupsync.GroupState{}, 0, fmt.Errorf("worker: redis group %s: decode state: %w", guid, err)
	}
	return st, v, nil
}

// commitScript: KEYS = job, group, pending set, user keys...; ARGV = lease
// ("" = no lease check), version, state, done TTL ms, guid, then uid and
// index value per user key.
var commitScript = redis.NewScript(`
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'LOST' end
local v = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
if v ~= tonumber(ARGV[2]) then return 'CONFLICT' end
redis.call('HSET', KEYS[2], 'v', v + 1, 's', ARGV[3])
for i = 1, #KEYS - 3 do
  local key, uid, val = KEYS[3 + i], ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  if val == '' then redis.call('HDEL', key, ARGV[5]) else redis.call('HSET', key, ARGV[5], val) end
  local pending = false
  for _, x in ipairs(redis.call('HVALS', key)) do
    if x == 'p' then pending = true; break end
  end
  if pending then redis.call('SADD', KEYS[3], uid) else redis.call('SREM', KEYS[3], uid) end
end
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], 'done', 'PX', ARGV[4]) end
return 'OK'
`)

// Commit implements StateStore.
func (s *RedisStore) Commit(ctx context.Context, c Commit) error {
	state, err := json.Marshal(c.State)
	if err != nil {
		return fmt.Errorf("worker: encode state of group %s: %w", c.GUID, err)
	}
	lease := ""
	if c.JobID != "" {
		lease = c.Lease.String()
	}
	idx := c.State.Index()
	uids := make([]string, 0, len(idx))
	for uid := range idx {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	keys := []string{s.key("job", c.JobID), s.key("group", c.GUID), s.prefix + "pending"}
	args := []any{lease, c.Version, state, doneTTL(c.DoneTTL).Milliseconds(), c.GUID}
	for _, uid := range uids {
		keys = append(keys, s.key("user", uid))
		args = append(args, uid, indexValue(idx[uid]))
	}
	res, err := commitScript.Run(ctx, s.rdb, keys, args...).Text()
	if err != nil {
		return fmt.Errorf("worker: redis commit job %s on group %s: %w", c.JobID, c.GUID, err)
	}
	switch res {
	case "OK":
		return nil
	case "LOST":
		return fmt.Errorf("worker: commit job %s: %w", c.JobID, ErrLeaseLost)
	case "CONFLICT":
		return fmt.Errorf("worker: commit job %s on group %s: %w", c.JobID, c.GUID, ErrConflict)
	}
	return fmt.Errorf("worker: redis commit job %s: unexpected answer %q", c.JobID, res)
}

// UserGroups implements UserIndex.
func (s *RedisStore) UserGroups(ctx context.Context, uid string) (map[string]groupsync.IndexEntry, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("user", uid)).Result()
	if err != nil {
		return nil, fmt.Errorf("worker: redis read groups of user %s: %w", uid, err)
	}
	out := make(map[string]groupsync.IndexEntry, len(m))
	for g, v := range m {
		e, err := parseIndexValue(v)
		if err != nil {
			return nil, err
		}
		out[g] = e
	}
	return out, nil
}

// hashTag makes prefix a Redis Cluster hash tag: "groupsync:" becomes
// "{groupsync}:". A prefix that already holds a tag is kept.
func hashTag(prefix string) string {
	if i := strings.IndexByte(prefix, '{'); i >= 0 && strings.IndexByte(prefix[i:], '}') > 1 {
		return prefix
	}
	base := strings.TrimRight(prefix, ":")
	return "{" + base + "}" + prefix[len(base):]
}

// Groups implements StateStore, with SCAN (it never blocks Redis); on a
// cluster, on every primary.
func (s *RedisStore) Groups(ctx context.Context) ([]string, error) {
	prefix := s.key("group", "")
	var (
		mu  sync.Mutex
		out []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			out = append(out, strings.TrimPrefix(iter.Val(), prefix))
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("worker: redis list groups: %w", err)
	}
	sort.Strings(out)
	return slices.Compact(out), nil // SCAN may return a key twice
}

// globEscape escapes the Redis glob characters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PendingUsers implements UserIndex.
func (s *RedisStore) PendingUsers(ctx context.Context) ([]string, error) {
	uids, err := s.rdb.SMembers(ctx, s.prefix+"pending").Result()
	if err != nil {
		return nil, fmt.Errorf("worker: redis read pending users: %w", err)
	}
	sort.Strings(uids)
	return uids, nil
}

// ScheduleCheck implements CheckSchedule.
func (s *RedisStore) ScheduleCheck(ctx context.Context, c Check, at time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.prefix+"checks", redis.Z{Score: float64(at.UnixMilli()), Member: c.UID})
		p.HSet(ctx, s.prefix+"checks:attempt", c.UID, c.Attempt)
		return nil
	})
	if err != nil {
		return fmt.Errorf("worker: redis schedule check of user %s: %w", c.UID, err)
	}
	return nil
}

var dueScript = redis.NewScript(`
local uids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, uid in ipairs(uids) do
  redis.call('ZREM', KEYS[1], uid)
  local a = redis.call('HGET', KEYS[2], uid) or '0'
  redis.call('HDEL', KEYS[2], uid)
  table.insert(out, uid)
  table.insert(out, a)
end
return out
`)

// DueChecks implements CheckSchedule.
func (s *RedisStore) DueChecks(ctx context.Context, now time.Time, max int) ([]Check, error) {
	res, err := dueScript.Run(ctx, s.rdb, []string{s.prefix + "checks", s.prefix + "checks:attempt"}, now.UnixMilli(), max).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("worker: redis claim due checks: %w", err)
	}
	var out []Check
	for i := 0; i+1 < len(res); i += 2 {
		a, _ := strconv.Atoi(res[i+1])
		out = append(out, Check{UID: res[i], Attempt: a})
	}
	return out, nil
}

// DefaultDoneTTL is how long a completed job is remembered when a Commit
// gives no DoneTTL: far longer than CometChat's retries (+40 s) and the
// queue's duplicate window (2 min).
const DefaultDoneTTL = 24 * time.Hour

func doneTTL(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultDoneTTL
	}
	return d
}
