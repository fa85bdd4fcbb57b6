package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	otlptest "github.com/eventgate/eventgate/internal/tracetest"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestResolveOffByDefaultOnWithAnEndpoint(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      Config
		env      func(string) string
		on       bool
		protocol string
		service  string
		err      string
	}{
		{name: "defaults", cfg: DefaultConfig(), env: env()},
		{name: "config endpoint", cfg: Config{Endpoint: "http://c:4317", Sampling: 1}, env: env(), on: true, protocol: "grpc", service: "eventgate"},
		{name: "env endpoint", cfg: DefaultConfig(), env: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "OTEL_SERVICE_NAME", "gw"), on: true, protocol: "http/protobuf", service: "gw"},
		{name: "traces endpoint", cfg: DefaultConfig(), env: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4317/"), on: true, protocol: "grpc", service: "eventgate"},
		{name: "exporter otlp", cfg: DefaultConfig(), env: env("OTEL_TRACES_EXPORTER", "otlp"), on: true, protocol: "grpc", service: "eventgate"},
		{name: "config wins", cfg: Config{Endpoint: "http://c:4318", Protocol: "http/protobuf", ServiceName: "mine", Sampling: 1},
			env: env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_SERVICE_NAME", "theirs"), on: true, protocol: "http/protobuf", service: "mine"},
		{name: "exporter none", cfg: Config{Endpoint: "http://c:4317", Sampling: 1}, env: env("OTEL_TRACES_EXPORTER", "none")},
		{name: "sdk disabled", cfg: Config{Endpoint: "http://c:4317", Sampling: 1}, env: env("OTEL_SDK_DISABLED", "true")},
		{name: "other exporter", cfg: DefaultConfig(), env: env("OTEL_TRACES_EXPORTER", "zipkin"), err: "OTEL_TRACES_EXPORTER=zipkin"},
		{name: "json protocol", cfg: DefaultConfig(), env: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318",
			"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), err: "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.cfg.resolve(tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.on != tt.on || s.protocol != tt.protocol || s.serviceName != tt.service {
				t.Errorf("on %v protocol %q service %q; want %v %q %q", s.on, s.protocol, s.serviceName, tt.on, tt.protocol, tt.service)
			}
		})
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := Config{Endpoint: "collector:4317", Protocol: "thrift", Sampling: 1.5}.Validate()
	for _, key := range []string{"endpoint", "protocol", "sampling"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Validate: %v; want a problem naming %s", err, key)
		}
	}
}

func TestStartOffIsNil(t *testing.T) {
	tr, err := Start(context.Background(), DefaultConfig(), env(), "")
	if tr != nil || err != nil {
		t.Fatalf("Start with nothing configured: %v, %v; want nil, nil", tr, err)
	}
	// A nil Tracer is off: its methods do nothing.
	e := &event.Event{ID: "1"}
	ctx, span := tr.StartSend(context.Background(), channel.Ref{Namespace: "ns", Name: "c"}, "", e)
	span.End()
	if e.Extensions != nil || trace.SpanContextFromContext(ctx).IsValid() {
		t.Errorf("a nil Tracer changed the event (%v) or started a span", e.Extensions)
	}
	h := http.Header{}
	tr.Inject(ctx, h)
	if len(h) != 0 {
		t.Errorf("a nil Tracer injected %v", h)
	}
}

func newRecorded(t *testing.T, sampler sdktrace.Sampler) (*Tracer, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return New(tp), rec
}

