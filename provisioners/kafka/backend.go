// Package kafka is the Kafka channel provisioner: one topic per channel, one consumer group per
// subscription, records in the CloudEvents Kafka binding (binary mode). It is built on franz-go.
//
// A Backend holds one shared client for producing and administration. Groups with a Share key (the
// unordered subscriptions, the triggers) are read by one consumer client per Share key for every
// topic (fanout.go); an ordered subscription, and one that could not keep up with a shared read,
// gets a consumer client of its own. Publish is acknowledged with acks=all by an idempotent producer.
// Consumption runs one goroutine per assigned partition (the claim handler), offsets are committed
// manually from each claim's contiguous done prefix. Memory stays bounded under any backlog: the poll
// loop takes only what the claims' buffers have room for, leaving the rest of a (size-bounded) fetch in
// the client, and pauses a partition whose claim stays full (see subscription.pollSize).
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config/nametemplate"
	"github.com/eventgate/eventgate/gateway/event"
)

var (
	_ channel.Provisioner = (*Backend)(nil)
	_ channel.LagReporter = (*Backend)(nil)
)

// ErrSpecConflict is returned by Ensure when a channel's topic cannot have the spec's shape: it exists
// with more partitions (Kafka cannot remove partitions) or another replication factor, or the broker
// rejects the spec outright (say, a replication factor above the broker count).
var ErrSpecConflict = errors.New("kafka: topic cannot be changed to the channel spec")

// maxBufferedProduceBytes bounds the memory of records waiting in the producer; past it Publish waits
// for room (until its deadline).
const maxBufferedProduceBytes = 64 << 20

// readyTimeout bounds the metadata request Ready makes when its context has no earlier deadline.
const readyTimeout = 3 * time.Second

// Backend is the Kafka provisioner. It is safe for concurrent use. Create it with New and release it
// with Close after every Subscription is closed.
type Backend struct {
	cfg      Config
	tls      *tls.Config // from cfg.TLS; nil: plaintext
	log      *slog.Logger
	topicTpl *nametemplate.Template
	groupTpl *nametemplate.Template
	client   *kgo.Client // shared producer and admin connection
	admin    *kadm.Client

	mu       sync.Mutex
	channels map[channel.Ref]string // ensured channels and their topics
	// known are the brokers ("host:port") the last metadata answer listed: a subscription's client
	// is seeded with them beside cfg.Brokers, so that a subscription started after the configured
	// brokers died still finds the cluster.
	known   []string
	subs    map[*subscription]struct{}
	fanouts map[string]*fanout   // shared reads, by Share key
	members map[*member]struct{} // groups served by a fanout (or detached from one)
	closed  bool

	creator topicCreator // batches the topic creations of concurrent Ensure calls

	undecodable atomic.Int64
	// clientLog is where the Kafka clients log: warnings and errors, each message at most once per
	// clientLogRepeat (a broker that is down would otherwise log every connection attempt).
	clientLog *clientLog
}

// New returns a Backend on cfg, which must name at least one broker; start from DefaultConfig. It
// validates cfg and reads its TLS files; every problem wraps ErrInvalidConfig. It does not contact
// the brokers: the client connects lazily, and Ready reports whether a broker answers.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("%w: brokers: at least one broker is required", ErrInvalidConfig)
	}
	tc, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	topicTpl, _ := parseNameTemplate("topicTemplate", cfg.TopicTemplate)
	groupTpl, _ := parseNameTemplate("groupTemplate", cfg.GroupTemplate)
	b := &Backend{
		cfg:      cfg,
		tls:      tc,
		log:      log,
		topicTpl: topicTpl,
		groupTpl: groupTpl,
		channels: make(map[channel.Ref]string),
		subs:     make(map[*subscription]struct{}),
		fanouts:  make(map[string]*fanout),
		members:  make(map[*member]struct{}),
	}
	b.clientLog = newClientLog(log.Handler(), clientLogRepeat, time.Now)
	opts := append(b.commonOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Idempotence is kgo's default with acks=all; records are retried until RecordDeliveryTimeout.
		// kgo accepts no delivery timeout under 1s; Publish's own deadline is ProduceTimeout regardless.
		kgo.RecordDeliveryTimeout(max(cfg.ProduceTimeout, time.Second)),
		kgo.ProduceRequestTimeout(min(cfg.ProduceTimeout, 30*time.Second)),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(codecs[cfg.Compression]),
		kgo.MaxBufferedBytes(maxBufferedProduceBytes),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	b.client = cl
	b.admin = kadm.NewClient(cl)
	return b, nil
}

