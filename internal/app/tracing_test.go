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
// for a URL, the request's ce-traceparent) carries its context; a POST is a CLIENT span under it,
// whose context is the request's traceparent header.
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
	var gotHeader, gotCE string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader, gotCE = r.Header.Get("Traceparent"), r.Header.Get("Ce-Traceparent")
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
	// Ended in order: the channel's PRODUCER span, the URL's CLIENT span, then its PRODUCER span.
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	if s := spans[0]; s.Name() != "send ns/events" || s.SpanKind() != trace.SpanKindProducer ||
		tracing.EventContext(toChannel).SpanID() != s.SpanContext().SpanID() {
		t.Errorf("channel sink: span %q kind %v; event carries %s", s.Name(), s.SpanKind(), toChannel.Extension("traceparent"))
	}
	post, s := spans[1], spans[2]
	if s.Name() != "send "+srv.URL+"/in" || s.SpanKind() != trace.SpanKindProducer ||
		gotCE == "" || gotCE != toURL.Extension("traceparent") || tracing.EventContext(toURL).SpanID() != s.SpanContext().SpanID() {
		t.Errorf("URL sink: span %q kind %v, ce-traceparent %q, event %q", s.Name(), s.SpanKind(), gotCE, toURL.Extension("traceparent"))
	}
	if post.SpanKind() != trace.SpanKindClient || post.Parent().SpanID() != s.SpanContext().SpanID() ||
		!strings.Contains(gotHeader, post.SpanContext().SpanID().String()) || !hasIntAttr(post, "http.response.status_code", 202) {
		t.Errorf("URL sink's POST: kind %v, parent %v, traceparent header %q, attributes %v",
			post.SpanKind(), post.Parent().SpanID(), gotHeader, post.Attributes())
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
	var gotHeader, gotCE string // of the request to /svc
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/svc" {
			gotHeader, gotCE = r.Header.Get("Traceparent"), r.Header.Get("Ce-Traceparent")
		}
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

	// Ended in order: the channel's PRODUCER span, then for each URL its CLIENT span and its PRODUCER span.
	spans := rec.Ended()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 5", len(spans))
	}
	for _, i := range []int{0, 2, 4} {
		if s := spans[i]; s.SpanKind() != trace.SpanKindProducer || !hasAttr(s, "eventgate.destination.role", tracing.RoleRedrive) {
			t.Errorf("span %d %q: kind %v, attributes %v", i, s.Name(), s.SpanKind(), s.Attributes())
		}
	}
	for _, i := range []int{1, 3} {
		if s, send := spans[i], spans[i+1]; s.SpanKind() != trace.SpanKindClient || s.Name() != "POST" ||
			s.Parent().SpanID() != send.SpanContext().SpanID() {
			t.Errorf("span %d %q: kind %v, parent %v, want a CLIENT POST under %q", i, s.Name(), s.SpanKind(), s.Parent().SpanID(), send.Name())
		}
	}
	if s := spans[0]; s.Name() != "send ns/orders" || tracing.EventContext(toChannel).SpanID() != s.SpanContext().SpanID() {
		t.Errorf("to a channel: span %q; event carries %s", s.Name(), toChannel.Extension("traceparent"))
	}
	if s, post := spans[2], spans[1]; s.Name() != "send "+srv.URL+"/svc" || s.Status().Code != codes.Unset ||
		!strings.Contains(gotHeader, post.SpanContext().SpanID().String()) ||
		!strings.Contains(gotCE, s.SpanContext().SpanID().String()) {
		t.Errorf("to a URL: span %q status %v; traceparent %q (want the POST's), ce-traceparent %q (want the send's)",
			s.Name(), s.Status(), gotHeader, gotCE)
	}
	if post := spans[3]; post.Status().Code != codes.Error || !hasIntAttr(post, "http.response.status_code", 503) {
		t.Errorf("the POST answered 503: status %v, attributes %v", post.Status(), post.Attributes())
	}
	if s := spans[4]; s.Status().Code != codes.Error {
		t.Errorf("to a URL answering 503: span status %v, want an error", s.Status())
	}
}

func hasIntAttr(s sdktrace.ReadOnlySpan, key string, value int64) bool {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.AsInt64() == value {
			return true
		}
	}
	return false
}

func hasAttr(s sdktrace.ReadOnlySpan, key, value string) bool {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.AsString() == value {
			return true
		}
	}
	return false
}
