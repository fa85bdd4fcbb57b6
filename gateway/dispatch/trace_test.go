package dispatch

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/tracing"
	otlptest "github.com/eventgate/eventgate/internal/tracetest"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// With tracing off the dispatcher adds no traceparent header: the event's own extension passes as
// it is.
func TestTracingOffSendsNoTraceparent(t *testing.T) {
	srv := newRecorder(t, status(http.StatusAccepted))
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}}, nil)
	c := h.p.claim(t, 0)
	ev := testEvent("e-1")
	ev.SetExtension(tracing.ExtTraceParent, testTraceparent)
	c.waitDone(t, c.push(t, ev))
	r := srv.requests()[0]
	if v := r.header.Get("Traceparent"); v != "" {
		t.Errorf("traceparent header %q with tracing off", v)
	}
	if v := r.header.Get("Ce-Traceparent"); v != testTraceparent {
		t.Errorf("ce-traceparent %q, want the event's own %q", v, testTraceparent)
	}
}

func recordingTracer(t *testing.T) (*tracing.Tracer, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tracing.New(tp), rec
}

// A subscriber that answers 503 then replies: the process span is a child of the event's context,
// each attempt a CLIENT child of it with the subscriber getting the attempt's traceparent, and the
// reply, published to a channel, a PRODUCER child linked to the context the reply came with; the
// reply event carries its span's context, and the record's event is left as it was.
func TestTracingAttemptsAndReply(t *testing.T) {
	tr, spans := recordingTracer(t)
	const replyTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	srv := newRecorder(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "r-1", "Ce-Source": "/sub",
			"Ce-Type": "reply", "Ce-Traceparent": replyTP} {
			w.Header().Set(k, v)
		}
		w.WriteHeader(http.StatusOK)
	})
	replies := channel.Ref{Namespace: "ns", Name: "replies"}
	wait := &noWait{}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Reply: &Destination{Channel: &replies},
		Policy: Policy{Retry: 2}}, func(d *Dispatcher) { d.tracer, d.wait = tr, wait.wait })
	c := h.p.claim(t, 0)
	ev := testEvent("e-1")
	ev.SetExtension(tracing.ExtTraceParent, testTraceparent)
	c.waitDone(t, c.push(t, ev))

	if got := ev.Extension(tracing.ExtTraceParent); got != testTraceparent {
		t.Errorf("the record's event was changed: traceparent %q", got)
	}
	ended := spans.Ended()
	byKind := map[trace.SpanKind][]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		byKind[s.SpanKind()] = append(byKind[s.SpanKind()], s)
	}
	if len(byKind[trace.SpanKindConsumer]) != 1 || len(byKind[trace.SpanKindClient]) != 2 || len(byKind[trace.SpanKindProducer]) != 1 {
		t.Fatalf("spans by kind: %d consumer, %d client, %d producer; want 1, 2, 1",
			len(byKind[trace.SpanKindConsumer]), len(byKind[trace.SpanKindClient]), len(byKind[trace.SpanKindProducer]))
	}
	proc := byKind[trace.SpanKindConsumer][0]
	if proc.Parent().SpanID().String() != "00f067aa0ba902b7" || proc.Name() != "process ns/orders" {
		t.Errorf("process span %q parent %s", proc.Name(), proc.Parent().SpanID())
	}
	reqs := srv.requests()
	for i, a := range byKind[trace.SpanKindClient] {
		if a.Parent().SpanID() != proc.SpanContext().SpanID() {
			t.Errorf("attempt %d: parent %s, want the process span", i, a.Parent().SpanID())
		}
		want := "00-" + a.SpanContext().TraceID().String() + "-" + a.SpanContext().SpanID().String() + "-01"
		if got := reqs[i].header.Get("Traceparent"); got != want {
			t.Errorf("attempt %d: subscriber got traceparent %q, want %q", i, got, want)
		}
	}
	reply := byKind[trace.SpanKindProducer][0]
	if reply.Parent().SpanID() != proc.SpanContext().SpanID() || reply.Name() != "send ns/replies" ||
		len(reply.Links()) != 1 || reply.Links()[0].SpanContext.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("reply span %q: parent %s links %v", reply.Name(), reply.Parent().SpanID(), reply.Links())
	}
	pub := h.p.publishedTo(replies)
	if len(pub) != 1 {
		t.Fatalf("%d replies published", len(pub))
	}
	if got := tracing.EventContext(pub[0]); got.SpanID() != reply.SpanContext().SpanID() {
		t.Errorf("the reply carries span %s, want its send span %s", got.SpanID(), reply.SpanContext().SpanID())
	}
}

// BenchmarkDeliverTracing is BenchmarkDeliver with tracing off (a nil Tracer: what the gateway runs
// without tracing) and on (every event sampled, spans exported over OTLP/gRPC to an in-process
// collector that reads and discards them undecoded, as a collector in another process costs the
// exporter).
func BenchmarkDeliverTracing(b *testing.B) {
	srv := benchServer(b)
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var tr *tracing.Tracer
			var recv *otlptest.Receiver
			if on {
				recv = otlptest.StartDiscarding(b)
				var err error
				tr, err = tracing.Start(context.Background(), tracing.Config{Endpoint: recv.HTTPEndpoint, Protocol: tracing.ProtocolHTTP, Sampling: 1},
					func(string) string { return "" }, "bench")
				if err != nil {
					b.Fatal(err)
				}
			}
			d := New(Subscription{Namespace: "ns", Name: "bench", Channel: testChannel,
				Subscriber: Destination{URL: srv.URL}, MaxInFlight: DefaultConfig().MaxInFlight},
				Deps{Channels: newFakeProvisioner(1), Client: benchClient(b), Metrics: metrics.New(metrics.Build{}),
					Log: slog.New(slog.DiscardHandler), Tracer: tr})
			ev := testEvent("bench-1")
			ev.SetExtension(tracing.ExtTraceParent, testTraceparent)
			ev.Data = bytes.Repeat([]byte("x"), 512)
			rec := channel.Record{Offset: 1, Event: ev}
			ctx := context.Background()
			b.SetBytes(int64(len(ev.Data)))
			b.ReportAllocs()
			for b.Loop() {
				if out := d.process(ctx, rec, d.log); out.Result != Delivered {
					b.Fatalf("result %v", out.Result)
				}
			}
			if on {
				b.StopTimer()
				if err := tr.Shutdown(context.Background()); err != nil || recv.Exports() == 0 {
					b.Fatalf("no spans exported (%v)", err)
				}
			}
		})
	}
}
