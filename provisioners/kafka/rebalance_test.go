package kafka

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// sharedReplicas returns two backends that are replicas of one gateway: the same shared read groups,
// private to the test.
func sharedReplicas(t *testing.T, brokers []string, maxBuffered int) (*Backend, *Backend) {
	t.Helper()
	group := conformance.UniqueName(t, "rd-")
	mutate := func(c *Config) { c.SharedReadGroup, c.MaxBufferedPerPartition = group, maxBuffered }
	return newBackend(t, brokers, mutate), newBackend(t, brokers, mutate)
}

// A second replica of a subscription on the shared read gets its share of the partitions and delivers
// from it within a heartbeat or two, while the first replica's reader is waiting for room in its
// claims (a slow subscriber behind a backlog): the reader must let the rebalance revoke partitions
// from it while it waits, not only between polls. The 20 s deadline is far over what that takes
// (a few heartbeats) and well under the session timeout a missed rebalance would cost (15 s per
// round, 30 s seen).
func TestSecondReplicaGetsItsShareWhileTheFirstIsBusy(t *testing.T) {
	brokers := testBrokers(t)
	b1, b2 := sharedReplicas(t, brokers, 8)
	ref, topic := ensureChannel(t, b1, channel.Spec{Partitions: 4})
	if err := b2.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest, Share: "subscriptions"}
	// Far slower than the room a poll waits for (a quarter of the buffer, 2 records: 400 ms): the
	// reader waits for room most of the time.
	slow := &slowTaker{every: 200 * time.Millisecond, stopped: make(chan struct{})}
	s1, err := b1.Subscribe(testCtx(t, 30*time.Second), g, slow.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s1.Close() })
	t.Cleanup(func() { close(slow.stopped) })
	// Beside it on the first replica, another group as far behind: a member alone on a shared read
	// that cannot keep up moves to a read of its own (see pollSize); two as slow stay.
	other := &slowTaker{every: 200 * time.Millisecond, stopped: make(chan struct{})}
	g2 := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g2-"), Start: channel.Latest, Share: "subscriptions"}
	s3, err := b1.Subscribe(testCtx(t, 30*time.Second), g2, other.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s3.Close() })
	t.Cleanup(func() { close(other.stopped) })
	evs := conformance.Events("ev", 400, nil)
	produceTo(t, brokers, topic, evs, 0, 1, 2, 3)
	eventually(t, 30*time.Second, "the first replica to deliver from every partition", func() bool {
		return slow.claims.Load() == 4 && len(slow.ids()) >= 4
	})

	fast := &collect{}
	s2, err := b2.Subscribe(testCtx(t, 30*time.Second), g, fast.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	eventually(t, 20*time.Second, "the second replica to deliver while the first is busy", func() bool {
		return len(fast.ids()) > 0
	})
	eventually(t, 20*time.Second, "the first replica to hand over half the partitions", func() bool {
		return slow.claims.Load() == 2
	})
	for _, s := range []channel.Subscription{s1, s3} {
		if m := s.(*member); !attached(m) {
			t.Error("a member of the first replica left the shared read; the test is about a busy shared read")
		}
	}
}
