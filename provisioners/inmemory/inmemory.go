// Package inmemory is the channel provisioner that keeps every channel in the gateway's memory: a
// partitioned log per channel with consumer groups, bounded in bytes. It needs no cluster and is what
// `eventgate serve` runs with when nothing else is configured. Events do not survive a restart.
package inmemory

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

var (
	_ channel.Provisioner = (*Backend)(nil)
	_ channel.LagReporter = (*Backend)(nil)
	_ channel.Claim       = (*claim)(nil)
)

// Config tunes the in-memory provisioner. Zero values mean the documented default.
type Config struct {
	// BytesPerChannel bounds the bytes of events (event.Event.Size) one channel holds. Default 64 MiB.
	BytesPerChannel int64
	// Partitions is the partition count of a channel whose Spec does not say. Default 4.
	Partitions int32
	// RetryAfter is the hint carried by the FullError a full channel answers with. Default 1s.
	RetryAfter time.Duration
}

// Defaults, applied by New to zero fields.
const (
	DefaultBytesPerChannel int64         = 64 << 20
	DefaultPartitions      int32         = 4
	DefaultRetryAfter      time.Duration = time.Second
)

// recordsBuffer is the capacity of a claim's Records channel; feedBatch is how many records a feeder
// takes from the log under one lock.
const (
	recordsBuffer = 256
	feedBatch     = 64
)

func (c Config) withDefaults() Config {
	if c.BytesPerChannel <= 0 {
		c.BytesPerChannel = DefaultBytesPerChannel
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// errClosed is returned (wrapping channel.ErrUnavailable) once the Backend is closed.
var errClosed = fmt.Errorf("inmemory: backend closed: %w", channel.ErrUnavailable)

// Backend is the in-memory provisioner. All methods are safe for concurrent use.
//
// Semantics:
//   - Publish clones the events it stores, so the caller may reuse them. The events handed to claim
//     handlers are shared by every group and must not be mutated (Clone first).
//   - A channel holds at most Config.BytesPerChannel bytes. An event stays in the log until every group
//     on the channel has committed past it; a publish that does not fit then fails whole with
//     *channel.FullError, and no acknowledged event is ever dropped.
//   - A channel with no groups at all has nobody to deliver to, so nothing retains its events: they are
//     kept while there is room (a group created later with channel.Earliest reads them) and the oldest
//     are evicted to make room, so publishing to such a channel never fails for lack of space.
//   - A group's members share its partitions round robin by join order; every join and leave
//     rebalances, revoking a claim by closing its Records, cancelling its Context and waiting for its
//     handler before the partition is handed to another member. Commits happen as MarkDone advances
//     the contiguous done prefix (see channel.OffsetTracker), and the log is trimmed behind the
//     slowest group at the same moment.
//   - A claim handler that returns before its claim is revoked gives the partition up (a warning is
//     logged) until the group next rebalances; its uncommitted records are delivered again then.
//   - Spec.Retention and Spec.ReplicationFactor are ignored; a partition count can grow, never shrink.
type Backend struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	channels map[channel.Ref]*chanState
	closed   bool

	wg sync.WaitGroup // every goroutine the Backend starts: claim runners and rebalancers
}

// New returns an empty Backend. A nil log discards logs.
func New(cfg Config, log *slog.Logger) *Backend {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{cfg: cfg.withDefaults(), log: log, channels: make(map[channel.Ref]*chanState)}
}

// chanState is one channel. Its mutex guards everything below it, including its groups and claims.
type chanState struct {
	ref   channel.Ref
	limit int64

	mu     sync.Mutex
	parts  []*partition
	bytes  int64
	seq    uint64        // publish sequence, for evicting the oldest events first
	rr     uint32        // round-robin cursor for events without a partitionkey
	wake   chan struct{} // closed and replaced by a publish after a feeder took it
	waited bool          // a feeder took wake since it was last replaced
	groups map[string]*group
	dead   bool // removed, or the Backend closed: no new claims, feeders stop
}

// partition is one partition's log: events[i] has offset base+i.
type partition struct {
	base   int64
	events []stored
}

type stored struct {
	ev   *event.Event
	size int64
	seq  uint64
}

func (p *partition) end() int64 { return p.base + int64(len(p.events)) }

// trimBefore drops events with offsets below off and returns the bytes released.
func (p *partition) trimBefore(off int64) int64 {
	n := off - p.base
	if n <= 0 {
		return 0
	}
	if n > int64(len(p.events)) {
		n = int64(len(p.events))
	}
	var freed int64
	for _, s := range p.events[:n] {
		freed += s.size
	}
	clear(p.events[:n]) // let the collector have them although the backing array lives on
	p.events = p.events[n:]
	p.base += n
	return freed
}

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
	claims   int  // claims of this member not yet finished
	departed bool // Close was called
	gone     chan struct{}
}

