package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// maxAnswerDrained bounds how much of an answer's body is read (and discarded) so that its
// connection can be reused.
const maxAnswerDrained = 64 << 10

// send delivers e to target, outside any subscription: a channel of ours is published to (no HTTP
// hop), a URL gets one binary-mode POST that must answer 2xx (ctx bounds it). It is how a source's
// sink and a redrive to a knativeerrordest send. With tracing on, the send is one PRODUCER span with
// role as its eventgate.destination.role (see tracing.Tracer.StartSend and StartSendTo), whose
// context e then carries (e must be the caller's to change), and a POST has a CLIENT span under it
// whose context goes out as the traceparent header, as a dispatcher's dead letter to a URL has.
func (a *App) send(ctx context.Context, target resources.Target, role string, e *event.Event) error {
	if a.tracer == nil {
		return a.deliverTo(ctx, target, e)
	}
	var span trace.Span
	if target.Channel != nil {
		ctx, span = a.tracer.StartSend(ctx, *target.Channel, role, e)
	} else {
		ctx, span = a.tracer.StartSendTo(ctx, target.URL, role, e)
	}
	err := a.deliverTo(ctx, target, e)
	tracing.End(span, err)
	return err
}

func (a *App) deliverTo(ctx context.Context, target resources.Target, e *event.Event) error {
	if target.Channel != nil {
		return a.router.Publish(ctx, *target.Channel, []*event.Event{e})
	}
	if a.tracer == nil {
		_, err := a.post(ctx, target, e)
		return err
	}
	ctx, span := a.tracer.StartAttempt(ctx, target.URL, "", 0)
	status, err := a.post(ctx, target, e)
	tracing.EndAttempt(span, status, err)
	return err
}

// post sends e to target's URL as one binary-mode POST, with the trace context in ctx as its
// traceparent header when tracing is on; it returns the answer's status (0 when there was none) and
// an error unless that status is 2xx.
func (a *App) post(ctx context.Context, target resources.Target, e *event.Event) (int, error) {
	u := target.URL
	client, err := a.clientFor(target.CACerts)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(e.Data))
	if err != nil {
		return 0, err
	}
	event.WriteHTTPBinary(e, req.Header)
	a.tracer.Inject(ctx, req.Header) // nil-safe: nothing with tracing off
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerDrained))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return resp.StatusCode, nil
}

// clientFor is the client for a destination with these CACerts: a.client when there are none, else
// one that trusts them too, made once per distinct text and kept (sinks are few, their CAs fewer).
func (a *App) clientFor(caCerts string) (*http.Client, error) {
	if caCerts == "" {
		return a.client, nil
	}
	if c, ok := a.caClients.Load(caCerts); ok {
		return c.(*http.Client), nil
	}
	c, err := dispatch.TrustingCAs(a.client, caCerts)
	if err != nil {
		return nil, err
	}
	got, _ := a.caClients.LoadOrStore(caCerts, c)
	return got.(*http.Client), nil
}
