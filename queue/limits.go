package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StreamFill is how full one stream is against its limits.
type StreamFill struct {
	// Stream is the stream name.
	Stream string `json:"stream"`
	// Messages and Bytes are what the stream holds now.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// MaxMessages and MaxBytes are its limits, -1 for none.
	MaxMessages int64 `json:"max_messages"`
	MaxBytes    int64 `json:"max_bytes"`
	// Ratio is the larger of Messages/MaxMessages and Bytes/MaxBytes, 0
	// without limits; 1 means the stream refuses new messages.
	Ratio float64 `json:"ratio"`
	// Oldest is when the oldest message still stored was stored (zero when
	// the stream is empty). In the job stream, a work queue, that is the
	// oldest job not yet settled.
	Oldest time.Time `json:"oldest,omitzero"`
}

// ratio returns n/limit, 0 for no limit.
func ratio(n uint64, limit int64) float64 {
	if limit <= 0 {
		return 0
	}
	return float64(n) / float64(limit)
}

// Fill reads the fill of the job stream and the dead-letter stream, in that
// order. Errors match ErrUnavailable when NATS cannot be reached.
func (q *Queue) Fill(ctx context.Context) ([]StreamFill, error) {
	ctx, cancel := q.withTimeout(ctx)
	defer cancel()
	out := make([]StreamFill, 0, 2)
	for _, name := range []string{q.cfg.Stream, q.cfg.DeadLetterStream} {
		s, err := q.js.Stream(ctx, name)
		if err != nil {
			return nil, wrap("fill of stream "+name, err)
		}
		info := s.CachedInfo()
		f := StreamFill{
			Stream:      name,
			Messages:    info.State.Msgs,
			Bytes:       info.State.Bytes,
			MaxMessages: info.Config.MaxMsgs,
			MaxBytes:    info.Config.MaxBytes,
		}
		if info.State.Msgs > 0 {
			f.Oldest = info.State.FirstTime
		}
		f.Ratio = max(ratio(f.Messages, f.MaxMessages), ratio(f.Bytes, f.MaxBytes))
		out = append(out, f)
	}
	return out, nil
}

// FillError reports streams filled past Config.FillThreshold. It matches
// ErrFull with errors.Is only when a stream is at its limit.
type FillError struct {
	// Streams are the streams past the threshold.
	Streams []StreamFill
	// Threshold is Config.FillThreshold.
	Threshold float64
}

// Error implements error.
func (e *FillError) Error() string {
	return "queue: " + e.Reason()
}

// Reason describes the streams past the threshold, without the "queue: "
// prefix; it holds no secret and may be shown to whoever can reach the
// readiness endpoint.
func (e *FillError) Reason() string {
	parts := make([]string, len(e.Streams))
	for i, f := range e.Streams {
		parts[i] = fmt.Sprintf("stream %s is %.0f%% full (%d of %d messages, %d of %d bytes)",
			f.Stream, 100*f.Ratio, f.Messages, f.MaxMessages, f.Bytes, f.MaxBytes)
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(", above the %.0f%% threshold", 100*e.Threshold)
}

// Is makes errors.Is(err, ErrFull) true when a stream is at its limit.
func (e *FillError) Is(target error) bool {
	if target != ErrFull {
		return false
	}
	for _, f := range e.Streams {
		if f.Ratio >= 1 {
			return true
		}
	}
	return false
}

// CheckFill fails with *FillError when either stream is filled past
// Config.FillThreshold, for readiness probes: a process that reports not
// ready before the streams refuse work gives operators time to act. Other
// errors match ErrUnavailable when NATS cannot be reached.
func (q *Queue) CheckFill(ctx context.Context) error {
	fill, err := q.Fill(ctx)
	if err != nil {
		return err
	}
	var over []StreamFill
	for _, f := range fill {
		if f.Ratio >= q.cfg.FillThreshold {
			over = append(over, f)
		}
	}
	if len(over) > 0 {
		return &FillError{Streams: over, Threshold: q.cfg.FillThreshold}
	}
	return nil
}

// fillCollector exports Fill as Prometheus gauges.
type fillCollector struct {
	q                              *Queue
	msgs, bytes, maxMsgs, maxBytes *prometheus.Desc
	ratio, threshold, up, oldest   *prometheus.Desc
}

// Collector returns a Prometheus collector of the streams' fill, read from
// JetStream on every scrape: groupsync_queue_stream_messages,
// _stream_bytes, _stream_max_messages, _stream_max_bytes and
// _stream_fill_ratio (labelled by stream), groupsync_queue_fill_threshold,
// groupsync_queue_stream_oldest_age_seconds (age of the oldest message
// stored, 0 when empty; in the job stream, of the oldest job waiting),
// and groupsync_queue_stream_info_up (0 when JetStream did not answer).
// Safe for concurrent use.
func (q *Queue) Collector() prometheus.Collector {
	l := []string{"stream"}
	return &fillCollector{
		q:         q,
		msgs:      prometheus.NewDesc("groupsync_queue_stream_messages", "Messages stored in the stream.", l, nil),
		bytes:     prometheus.NewDesc("groupsync_queue_stream_bytes", "Bytes stored in the stream.", l, nil),
		maxMsgs:   prometheus.NewDesc("groupsync_queue_stream_max_messages", "Message limit of the stream (-1: none).", l, nil),
		maxBytes:  prometheus.NewDesc("groupsync_queue_stream_max_bytes", "Byte limit of the stream (-1: none).", l, nil),
		ratio:     prometheus.NewDesc("groupsync_queue_stream_fill_ratio", "Fill of the stream against its limits, 0 to 1 (1: new messages refused).", l, nil),
		threshold: prometheus.NewDesc("groupsync_queue_fill_threshold", "Fill ratio above which readiness fails.", nil, nil),
		up:        prometheus.NewDesc("groupsync_queue_stream_info_up", "1 when the last read of the streams' fill succeeded.", nil, nil),
		oldest:    prometheus.NewDesc("groupsync_queue_stream_oldest_age_seconds", "Age of the oldest message stored in the stream (0: empty); for the job stream, the oldest job not yet settled.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *fillCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.msgs, c.bytes, c.maxMsgs, c.maxBytes, c.ratio, c.threshold, c.up, c.oldest} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *fillCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.threshold, prometheus.GaugeValue, c.q.cfg.FillThreshold)
	fill, err := c.q.Fill(context.Background())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, f := range fill {
		ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.GaugeValue, float64(f.Messages), f.Stream)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(f.Bytes), f.Stream)
		ch <- prometheus.MustNewConstMetric(c.maxMsgs, prometheus.GaugeValue, float64(f.MaxMessages), f.Stream)
		ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(f.MaxBytes), f.Stream)
		ch <- prometheus.MustNewConstMetric(c.ratio, prometheus.GaugeValue, f.Ratio, f.Stream)
		age := 0.0
		if !f.Oldest.IsZero() {
			age = max(time.Since(f.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, f.Stream)
	}
}
