package console

import (
	"context"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/metrics"
)

// The sampler's defaults.
const (
	// DefaultInterval is how often the sampler reads the registry.
	DefaultInterval = 5 * time.Second
	// DefaultWindow is how far back the figures go.
	DefaultWindow = 10 * time.Minute
	// DefaultIdle is how long the sampler keeps reading after the last data request: no console
	// open, no cost (reading the registry asks the backends for their lag).
	DefaultIdle = 10 * time.Minute
	// rateSpan is what a rate in the summary is measured over; quantileSpan the latency quantiles.
	rateSpan     = time.Minute
	quantileSpan = 5 * time.Minute
	// anchorEvery is how often a sample keeps its latency histograms (for quantiles over
	// quantileSpan); the others drop them once a newer sample came, to bound memory.
	anchorEvery = time.Minute
)

// Sampler reads a Prometheus registry every interval, while the console is in use, and keeps the
// last window of samples (about 20 KB per subscription for ten minutes; dropped once the console
// is no longer in use): per subscription its counters (delivered, attempts, failed attempts, dead
// letters), its gauges (lag, concurrency limit, in flight) and its delivery-latency histogram; per
// channel its ingress events and its size. Rates and quantiles are computed from differences
// between samples, as PromQL's rate and histogram_quantile do. Safe for concurrent use.
type Sampler struct {
	g        prometheus.Gatherer
	interval time.Duration
	window   time.Duration
	idle     time.Duration
	now      func() time.Time

	lastUse atomic.Int64 // unix nanoseconds of the last Touch
	wake    chan struct{}

	mu      sync.Mutex
	samples []*sample // oldest first, spanning at most window
	lastErr string
}

// SamplerOptions configures a Sampler; zero fields take the defaults above.
type SamplerOptions struct {
	Interval, Window, Idle time.Duration
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// NewSampler returns a sampler over g. It samples nothing until Run runs and Touch is called.
func NewSampler(g prometheus.Gatherer, o SamplerOptions) *Sampler {
	s := &Sampler{g: g, interval: o.Interval, window: o.Window, idle: o.Idle, now: o.Now,
		wake: make(chan struct{}, 1)}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.window <= 0 {
		s.window = DefaultWindow
	}
	if s.idle <= 0 {
		s.idle = DefaultIdle
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Touch marks the sampler in use: Run samples (at once, when it was idle) until idle has passed
// since the last Touch.
func (s *Sampler) Touch() {
	idle := !s.inUse()
	s.lastUse.Store(s.now().UnixNano())
	if idle {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Run samples every interval while the sampler is in use, until ctx is done; it returns then. The
// caller that starts it waits for it.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		if s.inUse() {
			s.Sample()
		} else {
			s.forget()
		}
	}
}

// forget drops the samples: once no console is open the sampler holds nothing.
func (s *Sampler) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples, s.lastErr = nil, ""
}

// inUse reports whether Touch was called within the last idle.
func (s *Sampler) inUse() bool {
	last := s.lastUse.Load()
	return last != 0 && s.now().Sub(time.Unix(0, last)) <= s.idle
}

// Sample reads the registry once and adds the sample (Run calls it; tests call it directly).
func (s *Sampler) Sample() {
	fams, err := s.g.Gather()
	at := s.now()
	smp := parse(fams, at)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = ""
	if err != nil { // Gather returns what it could read with the error
		s.lastErr = err.Error()
	}
	if n := len(s.samples); n > 0 {
		prev := s.samples[n-1]
		for key, sub := range smp.subs {
			sub.p50, sub.p99 = math.NaN(), math.NaN()
			if p, ok := prev.subs[key]; ok && p.hist != nil && sub.hist != nil {
				d := sub.hist.minus(p.hist)
				sub.p50, sub.p99 = d.quantile(0.5), d.quantile(0.99)
			}
		}
		// The previous sample keeps its histograms only as an anchor.
		if !prev.anchor {
			for _, sub := range prev.subs {
				sub.hist = nil
			}
		}
		smp.anchor = true
		for i := n - 1; i >= 0; i-- {
			if s.samples[i].anchor {
				smp.anchor = at.Sub(s.samples[i].at) >= anchorEvery
				break
			}
		}
	} else {
		smp.anchor = true
	}
	s.samples = append(s.samples, smp)
	cut := 0
	for cut < len(s.samples)-1 && at.Sub(s.samples[cut].at) > s.window {
		cut++
	}
	if cut > 0 {
		s.samples = append([]*sample(nil), s.samples[cut:]...)
	}
}

// sample is the registry at one time.
type sample struct {
	at     time.Time
	anchor bool                   // keeps its histograms
	subs   map[string]*subSample  // by NAMESPACE/NAME of the subscription label (trigger.NAME for a trigger)
	chans  map[string]*chanSample // by NAMESPACE/NAME, a broker by its own name
}

// subSample is one subscription in a sample: counters are cumulative; gauges are NaN when absent.
type subSample struct {
	delivered, attempts, failed, deadLettered float64
	lag, limit, inFlight                      float64
	hist                                      *histogram // cumulative; nil once dropped
	// p50 and p99 are the latency quantiles over the interval before this sample (NaN: none).
	p50, p99 float64
}

type chanSample struct {
	events            float64 // cumulative
	bytes, limitBytes float64 // NaN when absent (only in-memory channels have them)
}

// histogram is a cumulative Prometheus histogram: counts[i] observations at most bounds[i], and
// count in all (the +Inf bucket).
type histogram struct {
	bounds, counts []float64
	count          float64
}

// minus is h's observations since earlier (a reset, or other buckets, gives h itself).
func (h *histogram) minus(earlier *histogram) *histogram {
	if earlier == nil || len(earlier.bounds) != len(h.bounds) || earlier.count > h.count {
		return h
	}
	d := &histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), count: h.count - earlier.count}
	for i := range h.counts {
		d.counts[i] = h.counts[i] - earlier.counts[i]
	}
	return d
}

