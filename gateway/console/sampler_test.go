package console

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/metrics"
)

func TestHistogramQuantile(t *testing.T) {
	h := &histogram{bounds: []float64{0.1, 0.5, 1}, counts: []float64{10, 60, 100}, count: 100}
	for _, c := range []struct {
		name string
		h    *histogram
		q    float64
		want float64
	}{
		{"inside a bucket", h, 0.5, 0.1 + 0.4*40.0/50},
		{"the last bucket", h, 0.99, 0.5 + 0.5*39.0/40},
		{"the first bucket from 0", h, 0.05, 0.1 * 5.0 / 10},
		{"past the last bound", &histogram{bounds: []float64{0.1, 1}, counts: []float64{50, 90}, count: 100}, 0.99, 1},
		{"no observations", &histogram{bounds: []float64{0.1}, counts: []float64{0}}, 0.5, math.NaN()},
		{"nil", nil, 0.5, math.NaN()},
	} {
		got := c.h.quantile(c.q)
		if !(math.Abs(got-c.want) < 1e-9 || math.IsNaN(got) && math.IsNaN(c.want)) {
			t.Errorf("%s: q%.2f = %v, want %v", c.name, c.q, got, c.want)
		}
	}
	later := &histogram{bounds: h.bounds, counts: []float64{10, 70, 120}, count: 130}
	if d := later.minus(h); d.count != 30 || d.counts[1] != 10 || d.counts[2] != 20 {
		t.Errorf("minus = %+v", d)
	}
	if d := h.minus(later); d != h { // a reset: all of h is new
		t.Errorf("minus after a reset = %+v, want h itself", d)
	}
}

