// Package ingress turns HTTP requests into events stored on channels.
//
// It speaks the CloudEvents 1.0 HTTP binding (binary, structured and batched modes), addresses a
// channel by path (POST /NAMESPACE/CHANNEL) or, for Knative compatibility, by host
// (Host: CHANNEL-kn-channel.NAMESPACE.svc.cluster.local), and answers 202 only once the channel has
// durably stored every event of the request.
//
// A broker is a channel underneath (channel.BrokerRef): the table holds it under its channel's ref,
// and a request reaches it by path (POST /NAMESPACE/BROKER: brokers and channels share one namespace
// of names) or by Knative's broker address (Host broker-ingress.knative-eventing.svc.cluster.local or
// kafka-broker-ingress.knative-eventing.svc.cluster.local, path /NAMESPACE/BROKER), with the same
// modes, limits, authentication (tokens under the broker's name) and answers.
package ingress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// Table maps the channels the ingress serves to the publisher that stores them. A Table is
// immutable once handed to Handler.SetChannels.
type Table map[channel.Ref]channel.Publisher

// Handler is the ingress http.Handler. Create it with New; it is safe for concurrent use, and its
// channel table and source routes can be swapped while it serves (hot reload).
type Handler struct {
	maxBody  int64
	log      *slog.Logger
	metrics  *metrics.Metrics
	channels atomic.Pointer[Table]
	sources  atomic.Pointer[map[string]http.Handler] // "NAMESPACE/NAME" → webhook handler
	tokens   atomic.Pointer[Tokens]                  // nil: no authentication
	slots    chan struct{}                           // bounds concurrent requests; nil: unbounded
	tracer   *tracing.Tracer                         // nil: tracing off
}

// Deps are the Handler's collaborators.
type Deps struct {
	// Log receives structured logs (never payloads); nil discards them.
	Log *slog.Logger
	// Metrics is updated per request; nil means none.
	Metrics *metrics.Metrics
	// Tracer starts a PRODUCER span per event stored (see gateway/tracing); nil: tracing off.
	Tracer *tracing.Tracer
}

// New returns a Handler serving no channels until SetChannels is called. Of cfg it uses MaxBodyBytes
// and MaxConcurrentRequests (the server settings are for whoever serves the Handler). It panics if
// cfg is not valid (Config.Validate): callers start from DefaultConfig, and config.Load validates.
func New(cfg Config, d Deps) *Handler {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("ingress: invalid config: %v", err))
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{maxBody: cfg.MaxBodyBytes, log: d.Log, metrics: d.Metrics, tracer: d.Tracer}
	if cfg.MaxConcurrentRequests > 0 {
		h.slots = make(chan struct{}, cfg.MaxConcurrentRequests)
	}
	h.channels.Store(&Table{})
	h.sources.Store(&map[string]http.Handler{})
	return h
}

// SetChannels replaces the channel table; requests already in progress finish with the old one.
func (h *Handler) SetChannels(t Table) { h.channels.Store(&t) }

// SetTokens turns bearer-token authentication on (t non-nil) or off (nil). Webhook sources are not
// affected: they authenticate with their own signatures.
func (h *Handler) SetTokens(t *Tokens) { h.tokens.Store(t) }

// SetSources replaces the webhook routes served at /sources/NAMESPACE/NAME.
func (h *Handler) SetSources(routes map[string]http.Handler) { h.sources.Store(&routes) }

// KnativeHostSuffix ends the Host of a request addressed the Knative way.
const KnativeHostSuffix = ".svc.cluster.local"

// Target finds the channel a request addresses: by Knative host when the Host header has the
// CHANNEL-kn-channel.NAMESPACE.svc.cluster.local form, else by path /NAMESPACE/CHANNEL.
func Target(r *http.Request) (channel.Ref, bool) {
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if name, ns, ok := parseKnativeHost(host); ok {
		return channel.Ref{Namespace: ns, Name: name}, true
	}
	p := strings.Trim(r.URL.Path, "/")
	ns, name, ok := strings.Cut(p, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return channel.Ref{}, false
	}
	if h := strings.ToLower(host); h == channel.BrokerIngressHost || h == channel.KafkaBrokerIngressHost {
		return channel.BrokerRef(ns, name), true
	}
	ref := channel.Ref{Namespace: ns, Name: name}
	if _, ok := ref.Broker(); ok {
		return channel.Ref{}, false // a broker's channel is addressed by the broker's name only
	}
	return ref, true
}

// lookup finds the publisher of ref in t: a channel, or the broker's channel for a broker ref; a
// path that names no channel names the broker of that name, if any. It returns the ref found.
func lookup(t Table, ref channel.Ref) (channel.Ref, channel.Publisher, bool) {
	if pub, ok := t[ref]; ok {
		return ref, pub, true
	}
	if _, isBroker := ref.Broker(); !isBroker {
		b := channel.BrokerRef(ref.Namespace, ref.Name)
		if pub, ok := t[b]; ok {
			return b, pub, true
		}
	}
	return ref, nil, false
}

