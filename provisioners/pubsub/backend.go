// Package pubsub is the Google Cloud Pub/Sub channel provisioner: one topic per channel, one Pub/Sub
// subscription per eventgate subscription, events in the CloudEvents Pub/Sub binding (binary mode:
// "ce-" attributes and content-type, data as the body). It is built on cloud.google.com/go/pubsub/v2.
//
// # Mapping the seam onto Pub/Sub
//
// gateway/channel models a channel as a partitioned log with consumer groups; Pub/Sub has neither
// partitions nor offsets. This package maps one onto the other so:
//
//   - A channel's topic is the log; Publish returns once Pub/Sub acknowledged every message. The
//     partitionkey extension is the message's ordering key, and every subscription eventgate creates
//     has message ordering enabled (it cannot be turned on later), so events of one key arrive in
//     publish order.
//   - A group is a Pub/Sub subscription. It is created before Subscribe returns, so every event
//     published afterwards reaches it: that is the group's fixed position. Subscribing again resumes
//     it; DeleteGroup deletes it.
//   - Partitions are lanes inside the gateway: each received message goes to partition
//     hash(partitionkey, else id) mod the channel's partition count, and each partition is a claim
//     owned by one local member of the group (local members split them round-robin, as the in-memory
//     provisioner does). Gateway replicas are not coordinated: Pub/Sub balances messages between
//     them, and with ordering keys it keeps a key's messages on one client at a time.
//   - Offsets are synthetic: a claim numbers its messages in arrival order. MarkDone acks the
//     message, so a message is acked exactly when it was delivered or dead-lettered. Pub/Sub acks
//     each message on its own, so there is no commit point: the seam's contiguous-prefix rule (made
//     for logs that can only commit a position) would only add duplicates, and would let one message
//     that keeps retrying hold the acks of everything after it until flow control stops the whole
//     subscription. When a claim ends, whatever it has not acked is nacked and Pub/Sub redelivers it
//     (in key order).
//   - While a message is not acked, the client extends its ack deadline (up to MaxExtension), so a
//     delivery that keeps retrying is not redelivered meanwhile; MaxOutstandingMessages bounds what a
//     subscription holds (flow control).
//
// # What Pub/Sub cannot do
//
// A Pub/Sub subscription receives only messages published after it was created. channel.Earliest
// (eventgate.dev/initial-offset: earliest) therefore reaches back only when the topic retains
// messages (its message retention: a channel Spec's Retention, or one set on the topic in Pub/Sub;
// the channel manifests eventgate reads for Pub/Sub carry none): a new group's subscription is then
// sought back over the retention window. Without retention Earliest is the same as Latest. So the
// conformance cases that publish before a group's first Subscribe cannot hold; neither could they
// on the emulator with retention, whose Seek loses the message bodies. See conformance_test.go.
//
// Nor does Backend report consumer lag (it is no channel.LagReporter): a subscription's backlog is
// not in the Pub/Sub API but in Cloud Monitoring (subscription/num_undelivered_messages), which the
// emulator lacks. The one figure at hand, messages received and not yet acked, is bounded by
// MaxOutstandingMessages and blind to what waits in Pub/Sub; reported as lag it would read 0 or
// a few hundred while millions wait, so it is not.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config/nametemplate"
)

var _ channel.Provisioner = (*Backend)(nil)

// Pub/Sub's bounds on a topic's message retention.
const (
	minTopicRetention = 10 * time.Minute
	maxTopicRetention = 31 * 24 * time.Hour
)

// Backend is the Pub/Sub provisioner. It is safe for concurrent use. Create it with New and release it
// with Close after every Subscription is closed.
type Backend struct {
	cfg      Config
	log      *slog.Logger
	topicTpl *nametemplate.Template
	subTpl   *nametemplate.Template
	opts     []option.ClientOption

	clientMu sync.Mutex
	client   *ps.Client // created by the first call that needs it

	mu       sync.Mutex
	channels map[channel.Ref]*chanState
	groups   map[string]*group // by full subscription name, while a local member is subscribed
	closed   bool

	undecodable atomic.Int64
}

// chanState is an ensured channel.
type chanState struct {
	ref        channel.Ref
	topic      string // projects/P/topics/T
	partitions int32
	retention  time.Duration // the topic's message retention; 0 when none
	pub        *ps.Publisher
}

// New returns a Backend on cfg, which must name a project; start from DefaultConfig. It validates cfg;
// every problem wraps ErrInvalidConfig. It does not contact Pub/Sub: the client is created by the
// first call that needs it, and Ready reports whether Pub/Sub answers.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if cfg.Project == "" {
		return nil, fmt.Errorf("%w: project: required (or %s)", ErrInvalidConfig, EnvProject)
	}
	topicTpl, _ := parseNameTemplate("topicTemplate", cfg.TopicTemplate)
	subTpl, _ := parseNameTemplate("subscriptionTemplate", cfg.SubscriptionTemplate)
	b := &Backend{
		cfg:      cfg,
		log:      log,
		topicTpl: topicTpl,
		subTpl:   subTpl,
		channels: make(map[channel.Ref]*chanState),
		groups:   make(map[string]*group),
	}
	switch {
	case cfg.EmulatorHost != "":
		b.opts = []option.ClientOption{
			option.WithEndpoint(cfg.EmulatorHost),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		}
	case cfg.CredentialsFile != "":
		b.opts = []option.ClientOption{option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile)}
	}
	return b, nil
}

