package dispatch

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// The dispatcher's spans (tracing on; see gateway/tracing): a CONSUMER span per event processed
// (startProcess), a CLIENT span per HTTP attempt or a PRODUCER span per publish to a channel
// subscriber (startAttempt), and a PRODUCER span for each dead letter and reply (startOut). Every
// function here is called only when d.tracer is not nil.

// startProcess starts the CONSUMER span of rec.
func (d *Dispatcher) startProcess(ctx context.Context, rec channel.Record) (context.Context, trace.Span) {
	return d.tracer.StartProcess(ctx, tracing.Process{Channel: d.sub.Channel,
		Group: d.sub.Namespace + "/" + d.sub.Name, Partition: rec.Partition, Offset: rec.Offset, Event: rec.Event})
}

// endProcess ends the CONSUMER span with the cycle's result: an error status when the event was
// dropped.
func endProcess(span trace.Span, r Result) {
	if r == Dropped {
		tracing.Fail(span, "delivery failed after every retry and there is no dead-letter sink")
	}
	span.End()
}

// startAttempt starts the span of attempt n (from 1) of sending ev to dest. An HTTP attempt gets a
// CLIENT span (its context goes out as the traceparent header); a publish to a channel subscriber
// gets a PRODUCER span and a copy of ev carrying its context, which is what is published. A
// dead letter or reply to a channel has its span already (startOut): nil span, ev as it is.
func (d *Dispatcher) startAttempt(ctx context.Context, dest Destination, ev *event.Event, subscriber bool, n int) (context.Context, trace.Span, *event.Event) {
	role := ""
	if subscriber {
		role = tracing.RoleSubscriber
	}
	switch {
	case dest.Channel == nil:
		ctx, span := d.tracer.StartAttempt(ctx, dest.URL, role, n-1)
		return ctx, span, ev
	case subscriber:
		c := ev.Clone()
		ctx, span := d.tracer.StartSend(ctx, *dest.Channel, role, c)
		return ctx, span, c
	default:
		return ctx, nil, ev
	}
}

// startOut starts the PRODUCER span of sending ev, a dead letter or a reply (role), to dest: a child
// of the CONSUMER span in ctx, linked to the context ev carried, and ev now carries its own.
func (d *Dispatcher) startOut(ctx context.Context, dest Destination, role string, ev *event.Event) (context.Context, trace.Span) {
	if dest.Channel != nil {
		return d.tracer.StartSend(ctx, *dest.Channel, role, ev)
	}
	return d.tracer.StartSendTo(ctx, dest.URL, role, ev)
}

// endOut ends a dead letter's or reply's span with how its sending ended.
func endOut(span trace.Span, res attemptResult) {
	var err error
	switch {
	case res.ok:
	case res.err != nil:
		err = res.err
	default:
		err = fmt.Errorf("answered %d", res.status)
	}
	tracing.End(span, err)
}
