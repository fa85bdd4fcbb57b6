package pubsub

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	ps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// Receive's retry bounds after it failed (the subscription deleted, permission revoked, …).
const (
	receiveRetryMin = 500 * time.Millisecond
	receiveRetryMax = 30 * time.Second
)

// group is one Pub/Sub subscription received by this Backend, shared by its local members. Fields
// after mu are guarded by it.
type group struct {
	b     *Backend
	ref   channel.Ref
	topic string
	name  string // projects/P/subscriptions/S
	log   *slog.Logger

	cancel context.CancelFunc // stops Receive
	done   chan struct{}      // closed once Receive has returned for good
	wg     sync.WaitGroup     // the rebalancer and the claims

	mu          sync.Mutex
	parts       int32
	members     []*member
	claims      map[int32]*claim
	changed     chan struct{} // closed and replaced whenever claims change
	stopping    bool          // the last member left: no more claims
	rebalancing bool          // a rebalancer goroutine is running
	dirty       bool          // membership or partitions changed while it ran: run again
}

type member struct {
	sub      *subscription
	h        channel.ClaimHandler
	claims   int  // claims of this member not yet finished
	departed bool // Close was called
	gone     chan struct{}
}

// Subscribe joins group g as a new member. Before it returns, g's Pub/Sub subscription exists (it is
// created, with message ordering on, when missing), so every event published afterwards reaches the
// group; a subscription that exists keeps its position. A newly created subscription of an Earliest
// group is sought back over the topic's message retention, when it has one (see the package comment).
// Claims are assigned asynchronously. Claim contexts are not derived from ctx, which only bounds the
// call. Errors: channel.ErrNotFound for an unknown channel, channel.ErrUnavailable when Pub/Sub cannot
// be reached or the Backend is closed.
func (b *Backend) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	if h == nil {
		return nil, errors.New("pubsub: subscribe: nil claim handler")
	}
	if g.Name == "" {
		return nil, errors.New("pubsub: subscribe: empty group name")
	}
	cs, err := b.lookup(g.Channel)
	if err != nil {
		return nil, err
	}
	name, err := b.SubscriptionName(g)
	if err != nil {
		return nil, err
	}
	c, err := b.clientFor(ctx)
	if err != nil {
		return nil, err
	}
	if err := b.createSubscription(ctx, c, cs, name, g.Start); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("pubsub: subscribe %s: backend closed: %w", name, channel.ErrUnavailable)
	}
	grp := b.groups[name]
	if grp == nil || grp.isStopping() {
		grp = b.startGroup(c, cs, name)
		b.groups[name] = grp
	}
	return grp.join(h), nil
}

// createSubscription creates the Pub/Sub subscription name on cs's topic unless it exists.
func (b *Backend) createSubscription(ctx context.Context, c *ps.Client, cs *chanState, name string, start channel.StartOffset) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.AdminTimeout)
	defer cancel()
	_, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  name,
		Topic:                 cs.topic,
		AckDeadlineSeconds:    int32(b.cfg.AckDeadline / time.Second),
		EnableMessageOrdering: true,
	})
	switch status.Code(err) {
	case codes.OK:
	case codes.AlreadyExists:
		return b.checkSubscription(ctx, c, cs, name)
	default:
		return adminErr("create subscription "+name+" on "+cs.topic, err)
	}
	b.log.Info("pubsub subscription created", "channel", cs.ref.String(), "subscription", name)
	if start != channel.Earliest || cs.retention <= 0 {
		return nil
	}
	// Reach back over what the topic retains. The subscription exists already, so a failure here
	// loses nothing published from now on; it is reported and the group starts at Latest.
	_, err = c.SubscriptionAdminClient.Seek(ctx, &pubsubpb.SeekRequest{
		Subscription: name,
		Target:       &pubsubpb.SeekRequest_Time{Time: timestamppb.New(time.Now().Add(-cs.retention))},
	})
	if err != nil {
		b.log.Warn("pubsub subscription not sought back to the earliest retained message; it starts at the latest",
			"subscription", name, "err", err)
	}
	return nil
}

