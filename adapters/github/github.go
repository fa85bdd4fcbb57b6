// Package github runs GitHubSource: a receiver for GitHub webhooks that turns each delivery into a
// CloudEvent and sends it to the source's sink.
//
// A delivery is authenticated by its X-Hub-Signature-256 header (HMAC-SHA256 of the raw body with the
// source's secret token, compared in constant time). It is answered 202 only once the sink accepted
// the event, 503 when the sink could not take it (GitHub then lets the user redeliver), and a
// redelivery of an accepted delivery id within the dedup window is answered 202 without producing the
// event again.
package github

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
)

// Defaults, in one place.
const (
	defaultMaxBody       int64 = 25 << 20         // largest body accepted, 25 MB: GitHub caps webhook payloads at 25 MB
	defaultDedupWindow         = 10 * time.Minute // how long an accepted delivery id is remembered
	defaultDedupCapacity       = 10000            // accepted delivery ids remembered at most (about 100 bytes each)
)

// TypePrefix starts the CloudEvents type of every event: TypePrefix + the X-GitHub-Event value.
const TypePrefix = "dev.knative.source.github."

// Request headers GitHub sends with every delivery.
const (
	HeaderEvent     = "X-GitHub-Event"
	HeaderDelivery  = "X-GitHub-Delivery"
	HeaderSignature = "X-Hub-Signature-256"
)

// maxDeliveryID bounds the delivery ids remembered for dedup (GitHub's are 36-character GUIDs).
const maxDeliveryID = 200

// eventNameRE is a GitHub event name as X-GitHub-Event carries it.
var eventNameRE = regexp.MustCompile(`^[a-z_]{1,64}$`)

// Webhook is a running GitHubSource. It is an adapters.Webhook: serve it at src.WebhookPath(). It is
// safe for concurrent use; ServeHTTP works whether or not Run is running.
type Webhook struct {
	src      *resources.Source
	deps     adapters.Deps
	log      *slog.Logger
	secret   []byte // nil: unauthenticated
	source   string // CloudEvents source attribute
	types    []string
	maxBody  int64
	now      func() time.Time
	seen     *deliveries
	override map[string]string
}

var _ adapters.Webhook = (*Webhook)(nil)

func init() { adapters.Register("github", New) }

// settings are the Webhook's tunables. New uses the defaults; this package's tests set what they
// need through newWebhook. A zero field takes its default.
type settings struct {
	maxBody int64 // larger bodies are answered 413; default defaultMaxBody
	// dedupWindow is how long an accepted delivery id is remembered, so that a redelivery is not
	// produced twice; default defaultDedupWindow; negative: redelivery detection off.
	dedupWindow time.Duration
	// dedupCapacity bounds how many accepted delivery ids are remembered; past it the oldest is
	// forgotten even inside the window. Default defaultDedupCapacity.
	dedupCapacity int
	now           func() time.Time // event times and the dedup window; default time.Now
}

