package inmemory

import (
	"context"
	"fmt"
	"sort"

	"github.com/eventgate/eventgate/gateway/channel"
)

var _ channel.Tailer = (*Backend)(nil)

// Tail opens a tail of ch: its own position in each partition, never a group, so it holds back
// neither trimming nor eviction. Events dropped before it read them are counted in Skipped.
// start.Time is matched against when each event was published here.
func (b *Backend) Tail(ctx context.Context, ref channel.Ref, start channel.TailStart) (channel.Tail, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, err := b.lookup(ref)
	if err != nil {
		return nil, err
	}
	t := &tail{ch: ch}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return nil, fmt.Errorf("inmemory: %v: %w", ref, channel.ErrNotFound)
	}
	t.next, t.skipped = make([]int64, len(ch.parts)), make([]int64, len(ch.parts))
	for i, p := range ch.parts {
		t.next[i] = tailFrom(p, start)
	}
	return t, nil
}

// tail reads a channel's partitions round robin from its own positions.
type tail struct {
	ch      *chanState
	next    []int64 // next offset to read, per partition
	skipped []int64 // events dropped before they were read, not reported yet, per partition
	part    int     // the partition to look at first
	pending []channel.TailRecord
}

func (t *tail) Next(ctx context.Context) (channel.TailRecord, error) {
	for len(t.pending) == 0 {
		wake, err := t.fill()
		if err != nil {
			return channel.TailRecord{}, err
		}
		if len(t.pending) > 0 {
			break
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return channel.TailRecord{}, ctx.Err()
		}
	}
	r := t.pending[0]
	t.pending[0] = channel.TailRecord{}
	t.pending = t.pending[1:]
	return r, nil
}

// fill takes up to feedBatch events from the partitions, starting with t.part; with none, it returns
// the channel's wake, closed by the next publish.
func (t *tail) fill() (<-chan struct{}, error) {
	ch := t.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return nil, fmt.Errorf("inmemory: %v: %w", ch.ref, channel.ErrNotFound)
	}
	for range ch.parts {
		i := t.part
		t.part = (t.part + 1) % len(ch.parts)
		p := ch.parts[i]
		if t.next[i] < p.base {
			t.skipped[i] += p.base - t.next[i]
			t.next[i] = p.base
		}
		for t.next[i] < p.end() && len(t.pending) < feedBatch {
			t.pending = append(t.pending, channel.TailRecord{
				Record:  channel.Record{Partition: int32(i), Offset: t.next[i], Event: p.events[t.next[i]-p.base].ev},
				Skipped: t.skipped[i],
			})
			t.skipped[i] = 0
			t.next[i]++
		}
		if len(t.pending) > 0 {
			return nil, nil
		}
	}
	ch.waited = true
	return ch.wake, nil
}

func (t *tail) Close() error { return nil }

var _ channel.Spanner = (*Backend)(nil)

// Spans returns, per partition, where a tail opened with start begins and the end of the log now.
func (b *Backend) Spans(ctx context.Context, ref channel.Ref, start channel.TailStart) ([]channel.Span, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, err := b.lookup(ref)
	if err != nil {
		return nil, err
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return nil, fmt.Errorf("inmemory: %v: %w", ref, channel.ErrNotFound)
	}
	out := make([]channel.Span, len(ch.parts))
	for i, p := range ch.parts {
		out[i] = channel.Span{Partition: int32(i), From: tailFrom(p, start), End: p.end()}
	}
	return out, nil
}

// tailFrom is the first offset of p that a tail opened with start reads.
func tailFrom(p *partition, start channel.TailStart) int64 {
	switch {
	case start.Earliest:
		return p.base
	case !start.Time.IsZero():
		first := sort.Search(len(p.events), func(j int) bool { return !p.events[j].at.Before(start.Time) })
		return p.base + int64(first)
	default:
		return p.end()
	}
}
