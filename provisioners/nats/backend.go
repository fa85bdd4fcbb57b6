// Package nats is the NATS JetStream channel provisioner: one stream per channel, whose subjects are
// the channel's partitions (PREFIX.p0 … PREFIX.pN-1, an event's partition chosen by hashing its
// partitionkey), and per subscription one durable pull consumer per partition, with explicit acks.
// Events are stored in the CloudEvents binary mode on NATS headers (event.ToNATS), each publish
// carrying the event's identity as Nats-Msg-Id so that the stream drops a repeated publish.
//
// A partition's consumer is JetStream's record of the group's position there, like a Kafka committed
// offset: a claim acknowledges an event only once it and every earlier event the claim handed out are
// done (channel.OffsetTracker), sends progress acknowledgements for what it holds so the server does
// not deliver it again meanwhile, and at revoke negatively acknowledges what is not yet acknowledged,
// so the next owner gets it at once. Members of one group in one process split the partitions round
// robin. Across processes, an unordered group's gateways compete for each partition's events; an
// ordered group's partitions have one owner at a time, agreed through leases in a key-value bucket,
// and a gateway that takes a partition over resets its consumer to the acknowledgement floor
// (lease.go).
package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config/nametemplate"
)

var (
	_ channel.Provisioner = (*Backend)(nil)
	_ channel.LagReporter = (*Backend)(nil)
)

// partitionsKey is the stream metadata key holding the channel's partition count, so that every
// gateway publishing to the stream spreads events over the same subjects.
const partitionsKey = "eventgate.dev/partitions"

// Backend is the NATS JetStream provisioner. It is safe for concurrent use. Create it with New and
// release it with Close after every Subscription is closed.
type Backend struct {
	cfg         Config
	tls         *tls.Config
	log         *slog.Logger
	streamTpl   *nametemplate.Template
	subjectTpl  *nametemplate.Template
	consumerTpl *nametemplate.Template

	connMu sync.Mutex
	nc     *nats.Conn // nil until first use
	js     jetstream.JetStream

	mu       sync.Mutex
	channels map[channel.Ref]*chanState
	groups   map[groupKey]*group
	closed   bool

	leaseMu sync.Mutex
	leaseKV jetstream.KeyValue // the lease bucket, once made (lease.go)

	wg          sync.WaitGroup // claims, rebalancers and leasers
	rr          atomic.Uint64  // round robin over partitions for events without a partitionkey
	undecodable atomic.Int64
}

// chanState is an ensured channel. partitions is guarded by Backend.mu.
type chanState struct {
	ref        channel.Ref
	stream     string
	subject    string // prefix; partition i is subject + ".p" + i
	partitions int32
}

func (cs *chanState) partitionSubject(p int32) string {
	return cs.subject + ".p" + strconv.Itoa(int(p))
}

// New returns a Backend on cfg; start from DefaultConfig. It validates cfg and reads its TLS files;
// every problem wraps ErrInvalidConfig. It does not contact the servers: the connection is made on
// first use and kept up (reconnecting) until Close.
func New(cfg Config, log *slog.Logger) (*Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	tc, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	b := &Backend{cfg: cfg, tls: tc, log: log, channels: map[channel.Ref]*chanState{}, groups: map[groupKey]*group{}}
	b.streamTpl, _ = parseNameTemplate("streamTemplate", cfg.StreamTemplate)
	b.subjectTpl, _ = parseNameTemplate("subjectTemplate", cfg.SubjectTemplate)
	b.consumerTpl, _ = parseNameTemplate("consumerTemplate", cfg.ConsumerTemplate)
	return b, nil
}

// StreamName returns the stream that holds channel ch.
func (b *Backend) StreamName(ch channel.Ref) (string, error) {
	name, err := b.streamTpl.Render(nametemplate.Data{Namespace: ch.Namespace, Name: ch.Name, Channel: ch.Name})
	if err != nil {
		return "", fmt.Errorf("nats: stream name for channel %s: %w", ch, err)
	}
	return name, nil
}

func (b *Backend) subjectOf(ch channel.Ref) (string, error) {
	name, err := b.subjectTpl.Render(nametemplate.Data{Namespace: ch.Namespace, Name: ch.Name, Channel: ch.Name})
	if err != nil {
		return "", fmt.Errorf("nats: subject for channel %s: %w", ch, err)
	}
	return name, nil
}