// quantile estimates the q-quantile (0 < q < 1) of the observations, interpolating linearly inside
// the bucket it falls in as PromQL's histogram_quantile does; past the last bound it is that bound.
// NaN when there are no observations.
func (h *histogram) quantile(q float64) float64 {
	if h == nil || h.count <= 0 {
		return math.NaN()
	}
	rank := q * h.count
	i := sort.Search(len(h.counts), func(i int) bool { return h.counts[i] >= rank })
	if i == len(h.counts) {
		if len(h.bounds) == 0 {
			return math.NaN()
		}
		return h.bounds[len(h.bounds)-1]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.bounds[i-1], h.counts[i-1]
	}
	in := h.counts[i] - below
	if in <= 0 {
		return h.bounds[i]
	}
	return lower + (h.bounds[i]-lower)*(rank-below)/in
}

// parse reads the families the console shows into a sample.
func parse(fams []*dto.MetricFamily, at time.Time) *sample {
	smp := &sample{at: at, subs: map[string]*subSample{}, chans: map[string]*chanSample{}}
	sub := func(m *dto.Metric) *subSample {
		key := label(m, "namespace") + "/" + label(m, "subscription")
		s := smp.subs[key]
		if s == nil {
			s = &subSample{lag: math.NaN(), limit: math.NaN(), inFlight: math.NaN(), p50: math.NaN(), p99: math.NaN()}
			smp.subs[key] = s
		}
		return s
	}
	ch := func(m *dto.Metric) *chanSample {
		ref := channel.Ref{Namespace: label(m, "namespace"), Name: label(m, "channel")}.Public()
		c := smp.chans[ref.String()]
		if c == nil {
			c = &chanSample{bytes: math.NaN(), limitBytes: math.NaN()}
			smp.chans[ref.String()] = c
		}
		return c
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case metrics.NameDelivered:
				sub(m).delivered += m.GetCounter().GetValue()
			case metrics.NameDeadLettered:
				sub(m).deadLettered += m.GetCounter().GetValue()
			case metrics.NameDispatchAttempts:
				v := m.GetCounter().GetValue()
				s := sub(m)
				s.attempts += v
				if label(m, "code_class") != "2xx" {
					s.failed += v
				}
			case metrics.NameConcurrencyLimit:
				sub(m).limit = m.GetGauge().GetValue()
			case metrics.NameInFlight:
				sub(m).inFlight = m.GetGauge().GetValue()
			case metrics.NameConsumerLag: // one per partition: summed
				s := sub(m)
				if math.IsNaN(s.lag) {
					s.lag = 0
				}
				s.lag += m.GetGauge().GetValue()
			case metrics.NameDispatchDuration:
				h := m.GetHistogram()
				hist := &histogram{count: float64(h.GetSampleCount())}
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), +1) {
						continue
					}
					hist.bounds = append(hist.bounds, b.GetUpperBound())
					hist.counts = append(hist.counts, float64(b.GetCumulativeCount()))
				}
				sub(m).hist = hist
			case metrics.NameIngressEvents:
				if label(m, "channel") != "" {
					ch(m).events += m.GetCounter().GetValue()
				}
			case metrics.NameChannelBytes:
				ch(m).bytes = m.GetGauge().GetValue()
			case metrics.NameChannelLimitBytes:
				ch(m).limitBytes = m.GetGauge().GetValue()
			}
		}
	}
	return smp
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// SubscriptionFigures are one subscription's (or trigger's) figures now: rates over the last minute
// (or what the samples span, when less), latency quantiles of delivery attempts over the last five
// minutes. A figure the samples cannot give yet is null.
type SubscriptionFigures struct {
	DeliveredPerSec    *float64 `json:"deliveredPerSec"`
	ErrorsPerSec       *float64 `json:"errorsPerSec"` // failed attempts: not 2xx, timeouts, network errors
	DeadLetteredPerSec *float64 `json:"deadLetteredPerSec"`
	Lag                *float64 `json:"lag"`
	Limit              *float64 `json:"limit"`
	InFlight           *float64 `json:"inFlight"`
	// P50 and P99 are in seconds.
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

// ChannelFigures are one channel's (or broker's) figures now.
type ChannelFigures struct {
	EventsPerSec *float64 `json:"eventsPerSec"` // accepted at ingress
	// Bytes and LimitBytes are what an in-memory channel holds and may hold; null on other backends.
	Bytes      *float64 `json:"bytes"`
	LimitBytes *float64 `json:"limitBytes"`
}

// Figures is the body of GET /console/api/metrics. Subscriptions and triggers are keyed
// NAMESPACE/NAME as /status names them; channels and brokers too.
type Figures struct {
	Time time.Time `json:"time"`
	// Interval is the sampling interval and Span what the samples cover, in seconds.
	Interval      float64                        `json:"interval"`
	Span          float64                        `json:"span"`
	Error         string                         `json:"error,omitempty"` // the last read of the registry failed in part
	Subscriptions map[string]SubscriptionFigures `json:"subscriptions"`
	Triggers      map[string]SubscriptionFigures `json:"triggers"`
	Channels      map[string]ChannelFigures      `json:"channels"`
}

// Figures returns the figures now: the last sample against the one rateSpan (quantileSpan) before.
func (s *Sampler) Figures() Figures {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Figures{Time: s.now(), Interval: s.interval.Seconds(), Error: s.lastErr,
		Subscriptions: map[string]SubscriptionFigures{}, Triggers: map[string]SubscriptionFigures{},
		Channels: map[string]ChannelFigures{}}
	n := len(s.samples)
	if n == 0 {
		return out
	}
	last := s.samples[n-1]
	out.Time = last.at
	out.Span = last.at.Sub(s.samples[0].at).Seconds()
	rateBase := s.before(last.at.Add(-rateSpan), false)
	histBase := s.before(last.at.Add(-quantileSpan), true)
	for key, cur := range last.subs {
		f := SubscriptionFigures{Lag: num(cur.lag), Limit: num(cur.limit), InFlight: num(cur.inFlight)}
		if rateBase != nil {
			dt := last.at.Sub(rateBase.at).Seconds()
			prev := rateBase.subs[key]
			if prev == nil {
				prev = &subSample{}
			}
			f.DeliveredPerSec = num(rate(cur.delivered, prev.delivered, dt))
			f.ErrorsPerSec = num(rate(cur.failed, prev.failed, dt))
			f.DeadLetteredPerSec = num(rate(cur.deadLettered, prev.deadLettered, dt))
		}
		if histBase != nil && cur.hist != nil {
			var earlier *histogram
			if p := histBase.subs[key]; p != nil {
				earlier = p.hist
			}
			d := cur.hist.minus(earlier)
			f.P50, f.P99 = num(d.quantile(0.5)), num(d.quantile(0.99))
		}
		ns, name, _ := strings.Cut(key, "/")
		if trigger, ok := triggerName(name); ok {
			out.Triggers[ns+"/"+trigger] = f
			continue
		}
		out.Subscriptions[key] = f
	}
	for key, cur := range last.chans {
		f := ChannelFigures{Bytes: num(cur.bytes), LimitBytes: num(cur.limitBytes)}
		if rateBase != nil {
			prev := rateBase.chans[key]
			if prev == nil {
				prev = &chanSample{}
			}
			f.EventsPerSec = num(rate(cur.events, prev.events, last.at.Sub(rateBase.at).Seconds()))
		}
		out.Channels[key] = f
	}
	return out
}

// before returns the latest sample taken at or before t (with histograms, when hist), else the
// oldest one that is not the last (with histograms); nil when there is none.
func (s *Sampler) before(t time.Time, hist bool) *sample {
	var found *sample
	for _, smp := range s.samples[:len(s.samples)-1] {
		if hist && !smp.anchor {
			continue
		}
		if found == nil || !smp.at.After(t) {
			found = smp
		}
		if smp.at.After(t) {
			break
		}
	}
	return found
}

// Series is the body of GET /console/api/series: one resource's figures at each sample, oldest
// first, with null where a figure is unknown. Times are unix milliseconds. Per-point rates are over
// the interval before the point; P50 and P99 the latency quantiles of that interval, in seconds.
type Series struct {
	Times []int64 `json:"times"`
	// A subscription's or trigger's:
	DeliveredPerSec []*float64 `json:"deliveredPerSec,omitempty"`
	ErrorsPerSec    []*float64 `json:"errorsPerSec,omitempty"`
	Lag             []*float64 `json:"lag,omitempty"`
	Limit           []*float64 `json:"limit,omitempty"`
	P50             []*float64 `json:"p50,omitempty"`
	P99             []*float64 `json:"p99,omitempty"`
	// A channel's or broker's:
	EventsPerSec []*float64 `json:"eventsPerSec,omitempty"`
	Bytes        []*float64 `json:"bytes,omitempty"`
}

// SubscriptionSeries returns the series of subscription key (NAMESPACE/NAME as the metrics label
// it: a trigger's name is trigger.NAME).
func (s *Sampler) SubscriptionSeries(key string) Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Series{Times: []int64{}}
	var prev *sample
	for _, smp := range s.samples {
		cur := smp.subs[key]
		out.Times = append(out.Times, smp.at.UnixMilli())
		var d, e, lag, limit, p50, p99 *float64
		if cur != nil {
			lag, limit, p50, p99 = num(cur.lag), num(cur.limit), num(cur.p50), num(cur.p99)
			if prev != nil {
				p := prev.subs[key]
				if p == nil {
					p = &subSample{}
				}
				dt := smp.at.Sub(prev.at).Seconds()
				d, e = num(rate(cur.delivered, p.delivered, dt)), num(rate(cur.failed, p.failed, dt))
			}
		}
		out.DeliveredPerSec = append(out.DeliveredPerSec, d)
		out.ErrorsPerSec = append(out.ErrorsPerSec, e)
		out.Lag = append(out.Lag, lag)
		out.Limit = append(out.Limit, limit)
		out.P50 = append(out.P50, p50)
		out.P99 = append(out.P99, p99)
		prev = smp
	}
	return out
}

// ChannelSeries returns the series of channel (or broker) key, NAMESPACE/NAME.
func (s *Sampler) ChannelSeries(key string) Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Series{Times: []int64{}}
	var prev *sample
	for _, smp := range s.samples {
		cur := smp.chans[key]
		out.Times = append(out.Times, smp.at.UnixMilli())
		var ev, b *float64
		if cur != nil {
			b = num(cur.bytes)
			if prev != nil {
				p := prev.chans[key]
				if p == nil {
					p = &chanSample{}
				}
				ev = num(rate(cur.events, p.events, smp.at.Sub(prev.at).Seconds()))
			}
		}
		out.EventsPerSec = append(out.EventsPerSec, ev)
		out.Bytes = append(out.Bytes, b)
		prev = smp
	}
	return out
}

// rate is a counter's increase per second from prev to cur over dt seconds; a counter that went
// down was reset (its resource removed and added again), so all of cur is the increase.
func rate(cur, prev, dt float64) float64 {
	if dt <= 0 {
		return math.NaN()
	}
	if cur < prev {
		prev = 0
	}
	return (cur - prev) / dt
}

// num is v for JSON: nil for NaN or an infinity.
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
