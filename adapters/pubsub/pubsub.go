// Package pubsub runs CloudPubSubSource (events.cloud.google.com/v1) and the seed era's
// GcpPubSubSource (sources.eventing.knative.dev/v1alpha1): it pulls a Google Cloud Pub/Sub
// subscription with streaming pull and sends each message to the source's sink as a CloudEvent.
//
// # Subscription
//
// spec.subscriptionID names an existing subscription (an ID in spec.project, or a full
// "projects/P/subscriptions/S" name); it is used as is. Without one, the adapter creates the
// subscription "eventgate-NAMESPACE-NAME" on the topic (with message ordering on), or uses it when it
// already exists, so several replicas and restarts share one subscription.
//
// # Events produced
//
//	type            google.cloud.pubsub.topic.v1.messagePublished
//	source          //pubsub.googleapis.com/projects/P/topics/T
//	id              the message ID
//	time            the publish time
//	datacontenttype application/json
//	partitionkey    the message's ordering key, when it has one, so per-key order survives into Kafka
//	data            {"subscription": "projects/P/subscriptions/S",
//	                 "message": {"messageId", "data" (base64), "attributes", "publishTime", "orderingKey"}}
//
// The source's ceOverrides are added as extensions.
//
// # Acknowledgement
//
// A message is acked only after the sink accepted its event. When the sink refuses, the adapter waits
// a short delay (1s; cut short when stopping) and nacks it, so Pub/Sub
// redelivers it without a hot loop. Messages in flight are bounded by the client's flow control
// (MaxOutstandingMessages, default 100 here).
//
// # Connecting
//
// The client honours PUBSUB_EMULATOR_HOST (no credentials then). Otherwise it uses the service
// account key in spec.secret (or gcpCredsSecret), read from the secrets directory, else Application
// Default Credentials. This package's tests reach a fake server through newAdapter's settings.
package pubsub

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	ps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
)

// EventType is the CloudEvent type of a published message.
const EventType = "google.cloud.pubsub.topic.v1.messagePublished"

// Defaults, in one place.
const (
	defaultNackDelay      = time.Second            // wait before nacking a message the sink refused
	defaultMaxOutstanding = 100                    // messages handed to the adapter and not yet acked/nacked
	retryMin              = 500 * time.Millisecond // first wait before re-creating the subscription or re-pulling
	retryMax              = 30 * time.Second       // cap on that wait
)

// Adapter is one running Pub/Sub source. Run it once.
type Adapter struct {
	src     *resources.Source
	deps    adapters.Deps
	log     *slog.Logger
	set     settings
	project string
	topic   string // projects/P/topics/T
	sub     string // projects/P/subscriptions/S
	create  bool   // create sub on topic when missing
}

var _ adapters.Adapter = (*Adapter)(nil)

func init() { adapters.Register("pubsub", New) }

// settings are the adapter's tunables. New uses the defaults; this package's tests set what they
// need through newAdapter. A zero field takes its default.
type settings struct {
	// clientOpts are added to the Pub/Sub client's options, after the credentials from spec.secret
	// (a test server's endpoint and insecure credentials, say, which replace them).
	clientOpts []option.ClientOption
	// nackDelay is how long a refused message is held before it is nacked; default
	// defaultNackDelay; negative: nack at once.
	nackDelay time.Duration
	// maxOutstanding is how many messages may be in flight at once; default defaultMaxOutstanding.
	maxOutstanding int
}

func (s settings) withDefaults() settings {
	s.nackDelay = cmp.Or(s.nackDelay, defaultNackDelay)
	s.maxOutstanding = cmp.Or(s.maxOutstanding, defaultMaxOutstanding)
	return s
}

// New is the adapters.Factory for CloudPubSubSource and GcpPubSubSource, registered as "pubsub"; the
// Adapter it returns is an *Adapter. It validates the source and reads its credentials; it does not
// connect (Run does).
func New(src *resources.Source, d adapters.Deps) (adapters.Adapter, error) {
	return newAdapter(src, d, settings{})
}

