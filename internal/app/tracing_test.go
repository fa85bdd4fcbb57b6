package app

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config"
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

// A redrive to a dead letter's knativeerrordest (no --to) is a PRODUCER span with role redrive, to
// a channel and to a URL, and the event (and, for a URL, the request) carries its context. A
// destination that cannot be sent to is refused before any span.
func TestRedriveToErrorDestTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	inmem := inmemory.New(inmemory.DefaultConfig(), slog.New(slog.DiscardHandler))
	defer inmem.Close()
	ref := channel.Ref{Namespace: "ns", Name: "orders"}
	if err := inmem.Ensure(context.Background(), channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	var gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Get("Traceparent")
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	a := &App{tracer: tracing.New(tp), router: newRouter(inmem), client: srv.Client(), cfg: config.Default()}
	a.router.set(ref, inmem)

	toChannel := &event.Event{ID: "1", Source: "/src", SpecVersion: "1.0", Type: "t"}
	if err := a.sendRedrive(context.Background(), nil, "channel:ns/orders", toChannel); err != nil {
		t.Fatal(err)
	}
	toURL := &event.Event{ID: "2", Source: "/src", SpecVersion: "1.0", Type: "t"}
	if err := a.sendRedrive(context.Background(), nil, srv.URL+"/svc", toURL); err != nil {
		t.Fatal(err)
	}
	failing := &event.Event{ID: "3", Source: "/src", SpecVersion: "1.0", Type: "t"}
	if err := a.sendRedrive(context.Background(), nil, srv.URL+"/down", failing); err == nil ||
		!strings.Contains(err.Error(), "answered 503") {
		t.Errorf("redrive to a URL answering 503: err %v", err)
	}
	for _, dest := range []string{"", "ftp://host/x", "channel:not a ref"} {
		if err := a.sendRedrive(context.Background(), nil, dest, &event.Event{ID: "4"}); err == nil {
			t.Errorf("redrive to %q: no error", dest)
		}
	}

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	for i, s := range spans {
		if s.SpanKind() != trace.SpanKindProducer || !hasAttr(s, "eventgate.destination.role", tracing.RoleRedrive) {
			t.Errorf("span %d %q: kind %v, attributes %v", i, s.Name(), s.SpanKind(), s.Attributes())
		}
	}
	if s := spans[0]; s.Name() != "send ns/orders" || tracing.EventContext(toChannel).SpanID() != s.SpanContext().SpanID() {
		t.Errorf("to a channel: span %q; event carries %s", s.Name(), toChannel.Extension("traceparent"))
	}
	if s := spans[1]; s.Name() != "send "+srv.URL+"/svc" || gotHeader == "" || s.Status().Code != codes.Unset {
		t.Errorf("to a URL: span %q status %v, header %q", s.Name(), s.Status(), gotHeader)
	}
	if s := spans[2]; s.Status().Code != codes.Error {
		t.Errorf("to a URL answering 503: span status %v, want an error", s.Status())
	}
}

func hasAttr(s sdktrace.ReadOnlySpan, key, value string) bool {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.AsString() == value {
			return true
		}
	}
	return false
}
