package console

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the console's Prometheus collectors.
type metrics struct {
	// requests counts requests by page and HTTP status.
	requests *prometheus.CounterVec
	// failedLogins counts requests with wrong credentials.
	failedLogins prometheus.Counter
	// rateLimited counts requests refused for too many failed logins.
	rateLimited prometheus.Counter
	// csrfRefused counts POSTs without the right CSRF token.
	csrfRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "console",
			Name:      "requests_total",
			Help:      "Console requests by page and HTTP status.",
		}, []string{"page", "status"}),
		failedLogins: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "console",
			Name:      "failed_logins_total",
			Help:      "Console requests with wrong credentials.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "console",
			Name:      "rate_limited_total",
			Help:      "Console requests refused (429) because their client failed to log in too often.",
		}),
		csrfRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "console",
			Name:      "csrf_refused_total",
			Help:      "Console POSTs refused (403) for a missing or wrong CSRF token.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.failedLogins, m.rateLimited, m.csrfRefused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("console: register metrics: %w", err)
		}
	}
	return m, nil
}
