package ingress

import (
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// startSpans starts the PRODUCER span of each event of a request to ref (tracing on): a child of
// the request's traceparent header when it has one, else of the event's own traceparent extension,
// else a new trace. Each event then carries its span's context in its traceparent extension.
func (h *Handler) startSpans(r *http.Request, ref channel.Ref, events []*event.Event) []trace.Span {
	ctx := h.tracer.Extract(r.Context(), r.Header)
	spans := make([]trace.Span, len(events))
	for i, e := range events {
		_, spans[i] = h.tracer.StartSend(ctx, ref, "", e)
	}
	return spans
}

// endSpans ends the spans startSpans started, with the publish's error.
func endSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		tracing.End(s, err)
	}
}