// claim is one partition assigned to one member. Fields after ch are guarded by ch.mu.
type claim struct {
	b        *Backend
	ch       *chanState
	g        *group
	owner    *member
	part     int32
	records  chan channel.Record
	ctx      context.Context
	cancel   context.CancelFunc
	finished chan struct{} // closed once handler and feeder returned and bookkeeping is done

	tracker *channel.OffsetTracker
	next    int64 // next offset to feed
	dead    bool  // handler returned: MarkDone is a no-op
}

func (c *claim) Channel() channel.Ref           { return c.ch.ref }
func (c *claim) Partition() int32               { return c.part }
func (c *claim) Records() <-chan channel.Record { return c.records }
func (c *claim) Context() context.Context       { return c.ctx }

// MarkDone marks offset done; when the group's contiguous done prefix grows, the group commits it and
// the log is trimmed behind the slowest group. Safe for concurrent use; never blocks on delivery.
func (c *claim) MarkDone(offset int64) {
	ch := c.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if c.dead || c.g.deleted || ch.dead {
		return
	}
	commit, advanced := c.tracker.Done(offset)
	if !advanced || commit <= c.g.committed[c.part] {
		return
	}
	c.g.committed[c.part] = commit
	ch.trimLocked(c.part)
}

// Ensure creates the channel, or grows its partition count to spec.Partitions (0: Config.Partitions).
// A smaller partition count is kept as it is, with a warning. It never blocks.
func (b *Backend) Ensure(ctx context.Context, spec channel.Spec) error {
	if spec.Name == "" || spec.Namespace == "" {
		return fmt.Errorf("inmemory: channel %q: namespace and name are required", spec.Ref)
	}
	if spec.Partitions < 0 {
		return fmt.Errorf("inmemory: channel %v: partitions %d is negative", spec.Ref, spec.Partitions)
	}
	n := spec.Partitions
	if n == 0 {
		n = b.cfg.Partitions
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	ch, ok := b.channels[spec.Ref]
	if !ok {
		ch = &chanState{ref: spec.Ref, limit: b.cfg.BytesPerChannel, wake: make(chan struct{}), groups: make(map[string]*group)}
		for range n {
			ch.parts = append(ch.parts, &partition{})
		}
		b.channels[spec.Ref] = ch
		b.log.Info("channel created", "channel", spec.Ref.String(), "partitions", n)
		return nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	have := int32(len(ch.parts))
	switch {
	case n > have:
		for range n - have {
			ch.parts = append(ch.parts, &partition{})
		}
		for _, g := range ch.groups {
			for len(g.committed) < int(n) {
				g.committed = append(g.committed, 0) // a new partition is read from its start
			}
			b.rebalanceLocked(ch, g)
		}
		b.log.Info("channel partitions raised", "channel", spec.Ref.String(), "from", have, "to", n)
	case n < have:
		b.log.Warn("channel partitions cannot shrink; keeping them", "channel", spec.Ref.String(),
			"partitions", have, "requested", n)
	}
	return nil
}

func (b *Backend) lookup(ref channel.Ref) (*chanState, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	ch, ok := b.channels[ref]
	if !ok {
		return nil, fmt.Errorf("inmemory: %v: %w", ref, channel.ErrNotFound)
	}
	return ch, nil
}

// partitionFor picks the partition of e: FNV-1a of its partitionkey, else round robin. ch.mu held.
func (ch *chanState) partitionFor(e *event.Event) int32 {
	n := uint32(len(ch.parts))
	if key := e.Extension(event.PartitionKeyExtension); key != "" {
		h := fnv.New32a()
		h.Write([]byte(key))
		return int32(h.Sum32() % n)
	}
	ch.rr++
	return int32(ch.rr % n)
}

// Publish stores events on the channel, all or none, and returns once they are stored (which, in
// memory, is at once: it never waits for space). Errors: channel.ErrNotFound for an unknown channel,
// *channel.FullError (channel.ErrFull) when the batch does not fit in Config.BytesPerChannel next to
// what the slowest group still needs, channel.ErrUnavailable once the Backend is closed or ctx is done.
func (b *Backend) Publish(ctx context.Context, ref channel.Ref, events []*event.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inmemory: publish to %v: %w: %w", ref, channel.ErrUnavailable, err)
	}
	ch, err := b.lookup(ref)
	if err != nil {
		return err
	}
	batch := make([]stored, len(events))
	var total int64
	for i, e := range events {
		if e == nil {
			return fmt.Errorf("inmemory: publish to %v: event %d is nil", ref, i)
		}
		c := e.Clone()
		batch[i] = stored{ev: c, size: int64(c.Size())}
		total += batch[i].size
	}
	if len(batch) == 0 {
		return nil
	}

	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return fmt.Errorf("inmemory: %v: %w", ref, channel.ErrNotFound)
	}
	if total > ch.limit {
		return fmt.Errorf("inmemory: batch of %d bytes exceeds the channel bound of %d bytes: %w",
			total, ch.limit, &channel.FullError{RetryAfter: b.cfg.RetryAfter})
	}
	if ch.bytes+total > ch.limit {
		if len(ch.groups) > 0 {
			b.log.Debug("channel full", "channel", ref.String(), "bytes", ch.bytes, "limit", ch.limit)
			return &channel.FullError{RetryAfter: b.cfg.RetryAfter}
		}
		ch.evictLocked(ch.bytes + total - ch.limit)
	}
	for _, s := range batch {
		ch.seq++
		s.seq = ch.seq
		p := ch.parts[ch.partitionFor(s.ev)]
		p.events = append(p.events, s)
		ch.bytes += s.size
	}
	if ch.waited {
		close(ch.wake)
		ch.wake = make(chan struct{})
		ch.waited = false
	}
	return nil
}