// commonOpts are the options every client of b shares: brokers, TLS, SASL, logging. The seed brokers
// are the configured ones and those the cluster has named since (see learnBrokers).
func (b *Backend) commonOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.seeds()...),
		kgo.WithLogger(kslog.New(slog.New(b.clientLog).With("component", "kafka-client"))),
	}
	if b.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(b.tls.Clone()))
	}
	switch s := b.cfg.SASL; s.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
	}
	return opts
}

// TopicName returns the topic that holds channel ch.
func (b *Backend) TopicName(ch channel.Ref) (string, error) {
	name, err := b.topicTpl.Render(nametemplate.Data{Namespace: ch.Namespace, Name: ch.Name, Channel: ch.Name})
	if err != nil {
		return "", fmt.Errorf("kafka: topic name for channel %s: %w", ch, err)
	}
	return name, nil
}

// GroupName returns the consumer group that holds group g's position.
func (b *Backend) GroupName(g channel.Group) (string, error) {
	name, err := b.groupTpl.Render(nametemplate.Data{Namespace: g.Channel.Namespace, Name: g.Name, Channel: g.Channel.Name})
	if err != nil {
		return "", fmt.Errorf("kafka: group name for %s/%s: %w", g.Channel.Namespace, g.Name, err)
	}
	return name, nil
}

// Ensure creates the channel's topic, or brings an existing one to spec: more partitions are added,
// retention is set; fewer partitions or another replication factor is an error wrapping
// ErrSpecConflict (the channel is still usable with the topic as it is). Broker errors wrap
// channel.ErrUnavailable.
//
// When Ensure returns nil the topic is usable: after a create or a partition increase it waits until
// the metadata shows the topic with all its partitions and a leader for each (an answer of
// UNKNOWN_TOPIC_OR_PARTITION or LEADER_NOT_AVAILABLE meanwhile means "not yet"), at most
// adminWaitTimeout. It blocks on admin and metadata requests until done or ctx is done. Safe to call
// repeatedly and concurrently.
func (b *Backend) Ensure(ctx context.Context, spec channel.Spec) error {
	topic, err := b.TopicName(spec.Ref)
	if err != nil {
		return err
	}
	partitions := spec.Partitions
	if partitions <= 0 {
		partitions = b.cfg.DefaultPartitions
	}
	rf := spec.ReplicationFactor
	if rf <= 0 {
		rf = b.cfg.DefaultReplicationFactor
	}
	var configs map[string]*string
	if spec.Retention > 0 {
		ms := strconv.FormatInt(spec.Retention.Milliseconds(), 10)
		configs = map[string]*string{"retention.ms": &ms}
	}

	err = b.createTopic(ctx, topic, partitions, rf, configs)
	switch {
	case err == nil:
		b.log.Info("kafka topic created", "channel", spec.Ref.String(), "topic", topic,
			"partitions", partitions, "replicationFactor", rf)
		if _, err := b.awaitTopic(ctx, topic, partitions); err != nil {
			return err
		}
		b.remember(spec.Ref, topic)
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Fall through to reconcile the existing topic.
	case isPermanent(err):
		return fmt.Errorf("%w: create topic %s with %d partitions, replication factor %d: %w",
			ErrSpecConflict, topic, partitions, rf, err)
	case errors.Is(err, kerr.InvalidReplicationFactor):
		return fmt.Errorf("kafka: create topic %s with replication factor %d: fewer brokers are available (retrying): %w: %w",
			topic, rf, channel.ErrUnavailable, err)
	default:
		return fmt.Errorf("kafka: create topic %s: %w: %w", topic, channel.ErrUnavailable, err)
	}

	if err := b.reconcile(ctx, spec.Ref, topic, partitions, rf, configs); err != nil {
		return err
	}
	return nil
}