// clientFor returns the client, creating it on first use. Errors (no credentials found, a bad key
// file) wrap channel.ErrUnavailable: the gateway keeps retrying and reports the reason.
func (b *Backend) clientFor(ctx context.Context) (*ps.Client, error) {
	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	if b.client != nil {
		return b.client, nil
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("pubsub: backend closed: %w", channel.ErrUnavailable)
	}
	// The client outlives ctx: its connections are not bound to the call that created them.
	c, err := ps.NewClient(context.WithoutCancel(ctx), b.cfg.Project, b.opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub: client for project %s: %w: %w", b.cfg.Project, channel.ErrUnavailable, err)
	}
	b.client = c
	return c, nil
}

// TopicName returns the full name (projects/P/topics/T) of the topic that holds channel ch.
func (b *Backend) TopicName(ch channel.Ref) (string, error) {
	id, err := b.topicTpl.Render(nametemplate.Data{Namespace: ch.Namespace, Name: ch.Name, Channel: ch.Name})
	if err != nil {
		return "", fmt.Errorf("pubsub: topic name for channel %s: %w", ch, err)
	}
	return "projects/" + b.cfg.Project + "/topics/" + id, nil
}

// SubscriptionName returns the full name (projects/P/subscriptions/S) of group g's subscription.
func (b *Backend) SubscriptionName(g channel.Group) (string, error) {
	id, err := b.subTpl.Render(nametemplate.Data{Namespace: g.Channel.Namespace, Name: g.Name, Channel: g.Channel.Name})
	if err != nil {
		return "", fmt.Errorf("pubsub: subscription name for %s/%s: %w", g.Channel.Namespace, g.Name, err)
	}
	return "projects/" + b.cfg.Project + "/subscriptions/" + id, nil
}

// adminErr wraps an error of an administrative call on what (say "create topic T"): errors that
// retrying can fix (Pub/Sub unreachable, a timeout, quota) wrap channel.ErrUnavailable; others (a bad
// name, no permission) are returned as they are, naming what failed.
func adminErr(what string, err error) error {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition,
		codes.OutOfRange, codes.Unimplemented:
		return fmt.Errorf("pubsub: %s: %w", what, err)
	}
	return fmt.Errorf("pubsub: %s: %w: %w", what, channel.ErrUnavailable, err)
}

// Ensure creates the channel's topic, or uses the existing one, and returns once it exists. A spec
// retention becomes the topic's message retention (Pub/Sub allows 10 minutes to 31 days); it is set
// on an existing topic too. Partitions are the gateway's lanes (see the package comment): they may
// grow and shrink freely, and local subscriptions rebalance at once. It blocks on administrative
// calls, each bounded by AdminTimeout, until done or ctx is done; Pub/Sub being unreachable is an
// error wrapping channel.ErrUnavailable. Safe to call repeatedly and concurrently.
func (b *Backend) Ensure(ctx context.Context, spec channel.Spec) error {
	topic, err := b.TopicName(spec.Ref)
	if err != nil {
		return err
	}
	partitions := spec.Partitions
	if partitions <= 0 {
		partitions = b.cfg.Partitions
	}
	retention := spec.Retention
	if retention > 0 && (retention < minTopicRetention || retention > maxTopicRetention) {
		return fmt.Errorf("pubsub: channel %s: retention %s is outside Pub/Sub's %s to %s", spec.Ref, retention,
			minTopicRetention, maxTopicRetention)
	}
	c, err := b.clientFor(ctx)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, b.cfg.AdminTimeout)
	defer cancel()
	want := &pubsubpb.Topic{Name: topic}
	if retention > 0 {
		want.MessageRetentionDuration = durationpb.New(retention)
	}
	_, err = c.TopicAdminClient.CreateTopic(actx, want)
	switch status.Code(err) {
	case codes.OK:
		b.log.Info("pubsub topic created", "channel", spec.Ref.String(), "topic", topic, "retention", retention)
	case codes.AlreadyExists:
		have, err := c.TopicAdminClient.GetTopic(actx, &pubsubpb.GetTopicRequest{Topic: topic})
		if err != nil {
			return adminErr("get topic "+topic, err)
		}
		if retention > 0 && have.GetMessageRetentionDuration().AsDuration() != retention {
			_, err := c.TopicAdminClient.UpdateTopic(actx, &pubsubpb.UpdateTopicRequest{
				Topic:      want,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"message_retention_duration"}},
			})
			if err != nil {
				return adminErr("set message retention of topic "+topic, err)
			}
		} else if retention == 0 && have.GetMessageRetentionDuration() != nil {
			retention = have.GetMessageRetentionDuration().AsDuration()
		}
	default:
		return adminErr("create topic "+topic, err)
	}
	b.remember(spec.Ref, topic, partitions, retention, c)
	return nil
}