func (s settings) withDefaults() settings {
	s.maxBody = cmp.Or(s.maxBody, defaultMaxBody)
	s.dedupWindow = cmp.Or(s.dedupWindow, defaultDedupWindow)
	s.dedupCapacity = cmp.Or(s.dedupCapacity, defaultDedupCapacity)
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// New is the adapters.Factory for GitHubSource, registered as "github"; the Adapter it returns is a
// *Webhook (an adapters.Webhook). It reads the secret token now, from d.SecretsDir; a source without
// a secret token is refused unless it is marked unauthenticated, and a secret that is missing or
// empty is an error. A trailing newline in the secret file is not part of the secret (GitHub's secret
// field cannot hold one, and files written with echo end with one).
func New(src *resources.Source, d adapters.Deps) (adapters.Adapter, error) {
	return newWebhook(src, d, settings{})
}

// newWebhook is New with settings.
func newWebhook(src *resources.Source, d adapters.Deps, set settings) (*Webhook, error) {
	if src == nil || src.GitHub == nil {
		return nil, errors.New("github: not a GitHubSource")
	}
	if d.Sink == nil {
		return nil, fmt.Errorf("github: source %s: no sink", src.NamespacedName())
	}
	set = set.withDefaults()
	g := src.GitHub
	w := &Webhook{
		src:      src,
		deps:     d,
		log:      d.Logger(src),
		source:   "https://github.com/" + g.Owner,
		types:    slices.Clone(g.EventTypes),
		maxBody:  set.maxBody,
		now:      set.now,
		seen:     newDeliveries(set.dedupWindow, set.dedupCapacity),
		override: src.CEOverrides,
	}
	if g.Repository != "" {
		w.source += "/" + g.Repository
	}
	switch {
	case g.SecretToken != nil:
		b, err := d.ReadSecret(src, *g.SecretToken)
		if err != nil {
			return nil, fmt.Errorf("github: source %s: secretToken: %w", src.NamespacedName(), err)
		}
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		if len(b) == 0 {
			return nil, fmt.Errorf("github: source %s: secretToken: secret %s key %s is empty",
				src.NamespacedName(), g.SecretToken.Name, g.SecretToken.Key)
		}
		w.secret = b
	case !g.Unauthenticated:
		return nil, fmt.Errorf("github: source %s has no secretToken: refusing unsigned webhooks (annotate %s: \"true\" to accept them)",
			src.NamespacedName(), resources.AnnotationUnauthenticated)
	}
	// Every event carries the overrides: check them once, here, rather than failing each delivery.
	probe := &event.Event{ID: "probe", Source: w.source, SpecVersion: event.SpecVersion, Type: TypePrefix + "push"}
	for k, v := range w.override {
		probe.SetExtension(k, v)
	}
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("github: source %s: ceOverrides: %w", src.NamespacedName(), err)
	}
	return w, nil
}

// Run blocks until ctx is done and returns nil: the webhook receives its events through ServeHTTP,
// which the ingress routes to it.
func (w *Webhook) Run(ctx context.Context) error {
	w.log.Info("github webhook ready", "path", w.src.WebhookPath(), "signed", w.secret != nil)
	<-ctx.Done()
	return nil
}

// ServeHTTP handles one delivery. It answers:
//   - 405 for methods other than POST; 413 for a body over the limit;
//   - 401 for a missing or wrong signature (on a signed source);
//   - 400 for a missing X-GitHub-Event or X-GitHub-Delivery, or a payload that is not a JSON object;
//     415 for a content type other than JSON or form;
//   - 204, producing nothing, for ping and for event types the source does not ask for;
//   - 202 once the sink accepted the event, or for a redelivery of an accepted delivery id;
//   - 503 when the sink did not accept it (it may be redelivered and is then sent again).
//
// It blocks while the sink sends, bounded by the request's context.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "GitHub webhooks are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > w.maxBody {
		http.Error(rw, fmt.Sprintf("body is over the limit of %d bytes", w.maxBody), http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.maxBody))
	if err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			http.Error(rw, fmt.Sprintf("body is over the limit of %d bytes", w.maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "reading the body failed", http.StatusBadRequest)
		return
	}
	if w.secret != nil && !validSignature(w.secret, body, r.Header.Get(HeaderSignature)) {
		w.log.Warn("github webhook refused: bad or missing signature", "delivery", truncate(r.Header.Get(HeaderDelivery)))
		http.Error(rw, "missing or wrong "+HeaderSignature, http.StatusUnauthorized)
		return
	}

	kind, id := r.Header.Get(HeaderEvent), r.Header.Get(HeaderDelivery)
	switch {
	case kind == "" || id == "":
		w.invalid(rw, id, "missing "+HeaderEvent+" or "+HeaderDelivery)
		return
	case !eventNameRE.MatchString(kind):
		w.invalid(rw, id, HeaderEvent+" is not a GitHub event name")
		return
	case len(id) > maxDeliveryID:
		w.invalid(rw, id, HeaderDelivery+" is too long")
		return
	}
	if kind == "ping" {
		w.log.Info("github ping", "delivery", id)
		adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeSkipped)
		rw.WriteHeader(http.StatusNoContent)
		return
	}
	if len(w.types) > 0 && !slices.Contains(w.types, kind) {
		w.log.Debug("github event type not asked for", "delivery", id, "type", kind)
		adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeSkipped)
		rw.WriteHeader(http.StatusNoContent)
		return
	}

	payload, err := payloadJSON(r.Header.Get("Content-Type"), body)
	if err != nil {
		if errors.Is(err, errUnsupported) {
			adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeInvalid)
			http.Error(rw, "content type must be "+contentJSON+" or "+contentForm, http.StatusUnsupportedMediaType)
			return
		}
		w.invalid(rw, id, err.Error())
		return
	}
	e, err := w.event(kind, id, payload)
	if err != nil {
		w.invalid(rw, id, err.Error())
		return
	}
	w.deliver(r.Context(), rw, e)
}

