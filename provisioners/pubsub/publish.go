package pubsub

import (
	"context"
	"errors"
	"fmt"

	ps "cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// Publish sends events to the channel's topic in the CloudEvents Pub/Sub binding and returns once
// Pub/Sub acknowledged every one of them. Events with a partitionkey are published with it as their
// ordering key, so they keep their order per key. It blocks until then, until PublishTimeout has
// passed or until ctx is done; on any failure it returns an error wrapping channel.ErrUnavailable, and
// some of the events may have been stored (Pub/Sub has no atomic batch across ordering keys; the
// caller retries: at-least-once). A message Pub/Sub refuses outright (over 10 MB, say) is an error
// wrapping event.ErrInvalid instead: retrying cannot help. An unknown channel wraps
// channel.ErrNotFound. Safe for concurrent use.
func (b *Backend) Publish(ctx context.Context, ref channel.Ref, events []*event.Event) error {
	cs, err := b.lookup(ref)
	if err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	msgs := make([]*ps.Message, len(events))
	for i, e := range events {
		if msgs[i], err = toMessage(e); err != nil {
			return fmt.Errorf("pubsub: publish to %s: event %d: %w", cs.topic, i, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	results := make([]*ps.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = cs.pub.Publish(ctx, m)
	}
	var first, refused error
	for i, r := range results {
		if _, err := r.Get(ctx); err != nil {
			if key := msgs[i].OrderingKey; key != "" {
				// A failed publish pauses its ordering key in the client; the caller's retry must
				// find it open again.
				cs.pub.ResumePublish(key)
			}
			if refused == nil && (errors.Is(err, ps.ErrOversizedMessage) || status.Code(err) == codes.InvalidArgument) {
				refused = fmt.Errorf("pubsub: %s refused event %s: %w: %w", cs.topic, events[i].ID, event.ErrInvalid, err)
			}
			if first == nil {
				first = err
			}
		}
	}
	if refused != nil {
		return refused
	}
	if first != nil {
		return fmt.Errorf("pubsub: publish %d events to %s: %w: %w", len(events), cs.topic, channel.ErrUnavailable, first)
	}
	return nil
}
