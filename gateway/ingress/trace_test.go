package ingress

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/tracing"
	otlptest "github.com/eventgate/eventgate/internal/tracetest"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

// keepPublisher records what it is asked to store.
type keepPublisher struct{ got []*event.Event }

func (p *keepPublisher) Publish(_ context.Context, _ channel.Ref, evs []*event.Event) error {
	p.got = append(p.got, evs...)
	return nil
}

func postBinary(h http.Handler, header http.Header) int {
	req := httptest.NewRequest(http.MethodPost, "http://gw/default/orders", bytes.NewReader(benchData))
	req.Header = header
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// Off, the ingress stores the event as it came: no traceparent extension added.
func TestTracingOffAddsNoExtension(t *testing.T) {
	pub := &keepPublisher{}
	h := New(DefaultConfig(), Deps{})
	h.SetChannels(Table{{Namespace: "default", Name: "orders"}: pub})
	hdr := benchHeader(1)
	hdr.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if code := postBinary(h, hdr); code != http.StatusAccepted {
		t.Fatalf("answered %d", code)
	}
	if len(pub.got) != 1 || pub.got[0].Extensions != nil {
		t.Errorf("stored %d events, extensions %v; want the event untouched", len(pub.got), pub.got[0].Extensions)
	}
}

// On, each stored event carries its PRODUCER span's context, a child of the request's traceparent.
func TestTracingOnStoresTheSpanContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	pub := &keepPublisher{}
	h := New(DefaultConfig(), Deps{Tracer: tracing.New(tp)})
	h.SetChannels(Table{{Namespace: "default", Name: "orders"}: pub})
	hdr := benchHeader(1)
	hdr.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if code := postBinary(h, hdr); code != http.StatusAccepted {
		t.Fatalf("answered %d", code)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].SpanKind() != trace.SpanKindProducer || spans[0].Name() != "send default/orders" ||
		spans[0].Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("spans %v", spans)
	}
	if got := tracing.EventContext(pub.got[0]); got.SpanID() != spans[0].SpanContext().SpanID() {
		t.Errorf("the stored event carries span %s, want %s", got.SpanID(), spans[0].SpanContext().SpanID())
	}
}

// BenchmarkIngressTracing is BenchmarkIngressInMemory's handler case with tracing off (a nil
// Tracer), on (every request's event sampled, spans exported over OTLP/HTTP to an in-process
// collector that reads and discards them), each request carrying a sampled traceparent header, and
// on with tracing.sampling 0.1 for requests that carry no trace context (9 in 10 spans not recorded).
func BenchmarkIngressTracing(b *testing.B) {
	for _, c := range []struct {
		name     string
		on       bool
		sampling float64
	}{{"off", false, 0}, {"on", true, 1}, {"on-sampled-10pct", true, 0.1}} {
		on := c.on
		b.Run(c.name, func(b *testing.B) {
			var tr *tracing.Tracer
			var recv *otlptest.Receiver
			if on {
				recv = otlptest.StartDiscarding(b)
				var err error
				tr, err = tracing.Start(context.Background(), tracing.Config{Endpoint: recv.HTTPEndpoint,
					Protocol: tracing.ProtocolHTTP, Sampling: c.sampling}, func(string) string { return "" }, "bench")
				if err != nil {
					b.Fatal(err)
				}
			}
			log := slog.New(slog.DiscardHandler)
			backend := inmemory.New(inmemory.DefaultConfig(), log)
			ref := channel.Ref{Namespace: "default", Name: "bench"}
			if err := backend.Ensure(context.Background(), channel.Spec{Ref: ref}); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = backend.Close() })
			h := New(DefaultConfig(), Deps{Log: log, Metrics: metrics.New(metrics.Build{Version: "bench"}), Tracer: tr})
			h.SetChannels(Table{ref: backend})
			var hh http.Handler = tracedHeaders{h}
			if c.on && c.sampling != 1 {
				hh = h // no trace context: the gateway samples
			}
			runHandler(b, hh, http.StatusAccepted)
			if on {
				b.StopTimer()
				if err := tr.Shutdown(context.Background()); err != nil || recv.Exports() == 0 {
					b.Fatalf("no spans exported (%v)", err)
				}
			}
		})
	}
}

// tracedHeaders adds a traceparent header to each request before h serves it.
type tracedHeaders struct{ h http.Handler }

func (t tracedHeaders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	t.h.ServeHTTP(w, r)
}