// reconcile brings an existing topic to the wanted shape. The topic may have been created a moment
// ago (by a concurrent Ensure, another replica): the metadata not showing it yet means "not yet".
// The channel is remembered even when the shape conflicts, because the topic exists and can carry
// events.
func (b *Backend) reconcile(ctx context.Context, ref channel.Ref, topic string, partitions int32, rf int16, configs map[string]*string) error {
	d, err := b.awaitTopic(ctx, topic, 0)
	if err != nil {
		return err
	}
	b.remember(ref, topic)

	var problems []error
	have := d.partitions
	switch {
	case partitions > have:
		resp, err := b.admin.UpdatePartitions(ctx, int(partitions), topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("kafka: raise partitions of %s to %d: %w: %w", topic, partitions, channel.ErrUnavailable, err)
		}
		b.log.Info("kafka topic partitions raised", "channel", ref.String(), "topic", topic, "from", have, "to", partitions)
		if _, err := b.awaitTopic(ctx, topic, partitions); err != nil {
			return err
		}
		b.refreshMetadata(topic)
	case partitions < have:
		problems = append(problems, fmt.Errorf("%w: %s has %d partitions, spec asks for %d (partitions cannot be removed)",
			ErrSpecConflict, topic, have, partitions))
	}
	if haveRF := d.replicas; haveRF != rf {
		problems = append(problems, fmt.Errorf("%w: %s has replication factor %d, spec asks for %d (change it with a partition reassignment)",
			ErrSpecConflict, topic, haveRF, rf))
	}
	if len(configs) > 0 {
		alter := make([]kadm.AlterConfig, 0, len(configs))
		for k, v := range configs {
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: v})
		}
		resps, err := b.admin.AlterTopicConfigs(ctx, alter, topic)
		if err == nil {
			for _, r := range resps {
				if r.Err != nil {
					err = r.Err
				}
			}
		}
		if err != nil {
			return fmt.Errorf("kafka: set configs of %s: %w: %w", topic, channel.ErrUnavailable, err)
		}
	}
	return errors.Join(problems...)
}

// refreshMetadata makes the producer and this backend's subscriptions of topic learn its partitions
// now rather than at their next periodic refresh, so that new partitions get events and consumers at
// once. Other gateway replicas learn of them within their metadata max age. It does not block.
func (b *Backend) refreshMetadata(topic string) {
	b.client.ForceMetadataRefresh()
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.topic == topic {
			s.cl.ForceMetadataRefresh()
		}
	}
	for _, f := range b.fanouts {
		if f.reads(topic) {
			f.cl.ForceMetadataRefresh()
		}
	}
}

// isPermanent reports whether err is the broker refusing the topic's spec, which retrying cannot
// fix: an invalid partition count, replica assignment, config or name, or a create-topic policy.
// Any other error may pass, so the caller treats it as the broker being unavailable and retries: an
// authentication or authorization failure (an ACL is granted), and INVALID_REPLICATION_FACTOR, which
// a cluster answers both for a factor above its size and while brokers are down or fenced (a
// rolling restart, a broker too busy to heartbeat its controller).
func isPermanent(err error) bool {
	for _, spec := range []error{kerr.InvalidPartitions, kerr.InvalidReplicaAssignment,
		kerr.InvalidConfig, kerr.InvalidTopicException, kerr.PolicyViolation} {
		if errors.Is(err, spec) {
			return true
		}
	}
	return false
}

// learnBrokers records the brokers a metadata answer lists, for the seeds of clients made later.
func (b *Backend) learnBrokers(resp *kmsg.MetadataResponse) {
	if len(resp.Brokers) == 0 {
		return
	}
	known := make([]string, 0, len(resp.Brokers))
	for _, br := range resp.Brokers {
		known = append(known, net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port))))
	}
	slices.Sort(known)
	b.mu.Lock()
	b.known = known
	b.mu.Unlock()
}

// seeds returns the configured brokers followed by the known ones not among them.
func (b *Backend) seeds() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	seeds := slices.Clone(b.cfg.Brokers)
	for _, k := range b.known {
		if !slices.Contains(seeds, k) {
			seeds = append(seeds, k)
		}
	}
	return seeds
}

func (b *Backend) remember(ref channel.Ref, topic string) {
	b.mu.Lock()
	b.channels[ref] = topic
	b.mu.Unlock()
}

func (b *Backend) topicOf(ref channel.Ref) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	topic, ok := b.channels[ref]
	if !ok {
		return "", fmt.Errorf("kafka: channel %s: %w", ref, channel.ErrNotFound)
	}
	return topic, nil
}

// Remove forgets the channel; its topic is deleted only when DeleteTopicsOnRemove is set. Removing an
// unknown channel is not an error.
func (b *Backend) Remove(ctx context.Context, ref channel.Ref) error {
	b.mu.Lock()
	topic, ok := b.channels[ref]
	delete(b.channels, ref)
	b.mu.Unlock()
	if !ok || !b.cfg.DeleteTopicsOnRemove {
		return nil
	}
	resp, err := b.admin.DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka: delete topic %s: %w: %w", topic, channel.ErrUnavailable, err)
	}
	b.log.Info("kafka topic deleted", "channel", ref.String(), "topic", topic)
	return nil
}

