package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/gateway/channel"
)

type groupKey struct {
	ch   channel.Ref
	name string
}

// group is one consumer group on one channel, as this process knows it. Fields after setup are
// guarded by Backend.mu.
type group struct {
	key   groupKey
	cs    *chanState
	base  string        // consumer name prefix
	setup chan struct{} // a one-slot lock serialising consumer creation

	positioned  int32 // partitions whose consumers Subscribe made sure exist
	members     []*member
	claims      map[int32]*claim
	deleted     bool
	rebalancing bool // a rebalancer goroutine is running
	dirty       bool // membership or partitions changed while it ran: run again

	// ordered is the first member's channel.Group.Ordered, kept while the group has members here:
	// its partitions are then claimed only while leaser holds their leases (lease.go).
	ordered bool
	leaser  *leaser
}

type member struct {
	h        channel.ClaimHandler
	claims   int  // claims of this member not yet finished
	departed bool // Close was called
	gone     chan struct{}
}

// Subscribe joins group g. Before it returns, the group's durable consumers exist, one per partition:
// a group that had none gets them created at g.Start (channel.Latest: DeliverNew, so every event the
// stream acknowledges after Subscribe returns is delivered; channel.Earliest: DeliverAll). Partition
// 0's consumer is created last and marks the group as positioned: consumers missing while it exists
// belong to partitions added later and are read from their start. Claims are assigned
// asynchronously, round robin over this process's members of the group. Errors: channel.ErrNotFound
// for a channel not ensured, channel.ErrUnavailable when the server cannot be reached.
func (b *Backend) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	if h == nil {
		return nil, errors.New("nats: subscribe: nil claim handler")
	}
	if g.Name == "" {
		return nil, errors.New("nats: subscribe: empty group name")
	}
	cs, err := b.lookup(g.Channel)
	if err != nil {
		return nil, err
	}
	base, err := b.consumerBase(g)
	if err != nil {
		return nil, err
	}
	key := groupKey{ch: g.Channel, name: g.Name}
	b.mu.Lock()
	grp := b.groups[key]
	if grp == nil || grp.cs != cs {
		grp = &group{key: key, cs: cs, base: base, setup: make(chan struct{}, 1), claims: map[int32]*claim{}}
		b.groups[key] = grp
	}
	parts := cs.partitions
	b.mu.Unlock()

	select {
	case grp.setup <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("nats: subscribe %s: %w: %w", g.Name, channel.ErrUnavailable, ctx.Err())
	}
	err = b.ensureConsumers(ctx, cs, base, parts, g.Start)
	<-grp.setup
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	grp.positioned = max(grp.positioned, parts)
	b.mu.Unlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("nats: backend closed: %w", channel.ErrUnavailable)
	}
	if b.groups[key] != grp { // deleted meanwhile
		b.groups[key] = grp
		grp.deleted = false
	}
	m := &member{h: h, gone: make(chan struct{})}
	if len(grp.members) == 0 {
		grp.ordered = g.Ordered
	}
	grp.members = append(grp.members, m)
	if grp.ordered && grp.leaser == nil {
		b.startLeaserLocked(grp)
	}
	b.rebalanceLocked(grp)
	return &subscription{b: b, g: grp, m: m}, nil
}

// ensureConsumers makes sure the group's consumers of partitions 0..parts-1 exist (see Subscribe).
func (b *Backend) ensureConsumers(ctx context.Context, cs *chanState, base string, parts int32, start channel.StartOffset) error {
	_, js, err := b.connected()
	if err != nil {
		return fmt.Errorf("nats: subscribe %s: %w", base, err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	policy := jetstream.DeliverNewPolicy
	if start == channel.Earliest {
		policy = jetstream.DeliverAllPolicy
	}
	_, err = js.Consumer(rctx, cs.stream, consumerName(base, 0))
	switch {
	case err == nil:
		policy = jetstream.DeliverAllPolicy // positioned: only later partitions can be missing
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return classify("consumer "+consumerName(base, 0)+" of "+cs.stream, err)
	}
	for p := parts - 1; p >= 0; p-- {
		if err := b.createConsumer(rctx, js, cs, base, p, policy); err != nil {
			return err
		}
	}
	return nil
}

// consumerConfig is the durable pull consumer of partition p.
func (b *Backend) consumerConfig(cs *chanState, base string, p int32, policy jetstream.DeliverPolicy) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       consumerName(base, p),
		FilterSubject: cs.partitionSubject(p),
		DeliverPolicy: policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    b.cfg.MaxDeliver,
		MaxAckPending: b.cfg.MaxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
}

// createConsumer creates partition p's consumer unless it exists. An existing one keeps its start
// and position; its AckWait, MaxDeliver and MaxAckPending are brought to the configuration's.
func (b *Backend) createConsumer(ctx context.Context, js jetstream.JetStream, cs *chanState, base string, p int32, policy jetstream.DeliverPolicy) error {
	name := consumerName(base, p)
	if cons, err := js.Consumer(ctx, cs.stream, name); err == nil {
		cc := cons.CachedInfo().Config
		if cc.AckWait == b.cfg.AckWait && cc.MaxDeliver == b.cfg.MaxDeliver && cc.MaxAckPending == b.cfg.MaxAckPending {
			return nil
		}
		cc.AckWait, cc.MaxDeliver, cc.MaxAckPending = b.cfg.AckWait, b.cfg.MaxDeliver, b.cfg.MaxAckPending
		if _, err := js.UpdateConsumer(ctx, cs.stream, cc); err != nil {
			return classify("update consumer "+name+" of "+cs.stream, err)
		}
		b.log.Info("nats consumer updated", "stream", cs.stream, "consumer", name, "ackWait", cc.AckWait,
			"maxDeliver", cc.MaxDeliver, "maxAckPending", cc.MaxAckPending)
		return nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return classify("consumer "+name+" of "+cs.stream, err)
	}
	_, err := js.CreateConsumer(ctx, cs.stream, b.consumerConfig(cs, base, p, policy))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
		return classify("create consumer "+name+" of "+cs.stream, err)
	}
	return nil
}

