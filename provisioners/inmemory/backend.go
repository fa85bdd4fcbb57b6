// Package inmemory is the channel provisioner that keeps every channel in the gateway's memory: a
// partitioned log per channel with consumer groups, bounded in bytes. It needs no cluster and is what
// `eventgate serve` runs with when nothing else is configured. Events do not survive a restart.
package inmemory

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/eventgate/eventgate/gateway/channel"
)

var (
	_ channel.Provisioner = (*Backend)(nil)
	_ channel.LagReporter = (*Backend)(nil)
)

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

// New returns an empty Backend on cfg. A nil log discards logs. It panics if cfg is not valid
// (Config.Validate): callers start from DefaultConfig, and config.Load validates.
func New(cfg Config, log *slog.Logger) *Backend {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("inmemory: invalid config: %v", err))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{cfg: cfg, log: log, channels: make(map[channel.Ref]*chanState)}
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