// DeleteGroup deletes the consumer group of g. A group that does not exist is not an error. It fails
// (wrapping channel.ErrUnavailable) while the group still has members.
func (b *Backend) DeleteGroup(ctx context.Context, g channel.Group) error {
	name, err := b.GroupName(g)
	if err != nil {
		return err
	}
	resp, err := b.admin.DeleteGroup(ctx, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("kafka: delete group %s: %w: %w", name, channel.ErrUnavailable, err)
	}
	return nil
}

// Publish writes events to the channel's topic in the CloudEvents Kafka binding and returns once the
// brokers acknowledged all of them (acks=all). It blocks until then, until ProduceTimeout has passed
// or until ctx is done; on any failure it returns an error wrapping channel.ErrUnavailable, and some
// of the events may have been stored (the caller retries: at-least-once). An unknown channel wraps
// channel.ErrNotFound. Safe for concurrent use.
func (b *Backend) Publish(ctx context.Context, ref channel.Ref, events []*event.Event) error {
	topic, err := b.topicOf(ref)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	records := make([]*kgo.Record, len(events))
	for i, e := range events {
		key, headers, value := event.ToKafka(e)
		r := &kgo.Record{Topic: topic, Key: key, Value: value}
		if len(headers) > 0 {
			r.Headers = make([]kgo.RecordHeader, len(headers))
			for j, h := range headers {
				r.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		records[i] = r
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.ProduceTimeout)
	defer cancel()
	// Produce asynchronously and wait for the promises or the deadline. An idempotent producer may not
	// fail a batch it has already sent (the broker may have written it), so a ProduceSync can outlive
	// its context while a broker is unreachable; waiting here instead returns on time, and the records
	// still in flight are delivered or failed later by the client (the caller retries: duplicates at
	// worst). The channel holds every promise's answer, so no promise blocks after Publish returns.
	results := make(chan error, len(records))
	for _, r := range records {
		b.client.Produce(ctx, r, func(_ *kgo.Record, err error) { results <- err })
	}
	var first error
	for range records {
		select {
		case err := <-results:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			first = ctx.Err()
		}
		if first != nil {
			return fmt.Errorf("kafka: publish %d events to %s: %w: %w", len(events), topic, channel.ErrUnavailable, first)
		}
	}
	return nil
}

// Ready reports whether a broker answers a metadata request. It waits at most a few seconds (less when
// ctx says so); its error wraps channel.ErrUnavailable.
func (b *Backend) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := b.client.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: no broker answers: %w: %w", channel.ErrUnavailable, err)
	}
	return nil
}

// Lag returns, for every group of an open subscription, how far its committed offset is behind the
// end of each partition. A partition with no commit yet counts from the start of the partition. It
// blocks on admin requests until done or ctx is done and returns what it could learn; groups the
// broker cannot describe are left out. Safe for concurrent use.
func (b *Backend) Lag(ctx context.Context) []channel.LagSample {
	b.mu.Lock()
	groups := make(map[string]channel.Group, len(b.subs)+len(b.members))
	for s := range b.subs {
		groups[s.groupName] = s.group
	}
	for m := range b.members {
		groups[m.groupName] = m.group
	}
	b.mu.Unlock()
	if len(groups) == 0 {
		return nil
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	lags, err := b.admin.Lag(ctx, names...)
	if err != nil && len(lags) == 0 {
		b.log.Warn("kafka lag unavailable", "err", err)
		return nil
	}
	var out []channel.LagSample
	for name, g := range groups {
		dl, ok := lags[name]
		if !ok || dl.DescribeErr != nil || dl.FetchErr != nil {
			continue
		}
		topic, err := b.TopicName(g.Channel)
		if err != nil {
			continue
		}
		for _, l := range dl.Lag.Sorted() {
			if l.Topic != topic || l.Err != nil || l.Lag < 0 {
				continue
			}
			out = append(out, channel.LagSample{Group: g, Partition: l.Partition, Lag: l.Lag})
		}
	}
	return out
}

// UndecodableRecords returns how many consumed records were not CloudEvents (FromKafka rejected them);
// each was logged, skipped and marked done. Safe for concurrent use.
func (b *Backend) UndecodableRecords() int64 { return b.undecodable.Load() }

// Close closes the shared client. Subscriptions still open are closed first (each waits for its
// handlers). Calling Close twice is a no-op.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]channel.Subscription, 0, len(b.subs)+len(b.members))
	for m := range b.members {
		subs = append(subs, m) // before subscriptions: a detached member closes its own
	}
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	b.client.Close()
	return errors.Join(errs...)
}