// clock is a settable time for the sampler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// The figures come from the gateway's own registry: rates over the last minute from counter
// differences, latency quantiles from histogram bucket differences, gauges as they are; a trigger's
// figures are under its own name, a broker's size under the broker's.
func TestSamplerFigures(t *testing.T) {
	m := metrics.New(metrics.Build{})
	m.RegisterChannelUsage(func() []metrics.ChannelUsage {
		return []metrics.ChannelUsage{{Channel: channel.BrokerRef("shop", "default"), Bytes: 2048, Limit: 4096}}
	})
	clk := &clock{t: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)}
	s := NewSampler(m.Registry, SamplerOptions{Now: clk.now})
	if f := s.Figures(); len(f.Subscriptions) != 0 || f.Span != 0 {
		t.Errorf("figures before a sample = %+v", f)
	}
	// Slow deliveries before the first sample do not count in the quantiles after it.
	for range 100 {
		m.DispatchDuration.WithLabelValues("shop", "billing").Observe(20)
	}
	m.Delivered.WithLabelValues("shop", "billing").Add(1000)
	s.Sample()
	f := s.Figures()
	if sf := f.Subscriptions["shop/billing"]; sf.DeliveredPerSec != nil {
		t.Errorf("a rate from one sample: %v", *sf.DeliveredPerSec)
	}

	for range 12 { // a minute of samples, 5 s apart
		clk.add(5 * time.Second)
		m.Delivered.WithLabelValues("shop", "billing").Add(10)
		m.DispatchAttempts.WithLabelValues("shop", "billing", "2xx").Add(10)
		m.DispatchAttempts.WithLabelValues("shop", "billing", "5xx").Add(1)
		m.DispatchAttempts.WithLabelValues("shop", "billing", "timeout").Add(1)
		m.DeadLettered.WithLabelValues("shop", "billing").Add(0.5)
		for i := range 10 {
			m.DispatchDuration.WithLabelValues("shop", "billing").Observe(0.004 + float64(i)*0.0001) // in (0.0025, 0.005]
		}
		m.IngressEvents.WithLabelValues("shop", "orders").Add(30)
		m.IngressEvents.WithLabelValues("shop", "default").Add(5) // a broker is labelled by its name
		m.Delivered.WithLabelValues("shop", "trigger.audit").Add(5)
		m.ConcurrencyLimit.WithLabelValues("shop", "billing").Set(16)
		m.InFlight.WithLabelValues("shop", "billing").Set(3)
		s.Sample()
	}
	f = s.Figures()
	sf, ok := f.Subscriptions["shop/billing"]
	if !ok {
		t.Fatalf("no figures for shop/billing: %+v", f)
	}
	want := map[string]struct {
		got  *float64
		want float64
	}{
		"delivered/s":     {sf.DeliveredPerSec, 10.0 / 5},
		"errors/s":        {sf.ErrorsPerSec, 2.0 / 5},
		"dead-lettered/s": {sf.DeadLetteredPerSec, 0.5 / 5},
		"limit":           {sf.Limit, 16},
		"in flight":       {sf.InFlight, 3},
		"ingress/s":       {f.Channels["shop/orders"].EventsPerSec, 30.0 / 5},
		"broker ingress":  {f.Channels["shop/default"].EventsPerSec, 5.0 / 5},
		"broker bytes":    {f.Channels["shop/default"].Bytes, 2048},
		"trigger":         {f.Triggers["shop/audit"].DeliveredPerSec, 5.0 / 5},
	}
	for name, c := range want {
		if c.got == nil || math.Abs(*c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, deref(c.got), c.want)
		}
	}
	for name, q := range map[string]*float64{"p50": sf.P50, "p99": sf.P99} {
		if q == nil || *q <= 0.0025 || *q > 0.005 {
			t.Errorf("%s = %v, want within (2.5 ms, 5 ms]: the 20 s attempts came before the window", name, deref(q))
		}
	}
	if sf.Lag != nil {
		t.Errorf("lag = %v with no lag reported, want null", *sf.Lag)
	}
	if _, ok := f.Subscriptions["shop/trigger.audit"]; ok {
		t.Error("a trigger listed as a subscription")
	}
	if f.Span != 60 {
		t.Errorf("span = %v, want 60", f.Span)
	}

	series := s.SubscriptionSeries("shop/billing")
	if len(series.Times) != 13 || series.DeliveredPerSec[0] != nil || *series.DeliveredPerSec[12] != 2 ||
		*series.Limit[12] != 16 || series.P50[12] == nil || *series.P50[12] > 0.005 {
		t.Errorf("series = %+v", series)
	}
	if cs := s.ChannelSeries("shop/default"); len(cs.Times) != 13 || *cs.Bytes[0] != 2048 || *cs.EventsPerSec[12] != 1 {
		t.Errorf("broker series = %+v", cs)
	}
	if none := s.SubscriptionSeries("shop/none"); len(none.Times) != 13 || none.DeliveredPerSec[5] != nil {
		t.Errorf("series of an unknown subscription = %+v, want times and nulls", none)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// The samples span the window and no more; only the minute anchors and the last sample keep their
// histograms, so memory stays bounded by what the figures need.
func TestSamplerKeepsTheWindow(t *testing.T) {
	m := metrics.New(metrics.Build{})
	m.DispatchDuration.WithLabelValues("ns", "s").Observe(0.01)
	clk := &clock{t: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)}
	s := NewSampler(m.Registry, SamplerOptions{Now: clk.now, Window: 2 * time.Minute, Interval: 5 * time.Second})
	for range 60 { // 5 minutes
		s.Sample()
		clk.add(5 * time.Second)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if span := s.samples[len(s.samples)-1].at.Sub(s.samples[0].at); span > 2*time.Minute || len(s.samples) != 25 {
		t.Errorf("%d samples spanning %v, want 25 spanning 2m", len(s.samples), span)
	}
	withHist := 0
	for i, smp := range s.samples {
		if smp.subs["ns/s"].hist != nil {
			withHist++
			if !smp.anchor && i != len(s.samples)-1 {
				t.Errorf("sample %d keeps its histogram and is no anchor", i)
			}
		}
	}
	if withHist < 2 || withHist > 4 {
		t.Errorf("%d samples keep histograms, want the anchors (one a minute) and the last", withHist)
	}
}

// countingGatherer counts its calls.
type countingGatherer struct {
	n atomic.Int32
	g prometheus.Gatherer
}

func (c *countingGatherer) Gather() ([]*dto.MetricFamily, error) {
	c.n.Add(1)
	return c.g.Gather()
}

// The sampler reads the registry only while the console is in use: from the first Touch (at once)
// until idle has passed since the last; then it drops what it kept.
func TestSamplerSamplesOnlyWhileInUse(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC)}
	g := &countingGatherer{g: prometheus.NewRegistry()}
	s := NewSampler(g, SamplerOptions{Now: clk.now, Interval: time.Hour, Idle: time.Minute})
	if s.inUse() {
		t.Error("in use before any Touch")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s.Touch() // wakes Run at once, though the interval is an hour
	waitFor(t, func() bool { return g.n.Load() > 0 }, "a sample after the first Touch")
	clk.add(time.Minute)
	if !s.inUse() {
		t.Error("not in use idle after the last Touch")
	}
	clk.add(time.Second)
	if s.inUse() {
		t.Error("in use past idle")
	}
	// Touch wakes Run again (idle before it); the clock goes past idle, and the next wake forgets.
	s.Touch()
	waitFor(t, func() bool { return g.n.Load() > 1 }, "a sample after the Touch that ended the idle")
	clk.add(2 * time.Minute)
	s.wake <- struct{}{}
	waitFor(t, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.samples) == 0 }, "the samples dropped when idle")
}

// waitFor polls cond every millisecond for at most 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling, with the deadline above
	}
}
