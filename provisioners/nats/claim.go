package nats

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// The JetStream acknowledgement bodies a claim publishes to a message's reply subject.
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
)

var _ channel.Claim = (*claim)(nil)

// claim is one partition (one durable consumer) assigned to one member.
//
// It hands events out in the order they arrive, which is stream order except for events another
// member left unacknowledged that the server delivers again after AckWait. The commit point is kept
// by a channel.OffsetTracker over hand-out positions: an event is acknowledged once it and every event
// handed out before it are done. When the claim ends, a request on the same acknowledgement queue is
// answered only after the server processed every acknowledgement before it, so whoever pulls next
// sees them all.
type claim struct {
	b        *Backend
	g        *group
	owner    *member
	part     int32
	records  chan channel.Record
	ctx      context.Context
	cancel   context.CancelFunc
	finished chan struct{} // closed once handler and feeder returned and acknowledgements are sent

	mu      chan struct{} // a one-slot lock (see lock)
	tracker *channel.OffsetTracker
	next    int64             // hand-out position of the next new event
	entries map[uint64]*entry // held events by stream sequence
	order   []uint64          // stream sequences of held events by hand-out position, from base
	base    int64
	lastAck string // reply subject of the last event acknowledged
	dead    bool   // ended: MarkDone is a no-op
}

// entry is an event a claim holds: handed out (or being handed out) and not yet acknowledged.
type entry struct {
	pos   int64
	reply string // the latest delivery's reply subject
	last  bool   // the latest delivery was the server's last (MaxDeliver)
	done  bool
}

func (c *claim) lock()   { c.mu <- struct{}{} }
func (c *claim) unlock() { <-c.mu }

func (c *claim) Channel() channel.Ref           { return c.g.key.ch }
func (c *claim) Partition() int32               { return c.part }
func (c *claim) Records() <-chan channel.Record { return c.records }
func (c *claim) Context() context.Context       { return c.ctx }

// MarkDone marks the event at stream sequence offset done; when the claim's contiguous done prefix
// grows, the events in it are acknowledged. Safe for concurrent use; never blocks on the server.
func (c *claim) MarkDone(offset int64) {
	if offset < 0 {
		return
	}
	c.lock()
	defer c.unlock()
	if c.dead {
		return
	}
	e := c.entries[uint64(offset)]
	if e == nil || e.done {
		return
	}
	e.done = true
	commit, advanced := c.tracker.Done(e.pos)
	if !advanced {
		return
	}
	nc := c.b.nc
	for c.base < commit && len(c.order) > 0 {
		seq := c.order[0]
		c.order = c.order[1:]
		c.base++
		c.lastAck = c.entries[seq].reply
		c.publish(nc, c.lastAck, ackAck)
		delete(c.entries, seq)
	}
}

// publish sends an acknowledgement body. A connection that is down buffers it and sends it on
// reconnect; if it is lost, the server delivers the event again (at-least-once).
func (c *claim) publish(nc *nats.Conn, reply string, body []byte) {
	if err := nc.Publish(reply, body); err != nil {
		c.b.log.Debug("nats ack not sent", "group", c.g.key.name, "partition", c.part, "err", err)
	}
}

func (b *Backend) startClaimLocked(g *group, m *member, p int32) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &claim{
		b: b, g: g, owner: m, part: p,
		records:  make(chan channel.Record, b.cfg.FetchBatch),
		ctx:      ctx,
		cancel:   cancel,
		finished: make(chan struct{}),
		mu:       make(chan struct{}, 1),
		tracker:  channel.NewOffsetTracker(0),
		entries:  map[uint64]*entry{},
	}
	g.claims[p] = c
	m.claims++
	b.wg.Add(1)
	go b.runClaim(c)
}

