package dispatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// Bounds on what is read from a destination's answer.
const (
	// maxErrorData is how much of a failed answer's body is kept for knativeerrordata.
	maxErrorData = 1024
	// maxReplyBody is the largest reply body read from a subscriber; a larger reply is not forwarded.
	maxReplyBody = 1 << 20
	// maxDrain is how much of an unread body is discarded so the connection can be reused; past it
	// the connection is closed instead.
	maxDrain = 64 << 10
)

// The dead-letter extensions Knative defines.
const (
	ExtErrorDest = "knativeerrordest"
	ExtErrorCode = "knativeerrorcode"
	ExtErrorData = "knativeerrordata"
)

// attemptResult is what one attempt (or the last of a series) came to.
type attemptResult struct {
	ok            bool
	retryable     bool
	status        int    // HTTP status; 0 when there was no answer or the destination is a channel
	err           error  // transport or publish error
	body          []byte // at most maxErrorData bytes of a failed answer's body
	retryAfter    time.Duration
	hasRetryAfter bool
	overloaded    bool // timed out, 429, 503, or a full channel

	reply    *event.Event // a subscriber's reply, when it answered 2xx with a CloudEvent
	replyErr error        // the answer looked like a reply but could not be read or parsed
}

// send delivers ev to dest under the subscription's retry policy: up to 1+Retry attempts, waiting
// NextDelay between them, stopping early on a non-retryable failure or when ctx ends. subscriber
// marks attempts to the subscription's subscriber: only those are counted in the dispatch metrics,
// tallied in out, and have their reply read. It returns the last attempt's result.
func (d *Dispatcher) send(ctx context.Context, dest Destination, ev *event.Event, subscriber bool, out *Outcome) attemptResult {
	p := d.sub.Policy
	for n := 1; ; n++ {
		var res attemptResult
		actx, aev, span := ctx, ev, trace.Span(nil)
		if d.tracer != nil {
			actx, span, aev = d.startAttempt(ctx, dest, ev, subscriber, n)
		}
		start := time.Now()
		if dest.Channel != nil {
			res = d.attemptChannel(actx, *dest.Channel, aev, subscriber)
		} else {
			res = d.attemptHTTP(actx, dest.URL, aev, subscriber)
		}
		if span != nil {
			tracing.EndAttempt(span, res.status, res.err)
		}
		if subscriber && d.observer != nil && ctx.Err() == nil {
			d.observer.ObserveAttempt(Attempt{Start: start, Latency: time.Since(start), Status: res.status,
				Err: res.err, OK: res.ok, Overloaded: res.overloaded, RetryAfter: honouredRetryAfter(p, res)})
		}
		if subscriber && ctx.Err() == nil {
			d.status.attempt(res, d.now())
		}
		if out != nil {
			out.Attempts++
			out.Overloaded = out.Overloaded || res.overloaded
		}
		if res.ok || ctx.Err() != nil || !res.retryable || n > p.Retry {
			return res
		}
		if d.wait(ctx, NextDelay(p, n, res.retryAfter, res.hasRetryAfter)) != nil {
			return res
		}
	}
}

// honouredRetryAfter is the Retry-After of a failed attempt as the policy honours it: capped by
// RetryAfterMax, and 0 when the answer had none or RetryAfterMax is 0.
func honouredRetryAfter(p Policy, res attemptResult) time.Duration {
	if res.ok || !res.hasRetryAfter || p.RetryAfterMax <= 0 {
		return 0
	}
	return min(res.retryAfter, p.RetryAfterMax)
}

// attemptContext applies the per-attempt timeout: from the attempt scope ctx is, if it is one
// (see attemptScope), else a context of its own.
func (d *Dispatcher) attemptContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.sub.Policy.Timeout <= 0 {
		return ctx, func() {}
	}
	if s, ok := ctx.(*attemptScope); ok {
		return s.attempt(d.sub.Policy.Timeout), func() {}
	}
	return context.WithTimeout(ctx, d.sub.Policy.Timeout)
}