const (
	parentTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	otherTP  = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

// StartSend's parent: the request's context first, else the event's own extension (then linked
// when it is not the parent), else a new trace; the event then carries the span's context.
func TestStartSendParentsAndLinks(t *testing.T) {
	tr, rec := newRecorded(t, sdktrace.AlwaysSample())
	ref := channel.Ref{Namespace: "ns", Name: "orders"}
	reqCtx := tr.Extract(context.Background(), http.Header{"Traceparent": {parentTP}})

	fromRequest := &event.Event{ID: "a", Source: "/s", SpecVersion: "1.0", Type: "t",
		Extensions: map[string]string{ExtTraceParent: otherTP, ExtTraceState: "old=1"}}
	_, s1 := tr.StartSend(reqCtx, ref, "", fromRequest)
	s1.End()
	fromEvent := &event.Event{ID: "b", Source: "/s", SpecVersion: "1.0", Type: "t",
		Extensions: map[string]string{ExtTraceParent: otherTP}}
	_, s2 := tr.StartSend(context.Background(), ref, RoleSink, fromEvent)
	s2.End()
	fresh := &event.Event{ID: "c", Source: "/s", SpecVersion: "1.0", Type: "t"}
	_, s3 := tr.StartSend(context.Background(), ref, "", fresh)
	s3.End()

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	a, b, c := spans[0], spans[1], spans[2]
	if a.Parent().SpanID().String() != "00f067aa0ba902b7" || len(a.Links()) != 1 ||
		a.Links()[0].SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("request parent: parent %s links %v; want the header's span, a link to the event's", a.Parent().SpanID(), a.Links())
	}
	if b.Parent().SpanID().String() != "b7ad6b7169203331" || len(b.Links()) != 0 {
		t.Errorf("event parent: parent %s links %v; want the extension's span, no link", b.Parent().SpanID(), b.Links())
	}
	if c.Parent().IsValid() {
		t.Errorf("no context: parent %s; want a new trace", c.Parent().SpanID())
	}
	for _, s := range spans {
		if s.SpanKind() != trace.SpanKindProducer || s.Name() != "send ns/orders" {
			t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
		}
	}
	if got := fromRequest.Extension(ExtTraceParent); got != "00-"+a.SpanContext().TraceID().String()+"-"+a.SpanContext().SpanID().String()+"-01" {
		t.Errorf("event's traceparent %q is not its send span", got)
	}
	if _, ok := fromRequest.Extensions[ExtTraceState]; ok {
		t.Error("a stale tracestate was kept")
	}
	attrs := map[string]string{}
	for _, kv := range b.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{"messaging.system": "eventgate", "messaging.destination.name": "ns/orders",
		"messaging.operation.type": "send", "cloudevents.event_id": "b", "cloudevents.event_type": "t",
		"cloudevents.event_source": "/s", "eventgate.destination.role": "sink"} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
}

// A trace not sampled still carries its context onward (flag 00), with no attributes built.
func TestUnsampledStillPropagates(t *testing.T) {
	tr, rec := newRecorded(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	e := &event.Event{ID: "a", Source: "/s", SpecVersion: "1.0", Type: "t"}
	_, s := tr.StartSend(context.Background(), channel.Ref{Namespace: "ns", Name: "c"}, "", e)
	s.End()
	if len(rec.Ended()) != 0 {
		t.Error("an unsampled span was recorded")
	}
	tp := e.Extension(ExtTraceParent)
	if !strings.HasPrefix(tp, "00-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("traceparent %q, want one with the unsampled flag", tp)
	}
}

func TestEventContextRejectsMalformed(t *testing.T) {
	for _, v := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		e := &event.Event{Extensions: map[string]string{ExtTraceParent: v}}
		if EventContext(e).IsValid() {
			t.Errorf("traceparent %q read as valid", v)
		}
	}
	if !EventContext(&event.Event{Extensions: map[string]string{ExtTraceParent: parentTP}}).IsValid() {
		t.Error("a valid traceparent was not read")
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("https://user:pw@host:8443/p?token=x#f"); got != "https://host:8443/p" {
		t.Errorf("redactURL = %q", got)
	}
}

// Start with an endpoint exports through the real OTLP exporter, over gRPC and over HTTP, to an
// in-process collector, and Shutdown flushes.
func TestStartExportsOverOTLP(t *testing.T) {
	recv := otlptest.Start(t)
	for _, tt := range []struct{ protocol, endpoint string }{
		{ProtocolGRPC, recv.GRPCEndpoint}, {ProtocolHTTP, recv.HTTPEndpoint},
	} {
		t.Run(tt.protocol, func(t *testing.T) {
			before := recv.Count()
			tr, err := Start(context.Background(), Config{Endpoint: tt.endpoint, Protocol: tt.protocol, Sampling: 1,
				ServiceName: "svc-" + tt.protocol}, env(), "v1")
			if err != nil || tr == nil {
				t.Fatalf("Start: %v, %v", tr, err)
			}
			_, span := tr.StartProcess(context.Background(), Process{Channel: channel.Ref{Namespace: "ns", Name: "c"},
				Group: "ns/s", Partition: 2, Offset: 41, Event: &event.Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t"}})
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			spans := recv.WaitFor(t, 10*time.Second, "the span", func(s []otlptest.Span) bool { return len(s) > before })
			s := spans[len(spans)-1]
			if s.Kind != "consumer" || s.Name != "process ns/c" || s.Service != "svc-"+tt.protocol ||
				s.Attrs["messaging.destination.partition.id"] != "2" || s.Attrs["eventgate.channel.offset"] != "41" ||
				s.Attrs["messaging.consumer.group.name"] != "ns/s" {
				t.Errorf("exported %+v", s)
			}
		})
	}
}
