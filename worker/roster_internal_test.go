package worker

import (
	"testing"
	"time"
)

func TestLagHistogramQuantiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lags     []time.Duration
		p50, p99 time.Duration // the true values; the histogram is at most 25% above
	}{
		{"Empty", nil, 0, 0},
		{"One", []time.Duration{40 * time.Millisecond}, 40 * time.Millisecond, 40 * time.Millisecond},
		{"Tail", append(repeat(99, 10*time.Millisecond), 3*time.Second), 10 * time.Millisecond, 10 * time.Millisecond},
		{"SlowTail", append(repeat(90, 5*time.Millisecond), repeat(10, 2*time.Second)...), 5 * time.Millisecond, 2 * time.Second},
		{"SubMillisecond", []time.Duration{time.Microsecond}, time.Millisecond, time.Millisecond},
		{"Huge", []time.Duration{100 * time.Hour}, LagBucketBound(lagBuckets - 1), LagBucketBound(lagBuckets - 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h LagHistogram
			for _, d := range tc.lags {
				h.Add(d)
			}
			for _, q := range []struct {
				q    float64
				want time.Duration
			}{{0.5, tc.p50}, {0.99, tc.p99}} {
				got := h.Quantile(q.q)
				if got < q.want || float64(got) > 1.25*float64(q.want)+1 {
					t.Errorf("Quantile(%v) = %v, want %v to %v", q.q, got, q.want, time.Duration(1.25*float64(q.want)))
				}
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestLagBucketsBoundTheirDurations(t *testing.T) {
	for d := time.Microsecond; d < time.Hour; d = d*11/10 + 1 {
		i := lagBucket(d)
		if d > LagBucketBound(i) || i > 0 && d <= LagBucketBound(i-1) {
			t.Fatalf("lagBucket(%v) = %d, bounds (%v, %v]", d, i, LagBucketBound(i-1), LagBucketBound(i))
		}
	}
}

func TestLagHistogramsMerge(t *testing.T) {
	var a, b LagHistogram
	for range 50 {
		a.Add(2 * time.Millisecond)
	}
	for range 50 {
		b.Add(time.Second)
	}
	a.Merge(b)
	if a.Count() != 100 || a.Quantile(0.5) > 3*time.Millisecond || a.Quantile(0.99) < time.Second {
		t.Fatalf("merged histogram: count %d, p50 %v, p99 %v; want 100, about 2ms, about 1s", a.Count(), a.Quantile(0.5), a.Quantile(0.99))
	}
}

// TestActivityCoversTheLastSixIntervals counts outcomes across heartbeats:
// each fill reports the last six slots and drops the oldest.
func TestActivityCoversTheLastSixIntervals(t *testing.T) {
	var a activity
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	iv := 10 * time.Second
	var hb Heartbeat
	a.applied(20 * time.Millisecond)
	a.retried()
	a.failed()
	a.fill(&hb, start, start.Add(iv), iv)
	if hb.Applied != 1 || hb.Retried != 1 || hb.Failed != 1 || hb.Window != iv || hb.LagP50 < 20*time.Millisecond {
		t.Fatalf("first heartbeat = %+v", hb)
	}
	for i := 2; i <= activitySlots; i++ {
		a.fill(&hb, start, start.Add(time.Duration(i)*iv), iv)
	}
	if hb.Applied != 1 || hb.Window != time.Minute {
		t.Fatalf("heartbeat %d = %+v, want the first slot's job still counted over a minute", activitySlots, hb)
	}
	a.fill(&hb, start, start.Add(time.Duration(activitySlots+1)*iv), iv)
	if hb.Applied != 0 || hb.Retried != 0 || hb.Failed != 0 || hb.Lag.Count() != 0 || hb.LagP99 != 0 {
		t.Fatalf("heartbeat after a minute = %+v, want the old job gone", hb)
	}
}