func parseKnativeHost(host string) (name, ns string, ok bool) {
	rest, found := strings.CutSuffix(strings.ToLower(host), KnativeHostSuffix)
	if !found {
		return "", "", false
	}
	svc, ns, found := strings.Cut(rest, ".")
	if !found || ns == "" || strings.Contains(ns, ".") {
		return "", "", false
	}
	name, found = strings.CutSuffix(svc, "-kn-channel")
	if !found || name == "" {
		return "", "", false
	}
	return name, ns, true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/sources/"); ok {
		if src, found := (*h.sources.Load())[strings.Trim(rest, "/")]; found {
			src.ServeHTTP(w, r)
			return
		}
	}
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		default:
			w.Header().Set("Retry-After", "1")
			fail(w, http.StatusServiceUnavailable, "too many requests in progress; retry later")
			if h.metrics != nil {
				h.metrics.IngressRequests.WithLabelValues("", "", "503").Inc()
			}
			return
		}
	}
	start := time.Now()
	ref, ok := Target(r)
	code, n := h.serve(w, r, ref, ok)
	if h.metrics != nil {
		ns, name := ref.Namespace, ref.Public().Name
		if code == http.StatusNotFound {
			ns, name = "", "" // unknown names come from the request: keep label values bounded
		}
		h.metrics.IngressRequests.WithLabelValues(ns, name, strconv.Itoa(code)).Inc()
		if code != http.StatusNotFound {
			h.metrics.IngressDuration.WithLabelValues(ns, name).Observe(time.Since(start).Seconds())
		}
		if n > 0 {
			h.metrics.IngressEvents.WithLabelValues(ns, name).Add(float64(n))
		}
	}
}

// serve answers one request and returns the status code and how many events were stored.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, ref channel.Ref, addressed bool) (int, int) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// CloudEvents HTTP webhook abuse protection handshake, and plain CORS-style discovery.
		w.Header().Set("Allow", "POST, OPTIONS")
		if origin := r.Header.Get("WebHook-Request-Origin"); origin != "" {
			w.Header().Set("WebHook-Allowed-Origin", origin)
			w.Header().Set("WebHook-Allowed-Rate", "*")
		}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, 0
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		return fail(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; POST CloudEvents here", r.Method)), 0
	}
	if !addressed {
		return fail(w, http.StatusNotFound, "no channel addressed: POST to /NAMESPACE/CHANNEL"), 0
	}
	ref, pub, ok := lookup(*h.channels.Load(), ref)
	if !ok {
		if _, isBroker := ref.Broker(); isBroker {
			return fail(w, http.StatusNotFound, fmt.Sprintf("broker %s not found", ref.Public())), 0
		}
		return fail(w, http.StatusNotFound, fmt.Sprintf("channel %s not found", ref)), 0
	}
	if tokens := h.tokens.Load(); tokens != nil {
		switch err := tokens.check(r, ref.Public()); {
		case errors.Is(err, errOtherToken):
			return fail(w, http.StatusForbidden, err.Error()), 0
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="eventgate"`)
			return fail(w, http.StatusUnauthorized, err.Error()), 0
		}
	}
	if r.ContentLength > h.maxBody {
		return fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over the limit of %d", r.ContentLength, h.maxBody)), 0
	}
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the limit of %d bytes", h.maxBody)), 0
		}
		return fail(w, http.StatusBadRequest, "reading body: "+err.Error()), 0
	}
	events, err := event.ParseHTTP(r.Header, body)
	if err != nil {
		code, msg := StatusFor(err)
		return fail(w, code, msg), 0
	}
	if len(events) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return http.StatusAccepted, 0
	}
	var spans []trace.Span
	if h.tracer != nil {
		spans = h.startSpans(r, ref, events)
	}
	err = pub.Publish(r.Context(), ref, events)
	if spans != nil {
		endSpans(spans, err)
	}
	if err != nil {
		code, msg := StatusFor(err)
		var full *channel.FullError
		if errors.As(err, &full) {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(full.RetryAfter)))
		}
		// A channel that waits for its backend was logged by whoever made it wait; not once per request.
		if code >= 500 && !errors.As(err, new(*channel.WaitingError)) {
			h.log.Warn("ingress: store failed", "channel", ref.String(), "events", len(events), "err", err)
		}
		return fail(w, code, msg), 0
	}
	w.WriteHeader(http.StatusAccepted)
	return http.StatusAccepted, len(events)
}

// StatusFor maps an error kind to the HTTP status the ingress answers and a short message. It is the
// one table from error kinds to codes.
func StatusFor(err error) (int, string) {
	switch {
	case errors.Is(err, event.ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, err.Error()
	case errors.Is(err, event.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, channel.ErrNotFound):
		return http.StatusNotFound, "channel not found"
	case errors.Is(err, channel.ErrFull):
		return http.StatusTooManyRequests, "channel is full; retry later"
	case errors.As(err, new(*channel.WaitingError)):
		// The channel is declared but its backend has not come up yet: say why.
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, channel.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "channel cannot store the event now; retry later"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// readBody reads the whole body, refusing more than limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, err
		}
		// The declared length was read; anything more is a framing error the server reports.
		return buf, nil
	}
	return io.ReadAll(rd)
}

func fail(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), msg)
	return code
}
