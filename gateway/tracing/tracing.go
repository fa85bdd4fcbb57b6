// Package tracing follows events through eventgate with OpenTelemetry traces, exported over OTLP.
//
// The W3C trace context travels with each event as its CloudEvents distributed-tracing extension
// attributes, traceparent and tracestate: every channel backend already stores an event's
// extensions (Kafka and NATS headers, Pub/Sub attributes, the event itself in memory), so the
// context crosses every backend with no code of its own there. Where an event enters (the ingress,
// a source's sink) a PRODUCER span starts, a child of the request's traceparent header when there is
// one, else of the event's own traceparent extension, else a new trace; the event then carries that
// span's context. The dispatcher starts a CONSUMER span per event it processes, a child of that
// context, and a CLIENT span per delivery attempt, whose context reaches the subscriber as the
// traceparent HTTP header, so the subscriber's own spans join the trace. A dead letter and a reply
// are new events: each gets a PRODUCER span under the CONSUMER span, linked to the original event's
// context.
//
// Span names and attributes follow OpenTelemetry's semantic conventions for messaging
// (messaging.system, messaging.destination.name, messaging.operation.type, …), CloudEvents
// (cloudevents.event_id, cloudevents.event_type, …) and HTTP clients (http.request.method,
// http.response.status_code, http.request.resend_count, url.full).
//
// A nil *Tracer is tracing off. Components hold a *Tracer and test it for nil before doing any
// tracing work, so that off costs one comparison and no allocation; the methods are nil-safe
// anyway (they do nothing). A *Tracer is safe for concurrent use.
package tracing

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// The CloudEvents distributed-tracing extension attributes that carry the W3C trace context.
const (
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

// SystemEventgate is messaging.system for a channel that is eventgate's own (in memory), and the
// default when the Tracer knows no better (see SetSystems).
const SystemEventgate = "eventgate"

// Attribute keys, from OpenTelemetry's semantic conventions (messaging, CloudEvents, HTTP, error),
// and eventgate's own where the conventions have none.
const (
	keySystem        = "messaging.system"
	keyDestination   = "messaging.destination.name"
	keyOperationType = "messaging.operation.type"
	keyOperationName = "messaging.operation.name"
	keyPartition     = "messaging.destination.partition.id"
	keyGroup         = "messaging.consumer.group.name"
	keyKafkaOffset   = "messaging.kafka.offset"
	keyOffset        = "eventgate.channel.offset" // the record's offset (stream sequence) on other backends
	keyRole          = "eventgate.destination.role"
	keyEventID       = "cloudevents.event_id"
	keyEventType     = "cloudevents.event_type"
	keyEventSource   = "cloudevents.event_source"
	keyEventSpec     = "cloudevents.event_spec_version"
	keyEventSubject  = "cloudevents.event_subject"
	keyMethod        = "http.request.method"
	keyStatus        = "http.response.status_code"
	keyResend        = "http.request.resend_count"
	keyURL           = "url.full"
	keyServerAddress = "server.address"
	keyServerPort    = "server.port"
	keyErrorType     = "error.type"
)

// Roles of a destination an event is sent to (attribute eventgate.destination.role).
const (
	RoleSubscriber = "subscriber"
	RoleReply      = "reply"
	RoleDeadLetter = "dead-letter"
	RoleSink       = "sink"
	RoleRedrive    = "redrive" // a dead letter sent back to its knativeerrordest
)

// Span kinds as start options, built once (an option built per span is an allocation).
var (
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
)

// instrumentationName names eventgate's tracer.
const instrumentationName = "github.com/eventgate/eventgate"

// Tracer starts eventgate's spans and moves trace context between requests, events and spans.
type Tracer struct {
	tracer   trace.Tracer
	prop     propagation.TraceContext
	systems  func(channel.Ref) string
	shutdown func(context.Context) error
	settings settings // what Start resolved; zero for New
}

// New returns a Tracer on tp (tests give it an SDK provider with an in-memory exporter). Shutdown
// does not shut tp down.
func New(tp trace.TracerProvider) *Tracer {
	return &Tracer{tracer: tp.Tracer(instrumentationName)}
}

// Start builds the Tracer that cfg and the standard OpenTelemetry environment (getenv, os.Getenv in
// production) ask for: nil, with no error, when tracing is off (see Config). Spans are batched and
// exported over OTLP in the background; the exporter reads the rest of the OTEL_EXPORTER_OTLP_*
// environment itself (headers, timeout, certificates, compression), and the resource
// OTEL_RESOURCE_ATTRIBUTES. Start does not connect: an unreachable collector costs dropped spans,
// never an event. version is the service.version attribute ("" for none). Call Shutdown at exit to
// flush what is buffered.
func Start(ctx context.Context, cfg Config, getenv func(string) string, version string) (*Tracer, error) {
	s, err := cfg.resolve(getenv)
	if err != nil || !s.on {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	switch s.protocol {
	case ProtocolHTTP:
		var opts []otlptracehttp.Option
		if s.endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(httpTracesURL(s.endpoint)))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		var opts []otlptracegrpc.Option
		if s.endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(s.endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter (%s): %w", s.protocol, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", s.serviceName)}
	if version != "" {
		attrs = append(attrs, attribute.String("service.version", version))
	}
	res, err := resource.Merge(resource.Environment(), resource.NewSchemaless(attrs...))
	if err != nil {
		res = resource.NewSchemaless(attrs...)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.sampling))),
		sdktrace.WithResource(res),
	)
	t := New(tp)
	t.shutdown, t.settings = tp.Shutdown, s
	return t, nil
}