// ErrSubscriptionConflict is returned by Subscribe when the group's Pub/Sub subscription exists but is
// attached to another topic (or to a deleted one): eventgate does not delete it, since that would drop
// what it holds. Delete it, or change pubsub.subscriptionTemplate.
var ErrSubscriptionConflict = errors.New("pubsub: subscription is attached to another topic")

// checkSubscription checks an existing subscription: on the channel's topic (else
// ErrSubscriptionConflict), and with message ordering (else a warning: Pub/Sub cannot turn it on
// later, and the subscription then keeps no order per key).
func (b *Backend) checkSubscription(ctx context.Context, c *ps.Client, cs *chanState, name string) error {
	sub, err := c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		return adminErr("get subscription "+name, err)
	}
	if sub.GetTopic() != cs.topic {
		return fmt.Errorf("%w: %s is on %q, channel %s is %s", ErrSubscriptionConflict, name, sub.GetTopic(), cs.ref, cs.topic)
	}
	if !sub.GetEnableMessageOrdering() {
		b.log.Warn("pubsub subscription exists without message ordering; ordered delivery per key is not guaranteed",
			"subscription", name)
	}
	return nil
}

// startGroup starts receiving subscription name. b.mu held.
func (b *Backend) startGroup(c *ps.Client, cs *chanState, name string) *group {
	ctx, cancel := context.WithCancel(context.Background())
	g := &group{
		b: b, ref: cs.ref, topic: cs.topic, name: name,
		log:     b.log.With("channel", cs.ref.String(), "subscription", name),
		cancel:  cancel,
		done:    make(chan struct{}),
		parts:   cs.partitions,
		claims:  make(map[int32]*claim),
		changed: make(chan struct{}),
	}
	s := c.Subscriber(name)
	s.ReceiveSettings.MaxOutstandingMessages = b.cfg.MaxOutstandingMessages
	s.ReceiveSettings.MaxOutstandingBytes = b.cfg.MaxOutstandingBytes
	s.ReceiveSettings.MaxExtension = b.cfg.MaxExtension
	// Each extension is at most the ack deadline, so that a gateway that dies (kill -9) holds its
	// messages no longer than that before Pub/Sub delivers them again.
	s.ReceiveSettings.MaxDurationPerAckExtension = b.cfg.AckDeadline
	s.ReceiveSettings.NumGoroutines = 1
	// ShutdownOptions stay nil: the graceful shutdown, which stops each stream only after its final
	// acks are sent. A timed one cancels the streams first and may drop the last acks (they come
	// again after the ack deadline). Every message is settled by the claims and onMessage, so the wait
	// is short.
	go g.receive(ctx, s)
	return g
}

// receive runs Receive until ctx is done, starting it again (with backoff) when it fails.
func (g *group) receive(ctx context.Context, s *ps.Subscriber) {
	defer close(g.done)
	wait := receiveRetryMin
	for {
		err := s.Receive(ctx, g.onMessage)
		if ctx.Err() != nil {
			return
		}
		g.log.Warn("pubsub receive failed; retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, receiveRetryMax)
	}
}

// onMessage hands one received message to the claim of its partition, waiting for one to exist. A
// message that is not a CloudEvent is logged, counted and acked: it can never be delivered.
func (g *group) onMessage(ctx context.Context, m *ps.Message) {
	e, err := fromMessage(m.Data, m.Attributes)
	if err != nil {
		g.b.undecodable.Add(1)
		g.log.Warn("pubsub message is not a CloudEvent; skipped", "message", m.ID, "err", err)
		m.Ack()
		return
	}
	for {
		g.mu.Lock()
		c := g.claims[partitionOf(e, g.parts)]
		changed := g.changed
		g.mu.Unlock()
		if c != nil && c.offer(ctx, m, e) {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			m.Nack()
			return
		}
	}
}

// partitionOf is e's lane among n: by its partitionkey, else by its id.
func partitionOf(e *event.Event, n int32) int32 {
	key := e.Extension(event.PartitionKeyExtension)
	if key == "" {
		key = e.ID
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int32(h.Sum32() % uint32(max(n, 1)))
}

func (g *group) isStopping() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopping
}

// join adds a member with handler h and rebalances.
func (g *group) join(h channel.ClaimHandler) *subscription {
	s := &subscription{g: g, closed: make(chan struct{})}
	m := &member{sub: s, h: h, gone: make(chan struct{})}
	s.m = m
	g.mu.Lock()
	g.members = append(g.members, m)
	g.rebalanceLocked()
	g.mu.Unlock()
	return s
}

// subscriptions returns the subscriptions of the group's members.
func (g *group) subscriptions() []*subscription {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*subscription, len(g.members))
	for i, m := range g.members {
		out[i] = m.sub
	}
	return out
}

