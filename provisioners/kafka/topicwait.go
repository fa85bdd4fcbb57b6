package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventgate/eventgate/gateway/channel"
)

// topicWaitTimeout bounds how long Ensure waits for a topic it created or grew to show in the
// metadata with every partition led, when its context has no earlier deadline. A healthy cluster
// takes milliseconds; a busy one a few seconds.
const topicWaitTimeout = 30 * time.Second

// Metadata polls start at metadataPollMin and double up to metadataPollMax.
const (
	metadataPollMin = 10 * time.Millisecond
	metadataPollMax = 500 * time.Millisecond
)

// errTopicNotYet says the metadata does not show the topic usable yet: the broker answering has not
// applied the controller's change (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, fewer
// partitions than created, a partition without a leader). Right after a create or a partition
// increase this is expected and means "poll again".
var errTopicNotYet = errors.New("topic not yet in metadata with every partition led")

// topicMeta is what Ensure needs to know of a topic's shape.
type topicMeta struct {
	partitions int32
	replicas   int16 // replication factor (of partition 0)
}

// metadataBackoff is the pause before metadata poll number attempt+1 (attempt counts from 0):
// metadataPollMin doubled per attempt, at most metadataPollMax.
func metadataBackoff(attempt int) time.Duration {
	if attempt >= 16 {
		return metadataPollMax
	}
	return min(metadataPollMin<<attempt, metadataPollMax)
}

// topicState reads topic's shape from a metadata response. It returns an error wrapping
// errTopicNotYet while the topic is missing, has fewer than want partitions (want 0: any number), or
// has a partition without a leader, or a retriable error; a non-retriable error (say, topic
// authorization failed) is returned as it is.
func topicState(resp *kmsg.MetadataResponse, topic string, want int32) (topicMeta, error) {
	var t *kmsg.MetadataResponseTopic
	for i := range resp.Topics {
		if rt := &resp.Topics[i]; rt.Topic != nil && *rt.Topic == topic {
			t = rt
			break
		}
	}
	if t == nil {
		return topicMeta{}, fmt.Errorf("%w: %w", errTopicNotYet, kerr.UnknownTopicOrPartition)
	}
	if err := notYet(kerr.ErrorForCode(t.ErrorCode)); err != nil {
		return topicMeta{}, err
	}
	have := int32(len(t.Partitions))
	if have == 0 || have < want {
		return topicMeta{}, fmt.Errorf("%w: %d of %d partitions", errTopicNotYet, have, max(want, 1))
	}
	for _, p := range t.Partitions {
		if err := notYet(kerr.ErrorForCode(p.ErrorCode)); err != nil {
			return topicMeta{}, fmt.Errorf("partition %d: %w", p.Partition, err)
		}
		if p.Leader < 0 {
			return topicMeta{}, fmt.Errorf("%w: partition %d has no leader", errTopicNotYet, p.Partition)
		}
	}
	return topicMeta{partitions: have, replicas: int16(len(t.Partitions[0].Replicas))}, nil
}

// notYet wraps a retriable broker error (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, …) in
// errTopicNotYet and returns any other error as it is; nil stays nil.
func notYet(err error) error {
	var ke *kerr.Error
	if errors.As(err, &ke) && ke.Retriable {
		return fmt.Errorf("%w: %w", errTopicNotYet, err)
	}
	return err
}

// awaitTopic polls the metadata, with backoff, until topic shows at least want partitions (want 0:
// any), each with a leader, and returns its shape. It asks a broker every time (not the client's
// metadata cache, which keeps an "unknown topic" answer for a while) and so refreshes that cache for
// the admin calls that follow. It blocks until then, until topicWaitTimeout has passed or until ctx
// is done; its error then wraps channel.ErrUnavailable and names what it saw last.
func (b *Backend) awaitTopic(ctx context.Context, topic string, want int32) (topicMeta, error) {
	ctx, cancel := context.WithTimeout(ctx, topicWaitTimeout)
	defer cancel()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, b.client)
		var m topicMeta
		if err == nil {
			m, err = topicState(resp, topic, want)
			if err == nil {
				return m, nil
			}
			if !errors.Is(err, errTopicNotYet) {
				return topicMeta{}, fmt.Errorf("kafka: describe topic %s: %w: %w", topic, channel.ErrUnavailable, err)
			}
		}
		if !sleepCtx(ctx, metadataBackoff(attempt)) {
			return topicMeta{}, fmt.Errorf("kafka: topic %s not usable after %v: %w: %w",
				topic, time.Since(start).Round(time.Millisecond), channel.ErrUnavailable, err)
		}
	}
}

// sleepCtx waits for d or until ctx is done; it reports whether the whole d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