// runClaim runs the claim's feeder and handler, then settles what the claim holds and cleans up.
func (b *Backend) runClaim(c *claim) {
	defer b.wg.Done()
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		c.feed()
	}()
	c.owner.h(c)
	if c.ctx.Err() == nil {
		b.log.Warn("claim handler returned before its claim was revoked", "channel", c.g.key.ch.String(),
			"group", c.g.key.name, "partition", c.part)
	}
	c.cancel()
	<-fed
	c.settle()

	b.mu.Lock()
	if c.g.claims[c.part] == c {
		delete(c.g.claims, c.part)
	}
	c.owner.claims--
	if c.owner.departed && c.owner.claims == 0 {
		close(c.owner.gone)
	}
	l := c.g.leaser
	b.mu.Unlock()
	close(c.finished)
	l.poke() // a lease waiting for this claim to end can be given up now
}

// settle ends the claim: every event not acknowledged is negatively acknowledged so that the next
// owner gets it at once, in hand-out order. The last of these is a request, answered once the
// server processed it and (in order) every acknowledgement before it; with nothing to negatively
// acknowledge, a progress request on the last acknowledged event is that barrier (the server
// answers it, and changes nothing, for an event no longer pending).
func (c *claim) settle() {
	c.lock()
	c.dead = true
	type op struct {
		reply string
		body  []byte
	}
	var ops []op
	for _, seq := range c.order {
		e := c.entries[seq]
		ops = append(ops, op{e.reply, ackNak})
		if e.last && !e.done {
			c.b.log.Error("nats: an event's last delivery (maxDeliver) was abandoned; the server will not deliver it again to this subscription",
				"stream", c.g.cs.stream, "group", c.g.key.name, "partition", c.part, "offset", seq)
		}
	}
	if len(ops) == 0 && c.lastAck != "" {
		ops = append(ops, op{c.lastAck, ackProgress})
	}
	c.entries, c.order, c.lastAck = nil, nil, ""
	c.unlock()
	if len(ops) == 0 {
		return
	}
	nc := c.b.nc
	for _, o := range ops[:len(ops)-1] {
		c.publish(nc, o.reply, o.body)
	}
	last := ops[len(ops)-1]
	if _, err := nc.Request(last.reply, last.body, c.b.cfg.RequestTimeout); err != nil {
		c.b.log.Debug("nats final ack not confirmed", "group", c.g.key.name, "partition", c.part, "err", err)
	}
}

// feed pulls the partition's consumer in batches of FetchBatch and hands events to c.records in
// arrival order until c is cancelled, then closes c.records. c.records holds FetchBatch records, so
// a batch usually fits in it at once and the next pull goes out while the dispatcher still takes
// the last one (the round trip per batch no longer stalls the drain). There is only ever one pull
// outstanding: the server spreads the events of a consumer round robin over the pulls waiting on
// it, so a second pull made ahead would reorder them. What a pull returned after the cancel is held
// (and so negatively acknowledged by settle), never dropped. While it runs, a ticker sends a
// progress acknowledgement for every held event every AckWait/3.
func (c *claim) feed() {
	defer close(c.records)
	stopProgress := c.progress()
	defer stopProgress()
	var cons jetstream.Consumer
	backoff := newBackoff()
	for c.ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = c.consumer(); err != nil {
				level := slog.LevelDebug // the server is away: the connection says so
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					level = slog.LevelWarn
				}
				c.b.log.Log(c.ctx, level, "nats consumer lookup failed; retrying", "group", c.g.key.name, "partition", c.part, "err", err)
				backoff.wait(c.ctx)
				continue
			}
		}
		batch, err := c.pull(cons)
		if err != nil {
			backoff.wait(c.ctx)
			continue
		}
		n, err := c.handOut(batch)
		if err != nil {
			c.b.log.Debug("nats pull ended with an error", "group", c.g.key.name, "partition", c.part, "err", err)
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				cons = nil
			}
			if n == 0 {
				backoff.wait(c.ctx)
			}
			continue
		}
		backoff.reset()
	}
}

// pull requests the next FetchBatch events of cons, waiting up to PullWait for them on the server.
func (c *claim) pull(cons jetstream.Consumer) (jetstream.MessageBatch, error) {
	batch, err := cons.Fetch(c.b.cfg.FetchBatch, jetstream.FetchMaxWait(c.b.cfg.PullWait))
	if err != nil {
		c.b.log.Debug("nats fetch failed", "group", c.g.key.name, "partition", c.part, "err", err)
	}
	return batch, err
}

