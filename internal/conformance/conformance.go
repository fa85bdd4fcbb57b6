// Package conformance is the test suite every channel provisioner runs, so that the dispatcher, written
// once above gateway/channel, can rely on the same semantics from each of them.
//
// A provisioner's test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) channel.Provisioner {
//			b := inmemory.New(inmemory.DefaultConfig(), nil)
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// The suite assumes nothing about a provisioner's internals: every subtest ensures its own channel with
// Partitions partitions and uses group names unique to the subtest and the run (a real broker keeps
// topics and groups between runs), and every wait is on a signal from a claim handler, bounded by
// Timeout. The suite never closes the provisioner; the constructor registers that with t.Cleanup.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// Run runs the conformance suite as subtests of t. newProvisioner is called once per subtest with the
// subtest's t; it may return a fresh provisioner or a shared one.
func Run(t *testing.T, newProvisioner func(t *testing.T) channel.Provisioner) {
	RunWith(t, newProvisioner, Options{})
}

// Options adjust a run of the suite for a system that cannot hold some case by its nature.
type Options struct {
	// CannotHold maps the name of a case (as in the subtest name, e.g. "MarkDoneCommitsContiguousPrefix")
	// to why the system behind the provisioner cannot hold it; the case is skipped with that reason.
	// Each one is a gap to cover with the provisioner's own tests, not a way to hide a bug.
	CannotHold map[string]string
}

// RunWith is Run with options.
func RunWith(t *testing.T, newProvisioner func(t *testing.T) channel.Provisioner, o Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, p channel.Provisioner)
	}{
		{"PublishThenSubscribeEarliest", testPublishThenSubscribeEarliest},
		{"LatestSeesOnlyLaterEvents", testLatest},
		{"PublishRightAfterSubscribeIsDelivered", testPublishRightAfterSubscribe},
		{"PartitionAddedLaterIsReadFromItsStart", testPartitionAddedLater},
		{"EveryGroupSeesEveryEvent", testTwoGroups},
		{"OrderPerPartitionAndKey", testOrder},
		{"MembersSplitPartitions", testMembersSplit},
		{"MarkDoneCommitsContiguousPrefix", testMarkDone},
		{"ResubscribeResumes", testResubscribe},
		{"PublishUnknownChannel", testPublishUnknown},
		{"CloseWaitsForHandlers", testCloseWaitsForHandlers},
		{"TailObservesWithoutAGroup", testTail},
		{"TraceContextTravelsWithTheEvent", testTraceContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if why, ok := o.CannotHold[tt.name]; ok {
				t.Skipf("cannot hold on this provisioner: %s", why)
			}
			tt.fn(t, newProvisioner(t))
		})
	}
	for name := range o.CannotHold {
		known := false
		for _, tt := range tests {
			known = known || tt.name == name
		}
		if !known {
			t.Errorf("Options.CannotHold names %q, which is not a case of the suite", name)
		}
	}
}

// spread is a partitionkey per index that spreads events over partitions whatever the hash.
func spread(i int) string { return "key-" + strconv.Itoa(i%17) }

func testPublishThenSubscribeEarliest(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	evs := Events("e", 30, spread)
	f.Publish(evs[:10]...)
	f.Publish(evs[10:]...)

	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c.Handle)
	WaitForIDs(t, IDs(evs), c)

	for _, r := range c.Records() {
		if r.Event.Source != "/eventgate/conformance" || string(r.Event.Data) != "payload of "+r.Event.ID {
			t.Errorf("record %d/%d: event not stored as published: %+v", r.Partition, r.Offset, r.Event)
		}
		if r.Partition < 0 || r.Partition >= Partitions {
			t.Errorf("record %s: partition %d out of range", r.Event.ID, r.Partition)
		}
	}
	if n := len(c.Records()); n != len(evs) {
		t.Errorf("received %d records, want %d (no duplicates in a quiet group)", n, len(evs))
	}
}

// waitForPositions publishes probe events with varied partitionkeys until c has received one on every
// partition. Afterwards every partition of c's group has a fixed position past everything published
// before the call, even on backends that resolve a start offset lazily after assignment.
func waitForPositions(t *testing.T, f *Fixture, c *Collector) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for i := 0; ; i++ {
		seen := make(map[int32]bool)
		for _, r := range c.Records() {
			if len(r.Event.ID) > 6 && r.Event.ID[:6] == "probe-" {
				seen[r.Partition] = true
			}
		}
		if len(seen) == Partitions {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("probes reached only partitions %v within %v", seen, Timeout)
		}
		f.Publish(NewEvent("probe-"+strconv.Itoa(i), "probe-"+strconv.Itoa(i)))
		// Bounded wait for the probe (or anything) to arrive before sending the next one.
		timer := time.NewTimer(200 * time.Millisecond)
		waitAny([]<-chan struct{}{c.signal()}, timer.C)
		timer.Stop()
	}
}