// evictLocked drops the oldest events until need bytes are released. Only called with no groups, when
// nothing retains any event.
func (ch *chanState) evictLocked(need int64) {
	for need > 0 {
		var oldest *partition
		for _, p := range ch.parts {
			if len(p.events) > 0 && (oldest == nil || p.events[0].seq < oldest.events[0].seq) {
				oldest = p
			}
		}
		if oldest == nil {
			return
		}
		freed := oldest.trimBefore(oldest.base + 1)
		ch.bytes -= freed
		need -= freed
	}
}

// trimLocked drops the events of partition p that every group has committed past.
func (ch *chanState) trimLocked(p int32) {
	if len(ch.groups) == 0 {
		return
	}
	low := int64(-1)
	for _, g := range ch.groups {
		if c := g.committed[p]; low < 0 || c < low {
			low = c
		}
	}
	ch.bytes -= ch.parts[p].trimBefore(low)
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
	m := &member{h: h, gone: make(chan struct{})}
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

func (b *Backend) startClaimLocked(ch *chanState, g *group, m *member, p int32) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &claim{
		b: b, ch: ch, g: g, owner: m, part: p,
		records:  make(chan channel.Record, recordsBuffer),
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		tracker:  channel.NewOffsetTracker(g.committed[p]),
		next:     g.committed[p],
	}
	g.claims[p] = c
	m.claims++
	b.wg.Add(1)
	go b.runClaim(c)
}

// runClaim runs the claim's feeder and handler and cleans up after both returned. A handler that
// returns before its claim is revoked gives the partition up until the next rebalance.
func (b *Backend) runClaim(c *claim) {
	defer b.wg.Done()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		c.feed()
	}()
	c.owner.h(c)
	if c.ctx.Err() == nil {
		b.log.Warn("claim handler returned before its claim was revoked", "channel", c.ch.ref.String(),
			"group", c.g.name, "partition", c.part)
	}
	c.cancel()
	<-fed

	ch := c.ch
	ch.mu.Lock()
	c.dead = true
	if c.g.claims[c.part] == c {
		delete(c.g.claims, c.part)
	}
	c.owner.claims--
	if c.owner.departed && c.owner.claims == 0 {
		close(c.owner.gone)
	}
	ch.mu.Unlock()
	close(c.finished)
}

