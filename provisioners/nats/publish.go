package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// publishWindow is how many events of one Publish wait for their acknowledgements at a time.
const publishWindow = 512

// Publish stores events on the channel's stream and returns once the stream acknowledged every one of
// them, or PublishTimeout passed, or ctx is done. Each event goes to its partition's subject (the
// hash of its partitionkey; round robin without one) in binary mode, with Nats-Msg-Id set to its
// identity (source and id): publishing an event again within DuplicateWindow stores nothing new, so
// the sender may retry a batch that failed part way. Errors wrap channel.ErrNotFound (the channel
// was not ensured) or channel.ErrUnavailable, or event.ErrInvalid for an event larger than the
// server's max_payload. A batch is stored in windows of publishWindow events: on an error, a prefix of
// it may be stored (a retry stores the rest, the prefix being dropped as duplicates). Safe for
// concurrent use.
func (b *Backend) Publish(ctx context.Context, ref channel.Ref, events []*event.Event) error {
	cs, err := b.lookup(ref)
	if err != nil {
		return err
	}
	nc, js, err := b.connected()
	if err != nil {
		return fmt.Errorf("nats: publish to %s: %w", cs.stream, err)
	}
	b.mu.Lock()
	parts := cs.partitions
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()

	// Publish in windows of publishWindow, waiting for each window's acknowledgements before the next,
	// so that a large batch never exceeds what the client lets wait for acknowledgements.
	futures := make([]jetstream.PubAckFuture, 0, min(len(events), publishWindow))
	for len(events) > 0 {
		window := events[:min(len(events), publishWindow)]
		events = events[len(window):]
		futures = futures[:0]
		for _, e := range window {
			m := nats.NewMsg(cs.partitionSubject(b.partition(e, parts)))
			event.ToNATS(e, m.Header)
			m.Header[jetstream.MsgIDHeader] = []string{MsgID(e)}
			m.Header[jetstream.ExpectedStreamHeader] = []string{cs.stream}
			m.Data = e.Data
			f, err := js.PublishMsgAsync(m, jetstream.WithStallWait(b.cfg.PublishTimeout))
			if errors.Is(err, nats.ErrMaxPayload) {
				return fmt.Errorf("nats: publish to %s: %w: event %s is larger than the server's max_payload (%d bytes with its headers)",
					cs.stream, event.ErrInvalid, e.ID, nc.MaxPayload())
			}
			if err != nil {
				return fmt.Errorf("nats: publish to %s: %w: %w", cs.stream, channel.ErrUnavailable, err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
					err = fmt.Errorf("stream %s does not answer (deleted, or JetStream is down): %w", cs.stream, err)
				}
				return fmt.Errorf("nats: publish to %s: %w: %w", cs.stream, channel.ErrUnavailable, err)
			case <-ctx.Done():
				return fmt.Errorf("nats: publish to %s: %w: %w", cs.stream, channel.ErrUnavailable, ctx.Err())
			}
		}
	}
	return nil
}

// MsgID is the Nats-Msg-Id an event is published with: its CloudEvents identity, source and id (ids
// are unique only per source), separated by a space (which neither a URI reference nor the header
// encoding of the stream puts in a source).
func MsgID(e *event.Event) string { return e.Source + " " + e.ID }

// partition picks the partition of e among n: the FNV-1a hash of its partitionkey, or round robin.
func (b *Backend) partition(e *event.Event, n int32) int32 {
	if n <= 1 {
		return 0
	}
	if key := e.Extension(event.PartitionKeyExtension); key != "" {
		h := fnv.New32a()
		h.Write([]byte(key))
		return int32(h.Sum32() % uint32(n))
	}
	return int32(b.rr.Add(1) % uint64(n))
}