// newAdapter is New with settings.
func newAdapter(src *resources.Source, d adapters.Deps, set settings) (*Adapter, error) {
	if src == nil || src.PubSub == nil {
		return nil, errors.New("pubsub source: no pubsub spec")
	}
	spec := src.PubSub
	name := src.NamespacedName()
	if d.Sink == nil {
		return nil, fmt.Errorf("pubsub source %s: no sink", name)
	}
	if spec.Project == "" {
		return nil, fmt.Errorf("pubsub source %s: spec.project is empty", name)
	}
	topic, err := fullName(spec.Project, "topics", spec.Topic)
	if err != nil {
		return nil, fmt.Errorf("pubsub source %s: spec.topic: %w", name, err)
	}
	a := &Adapter{src: src, deps: d, project: spec.Project, topic: topic, set: set.withDefaults()}
	if spec.SubscriptionID != "" {
		if a.sub, err = fullName(spec.Project, "subscriptions", spec.SubscriptionID); err != nil {
			return nil, fmt.Errorf("pubsub source %s: spec.subscriptionID: %w", name, err)
		}
	} else {
		a.sub = "projects/" + spec.Project + "/subscriptions/" + DefaultSubscriptionID(src)
		a.create = true
	}
	if spec.Credentials != nil && os.Getenv("PUBSUB_EMULATOR_HOST") == "" {
		key, err := d.ReadSecret(src, *spec.Credentials)
		if err != nil {
			return nil, fmt.Errorf("pubsub source %s: credentials: %w", name, err)
		}
		creds := option.WithAuthCredentialsJSON(option.ServiceAccount, key)
		a.set.clientOpts = append([]option.ClientOption{creds}, a.set.clientOpts...)
	}
	a.log = d.Logger(src).With("subscription", a.sub)
	return a, nil
}

// DefaultSubscriptionID is the subscription a source without spec.subscriptionID pulls:
// "eventgate-NAMESPACE-NAME".
func DefaultSubscriptionID(src *resources.Source) string {
	return "eventgate-" + src.Namespace + "-" + src.Name
}

// fullName returns "projects/PROJECT/COLLECTION/ID" for an ID, or s itself when it is already a full
// name of that collection; anything else (empty parts, extra '/') is an error.
func fullName(project, collection, s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	if strings.HasPrefix(s, "projects/") {
		parts := strings.Split(s, "/")
		if len(parts) != 4 || parts[1] == "" || parts[2] != collection || parts[3] == "" {
			return "", fmt.Errorf("%q is not projects/PROJECT/%s/ID", s, collection)
		}
		return s, nil
	}
	if strings.Contains(s, "/") {
		return "", fmt.Errorf("%q: an ID has no '/'", s)
	}
	if project == "" || strings.Contains(project, "/") {
		return "", fmt.Errorf("project %q is not a project ID", project)
	}
	return "projects/" + project + "/" + collection + "/" + s, nil
}

// Run pulls the subscription until ctx is done, then waits for the messages in flight and returns
// nil. Failures to create the subscription or to pull are logged and retried with capped backoff; it
// returns an error only when the client cannot be built or the request is rejected as invalid or
// unauthorised.
func (a *Adapter) Run(ctx context.Context) error {
	client, err := ps.NewClient(ctx, a.project, a.set.clientOpts...)
	if err != nil {
		return fmt.Errorf("pubsub source %s: client: %w", a.src.NamespacedName(), err)
	}
	defer client.Close()

	backoff := retryMin
	for ctx.Err() == nil {
		if a.create {
			if err := a.ensureSubscription(ctx, client); err != nil {
				if permanent(err) {
					return fmt.Errorf("pubsub source %s: create subscription: %w", a.src.NamespacedName(), err)
				}
				if ctx.Err() == nil {
					a.log.Warn("pubsub subscription not ready, retrying", "err", err, "in", backoff)
				}
				backoff = wait(ctx, backoff)
				continue
			}
		}
		sub := client.Subscriber(a.sub)
		sub.ReceiveSettings.MaxOutstandingMessages = a.set.maxOutstanding
		a.log.Info("pulling pubsub subscription", "topic", a.topic)
		err := sub.Receive(ctx, a.handle)
		if ctx.Err() != nil {
			return nil
		}
		if permanent(err) {
			return fmt.Errorf("pubsub source %s: receive: %w", a.src.NamespacedName(), err)
		}
		a.log.Warn("pubsub pull stopped, retrying", "err", err, "in", backoff)
		backoff = wait(ctx, backoff)
	}
	return nil
}

