package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventgate/eventgate/internal/tracetest"
)

// tracingBroker is the real broker EVENTGATE_TEST_KAFKA names, else an in-process kfake cluster
// (closed at cleanup) that the gateway process reaches over loopback.
func tracingBroker(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("EVENTGATE_TEST_KAFKA"); b != "" {
		return b
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

// otelEnv turns tracing on through the standard OpenTelemetry environment, exporting to r over
// gRPC within 100ms of each span's end.
func otelEnv(r *tracetest.Receiver) []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.GRPCEndpoint, "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_SERVICE_NAME=eventgate-e2e"}
}

// TestTracingIngressKafkaSubscriber follows two events from a POST with a traceparent through a
// Kafka channel to their subscribers, and asserts every span the gateway exported to an in-process
// OTLP collector: names, kinds, parents, links and attributes, and the traceparent the subscriber
// got. Subscription "ok" answers 503 and then 202 (a retry); "dl" answers 400 (not retried) and its
// event goes to a dead-letter URL.
func TestTracingIngressKafkaSubscriber(t *testing.T) {
	recv := tracetest.Start(t)
	broker := tracingBroker(t)
	sub := newSubscriber(t)
	sub.on("/ok", func(w http.ResponseWriter, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	sub.on("/dl", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusBadRequest) })
	// Names of their own: on a real broker consumer groups outlive a run.
	ch, okName, dlName := uniqueName("traced"), uniqueName("ok"), uniqueName("dl")
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", kafkaManifests(ch, okName, sub.url+"/ok", "  delivery: {retry: 2, backoffDelay: PT0.01S}\n")+
		fmt.Sprintf(`---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: %s, namespace: e2e, annotations: {eventgate.dev/initial-offset: earliest}}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: %s}
  subscriber: {uri: "%s/dl"}
  delivery: {retry: 2, deadLetterSink: {uri: "%s/dead"}}
`, dlName, ch, sub.url, sub.url))
	g := startGatewayEnv(t, otelEnv(recv), "--set", "kafka.brokers="+broker, "-f", dir)

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		caller  = "00f067aa0ba902b7" // the sender's span
	)
	h := binaryEvent("traced-1")
	h["Traceparent"] = "00-" + traceID + "-" + caller + "-01"
	if resp, body := post(t, g.ingress+"/e2e/"+ch, h, "hello"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	okGot := sub.waitFor(t, "/ok", 2)
	sub.waitFor(t, "/dead", 1)

	// 1 send + 2 process + 3 attempts to subscribers + 1 dead-letter send + 1 attempt to its URL.
	spans := recv.WaitFor(t, 30*time.Second, "8 spans of the trace", func(s []tracetest.Span) bool {
		return len(inTrace(s, traceID)) >= 8
	})
	spans = inTrace(spans, traceID)
	if len(spans) != 8 {
		t.Errorf("%d spans in the trace, want 8:\n%s", len(spans), tracetest.Describe(spans))
	}
	byName := func(kind, name string) []tracetest.Span {
		var out []tracetest.Span
		for _, s := range spans {
			if s.Kind == kind && s.Name == name {
				out = append(out, s)
			}
		}
		return out
	}
	one := func(kind, name string, where func(tracetest.Span) bool) tracetest.Span {
		t.Helper()
		var found []tracetest.Span
		for _, s := range byName(kind, name) {
			if where == nil || where(s) {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d %s spans %q, want 1:\n%s", len(found), kind, name, tracetest.Describe(spans))
		}
		return found[0]
	}
	wantAttrs := func(s tracetest.Span, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got, ok := s.Attrs[k]; !ok || (v != "*" && got != v) {
				t.Errorf("%s %q: attribute %s = %q (present %v), want %q", s.Kind, s.Name, k, got, ok, v)
			}
		}
	}
	dest := "e2e/" + ch

	send := one("producer", "send "+dest, func(s tracetest.Span) bool { return s.ParentSpanID == caller })
	wantAttrs(send, map[string]string{"messaging.system": "kafka", "messaging.destination.name": dest,
		"messaging.operation.type": "send", "cloudevents.event_id": "traced-1",
		"cloudevents.event_type": "dev.eventgate.test", "cloudevents.event_source": "/e2e"})
	if send.Service != "eventgate-e2e" {
		t.Errorf("service.name %q, want eventgate-e2e (OTEL_SERVICE_NAME)", send.Service)
	}

	process := map[string]tracetest.Span{}
	okGroup, dlGroup := "e2e/"+okName, "e2e/"+dlName
	for _, group := range []string{okGroup, dlGroup} {
		p := one("consumer", "process "+dest, func(s tracetest.Span) bool { return s.Attrs["messaging.consumer.group.name"] == group })
		if p.ParentSpanID != send.SpanID {
			t.Errorf("process span of %s: parent %s, want the send span %s", group, p.ParentSpanID, send.SpanID)
		}
		wantAttrs(p, map[string]string{"messaging.system": "kafka", "messaging.destination.name": dest,
			"messaging.operation.type": "process", "messaging.destination.partition.id": "*",
			"messaging.kafka.offset": "0", "cloudevents.event_id": "traced-1"})
		process[group] = p
	}

	okURL := sub.url + "/ok"
	first := one("client", "POST", func(s tracetest.Span) bool {
		return s.Attrs["url.full"] == okURL && s.Attrs["http.response.status_code"] == "503"
	})
	second := one("client", "POST", func(s tracetest.Span) bool {
		return s.Attrs["url.full"] == okURL && s.Attrs["http.response.status_code"] == "202"
	})
	for _, a := range []tracetest.Span{first, second} {
		if a.ParentSpanID != process[okGroup].SpanID {
			t.Errorf("attempt span: parent %s, want the process span %s", a.ParentSpanID, process[okGroup].SpanID)
		}
		wantAttrs(a, map[string]string{"http.request.method": "POST", "eventgate.destination.role": "subscriber",
			"server.address": "127.0.0.1", "server.port": "*"})
	}
	if _, ok := first.Attrs["http.request.resend_count"]; ok || !first.Error {
		t.Errorf("first attempt: resend_count %q, error %v; want none, an error status", first.Attrs["http.request.resend_count"], first.Error)
	}
	wantAttrs(second, map[string]string{"http.request.resend_count": "1"})
	if second.Error {
		t.Error("the delivered attempt has an error status")
	}

	// What the subscriber got: the attempt's context as traceparent, the send span's as the
	// CloudEvents extension.
	if got, want := okGot[1].header.Get("Traceparent"), "00-"+traceID+"-"+second.SpanID+"-01"; got != want {
		t.Errorf("subscriber's traceparent %q, want %q (the delivering attempt's span)", got, want)
	}
	if got, want := okGot[1].header.Get("Ce-Traceparent"), "00-"+traceID+"-"+send.SpanID+"-01"; got != want {
		t.Errorf("subscriber's ce-traceparent %q, want %q (the ingress send span)", got, want)
	}

	// The dead letter: a 400 attempt, then a send span under the dl process span linked to the
	// event's context, with its own attempt to the dead-letter URL.
	dlAttempt := one("client", "POST", func(s tracetest.Span) bool { return s.Attrs["url.full"] == sub.url+"/dl" })
	wantAttrs(dlAttempt, map[string]string{"http.response.status_code": "400", "error.type": "400"})
	dead := one("producer", "send "+sub.url+"/dead", nil)
	if dead.ParentSpanID != process[dlGroup].SpanID {
		t.Errorf("dead-letter span: parent %s, want the dl process span %s", dead.ParentSpanID, process[dlGroup].SpanID)
	}
	if len(dead.Links) != 1 || dead.Links[0].SpanID != send.SpanID {
		t.Errorf("dead-letter span links %+v, want one to the send span %s", dead.Links, send.SpanID)
	}
	wantAttrs(dead, map[string]string{"eventgate.destination.role": "dead-letter", "cloudevents.event_id": "traced-1"})
	deadAttempt := one("client", "POST", func(s tracetest.Span) bool { return s.Attrs["url.full"] == sub.url+"/dead" })
	if deadAttempt.ParentSpanID != dead.SpanID {
		t.Errorf("dead-letter attempt: parent %s, want the dead-letter span %s", deadAttempt.ParentSpanID, dead.SpanID)
	}
	deadGot := sub.at("/dead")[0]
	if got, want := deadGot.header.Get("Ce-Traceparent"), "00-"+traceID+"-"+dead.SpanID+"-01"; got != want {
		t.Errorf("dead letter's ce-traceparent %q, want %q", got, want)
	}

	// A delivery's log line leads to its trace.
	g.waitLog(`"trace_id":"`+traceID+`"`, 10*time.Second)
}

