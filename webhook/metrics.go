package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupsync/groupsync/groupsync"
)

// Outcomes of a webhook request, the "outcome" label of
// groupsync_webhook_requests_total.
const (
	outcomeAccepted     = "accepted"
	outcomeDuplicate    = "duplicate"
	outcomeIgnored      = "ignored"
	outcomeUnauthorized = "unauthorized"
	outcomeForbidden    = "forbidden"
	outcomeMediaType    = "unsupported_media_type"
	outcomeTooLarge     = "too_large"
	outcomeRefused      = "refused"
	outcomeInvalid      = "invalid"
	outcomeUnavailable  = "unavailable"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests       *prometheus.CounterVec
	publishLatency prometheus.Histogram
	clamped        *prometheus.CounterVec
	clientRequests *prometheus.CounterVec
	// clientAuth counts token checks by result: verified, cached, invalid,
	// invalid_cached, malformed, unavailable.
	clientAuth *prometheus.CounterVec
	// clientAuthWaiting is the number of requests waiting for CometChat's
	// answer (concurrent checks of one token share one call).
	clientAuthWaiting prometheus.Gauge
	// rateLimited counts 429 answers by bucket ("ip" or "uid").
	rateLimited *prometheus.CounterVec
	// corsRefused counts preflights from origins not allowed.
	corsRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "webhook",
			Name:      "requests_total",
			Help:      "CometChat webhook requests by trigger and outcome.",
		}, []string{"trigger", "outcome"}),
		publishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "groupsync",
			Subsystem: "webhook",
			Name:      "publish_seconds",
			Help:      "Time from handing a job to the queue to its acknowledgement (or failure).",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5},
		}),
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "client",
			Name:      "requests_total",
			Help:      "Client API requests by endpoint and HTTP status.",
		}, []string{"endpoint", "status"}),
		clientAuth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "client",
			Name:      "auth_checks_total",
			Help:      "Client API auth token checks by result (verified, cached, invalid, invalid_cached, malformed, unavailable).",
		}, []string{"result"}),
		clientAuthWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "groupsync",
			Subsystem: "client",
			Name:      "auth_checks_waiting",
			Help:      "Client API requests waiting for CometChat to answer an auth token check.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "client",
			Name:      "rate_limited_total",
			Help:      "Client API requests answered 429, by the bucket that was empty (ip or uid).",
		}, []string{"by"}),
		corsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync",
			Subsystem: "client",
			Name:      "cors_refused_total",
			Help:      "CORS preflights refused because their origin is not allowed.",
		}),
	}
	m.clamped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "groupsync",
		Subsystem: "webhook",
		Name:      "clamped_events_total",
		Help:      "Webhook events whose times lay beyond receipt plus the allowed clock skew, by trigger.",
	}, []string{"trigger"})
	for _, c := range []prometheus.Collector{m.requests, m.publishLatency, m.clientRequests, m.clientAuth, m.clientAuthWaiting, m.rateLimited, m.corsRefused, m.clamped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhook: register metrics: %w", err)
		}
	}
	return m, nil
}

// triggerLabel bounds the label's values: known triggers as they are,
// anything else (the sender's free text) as "other", and "none" before the
// body was read.
func triggerLabel(t groupsync.Trigger) string {
	switch {
	case t == "":
		return "none"
	case groupsync.KnownTrigger(t):
		return string(t)
	}
	return "other"
}
