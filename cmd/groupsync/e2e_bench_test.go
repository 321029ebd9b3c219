package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	e2eRate     = flag.Int("e2e.rate", 200, "webhooks per second offered by BenchmarkEndToEnd")
	e2eDuration = flag.Duration("e2e.duration", 20*time.Second, "how long BenchmarkEndToEnd offers load")
	e2eWorkers  = flag.Int("e2e.workers", 2, "worker processes of BenchmarkEndToEnd")
)

// BenchmarkEndToEnd offers group_created webhooks at a fixed rate to a
// deployment of separate processes (serve, workers, emulator, NATS, Redis)
// and reports the latency from the webhook's 200 to the group's existence in
// Virgil (p50, p95, p99), the throughput, and the peak RSS of serve and of a
// worker. It reports figures; it asserts nothing about time.
func BenchmarkEndToEnd(b *testing.B) {
	c := startChaos(b, *e2eWorkers)
	total := int(e2eDuration.Seconds() * float64(*e2eRate))
	type pending struct {
		group string
		acked time.Time
	}
	var (
		mu      sync.Mutex
		waiting []pending
		lat     []time.Duration
	)
	done := make(chan struct{})
	go func() { // poll the emulator for the groups acknowledged so far
		defer close(done)
		for {
			mu.Lock()
			batch := append([]pending(nil), waiting...)
			mu.Unlock()
			if len(batch) == 0 && len(lat) >= total {
				return
			}
			var seen []string
			for _, p := range batch {
				code, err := getJSON(c.virgilURL+"/_emulator/groups/"+p.group+"?owner="+c.ids.Owner(), nil)
				if err == nil && code == http.StatusOK {
					lat = append(lat, time.Since(p.acked))
					seen = append(seen, p.group)
				}
			}
			mu.Lock()
			kept := waiting[:0:0]
			for _, p := range waiting {
				if !contains(seen, p.group) {
					kept = append(kept, p)
				}
			}
			waiting = kept
			mu.Unlock()
			if len(lat)+len(waiting) < total {
				time.Sleep(2 * time.Millisecond)
			}
			if len(lat) >= total {
				return
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(*e2eRate))
	var wg sync.WaitGroup
	for i := range total {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			guid := fmt.Sprintf("bench-group-%06d", i)
			if _, ok := c.post(memberEvent("group_created", guid, []string{"user-00"}, 1718000000, 0), true); !ok {
				b.Errorf("webhook for %s not accepted", guid)
				return
			}
			mu.Lock()
			waiting = append(waiting, pending{group: c.ids.Group(guid), acked: time.Now()})
			mu.Unlock()
		}()
	}
	tick.Stop()
	wg.Wait()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d groups appeared", len(lat), total)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.95), "p95-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "groups/s")
	b.ReportMetric(peakRSSMiB(c.procs[1]), "serve-peak-MiB")
	b.ReportMetric(peakRSSMiB(c.workers[0]), "worker-peak-MiB")
}

// peakRSSMiB reads a running process's peak resident set (VmHWM).
func peakRSSMiB(p *process) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
