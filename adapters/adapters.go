// Package adapters runs the sources that manifests declare — Kubernetes events, GitHub webhooks,
// Google Cloud Pub/Sub and ContainerSource — each producing CloudEvents into its sink.
//
// Every adapter sits behind the same small interface: the gateway starts one per Source resource
// with Run and stops it by cancelling Run's context, as resources come and go. An adapter
// acknowledges upstream (an HTTP answer, a Pub/Sub ack) only after its Sink accepted the event.
//
// Adapters register themselves: each adapter package calls Register from init with its Factory and
// the name the kinds table (resources.Kinds) gives it, and ForKind finds the adapter of a source
// kind. Importing adapters/all links every adapter in. Adding a source kind is its row in the table
// (with its spec and decoder in gateway/resources) and its own adapter package, imported by
// adapters/all.
package adapters

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
)

// Sink takes the events a source produces. Send returns nil only once the event is accepted: stored
// by a channel of ours, or answered 2xx by a URL sink. It blocks until then or until ctx is done, and
// is safe for concurrent use.
type Sink interface {
	Send(ctx context.Context, e *event.Event) error
}

// Adapter is one running source.
type Adapter interface {
	// Run produces events into the sink until ctx is done, then returns nil; it returns an error only
	// when the source cannot run at all (bad configuration, unreachable API after retries are pointless).
	Run(ctx context.Context) error
}

// Webhook is an adapter that receives events over HTTP on the ingress port, at
// /sources/NAMESPACE/NAME (resources.Source.WebhookPath).
type Webhook interface {
	Adapter
	http.Handler
}

// Deps are what adapters are built with.
type Deps struct {
	Sink    Sink
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// SecretsDir holds secrets as Kubernetes mounts them (DIR/NAME/KEY); see resources.ReadSecret.
	SecretsDir string
	// Secrets, when set, reads a key of a Secret of the given namespace from the Kubernetes API
	// instead of SecretsDir (a source the cluster declares, in the Kubernetes-native mode).
	Secrets func(namespace string, ref resources.SecretKeyRef) ([]byte, error)
	// IngressURL is the base URL of our ingress; ContainerSource programs get K_SINK from it.
	IngressURL string
	// AddressBook resolves references that are not channels (config addressBook); nil for none.
	AddressBook map[string]string
	// RunContainerSources lets ContainerSource run its program as a child process.
	RunContainerSources bool
}

// ReadSecret reads key ref.Key of Secret ref.Name, in the source's namespace: through Secrets when
// set, else from SecretsDir (resources.ReadSecret). Every adapter reads its secrets through it.
func (d Deps) ReadSecret(src *resources.Source, ref resources.SecretKeyRef) ([]byte, error) {
	if d.Secrets != nil {
		return d.Secrets(src.Namespace, ref)
	}
	return resources.ReadSecret(d.SecretsDir, ref)
}

// Logger returns d.Log (a logger that discards when nil) with the source's name and kind: what an
// adapter logs with.
func (d Deps) Logger(src *resources.Source) *slog.Logger {
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return log.With("source", src.NamespacedName(), "kind", src.Kind)
}

// Factory builds the adapter for one Source. It returns ErrNotRun (wrapped, with the reason) for a
// source that is valid but will not run here (a ContainerSource without --run-container-sources).
//
// Every adapter package has one, New, and registers it under its name from init (Register). Its
// tunables (clocks, clients, timing) are not configuration: New builds with the package's defaults,
// and only the package's own tests change them, through an unexported settings struct (a zero field
// takes its default) passed to the unexported constructor New calls.
type Factory func(src *resources.Source, d Deps) (Adapter, error)

// ErrNotRun marks a valid source that does not run here; the wrapping error says why.
var ErrNotRun = errors.New("source not run")

// Count records one produced event's outcome in eventgate_source_events_total.
func Count(m *metrics.Metrics, src *resources.Source, outcome string) {
	if m == nil {
		return
	}
	m.SourceEvents.WithLabelValues(src.Namespace, src.Name, src.Kind, outcome).Inc()
}

// Outcomes counted in eventgate_source_events_total.
const (
	OutcomeAccepted = "accepted" // the sink accepted the event
	OutcomeFailed   = "failed"   // the sink refused or could not be reached; upstream will redeliver
	OutcomeSkipped  = "skipped"  // filtered (an event type not asked for, a duplicate, a ping)
	OutcomeInvalid  = "invalid"  // upstream sent something that is not a valid event
)