// attemptScope is the context of a goroutine that makes one attempt at a time (a delivery worker,
// a claim delivering in order, a partition key's runner): the attempts it starts within a short
// window share one timeout context, where each would otherwise make its own context and timer and
// cancel them after (that was 4–5% of an unordered Kafka drain's CPU). An attempt then times out
// between the timeout and a 64th of it (at most 50 ms) later. A scope must not be shared between
// goroutines; end releases its last timeout context (which would otherwise stay until its deadline)
// and closes its own connection (see ownConn).
type attemptScope struct {
	context.Context
	cur      context.Context // the shared timeout context, a child of Context; nil before the first attempt
	cancel   context.CancelFunc
	deadline time.Time // cur's
	conn     *ownConn  // the connection of its subscriber deliveries; nil before the first, or closed
}

// newAttemptScope returns the scope of the calling goroutine's attempts under ctx.
func newAttemptScope(ctx context.Context) *attemptScope { return &attemptScope{Context: ctx} }

// attempt is the context of an attempt starting now with timeout: the current shared one while
// its deadline is at most a 64th of timeout (50 ms at most) past the attempt's own, else a new
// one whose deadline is that much past it. The previous one is released: its attempts are over.
func (s *attemptScope) attempt(timeout time.Duration) context.Context {
	deadline := time.Now().Add(timeout)
	grace := min(timeout/64, 50*time.Millisecond)
	if s.cur != nil && !s.deadline.Before(deadline) && s.deadline.Sub(deadline) <= grace {
		return s.cur
	}
	s.release()
	s.deadline = deadline.Add(grace)
	s.cur, s.cancel = context.WithDeadline(s.Context, s.deadline)
	return s.cur
}

// end releases the current shared timeout context and closes the scope's own connection.
func (s *attemptScope) end() {
	s.release()
	s.closeConn()
}

// Value is the context's value for key; the scope itself for scopeKey (an attempt's context
// derived from the scope, a traced one, finds it so).
func (s *attemptScope) Value(key any) any {
	if key == (scopeKey{}) {
		return s
	}
	return s.Context.Value(key)
}

// scopeKey is the context key of the attemptScope a context derives from.
type scopeKey struct{}

// scopeOf is the attemptScope ctx is or derives from; nil if none.
func scopeOf(ctx context.Context) *attemptScope {
	if s, ok := ctx.(*attemptScope); ok {
		return s
	}
	s, _ := ctx.Value(scopeKey{}).(*attemptScope)
	return s
}

// release releases the current shared timeout context.
func (s *attemptScope) release() {
	if s.cancel != nil {
		s.cancel()
		s.cur, s.cancel = nil, nil
	}
}

// attemptHTTP makes one CloudEvents POST of ev to u: in binary mode, or in structured mode when the
// policy's format is json.
func (d *Dispatcher) attemptHTTP(ctx context.Context, u string, ev *event.Event, subscriber bool) attemptResult {
	body, headers := ev.Data, d.requestHeaders(ev)
	if d.structured {
		b, err := event.MarshalStructured(ev)
		if err != nil {
			return attemptResult{err: fmt.Errorf("structured mode: %w", err)}
		}
		body, headers = b, 4 // Content-Type, Prefer, traceparent, tracestate
	}
	var own *attemptScope
	var head []byte
	if subscriber && d.own != nil && len(body) <= ownMaxBody {
		if head = d.urls[u].head; head != nil {
			own = scopeOf(ctx)
		}
	}
	actx, cancel := d.attemptContext(ctx)
	defer cancel()
	req, err := d.newRequest(actx, u, body, headers)
	if err != nil {
		return attemptResult{err: fmt.Errorf("%w: %w", ErrInvalidDestination, err)}
	}
	if d.structured {
		req.Header["Content-Type"] = structuredType
	} else {
		event.WriteHTTPBinary(ev, req.Header)
	}
	req.Header["Prefer"] = preferReply
	if d.tracer != nil {
		d.tracer.Inject(ctx, req.Header)
	}

	start := time.Now()
	resp, err := d.do(req, own, ownRequest{head: head, body: body})
	if err != nil {
		timedOut := ctx.Err() == nil && (errors.Is(actx.Err(), context.DeadlineExceeded) ||
			errors.Is(err, context.DeadlineExceeded))
		if subscriber && ctx.Err() == nil {
			class := "error"
			if timedOut {
				class = "timeout"
			}
			d.record(class, start)
		}
		return attemptResult{err: err, retryable: Retryable(0, err), overloaded: timedOut}
	}
	defer drainClose(resp.Body)

	res := attemptResult{status: resp.StatusCode}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		res.ok = true
		if subscriber {
			res.reply, res.replyErr = readReply(resp)
		}
	} else {
		res.body, _, _ = readUpTo(resp.Body, maxErrorData)
		res.retryable = Retryable(resp.StatusCode, nil)
		res.retryAfter, res.hasRetryAfter = RetryAfter(resp.Header, d.now())
		res.overloaded = resp.StatusCode == http.StatusTooManyRequests ||
			resp.StatusCode == http.StatusServiceUnavailable
	}
	if subscriber {
		d.record(metrics.CodeClass(resp.StatusCode), start)
	}
	return res
}