// setPartitions changes the number of lanes and rebalances.
func (g *group) setPartitions(n int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.parts = n
	g.rebalanceLocked()
}

// notifyLocked wakes the callbacks waiting for a claim. g.mu held.
func (g *group) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// rebalanceLocked makes sure a rebalancer runs after the current change. g.mu held.
func (g *group) rebalanceLocked() {
	if g.stopping {
		return
	}
	if g.rebalancing {
		g.dirty = true
		return
	}
	g.rebalancing = true
	g.wg.Add(1)
	go g.rebalancer()
}

// rebalancer runs rebalances until membership and partitions stop changing.
func (g *group) rebalancer() {
	defer g.wg.Done()
	for {
		g.rebalanceOnce()
		g.mu.Lock()
		if !g.dirty || g.stopping {
			g.rebalancing = false
			g.mu.Unlock()
			return
		}
		g.dirty = false
		g.mu.Unlock()
	}
}

// assignment is the round-robin owner of each partition (nil: no members). g.mu held.
func (g *group) assignmentLocked() []*member {
	owners := make([]*member, g.parts)
	if len(g.members) == 0 {
		return owners
	}
	for p := range owners {
		owners[p] = g.members[p%len(g.members)]
	}
	return owners
}

// rebalanceOnce revokes the claims whose owner changed (or whose partition is gone), waits for them
// to finish, then starts claims for unowned partitions.
func (g *group) rebalanceOnce() {
	g.mu.Lock()
	owners := g.assignmentLocked()
	var revoked []*claim
	for p, c := range g.claims {
		if int(p) >= len(owners) || owners[p] != c.owner {
			c.cancel()
			revoked = append(revoked, c)
		}
	}
	g.mu.Unlock()

	for _, c := range revoked {
		<-c.finished
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return
	}
	owners = g.assignmentLocked()
	started := 0
	for p, m := range owners {
		if m == nil || g.claims[int32(p)] != nil {
			continue
		}
		g.startClaimLocked(m, int32(p))
		started++
	}
	if started > 0 {
		g.notifyLocked()
	}
	if len(revoked) > 0 || started > 0 {
		g.log.Debug("group rebalanced", "members", len(g.members), "revoked", len(revoked), "assigned", started)
	}
}

// subscription is one member's membership; Close ends it.
type subscription struct {
	g      *group
	m      *member
	once   sync.Once
	closed chan struct{}
}

// Close leaves the group: it revokes this member's claims and waits for their handlers to return
// (what they did not finish is nacked, so Pub/Sub redelivers it), hands the partitions to the
// remaining members, and, when it was the last local member, stops receiving and waits until the
// client has settled every message. The Pub/Sub subscription is kept: subscribing again resumes it.
// It blocks until then; calling it again waits the same way and returns nil.
func (s *subscription) Close() error {
	s.once.Do(func() {
		defer close(s.closed)
		g, m := s.g, s.m
		g.mu.Lock()
		m.departed = true
		for i, x := range g.members {
			if x == m {
				g.members = append(g.members[:i:i], g.members[i+1:]...)
				break
			}
		}
		for _, c := range g.claims {
			if c.owner == m {
				c.cancel()
			}
		}
		if m.claims == 0 {
			close(m.gone)
		}
		last := len(g.members) == 0
		if last {
			g.stopping = true
		} else {
			g.rebalanceLocked()
		}
		g.mu.Unlock()
		<-m.gone
		if last {
			g.stop()
		}
	})
	<-s.closed
	return nil
}

// stop ends Receive once the last member left and forgets the group.
func (g *group) stop() {
	g.cancel()
	<-g.done
	g.wg.Wait()
	g.b.mu.Lock()
	if g.b.groups[g.name] == g {
		delete(g.b.groups, g.name)
	}
	g.b.mu.Unlock()
}