// consumerBase returns the prefix of group g's consumer names (partition i's is BASE-pI).
func (b *Backend) consumerBase(g channel.Group) (string, error) {
	name, err := b.consumerTpl.Render(nametemplate.Data{Namespace: g.Channel.Namespace, Name: g.Name, Channel: g.Channel.Name})
	if err != nil {
		return "", fmt.Errorf("nats: consumer name for %s/%s: %w", g.Channel.Namespace, g.Name, err)
	}
	return name, nil
}

func consumerName(base string, p int32) string { return base + "-p" + strconv.Itoa(int(p)) }

// conn returns the connection, making it on first use. A server that cannot be reached is not an
// error here (the connection keeps retrying in the background); connected says whether it is up.
func (b *Backend) conn() (*nats.Conn, jetstream.JetStream, error) {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if b.nc != nil {
		return b.nc, b.js, nil
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, nil, fmt.Errorf("nats: backend closed: %w", channel.ErrUnavailable)
	}
	servers := strings.Join(b.cfg.Servers, ",")
	opts := []nats.Option{
		nats.Name("eventgate"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() { // Close, not a lost connection
				return
			}
			b.log.Warn("nats disconnected", "servers", servers, "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
	switch c := b.cfg; {
	case c.Username != "":
		opts = append(opts, nats.UserInfo(c.Username, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, nil, fmt.Errorf("nats: nkeySeedFile %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if b.tls != nil {
		opts = append(opts, nats.Secure(b.tls.Clone()))
	}
	nc, err := nats.Connect(servers, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connect to %s: %w: %w", servers, channel.ErrUnavailable, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(b.cfg.PublishTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return nc, js, nil
}

// connected returns the JetStream context when the connection is up, else an error wrapping
// channel.ErrUnavailable that says why.
func (b *Backend) connected() (*nats.Conn, jetstream.JetStream, error) {
	nc, js, err := b.conn()
	if err != nil {
		return nil, nil, err
	}
	if !nc.IsConnected() {
		reason := nc.Status().String()
		if err := nc.LastError(); err != nil {
			reason = err.Error()
		}
		return nil, nil, fmt.Errorf("nats: not connected to %s (%s): %w", strings.Join(b.cfg.Servers, ","), reason, channel.ErrUnavailable)
	}
	return nc, js, nil
}

// classify wraps a JetStream error: an API error that is the request's fault (a bad configuration)
// as it is, anything else (timeouts, no responders, a lost connection) as channel.ErrUnavailable.
func classify(what string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500 {
		return fmt.Errorf("nats: %s: %w", what, err)
	}
	return fmt.Errorf("nats: %s: %w: %w", what, channel.ErrUnavailable, err)
}

// Ensure creates the channel's stream, or brings an existing one to spec: more partitions are
// recorded (fewer are kept as they are: a partition's subject cannot be taken away from its
// consumers), the retention (MaxAge), replicas and duplicate window are set. A server that cannot be
// reached, or does not answer, is an error wrapping channel.ErrUnavailable. It blocks on JetStream API
// requests, each bounded by RequestTimeout, until done or ctx is done. Safe to call repeatedly.
func (b *Backend) Ensure(ctx context.Context, spec channel.Spec) error {
	stream, err := b.StreamName(spec.Ref)
	if err != nil {
		return err
	}
	subject, err := b.subjectOf(spec.Ref)
	if err != nil {
		return err
	}
	_, js, err := b.connected()
	if err != nil {
		return fmt.Errorf("nats: ensure stream %s: %w", stream, err)
	}
	want := spec.Partitions
	if want <= 0 {
		want = b.cfg.DefaultPartitions
	}
	replicas := int(spec.ReplicationFactor)
	if replicas <= 0 {
		replicas = b.cfg.Replicas
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	s, err := js.Stream(rctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		sc := jetstream.StreamConfig{
			Name:       stream,
			Subjects:   []string{subject + ".*"},
			Retention:  jetstream.LimitsPolicy,
			Storage:    jetstream.FileStorage,
			Replicas:   replicas,
			MaxAge:     spec.Retention,
			Duplicates: b.cfg.DuplicateWindow,
			Metadata:   map[string]string{partitionsKey: strconv.Itoa(int(want))},
		}
		if b.cfg.Storage == "memory" {
			sc.Storage = jetstream.MemoryStorage
		}
		if _, err := js.CreateStream(rctx, sc); err != nil {
			if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return classify("create stream "+stream, err)
			}
			// Created meanwhile by another gateway: reconcile it on the next Ensure, use it now.
			if s, err = js.Stream(rctx, stream); err != nil {
				return classify("stream "+stream, err)
			}
			want = max(want, partitionsOf(s.CachedInfo().Config.Metadata))
		} else {
			b.log.Info("nats stream created", "channel", spec.Ref.String(), "stream", stream, "partitions", want)
		}
	case err != nil:
		return classify("stream "+stream, err)
	default:
		sc := s.CachedInfo().Config
		have := partitionsOf(sc.Metadata)
		want = max(want, have)
		changed := have != want || sc.Replicas != replicas || sc.MaxAge != spec.Retention ||
			sc.Duplicates != b.cfg.DuplicateWindow || len(sc.Subjects) != 1 || sc.Subjects[0] != subject+".*"
		if changed {
			md := map[string]string{}
			for k, v := range sc.Metadata {
				md[k] = v
			}
			md[partitionsKey] = strconv.Itoa(int(want))
			sc.Metadata = md
			sc.Subjects = []string{subject + ".*"}
			sc.Replicas = replicas
			sc.MaxAge = spec.Retention
			sc.Duplicates = b.cfg.DuplicateWindow
			if _, err := js.UpdateStream(rctx, sc); err != nil {
				return classify("update stream "+stream, err)
			}
			b.log.Info("nats stream updated", "channel", spec.Ref.String(), "stream", stream, "partitions", want)
		}
	}
	b.remember(spec.Ref, stream, subject, want)
	return nil
}

// partitionsOf reads the partition count from stream metadata; 0 when absent or malformed.
func partitionsOf(md map[string]string) int32 {
	n, err := strconv.ParseInt(md[partitionsKey], 10, 32)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// remember records an ensured channel; when it gained partitions, its groups rebalance so that the
// new partitions are claimed.
func (b *Backend) remember(ref channel.Ref, stream, subject string, partitions int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cs := b.channels[ref]
	if cs == nil || cs.stream != stream || cs.subject != subject {
		b.channels[ref] = &chanState{ref: ref, stream: stream, subject: subject, partitions: partitions}
		return
	}
	if partitions > cs.partitions {
		cs.partitions = partitions
		for _, g := range b.groups {
			if g.cs == cs {
				b.rebalanceLocked(g)
			}
		}
	}
}

// lookup returns the ensured channel ref, or an error wrapping channel.ErrNotFound.
func (b *Backend) lookup(ref channel.Ref) (*chanState, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("nats: backend closed: %w", channel.ErrUnavailable)
	}
	cs := b.channels[ref]
	if cs == nil {
		return nil, fmt.Errorf("nats: channel %s: %w", ref, channel.ErrNotFound)
	}
	return cs, nil
}

// Remove forgets the channel; with DeleteStreamsOnRemove it also deletes its stream and events.
func (b *Backend) Remove(ctx context.Context, ref channel.Ref) error {
	b.mu.Lock()
	cs := b.channels[ref]
	delete(b.channels, ref)
	b.mu.Unlock()
	if cs == nil || !b.cfg.DeleteStreamsOnRemove {
		return nil
	}
	_, js, err := b.connected()
	if err != nil {
		return fmt.Errorf("nats: delete stream %s: %w", cs.stream, err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if err := js.DeleteStream(rctx, cs.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return classify("delete stream "+cs.stream, err)
	}
	b.log.Info("nats stream deleted", "channel", ref.String(), "stream", cs.stream)
	return nil
}

// Ready reports whether events can be stored now: nil while the backend has no channel (a gateway
// that uses no NATS channel does not depend on NATS), else nil only when the connection is up and
// JetStream answers. It blocks until ctx is done at most.
func (b *Backend) Ready(ctx context.Context) error {
	b.mu.Lock()
	n := len(b.channels)
	b.mu.Unlock()
	if n == 0 {
		return nil
	}
	_, js, err := b.connected()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if _, err := js.AccountInfo(rctx); err != nil {
		return fmt.Errorf("nats: JetStream does not answer: %w: %w", channel.ErrUnavailable, err)
	}
	return nil
}

// UndecodableRecords returns how many stored messages could not be decoded as events (they are
// acknowledged and skipped, with a warning).
func (b *Backend) UndecodableRecords() int64 { return b.undecodable.Load() }

// Close revokes any claims still running, waits for them, and closes the connection. Call it after
// every Subscription is closed.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, g := range b.groups {
		for _, c := range g.claims {
			c.cancel()
		}
		if g.leaser != nil {
			g.leaser.detachLocked()
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if b.nc != nil {
		if b.nc.IsConnected() {
			if err := b.nc.FlushTimeout(b.cfg.RequestTimeout); err != nil {
				b.log.Warn("nats flush at close", "err", err)
			}
		}
		b.nc.Close()
	}
	return nil
}