// do sends req as d.client.Do does. Where the client is a plain one (d.rt: no cookie jar, no
// timeout or redirect policy of its own), the URL carries no user name, and no destination of this
// dispatcher has redirected yet, it goes straight to the client's transport: http.Client.Do copies
// the request's header for the redirects it might follow, on every request, and with the rest of
// Client.do that was about 5% of an ordered Kafka drain's CPU (6 of a delivery's 93 allocations).
// A redirect the client would follow is followed as it does (see redirect), through the client,
// and from then on every delivery of this dispatcher goes through the client. Errors are wrapped in
// *url.Error as the client wraps them. With own (an attempt scope), the request goes on the scope's
// own connection (see ownConn) instead of the transport's, written as w says.
func (d *Dispatcher) do(req *http.Request, own *attemptScope, w ownRequest) (*http.Response, error) {
	if d.rt == nil || req.URL.User != nil || d.redirected.Load() {
		return d.client.Do(req)
	}
	var resp *http.Response
	var err error
	if own != nil {
		resp, err = own.roundTrip(d.own, req, w)
	} else {
		resp, err = d.rt.RoundTrip(req)
	}
	if err != nil {
		return nil, clientError(req, err)
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	next, err := redirect(req, resp)
	if next == nil && err == nil {
		return resp, nil
	}
	drainClose(resp.Body)
	if err != nil {
		return nil, clientError(req, err)
	}
	d.redirected.Store(true)
	return d.client.Do(next)
}

// clientError is err as http.Client returns it for req: a *url.Error naming the method ("Post" for
// a POST) and the URL.
func clientError(req *http.Request, err error) error {
	op := "Get"
	if req.Method != "" {
		op = req.Method[:1] + strings.ToLower(req.Method[1:])
	}
	return &url.Error{Op: op, URL: req.URL.String(), Err: err}
}

// redirect is the request http.Client makes to follow resp, the answer to req (which has no user
// name in its URL and no credentials in its header), or nil when it would not follow it: 301, 302
// and 303 become a GET without body (a HEAD stays a HEAD); 307 and 308 keep the method and send the
// body again, if req can make it again (GetBody); none without a Location. A Location that does
// not parse is an error, as the client fails the request there (a retryable one: the subscriber
// may mend it). The header is req's, less credentials when the host changes, with a Referer (none
// from https to http), as the client copies it.
func redirect(req *http.Request, resp *http.Response) (*http.Request, error) {
	method, body := req.Method, false
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
		if method != http.MethodGet && method != http.MethodHead {
			method = http.MethodGet
		}
	case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if req.GetBody == nil && req.ContentLength != 0 {
			return nil, nil
		}
		body = req.GetBody != nil
	default:
		return nil, nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, nil
	}
	u, err := req.URL.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("%d redirect to a Location that does not parse (%q): %w", resp.StatusCode, loc, err)
	}
	next, err := http.NewRequestWithContext(req.Context(), method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%d redirect to %q: %w", resp.StatusCode, loc, err)
	}
	if body {
		if next.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("%d redirect to %q: the body again: %w", resp.StatusCode, loc, err)
		}
		next.GetBody, next.ContentLength = req.GetBody, req.ContentLength
	}
	next.Header = req.Header.Clone()
	if u.Host != req.URL.Host {
		for _, k := range []string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization"} {
			next.Header.Del(k)
		}
	}
	if !(req.URL.Scheme == "https" && u.Scheme == "http") {
		next.Header.Set("Referer", req.URL.String())
	}
	return next, nil
}

