// Package metrics defines every Prometheus metric eventgate exports, on a registry of its own.
//
// Labels are bounded: they carry names from resources (namespace, channel, subscription, source),
// status codes and classes — never event ids, URLs or payload values.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eventgate/eventgate/gateway/channel"
)

// The names of the metrics that eventgate's own readers (the console's sampler) look up, each used
// here where the metric is defined.
const (
	NameIngressEvents     = "eventgate_ingress_events_total"
	NameDispatchAttempts  = "eventgate_dispatch_attempts_total"
	NameDispatchDuration  = "eventgate_dispatch_duration_seconds"
	NameDelivered         = "eventgate_events_delivered_total"
	NameDeadLettered      = "eventgate_events_dead_lettered_total"
	NameInFlight          = "eventgate_dispatch_in_flight"
	NameConcurrencyLimit  = "eventgate_dispatch_concurrency_limit"
	NameConsumerLag       = "eventgate_consumer_lag"
	NameChannelBytes      = "eventgate_channel_bytes"
	NameChannelLimitBytes = "eventgate_channel_limit_bytes"
)

// Build identifies the running binary; it becomes eventgate_build_info.
type Build struct {
	Version   string
	Commit    string
	GoVersion string
}

// Metrics holds eventgate's collectors. Create one with New; it is safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	IngressRequests *prometheus.CounterVec   // namespace, channel, code
	IngressDuration *prometheus.HistogramVec // namespace, channel
	IngressEvents   *prometheus.CounterVec   // namespace, channel: events accepted (a batch counts each)

	DispatchAttempts *prometheus.CounterVec   // namespace, subscription, code_class
	DispatchDuration *prometheus.HistogramVec // namespace, subscription: one attempt, request to answer
	Delivered        *prometheus.CounterVec   // namespace, subscription
	DeadLettered     *prometheus.CounterVec   // namespace, subscription
	Dropped          *prometheus.CounterVec   // namespace, subscription, reason
	Replies          *prometheus.CounterVec   // namespace, subscription, outcome
	InFlight         *prometheus.GaugeVec     // namespace, subscription
	ConcurrencyLimit *prometheus.GaugeVec     // namespace, subscription

	SourceEvents *prometheus.CounterVec // namespace, source, kind, outcome

	TriggerEvents *prometheus.CounterVec // namespace, trigger, outcome (filtered, delivered, dead_lettered)
}

// New returns eventgate's metrics registered on a fresh registry, with the Go and process collectors
// and eventgate_build_info set from b.
func New(b Build) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Registry: reg,
		IngressRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_ingress_requests_total",
			Help: "HTTP requests to the ingress, by channel and status code.",
		}, []string{"namespace", "channel", "code"}),
		IngressDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventgate_ingress_request_duration_seconds",
			Help:    "Time from request to answer at the ingress, including the durable store.",
			Buckets: latency,
		}, []string{"namespace", "channel"}),
		IngressEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameIngressEvents,
			Help: "Events accepted (stored) by the ingress; each event of a batch counts.",
		}, []string{"namespace", "channel"}),
		DispatchAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameDispatchAttempts,
			Help: "Delivery attempts to subscribers, by answer class (2xx, 4xx, 5xx, timeout, error).",
		}, []string{"namespace", "subscription", "code_class"}),
		DispatchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameDispatchDuration,
			Help:    "Duration of one delivery attempt to a subscriber.",
			Buckets: latency,
		}, []string{"namespace", "subscription"}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameDelivered,
			Help: "Events a subscriber accepted.",
		}, []string{"namespace", "subscription"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameDeadLettered,
			Help: "Events sent to the subscription's dead-letter sink.",
		}, []string{"namespace", "subscription"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_events_dropped_total",
			Help: "Events given up after every retry with no dead-letter sink, or replies with nowhere to go.",
		}, []string{"namespace", "subscription", "reason"}),
		Replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_replies_total",
			Help: "Reply events returned by subscribers, by outcome (sent, dropped, failed).",
		}, []string{"namespace", "subscription", "outcome"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameInFlight,
			Help: "Deliveries in progress per subscription (including retries and their backoff).",
		}, []string{"namespace", "subscription"}),
		ConcurrencyLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameConcurrencyLimit,
			Help: "Current bound on in-flight deliveries per subscription.",
		}, []string{"namespace", "subscription"}),
		SourceEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_source_events_total",
			Help: "Events produced by source adapters, by outcome (accepted, rejected, failed, skipped).",
		}, []string{"namespace", "source", "kind", "outcome"}),
		TriggerEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_trigger_events_total",
			Help: "Events of a broker seen by a trigger, by outcome (filtered: did not pass its filter, acknowledged with no request; delivered; dead_lettered).",
		}, []string{"namespace", "trigger", "outcome"}),
	}
	reg.MustRegister(m.TriggerEvents)
	reg.MustRegister(m.IngressRequests, m.IngressDuration, m.IngressEvents, m.DispatchAttempts,
		m.DispatchDuration, m.Delivered, m.DeadLettered, m.Dropped, m.Replies, m.InFlight,
		m.ConcurrencyLimit, m.SourceEvents)

	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eventgate_build_info",
		Help: "Always 1; labels say which build is running.",
	}, []string{"version", "commit", "goversion"})
	info.WithLabelValues(b.Version, b.Commit, b.GoVersion).Set(1)
	reg.MustRegister(info)
	return m
}

