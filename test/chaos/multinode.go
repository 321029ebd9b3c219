package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/queue/natsembed"
)

// startBackends starts NATS and Redis as the configuration asks: one
// in-process nats-server and one redis-server, or a NATS cluster of
// processes and Redis with a replica and Sentinels. It returns the URLs the
// groupsync processes connect with.
func (c *Cluster) startBackends(natsPassword string) (natsURL, redisURL string, err error) {
	cfg := c.cfg
	if cfg.NATSNodes > 1 {
		if c.natsC, err = startNATSCluster(filepath.Join(cfg.Dir, "nats"), filepath.Join(cfg.Dir, "logs"), cfg.NATSNodes, cfg.NATSSyncAlways, natsPassword); err != nil {
			return "", "", err
		}
		natsURL = c.natsC.URL()
	} else {
		c.nats, err = natsembed.Start(server.Options{Port: -1, StoreDir: filepath.Join(cfg.Dir, "nats"), NoLog: true, NoSigs: true,
			SyncAlways: cfg.NATSSyncAlways, Users: []*server.User{{Username: natsUser, Password: natsPassword}}})
		if err != nil {
			return "", "", err
		}
		natsURL = c.nats.URL()
	}
	if cfg.RedisSentinel {
		if c.redisH, err = startRedisHA(filepath.Join(cfg.Dir, "redis")); err != nil {
			return "", "", err
		}
		return natsURL, c.redisH.URL(), nil
	}
	if c.redis, err = startRedis(filepath.Join(cfg.Dir, "redis")); err != nil {
		return "", "", err
	}
	return natsURL, c.redis.URL(), nil
}

// Failovers returns one line per failover of a multi-node cluster, with the
// time it took.
func (c *Cluster) Failovers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.failovers...)
}

func (c *Cluster) recordFailover(format string, args ...any) {
	c.mu.Lock()
	c.failovers = append(c.failovers, fmt.Sprintf(format, args...))
	c.mu.Unlock()
	c.logf("failover: "+format, args...)
}

// LeaderFailover records one KillStreamLeader: which node led the job
// stream, which took over, and when each step happened.
type LeaderFailover struct {
	Leader    string    `json:"leader"`     // the node SIGKILLed
	NewLeader string    `json:"new_leader"` // the leader the harness saw next
	Killed    time.Time `json:"killed"`     // the SIGKILL was sent
	Elected   time.Time `json:"elected"`    // the harness first saw another leader
	Restarted time.Time `json:"restarted"`  // the killed node accepted clients again
	Current   time.Time `json:"current"`    // every replica was current again
}

// KillStreamLeader SIGKILLs the NATS node that leads the job stream, waits
// until the stream has elected another leader, keeps the node down for down
// and starts it again, then waits until every replica is current. It
// returns when each step happened, as far as it got.
func (c *Cluster) KillStreamLeader(ctx context.Context, down time.Duration) (LeaderFailover, error) {
	var f LeaderFailover
	if c.natsC == nil {
		return f, errors.New("not a NATS cluster")
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return f, err
	}
	leader, _, err := streamLeader(ctx, js, "GROUPSYNC")
	if err != nil {
		return f, err
	}
	i, err := c.natsC.Index(leader)
	if err != nil {
		return f, err
	}
	f.Leader, f.Killed = leader, time.Now()
	c.natsC.Kill(i)
	err = poll(ctx, 30*time.Second, "a new leader of the job stream", func() error {
		l, _, err := streamLeader(ctx, js, "GROUPSYNC")
		if err == nil && l == leader {
			err = fmt.Errorf("%s still leads", l)
		}
		if err == nil {
			f.NewLeader, f.Elected = l, time.Now()
		}
		return err
	})
	if err == nil {
		c.recordFailover("NATS: %s (job stream leader) SIGKILLed, new leader elected in %s", leader, f.Elected.Sub(f.Killed).Round(10*time.Millisecond))
		time.Sleep(down)
	}
	if serr := c.natsC.Start(i); serr != nil || err != nil {
		return f, errors.Join(err, serr)
	}
	f.Restarted = time.Now()
	want := min(c.cfg.NATSNodes, 3)
	err = poll(ctx, 60*time.Second, leader+" caught up", func() error {
		_, current, err := streamLeader(ctx, js, "GROUPSYNC")
		if err == nil && current < want {
			err = fmt.Errorf("%d of %d replicas current", current, want)
		}
		return err
	})
	if err == nil {
		f.Current = time.Now()
	}
	return f, err
}

// KillRedisMaster SIGKILLs the Redis primary; the Sentinels promote the
// replica and the killed server comes back empty as the new replica.
func (c *Cluster) KillRedisMaster() error {
	if c.redisH == nil {
		return errors.New("not Redis with Sentinel")
	}
	took, err := c.redisH.KillMaster()
	if err != nil {
		return err
	}
	c.recordFailover("Redis: primary SIGKILLed, replica promoted by Sentinel in %s", took.Round(10*time.Millisecond))
	return nil
}

// KillServe SIGKILLs the i-th serve process and starts it again on the same
// address after down; CometChat's deliveries meanwhile reach the others.
func (c *Cluster) KillServe(ctx context.Context, i int, down time.Duration) error {
	c.mu.Lock()
	p := c.serves[i%len(c.serves)]
	c.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	time.Sleep(down)
	idx := i % len(c.serves)
	np, err := c.start("serve", []string{"GROUPSYNC_HTTP_ADDR=" + c.HTTPURLs[idx][len("http://"):]}, "serve")
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.serves[idx] = np
	if idx == 0 {
		c.serve = np
	}
	c.mu.Unlock()
	return poll(ctx, 60*time.Second, "serve ready again", func() error { return c.healthy(c.HTTPURLs[idx]+"/readyz", np) })
}

// clusterFaults are the faults of a run on a multi-node cluster: each kills
// one node of one part.
func (r *chaosRun) clusterFaults(ctx context.Context) []fault {
	c := r.c
	return []fault{
		{"SIGKILL the NATS node leading the job stream (down 3s)", func() error {
			_, err := c.KillStreamLeader(ctx, 3*time.Second)
			return err
		}},
		{"SIGKILL the Redis primary (Sentinel promotes the replica)", func() error { return r.withStoreLoss(ctx, c.KillRedisMaster) }},
		{"SIGKILL one serve (down 2s)", func() error { return c.KillServe(ctx, 1, 2*time.Second) }},
		{"SIGKILL a worker, start another", func() error {
			if err := c.KillWorker(0); err != nil {
				return err
			}
			_, err := c.StartWorker()
			return err
		}},
	}
}