// handOut accepts every message of batch, until the pull ends, and hands the accepted ones to
// c.records while c is not cancelled (after the cancel they are held: settle negatively
// acknowledges them). It returns how many messages arrived, and the pull's error unless it merely
// expired.
func (c *claim) handOut(batch jetstream.MessageBatch) (int, error) {
	n := 0
	for m := range batch.Messages() {
		n++
		rec, ok := c.accept(m)
		if !ok || c.ctx.Err() != nil {
			continue
		}
		select {
		case c.records <- rec:
		case <-c.ctx.Done():
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return n, err
	}
	return n, nil
}

// consumer returns the partition's consumer. One that does not exist is created, to read the
// partition from its start, only for a partition added after Subscribe positioned the group; for
// the others it is an error (say, another gateway deleted the group: recreating it would deliver
// the whole stream again), retried until the claim is revoked.
func (c *claim) consumer() (jetstream.Consumer, error) {
	_, js, err := c.b.connected()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.b.cfg.RequestTimeout)
	defer cancel()
	name := consumerName(c.g.base, c.part)
	c.b.mu.Lock()
	added := c.part >= c.g.positioned
	c.b.mu.Unlock()
	if added {
		if err := c.b.createConsumer(ctx, js, c.g.cs, c.g.base, c.part, jetstream.DeliverAllPolicy); err != nil {
			return nil, err
		}
	}
	cons, err := js.Consumer(ctx, c.g.cs.stream, name)
	if err != nil {
		return nil, classify("consumer "+name, err)
	}
	return cons, nil
}

// accept records a pulled message and returns its record; false when it is not to be handed out:
// another delivery of an event the claim holds (its reply subject is updated), a message that is not
// from JetStream, or one that is not an event (counted, logged, and marked done).
func (c *claim) accept(m jetstream.Msg) (channel.Record, bool) {
	meta, err := m.Metadata()
	if err != nil {
		return channel.Record{}, false
	}
	seq := meta.Sequence.Stream
	c.lock()
	last := meta.NumDelivered >= uint64(c.b.cfg.MaxDeliver)
	if e := c.entries[seq]; e != nil || c.dead {
		if e != nil {
			e.reply, e.last = m.Reply(), last
		}
		c.unlock()
		return channel.Record{}, false
	}
	pos := c.next
	c.next++
	c.entries[seq] = &entry{pos: pos, reply: m.Reply(), last: last}
	c.order = append(c.order, seq)
	c.tracker.Track(pos)
	c.unlock()
	if last {
		c.b.log.Warn("nats: last delivery of an event (maxDeliver reached)", "group", c.g.key.name,
			"partition", c.part, "offset", seq, "deliveries", meta.NumDelivered)
	}
	ev, err := event.FromNATS(m.Headers(), m.Data())
	if err != nil {
		c.b.undecodable.Add(1)
		c.b.log.Warn("undecodable message skipped", "stream", c.g.cs.stream, "partition", c.part, "offset", seq, "err", err)
		c.MarkDone(int64(seq))
		return channel.Record{}, false
	}
	return channel.Record{Partition: c.part, Offset: int64(seq), Event: ev}, true
}

// progress starts the progress acknowledgements of held events; the returned func stops them.
func (c *claim) progress() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.b.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			c.lock()
			replies := make([]string, 0, len(c.entries))
			for _, e := range c.entries {
				replies = append(replies, e.reply)
			}
			c.unlock()
			for _, r := range replies {
				c.publish(c.b.nc, r, ackProgress)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// backoff is the wait between failed pulls: 50ms doubling to 2s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 50 * time.Millisecond} }

func (b *backoff) reset() { b.d = 50 * time.Millisecond }

// wait sleeps the current delay (or until ctx is done) and doubles it.
func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	b.d = min(2*b.d, 2*time.Second)
}
