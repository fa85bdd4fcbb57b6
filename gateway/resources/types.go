// Package resources turns Knative-shaped manifests into eventgate's typed resources.
//
// It reads multi-document YAML (or JSON) files and directories, accepts the shapes Knative users
// already have (including the seed-era v1alpha1 ones), applies defaults, validates each resource and
// the set as a whole, and resolves sinks, subscribers and replies to channels or URLs. Every error
// names the file, the document, the resource and the field path, and all problems are reported
// together (errors.Join), not just the first.
//
// The kinds it knows are one table (Kinds, in kinds.go): each row gives a Kind, its apiVersions, its
// decoder and what runs it (a channel provisioner, the dispatcher, or a source adapter by name). Each
// kind has its own file with its type, decoder and validation (channel.go, subscription.go,
// source_*.go); the field shapes kinds share are in fields.go. A kind with no row is not managed.
//
// The package is pure: it starts no goroutines and holds no mutable global state (the kinds table is
// fixed at init). Its values are plain data, safe to read concurrently once decoded.
package resources

import (
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

// DefaultNamespace is the namespace of a resource whose metadata.namespace is empty.
const DefaultNamespace = "default"

// Provisioner names, as Channel.Provisioner holds them.
const (
	ProvisionerInMemory = "inmemory"
	ProvisionerKafka    = "kafka"
	ProvisionerPubSub   = "pubsub"
	ProvisionerNATS     = "nats"
)

// Meta is what every resource carries: where it came from and its Kubernetes identity.
type Meta struct {
	File       string // file the resource was read from ("" when built in code)
	Doc        int    // 1-based index of the YAML document in File
	APIVersion string
	Kind       string
	Name       string
	Namespace  string // defaulted to DefaultNamespace
	// Annotations as written (metadata.annotations); nil when none.
	Annotations map[string]string

	// lines maps a field path ("spec.subscriber.uri") to its line in File, for error messages.
	lines map[string]int
	// aliases maps a canonical field path to the path it was written at, where an older shape
	// differs ("spec.project" → "spec.googleCloudProject").
	aliases map[string]string
}

// NamespacedName returns "NAMESPACE/NAME".
func (m *Meta) NamespacedName() string { return m.Namespace + "/" + m.Name }

// Reference points at another object. Namespace is defaulted to the referring resource's namespace.
type Reference struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
}

// IsChannel reports whether r names a channel kind (a kind the kinds table runs as a channel:
// Channel, InMemoryChannel, KafkaChannel), whatever its apiVersion. Such a reference resolves inside
// the gateway, with no HTTP hop.
func (r Reference) IsChannel() bool {
	run, ok := RunnerOf(r.Kind)
	return ok && run.Role == RoleChannel
}

// IsBroker reports whether r names a Broker, whatever its apiVersion. Such a reference resolves
// inside the gateway to the broker's channel, with no HTTP hop.
func (r Reference) IsBroker() bool {
	run, ok := RunnerOf(r.Kind)
	return ok && run.Role == RoleBroker
}

// ChannelRef returns the channel r names (meaningful when r.IsChannel() or r.IsBroker(): for a
// broker, the channel that backs it).
func (r Reference) ChannelRef() channel.Ref {
	if r.IsBroker() {
		return channel.BrokerRef(r.Namespace, r.Name)
	}
	return channel.Ref{Namespace: r.Namespace, Name: r.Name}
}

// String returns "KIND NAMESPACE/NAME".
func (r Reference) String() string { return r.Kind + " " + r.Namespace + "/" + r.Name }

// Destination is where events go: a sink, subscriber, reply or deadLetterSink. A valid Destination
// has an absolute URI, or a Ref, or (as Knative allows) a Ref and a relative URI resolved against the
// reference's address, such as {ref: {kind: Service, name: svc}, uri: /events}.
type Destination struct {
	URI string
	Ref *Reference
	// CACerts are PEM CA certificates (Knative's CACerts) trusted for this destination's https URL
	// besides the system's roots; "" for none.
	CACerts string
}

// IsZero reports whether neither URI nor Ref is set.
func (d Destination) IsZero() bool { return d.URI == "" && d.Ref == nil }

// BackoffPolicy says how the delay between delivery attempts grows.
type BackoffPolicy string

