package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/worker"
	"github.com/groupsync/groupsync/worker/redistest"
)

func init() {
	// The Lua scripts must run on a cluster: their keys share a hash slot.
	storeFactories["RedisCluster"] = func(tb testing.TB) worker.Store {
		nodes := redistest.StartCluster(tb, 3)
		return mustRedisURL(tb, "redis+cluster://"+nodes[0].Addr()+","+nodes[1].Addr())
	}
}

func mustRedisURL(tb testing.TB, raw string) *worker.RedisStore {
	tb.Helper()
	c, err := worker.ParseRedisURL(raw)
	if err != nil {
		tb.Fatalf("ParseRedisURL(%q): %v", raw, err)
	}
	rdb := worker.OpenRedis(c)
	tb.Cleanup(func() { rdb.Close() })
	return worker.NewRedisStore(rdb, "")
}

func TestParseRedisURL(t *testing.T) {
	tests := []struct {
		url    string
		mode   worker.RedisMode
		addrs  string
		master string
		db     int
		pass   string
	}{
		{"redis://127.0.0.1:6379/0", worker.RedisSingle, "127.0.0.1:6379", "", 0, ""},
		{"redis://:s3cret@redis:6380/2", worker.RedisSingle, "redis:6380", "", 2, "s3cret"},
		{"redis://redis", worker.RedisSingle, "redis:6379", "", 0, ""},
		{"rediss://u:p%40ss@h:1", worker.RedisSingle, "h:1", "", 0, "p@ss"},
		{"redis+sentinel://:pw@s1:26379,s2:26379,s3:26379/groupsync", worker.RedisSentinel, "s1:26379,s2:26379,s3:26379", "groupsync", 0, "pw"},
		{"redis+sentinel://s1:26379/mymaster/3", worker.RedisSentinel, "s1:26379", "mymaster", 3, ""},
		{"redis+cluster://n1:7000,n2:7001", worker.RedisCluster, "n1:7000,n2:7001", "", 0, ""},
		{"redis://n1:7000,n2:7001,n3:7002", worker.RedisCluster, "n1:7000,n2:7001,n3:7002", "", 0, ""},
		{"redis://[::1]:6379", worker.RedisSingle, "[::1]:6379", "", 0, ""},
	}
	for _, tt := range tests {
		c, err := worker.ParseRedisURL(tt.url)
		if err != nil {
			t.Errorf("ParseRedisURL(%q): %v", tt.url, err)
			continue
		}
		if c.Mode != tt.mode || strings.Join(c.Addrs, ",") != tt.addrs || c.MasterName != tt.master || c.DB != tt.db || c.Password != tt.pass {
			t.Errorf("ParseRedisURL(%q) = %+v, want mode %s addrs %s master %q db %d", tt.url, c, tt.mode, tt.addrs, tt.master, tt.db)
		}
		if strings.Contains(c.String(), "s3cret") || (tt.pass != "" && strings.Contains(c.String(), tt.pass)) {
			t.Errorf("RedisConfig.String() = %q shows the password", c.String())
		}
	}
	bad := []string{
		"", "localhost:6379", "http://h:1", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x",
		"redis+sentinel://s1:26379", "redis+sentinel://:hunter2@s1:26379",
		"redis+cluster://n1:7000/0", "redis://h:1/x", "redis://h:1/1/2", "redis://h:1?foo=bar",
		"redis://:hunter2@h:1?password=hunter2", "redis://h1,,h2",
	}
	for _, raw := range bad {
		c, err := worker.ParseRedisURL(raw)
		if err == nil {
			t.Errorf("ParseRedisURL(%q) = %+v, want an error", raw, c)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRedisURL(%q) error %q is not one line without the password", raw, err)
		}
	}
}

// TestRedisSentinelFailover kills the Redis primary under a store reached
// through Sentinel: the Sentinels promote the replica and the store keeps
// working on it, with what was replicated before the kill.
func TestRedisSentinelFailover(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	sentinels := redistest.StartSentinels(t, primary, "groupsync", 3)
	s := mustRedisURL(t, "redis+sentinel://"+sentinels[0].Addr()+","+sentinels[1].Addr()+","+sentinels[2].Addr()+"/groupsync")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	commit := func(guid string, seq uint64) error {
		l := worker.Lease{Seq: seq, Delivery: 1, Worker: "w"}
		job := "job-" + guid
		if st, err := s.Acquire(ctx, job, l, time.Minute); err != nil || st != worker.LeaseAcquired {
			return fmt.Errorf("acquire %s: %v %v", job, st, err)
		}
		return s.Commit(ctx, worker.Commit{JobID: job, Lease: l, GUID: guid,
			State: groupsync.GroupState{GUID: guid, Lifecycle: groupsync.LifecycleExists}})
	}
	if err := commit("before", 1); err != nil {
		t.Fatal(err)
	}
	// Wait until the replica has the write, as a healthy replica would.
	onReplica := mustRedisURL(t, "redis://"+replica.Addr())
	eventually(t, 20*time.Second, func() (bool, string) {
		_, ver, err := onReplica.Group(ctx, "before")
		return err == nil && ver > 0, fmt.Sprintf("replica holds the group: version %d, %v", ver, err)
	})

	start := time.Now()
	primary.Kill()
	eventually(t, 60*time.Second, func() (bool, string) {
		addr, err := redistest.MasterAddr(sentinels[0], "groupsync")
		return err == nil && addr == replica.Addr(), fmt.Sprintf("Sentinel promotes the replica: master %s, %v", addr, err)
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		err := commit("after", 2)
		return err == nil, fmt.Sprintf("the store writes on the new primary: %v", err)
	})
	t.Logf("failover took %s", time.Since(start).Round(100*time.Millisecond))
	for _, g := range []string{"before", "after"} {
		if st, ver, err := s.Group(ctx, g); err != nil || ver == 0 || st.GUID != g {
			t.Errorf("after failover Group(%q) = %v, version %d, %v", g, st.GUID, ver, err)
		}
	}
}
