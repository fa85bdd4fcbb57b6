package app

import (
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
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

// A source's sink starts a PRODUCER span per event, to a channel or to a URL, and the event (and,
// for a URL, the request) carries its context.
func TestSourceSinkTracesEachEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	inmem := inmemory.New(inmemory.DefaultConfig(), slog.New(slog.DiscardHandler))
	defer inmem.Close()
	ref := channel.Ref{Namespace: "ns", Name: "events"}
	if err := inmem.Ensure(context.Background(), channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	var gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get("Traceparent")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	a := &App{tracer: tracing.New(tp), router: newRouter(inmem), client: srv.Client()}
	a.router.set(ref, inmem)

	toChannel := &event.Event{ID: "1", Source: "/src", SpecVersion: "1.0", Type: "t"}
	if err := (sink{a: a, target: resources.Target{Channel: &ref}}).Send(context.Background(), toChannel); err != nil {
		t.Fatal(err)
	}
	toURL := &event.Event{ID: "2", Source: "/src", SpecVersion: "1.0", Type: "t"}
	if err := (sink{a: a, target: resources.Target{URL: srv.URL + "/in?token=x"}}).Send(context.Background(), toURL); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	if s := spans[0]; s.Name() != "send ns/events" || s.SpanKind() != trace.SpanKindProducer ||
		tracing.EventContext(toChannel).SpanID() != s.SpanContext().SpanID() {
		t.Errorf("channel sink: span %q kind %v; event carries %s", s.Name(), s.SpanKind(), toChannel.Extension("traceparent"))
	}
	if s := spans[1]; s.Name() != "send "+srv.URL+"/in" || gotHeader == "" ||
		gotHeader != toURL.Extension("traceparent") {
		t.Errorf("URL sink: span %q, header %q, event %q", s.Name(), gotHeader, toURL.Extension("traceparent"))
	}
}
