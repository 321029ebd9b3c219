// Command chaos proves groupsync under load and faults, with every part in
// its own process: nats-server (in this process, restartable), redis-server,
// `groupsync emulator`, one `groupsync serve` and N `groupsync worker`.
//
//	go run ./test/chaos -duration 5m                  chaos run (default mode)
//	go run ./test/chaos -mode latency -rate 200 -duration 30s [-pattern create]
//	go run ./test/chaos -mode latency -nats-nodes 3 -redis-sentinel -serves 2 -failover-at 20s ...
//	go run ./test/chaos -mode throughput -workers 1,2,4 -events 2000
//
// The chaos mode posts CometChat webhooks (with retries, duplicates and
// deliveries out of order, and some dropped as CometChat does after its
// last retry) for a handful of groups while it kills workers, restarts NATS
// and Redis (empty, with retries of earlier events still coming) and makes
// the Virgil emulator fail or slow down; a fake CometChat REST API serves
// the groups' true members to the workers' loss checks and scheduled
// reconcile. Then it waits for the queue to drain and prints
//
//	events accepted, applied, dead-lettered, lost, groups diverged
//
// and exits with status 1 when anything was lost or diverged. The short
// version runs as the test TestChaosShort. -json FILE writes the report.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	RunNATSNodeIfAsked()
	mode := flag.String("mode", "chaos", "chaos, latency or throughput")
	duration := flag.Duration("duration", 5*time.Minute, "chaos and latency: how long events are posted")
	groups := flag.Int("groups", 8, "groups the events change")
	users := flag.Int("users", 24, "users moved in and out of the groups")
	rate := flag.Float64("rate", 10, "events per second offered (chaos default 10, latency e.g. 200)")
	period := flag.Duration("period", 10*time.Second, "chaos: time between faults")
	profile := flag.String("cpuprofile", "", "latency: write a CPU profile of the first worker during the offered window to this file")
	pattern := flag.String("pattern", PatternMembership, "latency: membership (add/remove on existing groups) or create (a new group per event)")
	workers := flag.String("workers", "2", "worker processes (throughput: a list, e.g. 1,2,4)")
	events := flag.Int("events", 2000, "throughput: jobs queued before the workers start")
	partitions := flag.Int("partitions", 0, "GROUPSYNC_PARTITIONS (0: the binary's default)")
	concurrency := flag.Int("concurrency", 0, "GROUPSYNC_CONCURRENCY of each worker (0: one job per partition)")
	virgilDelay := flag.Duration("virgil-delay", 0, "throughput: hold every Virgil request this long, as a round trip to Virgil's cloud would")
	keep := flag.Bool("keep", false, "keep the run folder (logs, stores)")
	jsonOut := flag.String("json", "", "write the report as JSON to this file")
	logLevel := flag.String("log-level", "info", "GROUPSYNC_LOG_LEVEL of the groupsync processes (debug shows every job)")
	natsNodes := flag.Int("nats-nodes", 1, "NATS nodes: 3 runs a JetStream cluster of separate processes with R3 streams")
	sentinel := flag.Bool("redis-sentinel", false, "Redis as a primary, a replica and three Sentinels")
	serves := flag.Int("serves", 1, "serve processes (webhooks go to each in turn; a retry goes to the next)")
	failoverAt := flag.Duration("failover-at", 0, "latency: SIGKILL the NATS node leading the job stream this long into the offered window and report the events posted during the failover apart (needs -nats-nodes 3); 0: no failover")
	failoverDown := flag.Duration("failover-down", 3*time.Second, "latency: how long the killed NATS node stays down after another took over")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed of the generator")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
	dir, err := os.MkdirTemp("", "groupsync-chaos-")
	if err != nil {
		fatal(err)
	}
	if *keep {
		logf("run folder: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin, err := BuildBinary(dir)
	if err != nil {
		fatal(err)
	}
	var wl []int
	for _, s := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-workers %q: want a list of positive numbers", *workers))
		}
		wl = append(wl, n)
	}
	base := ClusterConfig{Binary: bin, Partitions: *partitions, Concurrency: *concurrency, NATSSyncAlways: true, LogLevel: *logLevel, Logf: logf,
		NATSNodes: *natsNodes, RedisSentinel: *sentinel, Serves: *serves}

	var report any
	code := 0
	switch *mode {
	case "chaos":
		cfg := base
		cfg.Dir, cfg.Workers = dir+"/chaos", wl[0]
		cfg.CometChat, cfg.ReconcileInterval = true, 15*time.Second
		c, err := StartCluster(ctx, cfg)
		if err != nil {
			fatal(err)
		}
		rep, err := RunChaos(ctx, c, ChaosConfig{Duration: *duration, Groups: *groups, Users: *users, Rate: *rate,
			Period: *period, Seed: *seed, Logf: logf})
		if err != nil {
			c.Stop()
			fatal(err)
		}
		c.Stop()
		leaks, err := c.ScanLogs()
		if err != nil {
			fatal(err)
		}
		for _, l := range rep.Divergence {
			logf("diverged: %s", l)
		}
		for _, l := range rep.Lapses {
			logf("lost: %s", l)
		}
		for _, l := range leaks {
			logf("secret in a log: %s", l)
		}
		for _, f := range c.Failovers() {
			fmt.Println("failover:", f)
		}
		fmt.Println(rep.Summary())
		if rep.Lost > 0 || rep.Unrepaired > 0 || rep.Diverged > 0 || len(leaks) > 0 {
			code = 1
		}
		report = map[string]any{"chaos": rep, "secret_leaks": len(leaks), "seed": *seed, "failovers": c.Failovers()}
	case "latency":
		cfg := base
		cfg.Dir, cfg.Workers = dir+"/latency", wl[0]
		res, err := RunLatency(ctx, cfg, LatencyConfig{Rate: *rate, Duration: *duration, Pattern: *pattern, Profile: *profile, Groups: *groups, Users: *users,
			FailoverAt: *failoverAt, FailoverDown: *failoverDown, Logf: logf})
		if err != nil {
			fatal(err)
		}
		fmt.Println(res.Summary())
		if res.Verdict() != nil {
			code = 1
		}
		report = res
	case "throughput":
		var all []ThroughputResult
		for _, n := range wl {
			cfg := base
			cfg.Dir, cfg.Workers = fmt.Sprintf("%s/throughput-%d", dir, n), n
			res, err := RunThroughput(ctx, cfg, ThroughputConfig{Events: *events, Groups: *groups, Users: *users, VirgilDelay: *virgilDelay, Logf: logf})
			if err != nil {
				fatal(err)
			}
			fmt.Println(res.Summary())
			all = append(all, res)
		}
		report = all
	default:
		fatal(fmt.Errorf("-mode %q: want chaos, latency or throughput", *mode))
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fatal(err)
		}
	}
	os.Exit(code)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "chaos:", err)
	os.Exit(1)
}