func testLatest(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	before := Events("before", 10, spread)
	f.Publish(before...)

	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Latest), c.Handle)
	WaitForActive(t, c)
	waitForPositions(t, f, c)

	after := Events("after", 10, spread)
	f.Publish(after...)
	WaitForIDs(t, IDs(after), c)
	for _, r := range c.Records() {
		if slices.Contains(IDs(before), r.Event.ID) {
			t.Errorf("a Latest group received %s, published before it joined", r.Event.ID)
		}
	}
}

// testPublishRightAfterSubscribe publishes the moment Subscribe returns, long before a member is
// assigned its partitions on a real broker: a Latest group's start is fixed by Subscribe, so every
// one of these events is delivered (issue 11: it was resolved at assignment, and one event of 50 was
// skipped for good).
func testPublishRightAfterSubscribe(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	before := Events("before", 10, spread)
	f.Publish(before...)

	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Latest), c.Handle)
	var after []*event.Event
	for i := range 5 { // several publishes, as separate requests to ingress would be
		evs := Events(fmt.Sprintf("after%d", i), 10, spread)
		f.Publish(evs...)
		after = append(after, evs...)
	}
	WaitForIDs(t, IDs(after), c)
	for _, r := range c.Records() {
		if slices.Contains(IDs(before), r.Event.ID) {
			t.Errorf("a Latest group received %s, published before it was subscribed", r.Event.ID)
		}
	}
}

// testPartitionAddedLater grows a channel under a subscribed Latest group: the new partitions have no
// position yet and are read from their beginning, so events written there before the group's member
// is assigned them are delivered too. A provisioner whose channels cannot grow (Ensure wraps
// errors.ErrUnsupported) skips it.
func testPartitionAddedLater(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Latest), c.Handle)
	WaitForActive(t, c)

	const grown = Partitions + 2
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	err := p.Ensure(ctx, channel.Spec{Ref: f.Ch, Partitions: grown, ReplicationFactor: 1})
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("channels cannot gain partitions: %v", err)
	}
	if err != nil {
		t.Fatalf("Ensure(%d partitions): %v", grown, err)
	}

	// Publish batches with fresh partitionkeys until events have reached a new partition (a producer
	// may take a moment to learn of them); every event must arrive.
	var sent []string
	deadline := time.Now().Add(Timeout)
	for i := 0; ; i++ {
		evs := Events(fmt.Sprintf("grown%d", i), 20, func(j int) string { return fmt.Sprintf("key-%d-%d", i, j) })
		f.Publish(evs...)
		sent = append(sent, IDs(evs)...)
		WaitForIDs(t, IDs(evs), c)
		if slices.ContainsFunc(c.Records(), func(r channel.Record) bool { return r.Partition >= Partitions }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event reached partitions %d..%d within %v", Partitions, grown-1, Timeout)
		}
	}
	WaitForIDs(t, sent, c)
	for _, r := range c.Records() {
		if r.Partition < 0 || r.Partition >= grown {
			t.Errorf("record %s: partition %d out of range", r.Event.ID, r.Partition)
		}
	}
}

func testTwoGroups(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	c1, c2 := NewCollector(nil), NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c1.Handle)
	f.Subscribe(f.Group(channel.Earliest), c2.Handle)
	evs := Events("e", 20, spread)
	f.Publish(evs...)
	WaitForIDs(t, IDs(evs), c1)
	WaitForIDs(t, IDs(evs), c2)
}

func testOrder(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	const keys, perKey = 5, 20
	// Interleave keys and publish in several batches; ids carry key and sequence.
	var all []string
	for batch := 0; batch < 4; batch++ {
		var evs []*event.Event
		for seq := batch * perKey / 4; seq < (batch+1)*perKey/4; seq++ {
			for k := 0; k < keys; k++ {
				id := fmt.Sprintf("k%d-%03d", k, seq)
				evs = append(evs, NewEvent(id, fmt.Sprintf("k%d", k)))
				all = append(all, id)
			}
		}
		f.Publish(evs...)
	}
	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c.Handle)
	WaitForIDs(t, all, c)

	lastOffset := make(map[int32]int64)
	keyPartition := make(map[string]int32)
	keySeq := make(map[string]string)
	for _, r := range c.Records() {
		if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
			t.Errorf("partition %d: offset %d arrived after %d", r.Partition, r.Offset, last)
		}
		lastOffset[r.Partition] = r.Offset
		key := r.Event.Extension("partitionkey")
		if p, ok := keyPartition[key]; ok && p != r.Partition {
			t.Errorf("key %s on partitions %d and %d", key, p, r.Partition)
		}
		keyPartition[key] = r.Partition
		if prev := keySeq[key]; prev != "" && r.Event.ID <= prev {
			t.Errorf("key %s: %s arrived after %s (publish order broken)", key, r.Event.ID, prev)
		}
		keySeq[key] = r.Event.ID
	}
}