// Describe is what Start resolved, as key/value pairs for a log line: the endpoint ("from the
// environment" when the exporter reads it there), the protocol, the sampling ratio and the service
// name.
func (t *Tracer) Describe() []any {
	if t == nil {
		return nil
	}
	endpoint := t.settings.endpoint
	if endpoint == "" {
		endpoint = "from the OTEL_EXPORTER_OTLP_* environment"
	}
	return []any{"endpoint", endpoint, "protocol", t.settings.protocol, "sampling", t.settings.sampling,
		"service", t.settings.serviceName}
}

// Shutdown exports the spans still buffered and stops the exporter, within ctx. Nil-safe.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// SetSystems tells the Tracer the messaging.system of each channel (kafka, nats, gcp_pubsub,
// eventgate); without it every channel is eventgate's. Call it before the Tracer is used.
func (t *Tracer) SetSystems(f func(channel.Ref) string) {
	if t != nil {
		t.systems = f
	}
}

func (t *Tracer) system(ref channel.Ref) string {
	if t.systems == nil {
		return SystemEventgate
	}
	if s := t.systems(ref); s != "" {
		return s
	}
	return SystemEventgate
}

// Extract returns ctx with the remote span context of h's traceparent and tracestate headers,
// when they hold a valid one. Nil-safe.
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	if t == nil {
		return ctx
	}
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject writes the span context of ctx into h as the traceparent (and tracestate) header.
// Nil-safe.
func (t *Tracer) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// eventCarrier reads and writes the trace context in an event's extensions.
type eventCarrier struct{ e *event.Event }

func (c eventCarrier) Get(k string) string { return c.e.Extensions[k] }
func (c eventCarrier) Set(k, v string)     { c.e.SetExtension(k, v) }
func (c eventCarrier) Keys() []string      { return []string{ExtTraceParent, ExtTraceState} }

// EventContext returns the span context e's traceparent and tracestate extensions hold; an
// invalid one when they hold none (or a malformed one).
func EventContext(e *event.Event) trace.SpanContext {
	if e == nil || e.Extensions[ExtTraceParent] == "" {
		return trace.SpanContext{}
	}
	var p propagation.TraceContext
	return trace.SpanContextFromContext(p.Extract(context.Background(), eventCarrier{e}))
}

// SetEventContext writes sc into e's traceparent and tracestate extensions (tracestate removed when
// sc has none). An invalid sc leaves e as it is.
func SetEventContext(e *event.Event, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	delete(e.Extensions, ExtTraceState)
	e.SetExtension(ExtTraceParent, traceparent(sc))
	if ts := sc.TraceState(); ts.Len() > 0 {
		e.SetExtension(ExtTraceState, ts.String())
	}
}