// deliver sends e unless its delivery id was already accepted, and answers.
func (w *Webhook) deliver(ctx context.Context, rw http.ResponseWriter, e *event.Event) {
	for {
		d, c := w.seen.begin(e.ID, w.now())
		switch c {
		case claimDuplicate:
			w.log.Info("github redelivery of an accepted event: not sent again", "delivery", e.ID)
			adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeSkipped)
			rw.WriteHeader(http.StatusAccepted)
			return
		case claimBusy:
			select {
			case <-d.done:
				continue // accepted (a duplicate now) or failed (ours to try)
			case <-ctx.Done():
				http.Error(rw, "an earlier attempt of this delivery is still in progress", http.StatusServiceUnavailable)
				return
			}
		}
		err := w.deps.Sink.Send(ctx, e)
		w.seen.finish(d, err == nil, w.now())
		if err != nil {
			w.log.Warn("github event not accepted by the sink", "delivery", e.ID, "type", e.Type, "err", err)
			adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeFailed)
			http.Error(rw, "the event could not be stored now; redeliver it", http.StatusServiceUnavailable)
			return
		}
		w.log.Debug("github event accepted", "delivery", e.ID, "type", e.Type)
		adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeAccepted)
		rw.WriteHeader(http.StatusAccepted)
		return
	}
}

// event builds the CloudEvent for a delivery. The error says why the result would not be a valid
// CloudEvent.
func (w *Webhook) event(kind, id string, payload []byte) (*event.Event, error) {
	e := &event.Event{
		ID:              id,
		Source:          w.source,
		SpecVersion:     event.SpecVersion,
		Type:            TypePrefix + kind,
		DataContentType: contentJSON,
		Subject:         subject(kind, payload),
		Time:            w.now().UTC().Format(time.RFC3339Nano),
		Data:            payload,
	}
	for k, v := range w.override {
		e.SetExtension(k, v)
	}
	err := e.Validate()
	if ae := (*event.AttributeError)(nil); errors.As(err, &ae) && ae.Attribute == "subject" {
		// A subject is a convenience; a payload member that cannot be one loses it, not the event.
		e.Subject = ""
		err = e.Validate()
	}
	if err != nil {
		return nil, fmt.Errorf("delivery is not a valid CloudEvent: %w", err)
	}
	return e, nil
}

// invalid answers 400 for a delivery that cannot become an event and counts it.
func (w *Webhook) invalid(rw http.ResponseWriter, id, reason string) {
	w.log.Warn("github delivery refused", "delivery", truncate(id), "reason", reason)
	adapters.Count(w.deps.Metrics, w.src, adapters.OutcomeInvalid)
	http.Error(rw, reason, http.StatusBadRequest)
}

// validSignature reports whether header is "sha256=" followed by the hex HMAC-SHA256 of body keyed
// with secret. The comparison takes constant time in the MAC's value.
func validSignature(secret, body []byte, header string) bool {
	hexMAC, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexMAC) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil {
		return false
	}
	return hmac.Equal(got, sign(secret, body))
}

// sign returns the HMAC-SHA256 of body keyed with secret.
func sign(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// truncate shortens an untrusted header value for a log line.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
