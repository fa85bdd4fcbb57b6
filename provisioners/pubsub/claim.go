package pubsub

import (
	"context"
	"sync"

	ps "cloud.google.com/go/pubsub/v2"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// recordsBuffer is the capacity of a claim's Records channel. Messages waiting here still count
// against the subscription's MaxOutstandingMessages.
const recordsBuffer = 64

var _ channel.Claim = (*claim)(nil)

// claim is one partition (lane) of a group, owned by one local member. Its offsets are synthetic: the
// messages it received, numbered in arrival order.
type claim struct {
	g        *group
	owner    *member
	part     int32
	records  chan channel.Record
	ctx      context.Context
	cancel   context.CancelFunc
	finished chan struct{} // closed once the handler returned and every message is settled

	sendMu sync.Mutex // held while a record is numbered and sent, so records arrive in offset order

	mu      sync.Mutex
	next    int64                 // next offset to hand out
	pending map[int64]*ps.Message // handed out and not yet acked
	revoked bool                  // Records closed: no more offers
	ended   bool                  // the handler returned and the rest was nacked: MarkDone is a no-op
}

func (c *claim) Channel() channel.Ref           { return c.g.ref }
func (c *claim) Partition() int32               { return c.part }
func (c *claim) Records() <-chan channel.Record { return c.records }
func (c *claim) Context() context.Context       { return c.ctx }

// MarkDone marks offset done and acks its message. Pub/Sub acknowledges each message on its own, so
// there is no commit point to hold back: a done message is never delivered again, whatever is still
// in flight before it (the seam's contiguous-prefix rule exists for logs that can only commit a
// position; acking each message keeps its guarantee, at least once, with fewer duplicates, and a
// message that keeps retrying never holds the others' acks and so the subscription's flow control).
// Safe for concurrent use; it never blocks on Pub/Sub (the client sends acks in the background).
func (c *claim) MarkDone(offset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	if m := c.pending[offset]; m != nil {
		m.Ack()
		delete(c.pending, offset)
	}
}

// offer numbers m and sends it on Records. It returns false, leaving m alone, when the claim no
// longer takes records (it is being revoked): the caller finds the partition's next claim. When the
// claim is revoked while m waits for room, m stays pending and is nacked with the rest of the claim;
// when Receive stops meanwhile, m is nacked at once.
func (c *claim) offer(ctx context.Context, m *ps.Message, e *event.Event) bool {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	if c.revoked || c.ctx.Err() != nil {
		c.mu.Unlock()
		return false
	}
	off := c.next
	c.next++
	c.pending[off] = m
	c.mu.Unlock()

	select {
	case c.records <- channel.Record{Partition: c.part, Offset: off, Event: e}:
	case <-c.ctx.Done():
		// Pending: nacked when the claim ends.
	case <-ctx.Done():
		// Receive is stopping (a fatal service error) while the claim lives: hand the message back.
		c.mu.Lock()
		if !c.ended {
			delete(c.pending, off)
			m.Nack()
		}
		c.mu.Unlock()
	}
	return true
}

// startClaimLocked starts a claim of partition p for member m. g.mu held.
func (g *group) startClaimLocked(m *member, p int32) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &claim{
		g: g, owner: m, part: p,
		records:  make(chan channel.Record, recordsBuffer),
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		pending:  make(map[int64]*ps.Message),
	}
	g.claims[p] = c
	m.claims++
	g.wg.Add(1)
	go g.runClaim(c)
}

// runClaim runs the claim's handler and settles the claim after it returned: Records is closed when
// the claim is revoked, and whatever was not acked is nacked. A handler that returns before its claim
// is revoked gives the partition up until the next rebalance.
func (g *group) runClaim(c *claim) {
	defer g.wg.Done()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-c.ctx.Done()
		c.sendMu.Lock() // no offer is sending: each gives up once ctx is done
		c.mu.Lock()
		c.revoked = true
		c.mu.Unlock()
		close(c.records)
		c.sendMu.Unlock()
	}()
	c.owner.h(c)
	if c.ctx.Err() == nil {
		g.log.Warn("claim handler returned before its claim was revoked", "partition", c.part)
	}
	c.cancel()
	<-closed

	c.mu.Lock()
	c.ended = true
	for o, m := range c.pending {
		m.Nack()
		delete(c.pending, o)
	}
	c.mu.Unlock()

	g.mu.Lock()
	if g.claims[c.part] == c {
		delete(g.claims, c.part)
	}
	c.owner.claims--
	if c.owner.departed && c.owner.claims == 0 {
		close(c.owner.gone)
	}
	g.notifyLocked()
	g.mu.Unlock()
	close(c.finished)
}
