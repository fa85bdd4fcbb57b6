package inmemory

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventgate/eventgate/gateway/channel"
)

// group is one consumer group on one channel.
type group struct {
	name      string
	start     channel.StartOffset
	committed []int64 // per partition: the next offset to consume
	members   []*member
	claims    map[int32]*claim
	deleted   bool

	rebalancing bool // a rebalancer goroutine is running
	dirty       bool // membership changed while it ran: run again
}

type member struct {
	h        channel.ClaimHandler
	filter   channel.EventFilter // the group's Filter: what it rejects is done without reaching h
	claims   int                 // claims of this member not yet finished
	departed bool                // Close was called
	gone     chan struct{}
}

// Subscribe joins g as a new member and returns at once; claims are assigned asynchronously. A group
// with no position yet starts at the oldest held event (channel.Earliest) or the end of each partition
// (channel.Latest). Claim contexts are not derived from ctx, which only bounds the call. Errors:
// channel.ErrNotFound for an unknown channel, channel.ErrUnavailable once the Backend is closed.
func (b *Backend) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	if h == nil {
		return nil, errors.New("inmemory: subscribe: nil claim handler")
	}
	if g.Name == "" {
		return nil, errors.New("inmemory: subscribe: empty group name")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inmemory: subscribe %s: %w: %w", g.Name, channel.ErrUnavailable, err)
	}
	ch, err := b.lookup(g.Channel)
	if err != nil {
		return nil, err
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return nil, fmt.Errorf("inmemory: %v: %w", g.Channel, channel.ErrNotFound)
	}
	grp, ok := ch.groups[g.Name]
	if !ok {
		grp = &group{name: g.Name, start: g.Start, claims: make(map[int32]*claim)}
		for _, p := range ch.parts {
			if g.Start == channel.Earliest {
				grp.committed = append(grp.committed, p.base)
			} else {
				grp.committed = append(grp.committed, p.end())
			}
		}
		ch.groups[g.Name] = grp
		for p := range ch.parts {
			ch.trimLocked(int32(p))
		}
		b.log.Info("group created", "channel", g.Channel.String(), "group", g.Name)
	}
	m := &member{h: h, filter: g.Filter, gone: make(chan struct{})}
	grp.members = append(grp.members, m)
	b.rebalanceLocked(ch, grp)
	return &subscription{b: b, ch: ch, g: grp, m: m}, nil
}

type subscription struct {
	b  *Backend
	ch *chanState
	g  *group
	m  *member
}

// Close leaves the group: it revokes this member's claims, waits for their handlers to return (their
// done prefixes are already committed) and hands the partitions to the remaining members. It blocks
// until then; calling it again waits the same way and returns nil.
func (s *subscription) Close() error {
	ch := s.ch
	ch.mu.Lock()
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
		s.b.rebalanceLocked(ch, s.g)
	}
	ch.mu.Unlock()
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

// rebalanceLocked makes sure a rebalancer runs for g after the current change. ch.mu held.
func (b *Backend) rebalanceLocked(ch *chanState, g *group) {
	if ch.dead || g.deleted {
		return
	}
	if g.rebalancing {
		g.dirty = true
		return
	}
	g.rebalancing = true
	b.wg.Add(1)
	go b.rebalancer(ch, g)
}

// rebalancer runs rebalances of g until membership stops changing.
func (b *Backend) rebalancer(ch *chanState, g *group) {
	defer b.wg.Done()
	for {
		b.rebalanceOnce(ch, g)
		ch.mu.Lock()
		if !g.dirty || ch.dead || g.deleted {
			g.rebalancing = false
			ch.mu.Unlock()
			return
		}
		g.dirty = false
		ch.mu.Unlock()
	}
}

// assignment is the round-robin owner of each partition (nil: no members).
func (g *group) assignment(partitions int) []*member {
	owners := make([]*member, partitions)
	if len(g.members) == 0 {
		return owners
	}
	for p := range owners {
		owners[p] = g.members[p%len(g.members)]
	}
	return owners
}

// rebalanceOnce revokes the claims whose owner changed, waits for them to finish, then starts claims
// for unowned partitions.
func (b *Backend) rebalanceOnce(ch *chanState, g *group) {
	ch.mu.Lock()
	owners := g.assignment(len(ch.parts))
	var revoked []*claim
	for p, c := range g.claims {
		if owners[p] != c.owner {
			c.cancel()
			revoked = append(revoked, c)
		}
	}
	ch.mu.Unlock()

	for _, c := range revoked {
		<-c.finished
	}

	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead || g.deleted {
		return
	}
	owners = g.assignment(len(ch.parts))
	started := 0
	for p, m := range owners {
		if m == nil || g.claims[int32(p)] != nil {
			continue
		}
		b.startClaimLocked(ch, g, m, int32(p))
		started++
	}
	if len(revoked) > 0 || started > 0 {
		b.log.Debug("group rebalanced", "channel", ch.ref.String(), "group", g.name,
			"members", len(g.members), "revoked", len(revoked), "assigned", started)
	}
}

func (ch *chanState) allGroups() []*group {
	gs := make([]*group, 0, len(ch.groups))
	for _, g := range ch.groups {
		gs = append(gs, g)
	}
	return gs
}

// DeleteGroup forgets group g: its position is dropped, the events only it retained are released,
// and claims of members still subscribed are revoked (waiting, until ctx is done, for their handlers).
// Deleting an unknown group, or a group of an unknown channel, is a no-op.
func (b *Backend) DeleteGroup(ctx context.Context, g channel.Group) error {
	b.mu.Lock()
	ch := b.channels[g.Channel]
	b.mu.Unlock()
	if ch == nil {
		return nil
	}
	ch.mu.Lock()
	grp, ok := ch.groups[g.Name]
	if !ok {
		ch.mu.Unlock()
		return nil
	}
	delete(ch.groups, g.Name)
	grp.deleted = true
	cs := ch.revokeAllLocked(grp)
	for p := range ch.parts {
		ch.trimLocked(int32(p))
	}
	ch.mu.Unlock()
	b.log.Info("group deleted", "channel", g.Channel.String(), "group", g.Name)
	return waitClaims(ctx, cs)
}