// remember records an ensured channel and, when its partition count changed, rebalances the local
// groups on it.
func (b *Backend) remember(ref channel.Ref, topic string, partitions int32, retention time.Duration, c *ps.Client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := b.channels[ref]
	if cs == nil || cs.topic != topic {
		if cs != nil {
			cs.pub.Stop()
		}
		pub := c.Publisher(topic)
		pub.EnableMessageOrdering = true
		pub.PublishSettings.DelayThreshold = publishDelay
		cs = &chanState{ref: ref, topic: topic, pub: pub}
		b.channels[ref] = cs
	}
	cs.retention = retention
	if cs.partitions != partitions {
		cs.partitions = partitions
		for _, g := range b.groups {
			if g.topic == topic {
				g.setPartitions(partitions)
			}
		}
	}
}

// publishDelay is how long the publisher waits to batch messages before it sends them: short, since
// every Publish waits for Pub/Sub's acknowledgement.
const publishDelay = time.Millisecond

func (b *Backend) lookup(ref channel.Ref) (*chanState, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs, ok := b.channels[ref]
	if !ok {
		return nil, fmt.Errorf("pubsub: channel %s: %w", ref, channel.ErrNotFound)
	}
	return cs, nil
}

// Remove forgets the channel and stops its publisher (flushing what it holds); its topic is deleted
// only when DeleteTopicsOnRemove is set. Subscriptions on it keep running until closed. Removing an
// unknown channel is not an error.
func (b *Backend) Remove(ctx context.Context, ref channel.Ref) error {
	b.mu.Lock()
	cs, ok := b.channels[ref]
	delete(b.channels, ref)
	b.mu.Unlock()
	if !ok {
		return nil
	}
	cs.pub.Stop()
	if !b.cfg.DeleteTopicsOnRemove {
		return nil
	}
	c, err := b.clientFor(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.AdminTimeout)
	defer cancel()
	err = c.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: cs.topic})
	if err != nil && status.Code(err) != codes.NotFound {
		return adminErr("delete topic "+cs.topic, err)
	}
	b.log.Info("pubsub topic deleted", "channel", ref.String(), "topic", cs.topic)
	return nil
}

// DeleteGroup deletes the Pub/Sub subscription of g (and with it every message it held). A
// subscription that does not exist is not an error. Call it after the group's members are closed.
func (b *Backend) DeleteGroup(ctx context.Context, g channel.Group) error {
	name, err := b.SubscriptionName(g)
	if err != nil {
		return err
	}
	c, err := b.clientFor(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.AdminTimeout)
	defer cancel()
	err = c.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
	if err != nil && status.Code(err) != codes.NotFound {
		return adminErr("delete subscription "+name, err)
	}
	return nil
}

// readyTimeout bounds the call Ready makes when its context has no earlier deadline.
const readyTimeout = 3 * time.Second

// Ready reports whether Pub/Sub answers a request for the project's topics. Until a channel was
// ensured on it the backend has nothing to store and is ready without asking (so that a
// GOOGLE_CLOUD_PROJECT in the environment alone never holds the gateway back). It waits at most a few
// seconds; its error wraps channel.ErrUnavailable.
func (b *Backend) Ready(ctx context.Context) error {
	b.clientMu.Lock()
	c := b.client
	b.clientMu.Unlock()
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, min(readyTimeout, b.cfg.AdminTimeout))
	defer cancel()
	it := c.TopicAdminClient.ListTopics(ctx, &pubsubpb.ListTopicsRequest{Project: "projects/" + b.cfg.Project, PageSize: 1})
	if _, err := it.Next(); err != nil && !errors.Is(err, iterator.Done) {
		return fmt.Errorf("pubsub: project %s does not answer: %w: %w", b.cfg.Project, channel.ErrUnavailable, err)
	}
	return nil
}

// UndecodableMessages returns how many received messages were not CloudEvents; each was logged,
// acked and skipped. Safe for concurrent use.
func (b *Backend) UndecodableMessages() int64 { return b.undecodable.Load() }

// Close closes subscriptions still open (each waits for its handlers), stops the publishers (flushing
// what they hold) and closes the client. Calling Close twice is a no-op.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var subs []*subscription
	for _, g := range b.groups {
		subs = append(subs, g.subscriptions()...)
	}
	pubs := make([]*ps.Publisher, 0, len(b.channels))
	for _, cs := range b.channels {
		pubs = append(pubs, cs.pub)
	}
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	for _, p := range pubs {
		p.Stop()
	}
	b.clientMu.Lock()
	defer b.clientMu.Unlock()
	if b.client != nil {
		errs = append(errs, b.client.Close())
	}
	return errors.Join(errs...)
}