const (
	// BackoffLinear waits backoffDelay × n before retry n (n from 1).
	BackoffLinear BackoffPolicy = "linear"
	// BackoffExponential waits backoffDelay × 2ⁿ before retry n (n from 1).
	BackoffExponential BackoffPolicy = "exponential"
)

// Known reports whether p is one of the policies, linear or exponential ("" is not). It is the one
// check of the name, for manifests and for the dispatch configuration.
func (p BackoffPolicy) Known() bool { return p == BackoffLinear || p == BackoffExponential }

// DeliveryFormat is how an event goes on the wire to a subscriber, reply or dead-letter sink
// (Knative's delivery.format): a CloudEvents HTTP binding mode.
type DeliveryFormat string

const (
	// FormatBinary puts the attributes in Ce-* headers and the data in the body (the default).
	FormatBinary DeliveryFormat = "binary"
	// FormatJSON sends the whole event as the body, application/cloudevents+json (structured mode).
	FormatJSON DeliveryFormat = "json"
)

// Known reports whether f is json or binary ("" is not).
func (f DeliveryFormat) Known() bool { return f == FormatBinary || f == FormatJSON }

// Delivery is a subscription's delivery spec (Knative's DeliverySpec, plus backoffMax). A nil pointer
// or empty value means "unset": the dispatcher applies its own default.
type Delivery struct {
	Retry         *int32         // retries after the first attempt
	BackoffPolicy BackoffPolicy  // "" when unset
	BackoffDelay  *time.Duration // base delay
	BackoffMax    *time.Duration // cap on one delay (eventgate extension)
	Timeout       *time.Duration // per attempt
	RetryAfterMax *time.Duration // honour Retry-After up to this; nil: Retry-After is ignored
	Format        DeliveryFormat // "" when unset: binary mode
	// DeadLetterSink receives events that exhausted their retries; nil when none.
	DeadLetterSink *Destination
}

// Annotation keys eventgate reads.
const (
	AnnotationDeliveryOrder   = "kafka.eventing.knative.dev/delivery.order"
	AnnotationInitialOffset   = "eventgate.dev/initial-offset"
	AnnotationMinConcurrency  = "eventgate.dev/min-concurrency"
	AnnotationMaxConcurrency  = "eventgate.dev/max-concurrency"
	AnnotationUnauthenticated = "eventgate.dev/unauthenticated"
)

// SecretKeyRef names one key of a Secret (secretKeyRef: {name, key}); see ReadSecret.
type SecretKeyRef struct {
	Name string
	Key  string
}

// Unmanaged is a resource eventgate does not run (Service, ServiceAccount, Role, …). It is reported,
// never an error.
type Unmanaged struct {
	Meta
	// Data is a ConfigMap's data (a Kafka broker's spec.config may name one); nil for other kinds.
	Data map[string]string
}

// Set is the resources of one or more files, in the order they were read.
type Set struct {
	Channels      []*Channel
	Subscriptions []*Subscription
	Sources       []*Source
	Brokers       []*Broker
	Triggers      []*Trigger
	Unmanaged     []*Unmanaged
}

// Channel returns the channel named ref, or nil; for a broker's channel (channel.BrokerRef), the
// channel that backs the broker (BrokerChannel).
func (s *Set) Channel(ref channel.Ref) *Channel {
	if name, ok := ref.Broker(); ok {
		if b := s.Broker(ref.Namespace, name); b != nil {
			return s.BrokerChannel(b)
		}
		return nil
	}
	for _, c := range s.Channels {
		if c.Namespace == ref.Namespace && c.Name == ref.Name {
			return c
		}
	}
	return nil
}

// DeliveryFor returns the delivery spec that applies to sub: its own, else its channel's, else nil.
func (s *Set) DeliveryFor(sub *Subscription) *Delivery {
	if sub.Delivery != nil {
		return sub.Delivery
	}
	if c := s.Channel(sub.ChannelRef()); c != nil {
		return c.Delivery
	}
	return nil
}

// Options tune decoding.
type Options struct {
	// DefaultProvisioner is the provisioner of a channel that names none: ProvisionerInMemory (the
	// default when empty) or ProvisionerKafka.
	DefaultProvisioner string
}
