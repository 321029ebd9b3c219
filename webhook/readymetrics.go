package webhook

import (
	"context"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// readyCollector exports the readiness checks as
// groupsync_dependency_up{check="nats"|"store"|"virgil"|…}: 1 when the
// check passed at scrape time, 0 when it failed or did not answer within
// ReadyTimeout. Alerts on NATS or Redis being unreachable read it.
type readyCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func newReadyCollector(s *Server) *readyCollector {
	return &readyCollector{s: s, desc: prometheus.NewDesc("groupsync_dependency_up",
		"1 when the readiness check of a dependency passed at scrape time, 0 when it failed.", []string{"check"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector: it runs every check concurrently.
func (c *readyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.ReadyTimeout)
	defer cancel()
	names := make([]string, 0, len(c.s.cfg.ReadyChecks))
	for name := range c.s.cfg.ReadyChecks {
		names = append(names, name)
	}
	sort.Strings(names)
	up := make([]float64, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan error, 1)
			go func() { done <- runCheck(ctx, c.s.cfg.ReadyChecks[name]) }()
			select {
			case err := <-done:
				if err == nil {
					up[i] = 1
				}
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	for i, name := range names {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, up[i], name)
	}
}
