package kafka

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

var _ channel.Tailer = (*Backend)(nil)

// Tail opens a tail of channel ref: a client of its own that consumes the topic's partitions
// directly, from offsets listed before Tail returns (the end for a zero start, the start for
// Earliest, the first record at or after start.Time). It joins no group and commits nothing.
// Partitions added to the topic after Tail returned are not read.
func (b *Backend) Tail(ctx context.Context, ref channel.Ref, start channel.TailStart) (channel.Tail, error) {
	topic, err := b.topicOf(ref)
	if err != nil {
		return nil, err
	}
	var listed kadm.ListedOffsets
	switch {
	case start.Earliest:
		listed, err = b.admin.ListStartOffsets(ctx, topic)
	case !start.Time.IsZero():
		listed, err = b.admin.ListOffsetsAfterMilli(ctx, start.Time.UnixMilli(), topic)
	default:
		listed, err = b.admin.ListEndOffsets(ctx, topic)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: tail of %s: list offsets: %w: %w", topic, channel.ErrUnavailable, err)
	}
	offsets := map[int32]kgo.Offset{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic {
			offsets[o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	cl, err := kgo.NewClient(append(b.commonOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.FetchMaxBytes(b.cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(b.cfg.FetchMaxPartitionBytes),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: tail of %s: %w", topic, err)
	}
	return &tail{b: b, cl: cl, topic: topic}, nil
}

// tail hands out the records of its client's polls one by one.
type tail struct {
	b       *Backend
	cl      *kgo.Client
	topic   string
	pending []*kgo.Record
	headers []event.Header
	once    sync.Once
}

func (t *tail) Next(ctx context.Context) (channel.TailRecord, error) {
	for {
		for len(t.pending) > 0 {
			r := t.pending[0]
			t.pending[0] = nil
			t.pending = t.pending[1:]
			t.headers = t.headers[:0]
			for _, h := range r.Headers {
				t.headers = append(t.headers, event.Header{Key: h.Key, Value: h.Value})
			}
			e, err := event.FromKafka(r.Key, t.headers, r.Value)
			if err != nil {
				continue // not a CloudEvent: a tail shows events; the dispatchers log and count these
			}
			return channel.TailRecord{Record: channel.Record{Partition: r.Partition, Offset: r.Offset, Event: e}}, nil
		}
		fetches := t.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return channel.TailRecord{}, err
		}
		if fetches.IsClientClosed() {
			return channel.TailRecord{}, fmt.Errorf("kafka: tail of %s closed: %w", t.topic, channel.ErrUnavailable)
		}
		var fetchErr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = err
			}
		})
		t.pending = fetches.Records()
		if fetchErr != nil && len(t.pending) == 0 {
			// Errors and nothing else (a broker restarting): the client retries; do not spin.
			if !sleepCtx(ctx, errorBackoff) {
				return channel.TailRecord{}, ctx.Err()
			}
		}
	}
}

func (t *tail) Close() error {
	t.once.Do(t.cl.Close)
	return nil
}

var _ channel.Spanner = (*Backend)(nil)

// Spans lists, per partition of ref's topic, the offset a tail opened with start begins at and the
// end offset (the high watermark).
func (b *Backend) Spans(ctx context.Context, ref channel.Ref, start channel.TailStart) ([]channel.Span, error) {
	topic, err := b.topicOf(ref)
	if err != nil {
		return nil, err
	}
	ends, err := b.admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	var from kadm.ListedOffsets
	if err == nil {
		switch {
		case start.Earliest:
			from, err = b.admin.ListStartOffsets(ctx, topic)
		case !start.Time.IsZero():
			from, err = b.admin.ListOffsetsAfterMilli(ctx, start.Time.UnixMilli(), topic)
		default:
			from = ends
		}
	}
	if err == nil {
		err = from.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: spans of %s: list offsets: %w: %w", topic, channel.ErrUnavailable, err)
	}
	var out []channel.Span
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic {
			return
		}
		s := channel.Span{Partition: o.Partition, From: o.Offset, End: o.Offset}
		if f, ok := from.Lookup(topic, o.Partition); ok && f.Offset >= 0 {
			s.From = min(f.Offset, o.Offset)
		}
		out = append(out, s)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}
