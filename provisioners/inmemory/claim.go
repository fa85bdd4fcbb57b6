package inmemory

import (
	"context"
	"fmt"
	"sync"

	"github.com/eventgate/eventgate/gateway/channel"
)

// recordsBuffer is the capacity of a claim's Records channel; feedBatch is how many records a feeder,
// or Next, takes from the log under one lock.
const (
	recordsBuffer = 256
	feedBatch     = 64
)

var _ channel.Puller = (*claim)(nil)

// claim is one partition assigned to one member. Its handler takes records with Next
// (channel.Puller), or, once it asks for Records, a feeder goroutine copies them into the records
// channel. Fields after pos are guarded by ch.mu.
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

	// feeding starts the feeder when the handler asks for Records, or, when the handler returns
	// without having asked, closes records and fed in its place.
	feeding sync.Once
	fed     chan struct{} // closed once the feeder returned

	// pulled holds what Next took from the log and has not handed out yet, from pulled[pos];
	// owned by the handler's goroutine.
	pulled []channel.Record
	pos    int

	tracker *channel.OffsetTracker
	next    int64 // next offset to feed
	dead    bool  // handler returned: MarkDone is a no-op
}

func (c *claim) Channel() channel.Ref     { return c.ch.ref }
func (c *claim) Partition() int32         { return c.part }
func (c *claim) Context() context.Context { return c.ctx }

// Records starts the feeder on the first call.
func (c *claim) Records() <-chan channel.Record {
	c.feeding.Do(func() {
		go func() {
			defer close(c.fed)
			c.feed()
		}()
	})
	return c.records
}

// Next hands out the next record of the partition, taking up to feedBatch at once from the log and
// waiting for a publish when there is none (see channel.Puller).
func (c *claim) Next(ctx context.Context) (channel.Record, bool) {
	for {
		if c.ctx.Err() != nil {
			return channel.Record{}, false
		}
		for c.pos < len(c.pulled) {
			r := c.pulled[c.pos]
			c.pulled[c.pos] = channel.Record{}
			c.pos++
			if c.pass(r) {
				return r, true
			}
		}
		if c.pulled == nil {
			c.pulled = make([]channel.Record, 0, feedBatch)
		}
		batch, wake, ok := c.take(c.pulled[:0])
		if !ok {
			return channel.Record{}, false
		}
		c.pulled, c.pos = batch, 0
		if wake == nil {
			continue
		}
		select {
		case <-wake:
		case <-c.ctx.Done():
			return channel.Record{}, false
		case <-ctx.Done():
			return channel.Record{}, false
		}
	}
}

// pass says whether r is for the handler; a record the member's filter drops is marked done here,
// without reaching it.
func (c *claim) pass(r channel.Record) bool {
	if f := c.owner.filter; f != nil && !f.Pass(r.Event) {
		c.MarkDone(r.Offset)
		return false
	}
	return true
}

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

func (b *Backend) startClaimLocked(ch *chanState, g *group, m *member, p int32) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &claim{
		b: b, ch: ch, g: g, owner: m, part: p,
		records:  make(chan channel.Record, recordsBuffer),
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		fed:      make(chan struct{}),
		tracker:  channel.NewOffsetTracker(g.committed[p]),
		next:     g.committed[p],
	}
	g.claims[p] = c
	m.claims++
	b.wg.Add(1)
	go b.runClaim(c)
}

// runClaim runs the claim's handler (and the feeder, if the handler asks for Records) and cleans up
// after both returned. A handler that returns before its claim is revoked gives the partition up
// until the next rebalance.
func (b *Backend) runClaim(c *claim) {
	defer b.wg.Done()
	c.owner.h(c)
	if c.ctx.Err() == nil {
		b.log.Warn("claim handler returned before its claim was revoked", "channel", c.ch.ref.String(),
			"group", c.g.name, "partition", c.part)
	}
	c.cancel()
	c.feeding.Do(func() {
		close(c.records)
		close(c.fed)
	})
	<-c.fed

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
		var wake <-chan struct{}
		var ok bool
		batch, wake, ok = c.take(batch[:0])
		if !ok {
			return
		}
		if wake != nil {
			select {
			case <-wake:
			case <-c.ctx.Done():
				return
			}
			continue
		}
		for _, r := range batch {
			if !c.pass(r) {
				continue
			}
			select {
			case c.records <- r:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

// take appends to batch, under ch.mu, up to feedBatch records of the partition from c.next on, and
// tracks them. With none to take it returns the channel that the next publish closes; ok is false
// once c is cancelled or its channel is gone.
func (c *claim) take(batch []channel.Record) (_ []channel.Record, wake <-chan struct{}, ok bool) {
	ch := c.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if c.ctx.Err() != nil || ch.dead {
		return batch, nil, false
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
	if len(batch) == 0 {
		ch.waited = true
		return batch, ch.wake, true
	}
	return batch, nil, true
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
