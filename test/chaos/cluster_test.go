package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary serve as a NATS cluster node, as the chaos
// program does (see RunNATSNodeIfAsked).
func TestMain(m *testing.M) {
	RunNATSNodeIfAsked()
	os.Exit(m.Run())
}

// TestChaosClusterShort runs webhooks through a deployment that outgrew one
// machine: three NATS nodes (separate processes, R3 streams), Redis with a
// replica and three Sentinels, two serve and two worker processes. While
// webhooks go to both serves, it SIGKILLs the NATS node leading the job
// stream, the Redis primary, one serve and one worker. Every event answered
// 200 must be applied, no group may diverge and no job may fail.
func TestChaosClusterShort(t *testing.T) {
	ctx := context.Background()
	c := startTestCluster(t, ClusterConfig{Workers: 2, Partitions: 4, NATSNodes: 3, RedisSentinel: true, Serves: 2, NATSSyncAlways: true})
	rep, err := RunChaos(ctx, c, ChaosConfig{Duration: 30 * time.Second, Groups: 6, Users: 12, Rate: 8,
		Period: 6 * time.Second, Seed: uint64(time.Now().UnixNano()), Logf: t.Logf, Drain: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	t.Logf("webhook answers: %v", rep.Statuses)
	for _, f := range c.Failovers() {
		t.Logf("failover: %s", f)
	}
	kinds := len((&chaosRun{c: c}).faults(ctx))
	if len(rep.Faults) < kinds {
		t.Errorf("only %d faults were injected, want each of the %d kinds: %v", len(rep.Faults), kinds, rep.Faults)
	}
	if len(c.Failovers()) < 2 {
		t.Errorf("failovers seen: %v; want the NATS leader's and the Redis primary's", c.Failovers())
	}
	if rep.Accepted == 0 {
		t.Errorf("no event was accepted: %s", rep.Summary())
	}
	checkVerdict(t, rep)
	stopAndScanLogs(t, c)
}
