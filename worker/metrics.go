package worker

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pool's Prometheus collectors.
type metrics struct {
	jobs     *prometheus.CounterVec
	steps    *prometheus.CounterVec
	checks   *prometheus.CounterVec
	retries  prometheus.Counter
	duration prometheus.Histogram
	lag      prometheus.Histogram
	inFlight prometheus.Gauge
	drift    *prometheus.CounterVec
	losses   prometheus.Counter
	confirms *prometheus.CounterVec
	runs     *prometheus.CounterVec
	audits   *prometheus.CounterVec
	// ackRetries and ackFailures count acknowledgements of finished jobs
	// sent again, and given up on.
	ackRetries, ackFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "jobs_total",
			Help: "Job deliveries by result: applied, duplicate, retried, dead_lettered, held, lease_lost, shutdown.",
		}, []string{"result"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "virgil_steps_total",
			Help: "Plan steps applied to Virgil, by operation.",
		}, []string{"op"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "card_checks_total",
			Help: "User card checks by result: no_card, unchanged, queued, failed.",
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "call_retries_total",
			Help: "Retries of failed Virgil, store and CometChat calls within a delivery.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "job_duration_seconds",
			Help:    "Time from a job's delivery to its settlement.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "job_lag_seconds",
			Help:    "Time from a job's storing in the queue (the webhook's 200) to its change in Virgil, for applied jobs.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 16),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "jobs_in_flight",
			Help: "Jobs running now in this process.",
		}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "reconcile", Name: "drift_total",
			Help: "Differences from CometChat that reconcile jobs repaired, by kind: member_missing, member_extra, participant_unknown, group_deleted.",
		}, []string{"kind"}),
		losses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "store_losses_total",
			Help: "Losses of the store's data this process detected (its marker vanished or changed).",
		}),
		confirms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "loss_checks_total",
			Help: "Membership changes checked with CometChat after a loss of the store's data: confirmed jobs, and dropped members.",
		}, []string{"result"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "reconcile", Name: "runs_total",
			Help: "Scheduled reconcile runs this process led, by result: finished, failed.",
		}, []string{"result"}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "audit_appends_total",
			Help: "Appends of applied changes to the audit trail, by result: appended, failed (the change is applied but missing from the trail).",
		}, []string{"result"}),
		ackRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "ack_retries_total",
			Help: "Acknowledgements of finished jobs sent again because an attempt timed out or found no consumer leader (a NATS leader change).",
		}),
		ackFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "groupsync", Subsystem: "worker", Name: "ack_failures_total",
			Help: "Finished jobs whose acknowledgement NATS never confirmed within the ack wait: each is redelivered and found done, its partition waiting meanwhile.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.jobs, m.steps, m.checks, m.retries, m.duration, m.lag, m.inFlight, m.drift, m.losses, m.confirms, m.runs, m.audits, m.ackRetries, m.ackFailures} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("worker: metrics already registered (one pool per registerer): %w", err)
			}
			return nil, fmt.Errorf("worker: register metrics: %w", err)
		}
	}
	return m, nil
}
