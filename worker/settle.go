package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// settle acknowledges, hands back or dead-letters the delivery.
func (p *Pool) settle(ctx context.Context, d *queue.Delivery, lease Lease, res result, err error, took time.Duration, log zerolog.Logger) {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case err == nil && (res == resApplied || res == resDuplicate):
		aerr := d.Ack(bg)
		if n := d.AckAttempts(); n > 1 {
			p.metrics.ackRetries.Add(float64(n - 1))
			if aerr == nil {
				log.Info().Int("ack_attempts", n).Msg("ack confirmed after retries (NATS slow or changing leaders)")
			}
		}
		if aerr != nil {
			p.metrics.ackFailures.Inc()
			log.Warn().Err(aerr).Int("ack_attempts", d.AckAttempts()).Msg("ack failed; the job will be redelivered and found done")
		}
		label := "applied"
		if res == resDuplicate {
			label = "duplicate"
			log.Debug().Msg("job already done, acknowledged")
		} else {
			lag := time.Since(d.Stored)
			p.metrics.lag.Observe(lag.Seconds())
			p.act.applied(lag)
			log.Debug().Dur("took", took).Dur("queued", lag-took).Msg("job applied")
		}
		p.metrics.jobs.WithLabelValues(label).Inc()
		return
	case err == nil && res == resHeld:
		// Usually the lease of a worker that died, about to expire (its
		// heartbeat also kept the ack wait going): look again soon.
		delay := min(p.nakDelay(d.NumDelivered, nil), p.cfg.LeaseTTL)
		log.Info().Dur("retry_in", delay).Msg("job leased by another delivery, handing it back")
		p.nakDelivery(d, delay, log)
		p.metrics.jobs.WithLabelValues("held").Inc()
		return
	case res == resLeaseLost:
		// Another delivery owns the job now; it settles it.
		log.Warn().Err(err).Msg("job lease lost, leaving the delivery to its new owner")
		p.metrics.jobs.WithLabelValues("lease_lost").Inc()
		return
	}
	if rerr := p.store.Release(bg, d.Job.ID, lease); rerr != nil {
		log.Warn().Err(rerr).Msg("releasing the job lease failed; it expires by itself")
	}
	shutdown := ctx.Err() != nil && !errors.Is(context.Cause(ctx), errJobTimeout)
	switch {
	case shutdown:
		log.Info().Msg("shutting down, handing the job back")
		p.nakDelivery(d, DefaultShutdownNak, log)
		p.metrics.jobs.WithLabelValues("shutdown").Inc()
	case groupsync.IsPermanent(err) || d.LastAttempt():
		reason := deadLetterReason(err, d.LastAttempt() && !groupsync.IsPermanent(err), d.NumDelivered)
		if derr := d.DeadLetter(bg, reason); derr != nil {
			log.Error().Err(derr).Str("reason", reason).Msg("dead-lettering failed; the job will be redelivered")
			return
		}
		log.Error().Err(err).Str("reason", reason).Msg("job dead-lettered")
		p.metrics.jobs.WithLabelValues("dead_lettered").Inc()
		p.act.failed()
	default:
		delay := p.nakDelay(d.NumDelivered, err)
		log.Warn().Err(err).Dur("retry_in", delay).Msg("job failed, will be redelivered")
		p.nakDelivery(d, delay, log)
		p.metrics.jobs.WithLabelValues("retried").Inc()
		p.act.retried()
	}
}

func (p *Pool) nakDelivery(d *queue.Delivery, delay time.Duration, log zerolog.Logger) {
	if err := d.NakWithDelay(delay); err != nil {
		log.Warn().Err(err).Msg("nak failed; the job is redelivered after the ack wait")
	}
}

// nakDelay is NakBase doubled per delivery, at most NakMax, or the failure's
// Retry-After when longer (at most 2 minutes).
func (p *Pool) nakDelay(delivered uint64, err error) time.Duration {
	d := p.cfg.NakBase
	for i := uint64(1); i < delivered && d < p.cfg.NakMax; i++ {
		d *= 2
	}
	d = min(d, p.cfg.NakMax)
	if ra := retryAfter(err); ra > d {
		d = min(ra, 2*time.Minute)
	}
	return d
}

func deadLetterReason(err error, exhausted bool, attempts uint64) string {
	msg := "unknown failure"
	if err != nil {
		msg = err.Error()
	}
	if errors.Is(err, errNeedsReconcile) {
		msg = ReasonNeedsReconcile + ": the event cannot be trusted and no CometChat reconciler is configured; run `groupsync reconcile`"
	} else if errors.Is(err, errUnconfirmed) {
		msg = ReasonUnconfirmed + ": the job was stored around a loss of the store's data and no CometChat API key is configured to check it; check the group and run `groupsync reconcile`"
	} else if exhausted {
		msg = fmt.Sprintf("failed %d deliveries: %s", attempts, msg)
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	if len(msg) > maxDeadLetterReasonLen {
		msg = msg[:maxDeadLetterReasonLen] + "…"
	}
	return msg
}
