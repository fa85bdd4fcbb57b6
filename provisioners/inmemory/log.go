package inmemory

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

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
	at   time.Time // when it was published, for a tail that starts at a time
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
	now := time.Now()
	var total int64
	for i, e := range events {
		if e == nil {
			return fmt.Errorf("inmemory: publish to %v: event %d is nil", ref, i)
		}
		c := e.Clone()
		batch[i] = stored{ev: c, size: int64(c.Size()), at: now}
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