// inTrace keeps the spans of trace id.
func inTrace(spans []tracetest.Span, id string) []tracetest.Span {
	var out []tracetest.Span
	for _, s := range spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

// TestTracingOffAddsNothing: with an OTLP endpoint in the environment but OTEL_TRACES_EXPORTER=none,
// an event with a traceparent reaches the subscriber with no traceparent header and no extension
// added, and nothing is exported, even at shutdown (when buffered spans would be flushed).
func TestTracingOffAddsNothing(t *testing.T) {
	recv := tracetest.Start(t)
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: quiet, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: quiet}
  subscriber: {uri: "`+sub.url+`/s"}
`)
	g := startGatewayEnv(t, append(otelEnv(recv), "OTEL_TRACES_EXPORTER=none"), "-f", dir)
	h := binaryEvent("quiet-1")
	h["Traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if resp, body := post(t, g.ingress+"/e2e/quiet", h, "hello"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	got := sub.waitFor(t, "/s", 1)[0]
	if v := got.header.Get("Traceparent"); v != "" {
		t.Errorf("tracing off: the subscriber got traceparent %q", v)
	}
	if v := got.header.Get("Ce-Traceparent"); v != "" {
		t.Errorf("tracing off: the event gained a traceparent extension %q", v)
	}
	if err := g.stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := recv.Count(); n != 0 {
		t.Errorf("tracing off: %d spans exported", n)
	}
}
