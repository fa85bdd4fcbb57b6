package kafka

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// A gateway configured with one broker of three learns the others from the metadata; a subscription
// started after that broker died is seeded with them and delivers.
func TestSubscriptionAfterConfiguredBrokerDiedUsesLearnedBrokers(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()
	b := newBackend(t, addrs[:1], nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 3})
	if got := b.seeds(); !sameSet(got, addrs) {
		t.Fatalf("after Ensure the seeds are %v, want all of the cluster's brokers %v", got, addrs)
	}

	if err := c.RemoveNode(0); err != nil { // node 0 listens on addrs[0], the one configured
		t.Fatalf("RemoveNode: %v", err)
	}
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}
	col := &collect{}
	subscribe(t, b, g, col.handle)
	events := conformance.Events("after-death", 12, nil)
	produceTo(t, addrs[1:], topic, events, 0, 1, 2)
	eventually(t, 30*time.Second, "the events, through brokers the configuration does not name", func() bool {
		return len(col.ids()) >= len(events)
	})
	if got := col.ids(); !sameSet(got, conformance.IDs(events)) {
		t.Errorf("got %v, want %v", got, conformance.IDs(events))
	}
}

func TestSeedsKeepConfiguredBrokersFirst(t *testing.T) {
	b := newBackend(t, []string{"b:9092", "a:9092"}, nil)
	b.known = []string{"a:9092", "c:9092"}
	if got, want := b.seeds(), []string{"b:9092", "a:9092", "c:9092"}; !slices.Equal(got, want) {
		t.Errorf("seeds = %v, want %v", got, want)
	}
}

// Only the broker refusing the spec is a conflict; an authentication or authorization failure, or a
// broker that is not there, is retried as unavailable.
func TestIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{kerr.InvalidReplicationFactor, false}, // also what a cluster answers while brokers are fenced
		{kerr.InvalidPartitions, true},
		{kerr.PolicyViolation, true},
		{kerr.InvalidConfig, true},
		{kerr.SaslAuthenticationFailed, false},
		{kerr.TopicAuthorizationFailed, false},
		{kerr.ClusterAuthorizationFailed, false},
		{kerr.NotController, false},
		{kerr.RequestTimedOut, false},
	} {
		if got := isPermanent(tc.err); got != tc.want {
			t.Errorf("isPermanent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