// ensureSubscription creates a.sub on a.topic, or accepts that it exists.
func (a *Adapter) ensureSubscription(ctx context.Context, client *ps.Client) error {
	_, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  a.sub,
		Topic:                 a.topic,
		EnableMessageOrdering: true,
	})
	if err == nil {
		a.log.Info("created pubsub subscription", "topic", a.topic)
		return nil
	}
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	return err
}

// permanent reports whether err will not go away by retrying.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

// wait blocks for d or until ctx is done, and returns the next delay (doubled, capped at retryMax).
func wait(ctx context.Context, d time.Duration) time.Duration {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(2*d, retryMax)
}

// handle sends one message's event and acks it when the sink accepted it, else nacks it after the
// nack delay. The client calls it concurrently.
func (a *Adapter) handle(ctx context.Context, m *ps.Message) {
	e, err := a.toEvent(m)
	if err != nil {
		// Cannot happen for a well-formed message; ack so a poison message does not loop forever.
		a.count(adapters.OutcomeInvalid)
		a.log.Error("pubsub message not converted, dropped", "message_id", m.ID, "err", err)
		m.Ack()
		return
	}
	if err := a.deps.Sink.Send(ctx, e); err != nil {
		a.count(adapters.OutcomeFailed)
		if ctx.Err() == nil {
			a.log.Warn("pubsub message not accepted by sink, will be redelivered", "message_id", m.ID, "err", err)
			if a.set.nackDelay > 0 {
				t := time.NewTimer(a.set.nackDelay)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		}
		m.Nack()
		return
	}
	m.Ack()
	a.count(adapters.OutcomeAccepted)
}

// toEvent builds the CloudEvent for m with the source's ceOverrides.
func (a *Adapter) toEvent(m *ps.Message) (*event.Event, error) {
	e, err := MessageEvent(a.topic, a.sub, m)
	if err != nil {
		return nil, err
	}
	for k, v := range a.src.CEOverrides {
		e.SetExtension(k, v)
	}
	return e, nil
}

// messageData is the data of a messagePublished event (Google's MessagePublishedData).
type messageData struct {
	Subscription string      `json:"subscription"`
	Message      messageBody `json:"message"`
}

type messageBody struct {
	MessageID   string            `json:"messageId"`
	Data        string            `json:"data,omitempty"` // base64
	Attributes  map[string]string `json:"attributes,omitempty"`
	PublishTime string            `json:"publishTime"`
	OrderingKey string            `json:"orderingKey,omitempty"`
}

// MessageEvent builds the messagePublished CloudEvent for m received on subscription sub (full
// names "projects/P/topics/T" and "projects/P/subscriptions/S"); see the package doc for its shape.
// It is pure and safe for concurrent use.
func MessageEvent(topic, sub string, m *ps.Message) (*event.Event, error) {
	if m.ID == "" {
		return nil, errors.New("message has no ID")
	}
	publish := m.PublishTime.UTC().Format(time.RFC3339Nano)
	body := messageData{Subscription: sub, Message: messageBody{
		MessageID:   m.ID,
		Attributes:  m.Attributes,
		PublishTime: publish,
		OrderingKey: m.OrderingKey,
	}}
	if len(m.Data) > 0 {
		body.Message.Data = base64.StdEncoding.EncodeToString(m.Data)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode message %s: %w", m.ID, err)
	}
	e := &event.Event{
		ID:              m.ID,
		Source:          "//pubsub.googleapis.com/" + topic,
		SpecVersion:     event.SpecVersion,
		Type:            EventType,
		DataContentType: "application/json",
		Data:            data,
	}
	if !m.PublishTime.IsZero() {
		e.Time = publish
	}
	if m.OrderingKey != "" {
		e.SetExtension(event.PartitionKeyExtension, m.OrderingKey)
	}
	return e, nil
}

func (a *Adapter) count(outcome string) { adapters.Count(a.deps.Metrics, a.src, outcome) }