// traceparent is sc in the W3C traceparent form, version 00: 00-TRACEID-SPANID-FLAGS.
func traceparent(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
	return string(b[:])
}

// TraceID is the trace id of the span in ctx, as logs carry it (trace_id); "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// StartSend starts the PRODUCER span of sending e to channel dest (the ingress, a source, a dead
// letter, a reply), named "send NAMESPACE/NAME", and writes the span's context into e's traceparent
// and tracestate extensions: e must be the caller's to change. role is the eventgate.destination.role
// attribute ("" for none). See StartSendTo for the parent.
func (t *Tracer) StartSend(ctx context.Context, dest channel.Ref, role string, e *event.Event) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.startSend(ctx, "send "+dest.String(), t.system(dest), dest.String(), role, e)
}

// StartSendTo is StartSend for a destination that is not a channel of ours (a URL: a source's
// sink, a dead-letter sink or reply destination outside the gateway), named "send URL" with the
// URL's query and credentials left out. Its parent is the span in ctx when there is one, else e's
// own traceparent extension, else none (a new trace); e's own context, when it is not the parent,
// is linked.
func (t *Tracer) StartSendTo(ctx context.Context, dest, role string, e *event.Event) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	dest = redactURL(dest)
	return t.startSend(ctx, "send "+dest, "http", dest, role, e)
}

func (t *Tracer) startSend(ctx context.Context, name, system, dest, role string, e *event.Event) (context.Context, trace.Span) {
	own := EventContext(e)
	parent := trace.SpanContextFromContext(ctx)
	var span trace.Span
	switch {
	case !parent.IsValid() && own.IsValid():
		ctx, span = t.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, own), name, kindProducer)
	case own.IsValid() && !own.Equal(parent):
		ctx, span = t.tracer.Start(ctx, name, kindProducer, trace.WithLinks(trace.Link{SpanContext: own}))
	default:
		ctx, span = t.tracer.Start(ctx, name, kindProducer)
	}
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 10)
		attrs = append(attrs,
			attribute.String(keySystem, system),
			attribute.String(keyDestination, dest),
			attribute.String(keyOperationType, "send"),
			attribute.String(keyOperationName, "send"),
		)
		if role != "" {
			attrs = append(attrs, attribute.String(keyRole, role))
		}
		span.SetAttributes(eventAttributes(attrs, e)...)
	}
	SetEventContext(e, span.SpanContext())
	return ctx, span
}

// Process describes the event a dispatcher processes, for StartProcess.
type Process struct {
	Channel channel.Ref
	// Group is the subscription (consumer group), NAMESPACE/NAME.
	Group string
	// Partition and Offset locate the record; a negative Partition (a redriven event, read from no
	// partition of this channel) leaves both out.
	Partition int32
	Offset    int64
	Event     *event.Event
}

// StartProcess starts the CONSUMER span of processing one event, named "process NAMESPACE/NAME",
// a child of the context in the event's traceparent extension (a new trace when it has none).
// Every delivery attempt, dead letter and reply of the event is a child of this span.
func (t *Tracer) StartProcess(ctx context.Context, p Process) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	if sc := EventContext(p.Event); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	ctx, span := t.tracer.Start(ctx, "process "+p.Channel.String(), kindConsumer)
	if span.IsRecording() {
		system := t.system(p.Channel)
		attrs := make([]attribute.KeyValue, 0, 12)
		attrs = append(attrs,
			attribute.String(keySystem, system),
			attribute.String(keyDestination, p.Channel.String()),
			attribute.String(keyOperationType, "process"),
			attribute.String(keyOperationName, "process"),
			attribute.String(keyGroup, p.Group),
		)
		if p.Partition >= 0 {
			offsetKey := keyOffset
			if system == "kafka" {
				offsetKey = keyKafkaOffset
			}
			attrs = append(attrs, attribute.String(keyPartition, strconv.Itoa(int(p.Partition))),
				attribute.Int64(offsetKey, p.Offset))
		}
		span.SetAttributes(eventAttributes(attrs, p.Event)...)
	}
	return ctx, span
}