// CodeClass maps an HTTP status to the code_class label: "2xx".."5xx", or "error" for 0 (no answer).
func CodeClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return codeClasses[status/100-1] // a constant: building the string allocated on every delivery
}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// LagSource is what the lag collector reads at scrape time: a provisioner's lag report, and how it
// names a channel's topic.
type LagSource interface {
	channel.LagReporter
	TopicName(ch channel.Ref) string
}

// RegisterLag adds eventgate_consumer_lag, computed from src at each scrape (bounded by timeout).
func (m *Metrics) RegisterLag(src LagSource, timeout time.Duration) {
	m.Registry.MustRegister(&lagCollector{src: src, timeout: timeout})
}

var lagDesc = prometheus.NewDesc(NameConsumerLag,
	"Events in a partition not yet committed by a subscription's consumer group.",
	[]string{"namespace", "subscription", "topic", "partition"}, nil)

type lagCollector struct {
	src     LagSource
	timeout time.Duration
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, s := range c.src.Lag(ctx) {
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(s.Lag),
			s.Group.Channel.Namespace, s.Group.Name, c.src.TopicName(s.Group.Channel),
			strconv.Itoa(int(s.Partition)))
	}
}

// ChannelUsage is the memory an in-memory channel holds and its bound.
type ChannelUsage struct {
	Channel      channel.Ref
	Bytes, Limit int64
}

var (
	channelBytesDesc = prometheus.NewDesc(NameChannelBytes,
		"Bytes of events held by an in-memory channel.", []string{"namespace", "channel"}, nil)
	channelLimitDesc = prometheus.NewDesc(NameChannelLimitBytes,
		"Bytes an in-memory channel may hold before ingress answers 429.", []string{"namespace", "channel"}, nil)
)

// RegisterChannelUsage adds eventgate_channel_bytes and eventgate_channel_limit_bytes, read from
// usage at each scrape.
func (m *Metrics) RegisterChannelUsage(usage func() []ChannelUsage) {
	m.Registry.MustRegister(usageCollector(usage))
}

type usageCollector func() []ChannelUsage

func (u usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- channelBytesDesc
	ch <- channelLimitDesc
}

func (u usageCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range u() {
		ch <- prometheus.MustNewConstMetric(channelBytesDesc, prometheus.GaugeValue, float64(c.Bytes), c.Channel.Namespace, c.Channel.Name)
		ch <- prometheus.MustNewConstMetric(channelLimitDesc, prometheus.GaugeValue, float64(c.Limit), c.Channel.Namespace, c.Channel.Name)
	}
}
