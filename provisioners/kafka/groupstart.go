package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/eventgate/eventgate/gateway/channel"
)

// fixStart gives group a position on topic before it consumes. When the group has no committed offset
// on topic at all (a new subscription), it commits the group's start through the admin API: the
// current end offsets for channel.Latest, the start offsets for channel.Earliest. From then on every
// event published is delivered, however long the group then takes to join and be assigned its
// partitions. A group with commits on topic keeps them (a replica joining an existing group changes
// nothing); its partitions without a commit, added to the topic later, start at their beginning (the
// consumer's reset offset, see Subscribe).
//
// It reports whether it committed. It blocks until done, until adminWaitTimeout has passed or until
// ctx is done; the cluster answering "not yet" (a coordinator loading, a leader moving, another
// member joining the group at this moment) is retried with backoff meanwhile. Errors wrap
// channel.ErrUnavailable.
//
// Two replicas subscribing a new group at the same instant may both find it without commits; the
// second commit then wins. fixStart checks for commits again right before committing, which leaves
// that window as short as one round trip.
func (b *Backend) fixStart(ctx context.Context, group, topic string, start channel.StartOffset) (bool, error) {
	committed := false
	err := poll(ctx, func(ctx context.Context) error {
		has, err := b.hasCommits(ctx, group, topic)
		if err != nil || has {
			return err
		}
		var listed kadm.ListedOffsets
		if start == channel.Earliest {
			listed, err = b.admin.ListStartOffsets(ctx, topic)
		} else {
			listed, err = b.admin.ListEndOffsets(ctx, topic)
		}
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			return startNotYet(fmt.Errorf("list offsets: %w", err))
		}
		offsets := listed.Offsets()
		if len(offsets[topic]) == 0 {
			return fmt.Errorf("%w: no partitions of %s listed", errNotYet, topic)
		}
		// A member may have committed meanwhile: its commits win.
		if has, err := b.hasCommits(ctx, group, topic); err != nil || has {
			return err
		}
		resp, err := b.admin.CommitOffsets(ctx, group, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return startNotYet(fmt.Errorf("commit: %w", err))
		}
		committed = true
		b.log.Info("kafka subscription start committed", "group", group, "topic", topic,
			"start", startName(start), "partitions", len(offsets[topic]))
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("kafka: fix the start of group %s on %s: %w: %w", group, topic, channel.ErrUnavailable, err)
	}
	return committed, nil
}

// hasCommits reports whether group has a committed offset on any partition of topic.
func (b *Backend) hasCommits(ctx context.Context, group, topic string) (bool, error) {
	fetched, err := b.admin.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return false, nil
	}
	if err != nil {
		return false, startNotYet(fmt.Errorf("fetch offsets: %w", err))
	}
	has := false
	for _, r := range fetched[topic] {
		if r.Err != nil {
			return false, startNotYet(fmt.Errorf("fetch offsets: partition %d: %w", r.Partition, r.Err))
		}
		if r.At >= 0 {
			has = true
		}
	}
	return has, nil
}

// startNotYet classifies an error of fixStart's admin requests: it wraps errNotYet unless the error
// is one retrying cannot fix (a broker error the broker calls permanent, such as an authorization
// failure). Request errors (no broker answered; the client has retried already) and a group that has
// live members right now (its commit is refused with UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION or
// REBALANCE_IN_PROGRESS, and the next try finds that member's commits) are "not yet".
func startNotYet(err error) error {
	var ke *kerr.Error
	switch {
	case !errors.As(err, &ke), ke.Retriable,
		errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.RebalanceInProgress):
		return fmt.Errorf("%w: %w", errNotYet, err)
	default:
		return err
	}
}

func startName(s channel.StartOffset) string {
	if s == channel.Earliest {
		return "earliest"
	}
	return "latest"
}
