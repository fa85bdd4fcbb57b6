package kafka

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

func TestStartNotYet(t *testing.T) {
	for _, tt := range []struct {
		err    error
		notYet bool
	}{
		{errors.New("dial tcp: connection refused"), true}, // no broker answered (the client retried)
		{kerr.CoordinatorLoadInProgress, true},
		{kerr.NotCoordinator, true},
		{kerr.UnknownTopicOrPartition, true},
		{kerr.UnknownMemberID, true},     // the group has live members: they have commits
		{kerr.IllegalGeneration, true},   // same
		{kerr.RebalanceInProgress, true}, // same
		{kerr.GroupAuthorizationFailed, false},
		{&kadm.AuthError{Err: kerr.TopicAuthorizationFailed}, false},
		{kerr.InvalidCommitOffsetSize, false},
	} {
		err := startNotYet(fmt.Errorf("commit: %w", tt.err))
		if got := errors.Is(err, errNotYet); got != tt.notYet {
			t.Errorf("startNotYet(%v): not yet = %v, want %v", tt.err, got, tt.notYet)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("startNotYet(%v) = %v, lost the cause", tt.err, err)
		}
	}
}

// committedOffsets returns group's committed offsets on topic, read with an independent client.
func committedOffsets(t *testing.T, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	_, adm := adminClient(t, brokers)
	fetched, err := adm.FetchOffsets(testCtx(t, 30*time.Second), group)
	if err != nil {
		t.Fatalf("FetchOffsets(%s): %v", group, err)
	}
	out := map[int32]int64{}
	for p, r := range fetched[topic] {
		if r.Err != nil {
			t.Fatalf("FetchOffsets(%s) partition %d: %v", group, p, r.Err)
		}
		if r.At >= 0 {
			out[p] = r.At
		}
	}
	return out
}

// listedOffsets returns topic's start (earliest) or end offsets, read with an independent client.
func listedOffsets(t *testing.T, brokers []string, topic string, earliest bool) map[int32]int64 {
	t.Helper()
	_, adm := adminClient(t, brokers)
	list := adm.ListEndOffsets
	if earliest {
		list = adm.ListStartOffsets
	}
	listed, err := list(testCtx(t, 30*time.Second), topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// produceTo writes events to the given partitions of topic (event i to partitions[i%len]) with an
// independent client.
func produceTo(t testing.TB, brokers []string, topic string, evs []*event.Event, partitions ...int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		key, headers, value := event.ToKafka(e)
		r := &kgo.Record{Topic: topic, Partition: partitions[i%len(partitions)], Key: key, Value: value}
		for _, h := range headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		rs[i] = r
	}
	if err := cl.ProduceSync(testCtx(t, 30*time.Second), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// TestLatestStartFixedBeforeSubscribeReturns is the regression test for issue 11 item 1: a Latest
// group's start was resolved when its partitions were first assigned, after events published in the
// meantime, which were skipped for good (one of 50). Subscribe now commits the end offsets before it
// returns.
func TestLatestStartFixedBeforeSubscribeReturns(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 3})
	before := conformance.Events("before", 9, nil)
	produceTo(t, brokers, topic, before, 0, 1, 2)

	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest}
	groupName, _ := b.GroupName(g)
	c := &collect{}
	subscribe(t, b, g, c.handle)
	// Before any member was assigned anything, the group's position is the end of each partition.
	if got, want := committedOffsets(t, brokers, groupName, topic), listedOffsets(t, brokers, topic, false); !maps.Equal(got, want) {
		t.Fatalf("right after Subscribe the group has commits %v, want the end offsets %v", got, want)
	}
	after := conformance.Events("after", 50, nil)
	produceTo(t, brokers, topic, after, 0, 1, 2)
	eventually(t, 30*time.Second, "the 50 events published after Subscribe", func() bool {
		return len(c.ids()) >= len(after)
	})
	if got := c.ids(); !sameSet(got, conformance.IDs(after)) {
		t.Errorf("a Latest group got %d events %v, want exactly the %d published after Subscribe", len(got), got, len(after))
	}
}

func TestEarliestStartCommittedBeforeSubscribeReturns(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	before := conformance.Events("before", 4, nil)
	produceTo(t, brokers, topic, before, 0, 1)

	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}
	groupName, _ := b.GroupName(g)
	c := &collect{}
	subscribe(t, b, g, c.handle)
	if got, want := committedOffsets(t, brokers, groupName, topic), listedOffsets(t, brokers, topic, true); !maps.Equal(got, want) {
		t.Fatalf("right after Subscribe the group has commits %v, want the start offsets %v", got, want)
	}
	eventually(t, 30*time.Second, "the events published before Subscribe", func() bool { return len(c.ids()) >= len(before) })
	if got := c.ids(); !sameSet(got, conformance.IDs(before)) {
		t.Errorf("an Earliest group got %v, want %v", got, conformance.IDs(before))
	}
}

// A group that has commits keeps them: Subscribe (a replica joining, a restart) commits nothing, the
// committed partition resumes there, and a partition without a commit is read from its beginning.
func TestGroupWithCommitsKeepsThem(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	evs := conformance.Events("e", 8, nil)
	produceTo(t, brokers, topic, evs, 0, 1) // e-0, e-2, e-4, e-6 on 0; e-1, e-3, e-5, e-7 on 1

	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest}
	groupName, _ := b.GroupName(g)
	_, adm := adminClient(t, brokers)
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(testCtx(t, 30*time.Second), groupName, os); err != nil {
		t.Fatalf("commit: %v", err)
	}

	c := &collect{}
	subscribe(t, b, g, c.handle)
	if got := committedOffsets(t, brokers, groupName, topic); !maps.Equal(got, map[int32]int64{0: 2}) {
		t.Errorf("Subscribe changed the group's commits to %v, want {0: 2} kept", got)
	}
	want := []string{"e-4", "e-6", "e-1", "e-3", "e-5", "e-7"}
	eventually(t, 30*time.Second, "partition 0 from offset 2 and partition 1 from its start", func() bool {
		return len(c.ids()) >= len(want)
	})
	if got := c.ids(); !sameSet(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestPartitionAddedLaterStartsAtItsBeginning: partitions added to a topic after its group fixed
// its start have no commit; what is written there before the group's member is assigned them is
// delivered, not skipped by a start resolved at assignment.
func TestPartitionAddedLaterStartsAtItsBeginning(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest}
	s, err := b.Subscribe(testCtx(t, 30*time.Second), g, (&collect{}).handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 4}); err != nil {
		t.Fatalf("Ensure with 4 partitions: %v", err)
	}
	evs := conformance.Events("e", 8, nil)
	produceTo(t, brokers, topic, evs, 0, 1, 2, 3)
	c := &collect{}
	subscribe(t, b, g, c.handle)
	eventually(t, 30*time.Second, "the events on the old and the new partitions", func() bool { return len(c.ids()) >= len(evs) })
	if got := c.ids(); !sameSet(got, conformance.IDs(evs)) {
		t.Errorf("got %v, want %v", got, conformance.IDs(evs))
	}
}

// sameSet reports whether a and b hold the same strings, each once.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
