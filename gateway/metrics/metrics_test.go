package metrics

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventgate/eventgate/gateway/channel"
)

func TestCodeClass(t *testing.T) {
	for status, want := range map[int]string{0: "error", 99: "error", 200: "2xx", 202: "2xx", 404: "4xx", 503: "5xx", 600: "error"} {
		if got := CodeClass(status); got != want {
			t.Errorf("CodeClass(%d) = %q, want %q", status, got, want)
		}
	}
}

type fakeLag []channel.LagSample

func (f fakeLag) Lag(context.Context) []channel.LagSample { return f }
func (f fakeLag) TopicName(ref channel.Ref) string {
	return "eventgate." + ref.Namespace + "." + ref.Name
}

func TestScrapeTimeCollectors(t *testing.T) {
	m := New(Build{Version: "v1", Commit: "abc", GoVersion: "go1.26"})
	ref := channel.Ref{Namespace: "default", Name: "demo"}
	m.RegisterLag(fakeLag{{Group: channel.Group{Channel: ref, Name: "sub"}, Partition: 2, Lag: 7}}, 0)
	m.RegisterChannelUsage(func() []ChannelUsage { return []ChannelUsage{{Channel: ref, Bytes: 10, Limit: 100}} })
	want := `
# HELP eventgate_consumer_lag Events in a partition not yet committed by a subscription's consumer group.
# TYPE eventgate_consumer_lag gauge
eventgate_consumer_lag{namespace="default",partition="2",subscription="sub",topic="eventgate.default.demo"} 7
# HELP eventgate_channel_bytes Bytes of events held by an in-memory channel.
# TYPE eventgate_channel_bytes gauge
eventgate_channel_bytes{channel="demo",namespace="default"} 10
# HELP eventgate_build_info Always 1; labels say which build is running.
# TYPE eventgate_build_info gauge
eventgate_build_info{commit="abc",goversion="go1.26",version="v1"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"eventgate_consumer_lag", "eventgate_channel_bytes", "eventgate_build_info"); err != nil {
		t.Fatal(err)
	}
}

func TestDesignMetricNamesAreRegistered(t *testing.T) {
	m := New(Build{})
	// Touch each vector once so it is gathered.
	m.IngressRequests.WithLabelValues("n", "c", "202").Inc()
	m.IngressDuration.WithLabelValues("n", "c").Observe(0.1)
	m.DispatchAttempts.WithLabelValues("n", "s", "2xx").Inc()
	m.DispatchDuration.WithLabelValues("n", "s").Observe(0.1)
	m.Delivered.WithLabelValues("n", "s").Inc()
	m.DeadLettered.WithLabelValues("n", "s").Inc()
	m.InFlight.WithLabelValues("n", "s").Set(1)
	m.ConcurrencyLimit.WithLabelValues("n", "s").Set(1)
	m.SourceEvents.WithLabelValues("n", "src", "GitHubSource", "accepted").Inc()
	m.RegisterLag(fakeLag{{Group: channel.Group{Channel: channel.Ref{Namespace: "n", Name: "c"}, Name: "s"}}}, 0)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
	}
	for _, name := range []string{
		"eventgate_ingress_requests_total", "eventgate_ingress_request_duration_seconds",
		"eventgate_dispatch_attempts_total", "eventgate_dispatch_duration_seconds",
		"eventgate_events_delivered_total", "eventgate_events_dead_lettered_total", "eventgate_dispatch_in_flight",
		"eventgate_dispatch_concurrency_limit", "eventgate_consumer_lag", "eventgate_source_events_total",
		"eventgate_build_info", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !have[name] {
			t.Errorf("%s is not exported", name)
		}
	}
}