// StartAttempt starts the CLIENT span of one HTTP delivery attempt of an event to u, named "POST";
// resend is how many attempts came before it (http.request.resend_count, set from the first retry
// on). Inject its context into the request.
func (t *Tracer) StartAttempt(ctx context.Context, u, role string, resend int) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	ctx, span := t.tracer.Start(ctx, http.MethodPost, kindClient)
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 6)
		attrs = append(attrs, attribute.String(keyMethod, http.MethodPost))
		if role != "" {
			attrs = append(attrs, attribute.String(keyRole, role))
		}
		if pu, err := url.Parse(u); err == nil {
			port := 80
			if pu.Scheme == "https" {
				port = 443
			}
			if p, err := strconv.Atoi(pu.Port()); err == nil {
				port = p
			}
			pu.User, pu.RawQuery, pu.ForceQuery, pu.Fragment = nil, "", false, ""
			attrs = append(attrs, attribute.String(keyServerAddress, pu.Hostname()), attribute.Int(keyServerPort, port),
				attribute.String(keyURL, pu.String()))
		}
		if resend > 0 {
			attrs = append(attrs, attribute.Int(keyResend, resend))
		}
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// EndAttempt ends an attempt's span with the answer's status (0 when there was none) and the
// transport error, if any: an error status for an error or a status of 400 and above.
func EndAttempt(span trace.Span, status int, err error) {
	if span.IsRecording() {
		if status > 0 {
			span.SetAttributes(attribute.Int(keyStatus, status))
		}
		switch {
		case err != nil:
			span.SetAttributes(attribute.String(keyErrorType, errorType(err)))
			span.SetStatus(codes.Error, errorMessage(err))
		case status >= 400:
			span.SetAttributes(attribute.String(keyErrorType, strconv.Itoa(status)))
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}

// End ends a messaging span; err, when not nil, sets its error status.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetAttributes(attribute.String(keyErrorType, errorType(err)))
		span.SetStatus(codes.Error, errorMessage(err))
	}
	span.End()
}

// Fail marks span failed with a reason (an event dropped, a dead letter that could not be sent),
// without ending it.
func Fail(span trace.Span, reason string) {
	if span.IsRecording() {
		span.SetStatus(codes.Error, reason)
	}
}

// eventAttributes appends e's CloudEvents attributes to attrs.
func eventAttributes(attrs []attribute.KeyValue, e *event.Event) []attribute.KeyValue {
	if e == nil {
		return attrs
	}
	attrs = append(attrs,
		attribute.String(keyEventID, e.ID),
		attribute.String(keyEventType, e.Type),
		attribute.String(keyEventSource, e.Source),
		attribute.String(keyEventSpec, e.SpecVersion),
	)
	if e.Subject != "" {
		attrs = append(attrs, attribute.String(keyEventSubject, e.Subject))
	}
	return attrs
}

// httpTracesURL is the OTLP/HTTP URL of the traces of a collector at endpoint: /v1/traces added
// when the endpoint has no path, as for OTEL_EXPORTER_OTLP_ENDPOINT.
func httpTracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// redactURL leaves credentials and the query (which may carry tokens) out of u.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	pu.User, pu.RawQuery, pu.ForceQuery, pu.Fragment = nil, "", false, ""
	return pu.String()
}

// errorType is error.type for err: "timeout" for a deadline, else "_OTHER" (the conventions' value
// for an error with no better class).
func errorType(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "_OTHER"
}

// errorMessage is err's text without a URL's query or credentials (url.Error's URL is left out).
func errorMessage(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr.Err != nil {
		return uerr.Op + ": " + uerr.Err.Error()
	}
	return err.Error()
}

// WithContext returns a copy of e that carries the span context of ctx in its traceparent and
// tracestate extensions (e itself when ctx has none): what a dispatcher publishes to a channel
// subscriber, leaving the record's own event, which other subscriptions may share, untouched.
func WithContext(ctx context.Context, e *event.Event) *event.Event {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return e
	}
	c := e.Clone()
	SetEventContext(c, sc)
	return c
}