type subscription struct {
	b *Backend
	g *group
	m *member
}

// Close leaves the group: it revokes this member's claims, waits for their handlers to return and
// their acknowledgements to be sent, and hands the partitions to the remaining members in this
// process. It blocks until then; calling it again waits the same way and returns nil.
func (s *subscription) Close() error {
	b := s.b
	b.mu.Lock()
	if !s.m.departed {
		s.m.departed = true
		s.g.members = deleteMember(s.g.members, s.m)
		for _, c := range s.g.claims {
			if c.owner == s.m {
				c.cancel()
			}
		}
		if s.m.claims == 0 {
			close(s.m.gone)
		}
		if len(s.g.members) == 0 && s.g.leaser != nil {
			s.g.leaser.detachLocked()
		}
		b.rebalanceLocked(s.g)
	}
	b.mu.Unlock()
	<-s.m.gone
	return nil
}

func deleteMember(ms []*member, m *member) []*member {
	for i, x := range ms {
		if x == m {
			return append(ms[:i:i], ms[i+1:]...)
		}
	}
	return ms
}

// rebalanceLocked makes sure a rebalancer runs for g after the current change. b.mu held.
func (b *Backend) rebalanceLocked(g *group) {
	if b.closed || g.deleted {
		return
	}
	if g.rebalancing {
		g.dirty = true
		return
	}
	g.rebalancing = true
	b.wg.Add(1)
	go b.rebalancer(g)
}

// rebalancer runs rebalances of g until membership and partitions stop changing.
func (b *Backend) rebalancer(g *group) {
	defer b.wg.Done()
	for {
		b.rebalanceOnce(g)
		b.mu.Lock()
		if !g.dirty || b.closed || g.deleted {
			g.rebalancing = false
			b.mu.Unlock()
			return
		}
		g.dirty = false
		b.mu.Unlock()
	}
}

// assignment is the round-robin owner of each partition (nil: no members, or an ordered group
// whose leaser does not hold the partition's lease). b.mu held.
func (g *group) assignment() []*member {
	owners := make([]*member, g.cs.partitions)
	if len(g.members) == 0 {
		return owners
	}
	for p := range owners {
		if g.ordered && !g.leaser.holds(int32(p)) {
			continue
		}
		owners[p] = g.members[p%len(g.members)]
	}
	return owners
}

// rebalanceOnce revokes the claims whose owner changed, waits for them to finish (so their
// acknowledgements reached the server before anyone else pulls), then starts claims for unowned
// partitions.
func (b *Backend) rebalanceOnce(g *group) {
	b.mu.Lock()
	owners := g.assignment()
	var revoked []*claim
	for p, c := range g.claims {
		if int(p) >= len(owners) || owners[p] != c.owner {
			c.cancel()
			revoked = append(revoked, c)
		}
	}
	b.mu.Unlock()

	for _, c := range revoked {
		<-c.finished
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || g.deleted {
		return
	}
	owners = g.assignment()
	started := 0
	for p, m := range owners {
		if m == nil || g.claims[int32(p)] != nil {
			continue
		}
		b.startClaimLocked(g, m, int32(p))
		started++
	}
	if len(revoked) > 0 || started > 0 {
		b.log.Debug("group rebalanced", "channel", g.key.ch.String(), "group", g.key.name,
			"members", len(g.members), "revoked", len(revoked), "assigned", started)
	}
}

// DeleteGroup forgets group g: claims of members still subscribed in this process are revoked
// (waiting, until ctx is done, for their handlers), and the group's consumers are deleted from the
// stream. Deleting an unknown group is a no-op; a server that cannot be reached is an error wrapping
// channel.ErrUnavailable.
func (b *Backend) DeleteGroup(ctx context.Context, g channel.Group) error {
	key := groupKey{ch: g.Channel, name: g.Name}
	b.mu.Lock()
	grp := b.groups[key]
	var cs []*claim
	if grp != nil {
		delete(b.groups, key)
		grp.deleted = true
		if grp.leaser != nil {
			grp.leaser.detachLocked()
		}
		for _, c := range grp.claims {
			c.cancel()
			cs = append(cs, c)
		}
	}
	b.mu.Unlock()
	for _, c := range cs {
		select {
		case <-c.finished:
		case <-ctx.Done():
			return fmt.Errorf("nats: delete group %s: waiting for claim handlers: %w", g.Name, ctx.Err())
		}
	}

	stream, err := b.StreamName(g.Channel)
	if err != nil {
		return err
	}
	base, err := b.consumerBase(g)
	if err != nil {
		return err
	}
	_, js, err := b.connected()
	if err != nil {
		return fmt.Errorf("nats: delete group %s: %w", g.Name, err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	s, err := js.Stream(rctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return classify("stream "+stream, err)
	}
	parts := partitionsOf(s.CachedInfo().Config.Metadata)
	for p := int32(0); p < parts; p++ {
		err := js.DeleteConsumer(rctx, stream, consumerName(base, p))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return classify("delete consumer "+consumerName(base, p)+" of "+stream, err)
		}
	}
	b.log.Info("group deleted", "channel", g.Channel.String(), "group", g.Name)
	return nil
}