// feed copies records from the partition log into c.records in offset order until c is cancelled,
// then closes c.records. It waits for publishes on ch.wake, never by polling.
func (c *claim) feed() {
	defer close(c.records)
	batch := make([]channel.Record, 0, feedBatch)
	for {
		batch = batch[:0]
		ch := c.ch
		ch.mu.Lock()
		if c.ctx.Err() != nil || ch.dead {
			ch.mu.Unlock()
			return
		}
		p := ch.parts[c.part]
		if c.next < p.base {
			// Cannot happen while the group exists (the log is trimmed behind its commit point);
			// skip what is gone rather than index outside the log.
			c.next = p.base
		}
		for c.next < p.end() && len(batch) < feedBatch {
			batch = append(batch, channel.Record{Partition: c.part, Offset: c.next, Event: p.events[c.next-p.base].ev})
			c.tracker.Track(c.next)
			c.next++
		}
		wake := ch.wake
		if len(batch) == 0 {
			ch.waited = true
		}
		ch.mu.Unlock()

		if len(batch) == 0 {
			select {
			case <-wake:
			case <-c.ctx.Done():
				return
			}
			continue
		}
		for _, r := range batch {
			select {
			case c.records <- r:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

// revokeAllLocked cancels every claim of ch and returns them. ch.mu held.
func (ch *chanState) revokeAllLocked(gs ...*group) []*claim {
	var cs []*claim
	for _, g := range gs {
		for _, c := range g.claims {
			c.cancel()
			cs = append(cs, c)
		}
	}
	return cs
}

// waitClaims waits until every claim in cs finished, or ctx is done.
func waitClaims(ctx context.Context, cs []*claim) error {
	for _, c := range cs {
		select {
		case <-c.finished:
		case <-ctx.Done():
			return fmt.Errorf("inmemory: waiting for claim handlers: %w", ctx.Err())
		}
	}
	return nil
}

func (ch *chanState) allGroups() []*group {
	gs := make([]*group, 0, len(ch.groups))
	for _, g := range ch.groups {
		gs = append(gs, g)
	}
	return gs
}

// Remove drops the channel and its events: it revokes every claim on it and waits (until ctx is done)
// for their handlers to return. Open subscriptions keep no claims and still need Close. Removing an
// unknown channel is a no-op.
func (b *Backend) Remove(ctx context.Context, ref channel.Ref) error {
	b.mu.Lock()
	ch, ok := b.channels[ref]
	delete(b.channels, ref)
	b.mu.Unlock()
	if !ok {
		return nil
	}
	ch.mu.Lock()
	ch.dead = true
	cs := ch.revokeAllLocked(ch.allGroups()...)
	for _, p := range ch.parts {
		p.trimBefore(p.end())
	}
	ch.bytes = 0
	close(ch.wake)
	ch.wake = make(chan struct{})
	ch.mu.Unlock()
	b.log.Info("channel removed", "channel", ref.String())
	return waitClaims(ctx, cs)
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

// Ready always reports nil: memory is always there.
func (b *Backend) Ready(context.Context) error { return nil }

// Close revokes every claim, waits for every handler and every goroutine of the Backend to return,
// and makes later calls fail with channel.ErrUnavailable. Subscriptions still open can be closed
// afterwards without blocking. Calling Close again is a no-op.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	chans := make([]*chanState, 0, len(b.channels))
	for _, ch := range b.channels {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	for _, ch := range chans {
		ch.mu.Lock()
		ch.dead = true
		ch.revokeAllLocked(ch.allGroups()...)
		ch.mu.Unlock()
	}
	b.wg.Wait()
	return nil
}

// Lag returns, for every group of every channel, how many records of each partition lie past the
// group's committed offset. It never blocks on anything but the Backend's locks.
func (b *Backend) Lag(context.Context) []channel.LagSample {
	b.mu.Lock()
	chans := make([]*chanState, 0, len(b.channels))
	for _, ch := range b.channels {
		chans = append(chans, ch)
	}
	b.mu.Unlock()
	var out []channel.LagSample
	for _, ch := range chans {
		ch.mu.Lock()
		for _, g := range ch.groups {
			grp := channel.Group{Channel: ch.ref, Name: g.name, Start: g.start}
			for p, part := range ch.parts {
				out = append(out, channel.LagSample{Group: grp, Partition: int32(p), Lag: part.end() - g.committed[p]})
			}
		}
		ch.mu.Unlock()
	}
	return out
}

// Stats returns the bytes of events channel ref holds and its bound (0, 0 for an unknown channel).
func (b *Backend) Stats(ref channel.Ref) (bytes, limit int64) {
	b.mu.Lock()
	ch := b.channels[ref]
	b.mu.Unlock()
	if ch == nil {
		return 0, 0
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.bytes, ch.limit
}