// plainTransport is the transport of c when d.do may use it directly (see do): c has no cookie
// jar, timeout or redirect policy. Nil otherwise.
func plainTransport(c *http.Client) http.RoundTripper {
	if c.Jar != nil || c.Timeout != 0 || c.CheckRedirect != nil {
		return nil
	}
	if c.Transport == nil {
		return http.DefaultTransport
	}
	return c.Transport
}

// preferReply is every delivery's Prefer header (Knative's ask for a reply), shared: net/http only
// reads a request's header values.
var preferReply = []string{"reply"}

// structuredType is a structured-mode delivery's Content-Type, shared as preferReply is.
var structuredType = []string{event.MediaTypeStructuredJSON}

// parsedURL is a destination URL parsed once, as http.NewRequest parses it, and a request to it
// without context, header or body that newRequest copies (it is never sent itself).
type parsedURL struct {
	url  *url.URL
	tmpl *http.Request
	// head is the request line and Host header of a POST to it, as net/http writes them, where the
	// dispatcher's transport reaches it directly over HTTP/1 (see ownURL, ownHead); else nil.
	head []byte
}

// parseURLs parses the subscription's HTTP destinations for newRequest, and marks those its
// attempts may send to on their own connections (see ownURL). Unparseable URLs are left out:
// newRequest then reports the error per attempt.
func (d *Dispatcher) parseURLs(dests ...*Destination) map[string]parsedURL {
	out := make(map[string]parsedURL, len(dests))
	for _, dst := range dests {
		if dst == nil || dst.URL == "" {
			continue
		}
		if req, err := http.NewRequest(http.MethodPost, dst.URL, nil); err == nil {
			p := parsedURL{url: req.URL, tmpl: req}
			if d.own != nil && ownURL(d.own, req) {
				p.head = ownHead(req)
			}
			out[dst.URL] = p
		}
	}
	return out
}

// requestHeaders is how many header keys attemptHTTP sets for ev: its attributes and extensions,
// Content-Type, Prefer, and with tracing traceparent and tracestate. The request's header map is
// made that size: a map made for more than 8 keys takes twice the memory and allocations of one
// for 8, and a delivery usually sets 6 or 7.
func (d *Dispatcher) requestHeaders(ev *event.Event) int {
	n := 6 + len(ev.Extensions) // Ce-Specversion, Ce-Id, Ce-Source, Ce-Type, Content-Type, Prefer
	for _, s := range [...]string{ev.DataSchema, ev.Subject, ev.Time} {
		if s != "" {
			n++
		}
	}
	if d.tracer != nil {
		n += 2
	}
	return n
}

// newRequest builds the POST of body to u, with an empty header map (made for headers keys). The
// request is the one http.NewRequestWithContext builds (method, URL, host, protocol, a body that
// net/http knows to be in memory, ContentLength and GetBody, http.NoBody when body is empty). For
// a URL parsed at Start (see Dispatcher.parseURLs) it is built from that URL's template instead of
// parsing: parsing the URL per request was about 8% of a Kafka drain's CPU, and parsing even an
// empty one about 1%.
func (d *Dispatcher) newRequest(ctx context.Context, u string, body []byte, headers int) (*http.Request, error) {
	p, ok := d.urls[u]
	if !ok {
		return http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	}
	req := p.tmpl.WithContext(ctx) // a shallow copy; the template is not changed
	pu := *p.url                   // the request's own URL: a RoundTripper may change it
	req.URL = &pu
	req.Header = make(http.Header, headers)
	if len(body) == 0 {
		req.Body, req.GetBody = http.NoBody, getNoBody
		return req, nil
	}
	// io.NopCloser of a *bytes.Reader, as NewRequest makes it: net/http then writes the headers and
	// the body in one write (any other body type has the headers flushed on their own first).
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return req, nil
}

// getNoBody is the GetBody of a request without a body.
func getNoBody() (io.ReadCloser, error) { return http.NoBody, nil }