func testMembersSplit(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	g := f.Group(channel.Earliest)
	c1, c2 := NewCollector(nil), NewCollector(nil)
	f.Subscribe(g, c1.Handle)
	WaitForActive(t, c1)
	f.Subscribe(g, c2.Handle)
	WaitForActive(t, c1, c2)

	evs := Events("e", 60, func(i int) string { return "key-" + strconv.Itoa(i) })
	f.Publish(evs...)
	WaitForIDs(t, IDs(evs), c1, c2)

	count := make(map[string]int)
	for i, c := range []*Collector{c1, c2} {
		recs := c.Records()
		if len(recs) == 0 {
			t.Errorf("member %d received nothing: partitions not split", i+1)
		}
		owned := c.Active()
		for _, r := range recs {
			count[r.Event.ID]++
			if !slices.Contains(owned, r.Partition) {
				t.Errorf("member %d received partition %d, which it does not own (%v)", i+1, r.Partition, owned)
			}
		}
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s received %d times in one group, want once", id, n)
		}
	}
}

func testMarkDone(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	g := f.Group(channel.Earliest)
	// One key: everything on one partition, offsets in publish order.
	evs := Events("e", 10, func(int) string { return "one-partition" })
	f.Publish(evs...)

	// Done: e-0..e-2 (a contiguous prefix), then e-4 and e-6 after gaps.
	done := map[string]bool{"e-0": true, "e-1": true, "e-2": true, "e-4": true, "e-6": true}
	c1 := NewCollector(func(r channel.Record) bool { return done[r.Event.ID] })
	s1 := f.Subscribe(g, c1.Handle)
	WaitForIDs(t, IDs(evs), c1)
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	c2 := NewCollector(nil)
	f.Subscribe(g, c2.Handle)
	again := IDs(evs[3:])
	WaitForIDs(t, again, c2)
	if got := ReceivedIDs(c2.Records()); !slices.Equal(got, again) {
		t.Errorf("after resubscribing got %v, want exactly %v (everything from the first not-done record)", got, again)
	}
}

func testResubscribe(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	g := f.Group(channel.Earliest)
	first := Events("first", 15, spread)
	f.Publish(first...)
	c1 := NewCollector(nil)
	s1 := f.Subscribe(g, c1.Handle)
	WaitForIDs(t, IDs(first), c1)
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	second := Events("second", 15, spread)
	f.Publish(second...)
	c2 := NewCollector(nil)
	f.Subscribe(g, c2.Handle)
	WaitForIDs(t, IDs(second), c2)
	for _, r := range c2.Records() {
		if slices.Contains(IDs(first), r.Event.ID) {
			t.Errorf("%s was done and committed before the restart but came again", r.Event.ID)
		}
	}
}

func testPublishUnknown(t *testing.T, p channel.Provisioner) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ref := channel.Ref{Namespace: "conformance", Name: UniqueName(t, "never-ensured-")}
	err := p.Publish(ctx, ref, Events("e", 1, nil))
	if !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Publish to unknown channel: err = %v, want ErrNotFound", err)
	}
}

func testCloseWaitsForHandlers(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	var (
		started, returned atomic.Int32
		notCancelled      atomic.Int32
		atGate            = make(chan struct{}, Partitions)
		gate              = make(chan struct{})
	)
	c := NewCollector(nil)
	h := func(cl channel.Claim) {
		started.Add(1)
		c.Handle(cl) // returns once Records is closed
		select {
		case <-cl.Context().Done():
		case <-time.After(Timeout):
			notCancelled.Add(1)
		}
		atGate <- struct{}{}
		<-gate
		returned.Add(1)
	}
	release := sync.OnceFunc(func() { close(gate) })
	defer release() // on failure too, so that cleanup's Close does not wait forever
	s := f.Subscribe(f.Group(channel.Earliest), h)
	WaitForActive(t, c)
	evs := Events("e", 9, spread)
	f.Publish(evs...)
	WaitForIDs(t, IDs(evs), c)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for i := int32(0); i < started.Load(); i++ {
		select {
		case <-atGate:
		case <-deadline.C:
			t.Fatalf("after Close, %d of %d handlers saw Records closed and Context cancelled", i, started.Load())
		}
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while handlers were still running", err)
	default:
	}
	release()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-deadline.C:
		t.Fatal("Close did not return after the handlers did")
	}
	if r, s := returned.Load(), started.Load(); r != s {
		t.Errorf("Close returned with %d of %d handlers returned", r, s)
	}
	if n := notCancelled.Load(); n != 0 {
		t.Errorf("%d handlers saw Records closed but Context not cancelled", n)
	}
}

// testTraceContext: the W3C trace context an event carries as its CloudEvents distributed-tracing
// extensions (traceparent, tracestate) comes out of the channel as it went in: how gateway/tracing
// carries a trace across every backend.
func testTraceContext(t *testing.T, p channel.Provisioner) {
	f := NewFixture(t, p)
	const (
		parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		state  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	)
	e := NewEvent("traced", "")
	e.SetExtension("traceparent", parent)
	e.SetExtension("tracestate", state)
	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c.Handle)
	f.Publish(e) // after Subscribe: Pub/Sub has no history before a subscription
	WaitForIDs(t, []string{"traced"}, c)
	got := c.Records()[0].Event
	if got.Extension("traceparent") != parent || got.Extension("tracestate") != state {
		t.Errorf("trace context after the channel: traceparent %q, tracestate %q; want %q, %q",
			got.Extension("traceparent"), got.Extension("tracestate"), parent, state)
	}
}
