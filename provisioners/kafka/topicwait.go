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

// adminWaitTimeout bounds how long the provisioner waits for the cluster to converge on a change it
// made (a topic created or grown shows in the metadata, a group's start offsets are committed), when
// the caller's context has no earlier deadline. A healthy cluster takes milliseconds; a busy one a few
// seconds.
const adminWaitTimeout = 30 * time.Second

// Polls (see poll) start pollMin apart and back off to pollMax.
const (
	pollMin = 10 * time.Millisecond
	pollMax = 500 * time.Millisecond
)

// errNotYet marks an answer that means "the cluster has not converged yet, ask again" (see poll).
var errNotYet = errors.New("not yet")

// errTopicNotYet says the metadata does not show the topic usable yet: the broker answering has not
// applied the controller's change (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, fewer
// partitions than created, a partition without a leader). Right after a create or a partition
// increase this is expected and means "poll again".
var errTopicNotYet = fmt.Errorf("topic %w in metadata with every partition led", errNotYet)

// topicMeta is what Ensure needs to know of a topic's shape.
type topicMeta struct {
	partitions int32
	replicas   int16 // replication factor (of partition 0)
}

// pollBackoff is the pause after poll attempt number attempt (counted from 0): pollMin doubled per
// attempt, at most pollMax.
func pollBackoff(attempt int) time.Duration {
	if attempt >= 16 {
		return pollMax
	}
	return min(pollMin<<attempt, pollMax)
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
	if retriable(err) {
		return fmt.Errorf("%w: %w", errTopicNotYet, err)
	}
	return err
}

// retriable reports whether err is a broker error the broker itself calls retriable.
func retriable(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && ke.Retriable
}

// awaitTopic polls the metadata until topic shows at least want partitions (want 0: any), each with
// a leader, and returns its shape. It asks a broker every time (not the client's metadata cache, which
// keeps an "unknown topic" answer for a while) and so refreshes that cache for the admin calls that
// follow. It blocks as poll does; its error wraps channel.ErrUnavailable.
func (b *Backend) awaitTopic(ctx context.Context, topic string, want int32) (topicMeta, error) {
	var m topicMeta
	err := poll(ctx, func(ctx context.Context) error {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, b.client)
		if err != nil {
			return fmt.Errorf("%w: %w", errNotYet, err) // the client has retried already; keep trying until the deadline
		}
		b.learnBrokers(resp)
		m, err = topicState(resp, topic, want)
		return err
	})
	if err != nil {
		return topicMeta{}, fmt.Errorf("kafka: topic %s not usable: %w: %w", topic, channel.ErrUnavailable, err)
	}
	return m, nil
}

// poll calls try until it returns nil or an error that does not wrap errNotYet, pausing
// pollBackoff(n) after the nth "not yet". It blocks until then, until adminWaitTimeout has passed
// or until ctx is done, and then returns try's last error (with how long it waited). try gets a
// context bounded the same way.
func poll(ctx context.Context, try func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, adminWaitTimeout)
	defer cancel()
	start := time.Now()
	for attempt := 0; ; attempt++ {
		err := try(ctx)
		if err == nil || !errors.Is(err, errNotYet) {
			return err
		}
		if !sleepCtx(ctx, pollBackoff(attempt)) {
			return fmt.Errorf("gave up after %v: %w", time.Since(start).Round(time.Millisecond), err)
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