// readReply reads a 2xx answer's body and parses a CloudEvent reply from it: (nil, nil) when the answer
// carries none, an error when it looks like one but cannot be read or parsed.
func readReply(resp *http.Response) (*event.Event, error) {
	if !looksLikeCloudEvent(resp.Header) {
		return nil, nil // the body, if any, is not read: drainClose discards it
	}
	body, truncated, err := readUpTo(resp.Body, maxReplyBody)
	if err != nil || truncated {
		if truncated {
			return nil, fmt.Errorf("reply body larger than %d bytes", maxReplyBody)
		}
		return nil, fmt.Errorf("reading reply body: %w", err)
	}
	ev, ok, err := event.ParseHTTPResponse(resp.Header, body)
	if err != nil {
		return nil, fmt.Errorf("parsing reply: %w", err)
	}
	if !ok {
		return nil, nil
	}
	return ev, nil
}

// looksLikeCloudEvent reports whether an answer's headers announce a CloudEvent (binary or structured).
func looksLikeCloudEvent(h http.Header) bool {
	return h.Get("Ce-Specversion") != "" ||
		strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Get("Content-Type"))), "application/cloudevents")
}

// attemptChannel makes one publish of ev to a channel inside the gateway.
func (d *Dispatcher) attemptChannel(ctx context.Context, ref channel.Ref, ev *event.Event, subscriber bool) attemptResult {
	actx, cancel := d.attemptContext(ctx)
	defer cancel()
	start := time.Now()
	err := d.channels.Publish(actx, ref, []*event.Event{ev})
	if err == nil {
		if subscriber {
			d.record("2xx", start)
		}
		return attemptResult{ok: true}
	}
	timedOut := ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded)
	res := attemptResult{err: err, retryable: publishRetryable(err), overloaded: timedOut}
	var full *channel.FullError
	if errors.As(err, &full) {
		res.retryAfter, res.hasRetryAfter = full.RetryAfter, full.RetryAfter > 0
	}
	if errors.Is(err, channel.ErrFull) {
		res.overloaded = true
	}
	if subscriber && ctx.Err() == nil {
		class := "error"
		if timedOut {
			class = "timeout"
		}
		d.record(class, start)
	}
	return res
}

// publishRetryable reports whether a failed publish to a channel destination is worth repeating.
func publishRetryable(err error) bool {
	switch {
	case errors.Is(err, channel.ErrNotFound):
		// No such channel: it will not appear by retrying; dead-letter instead.
		return false
	case errors.Is(err, ErrInvalidDestination):
		return false
	default:
		// ErrFull (the slowest group will catch up), ErrUnavailable (the backend may come back), a
		// timeout, or an unknown error: retry rather than give an acknowledged event up.
		return true
	}
}

// record counts one subscriber attempt.
func (d *Dispatcher) record(class string, start time.Time) {
	if c, ok := d.attempts[class]; ok {
		c.Inc()
	}
	d.duration.Observe(time.Since(start).Seconds())
}

// deadLetterEvent returns a copy of ev carrying Knative's error extensions: the destination that
// failed, its HTTP status when there was one, and base64 of at most the first 1024 bytes of its answer.
// Error extensions ev already had (from an earlier hop) are replaced, not mixed.
func deadLetterEvent(ev *event.Event, failed Destination, res attemptResult) *event.Event {
	dl := ev.Clone()
	delete(dl.Extensions, ExtErrorDest)
	delete(dl.Extensions, ExtErrorCode)
	delete(dl.Extensions, ExtErrorData)
	dl.SetExtension(ExtErrorDest, failed.String())
	if res.status > 0 {
		dl.SetExtension(ExtErrorCode, strconv.Itoa(res.status))
	}
	if data := res.body; len(data) > 0 {
		if len(data) > maxErrorData {
			data = data[:maxErrorData]
		}
		dl.SetExtension(ExtErrorData, base64.StdEncoding.EncodeToString(data))
	}
	return dl
}

// readUpTo reads at most n bytes of r; truncated says r had more.
func readUpTo(r io.Reader, n int64) (b []byte, truncated bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, n+1))
	if int64(len(b)) > n {
		return b[:n], true, err
	}
	return b, false, err
}

// drainClose discards a bounded rest of body, so the connection can be reused, and closes it.
func drainClose(body io.ReadCloser) {
	if body == http.NoBody { // an answer without a body (Content-Length: 0): nothing to drain
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}
