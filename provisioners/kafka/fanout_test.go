package kafka

import (
	"context"
	"maps"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

// sharing is a provisioner whose every group has the same Share key: the conformance suite then runs
// on the shared read (and, where it starts two members of one group, on their own reads).
type sharing struct{ channel.Provisioner }

func (s sharing) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	g.Share = "conformance"
	return s.Provisioner.Subscribe(ctx, g, h)
}

func TestConformanceShared(t *testing.T) {
	brokers := testBrokers(t)
	conformance.Run(t, func(t *testing.T) channel.Provisioner {
		return sharing{newBackend(t, brokers, nil)}
	})
}

// typeFilter passes events of one type and counts what it rejects.
type typeFilter struct {
	typ      string
	rejected atomic.Int64
}

func (f *typeFilter) Pass(e *event.Event) bool {
	if e.Type == f.typ {
		return true
	}
	f.rejected.Add(1)
	return false
}

// typedEvents returns n events whose type cycles through types.
func typedEvents(prefix string, n int, types ...string) []*event.Event {
	evs := conformance.Events(prefix, n, nil)
	for i, e := range evs {
		e.Type = types[i%len(types)]
	}
	return evs
}

func idsOfType(evs []*event.Event, typ string) []string {
	var out []string
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e.ID)
		}
	}
	return out
}

// Three groups sharing one read, each with a filter on a type: one fanout reads the topic, each group
// gets exactly its events, no handler ever sees another's, and each group commits to the end.
func TestSharedReadFiltersPerGroupAndCommitsEach(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 3})
	types := []string{"a", "b", "c", "ignored"}
	var cols []*collect
	var filters []*typeFilter
	var groups []string
	for _, typ := range types[:3] {
		f := &typeFilter{typ: typ}
		g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "t-"+typ+"-"), Start: channel.Latest, Filter: f, Share: "broker"}
		name, _ := b.GroupName(g)
		c := &collect{}
		s, err := b.Subscribe(testCtx(t, 30*time.Second), g, c.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cols, filters, groups = append(cols, c), append(filters, f), append(groups, name)
	}
	b.mu.Lock()
	fanouts, members := len(b.fanouts), len(b.members)
	b.mu.Unlock()
	if fanouts != 1 || members != 3 {
		t.Fatalf("%d shared reads for %d groups, want 1 for 3", fanouts, members)
	}
	evs := typedEvents("ev", 120, types...)
	produceTo(t, brokers, topic, evs, 0, 1, 2)
	for i, typ := range types[:3] {
		want := idsOfType(evs, typ)
		eventually(t, 30*time.Second, "group "+typ+"'s events", func() bool { return len(cols[i].ids()) >= len(want) })
		if got := cols[i].ids(); !sameSet(got, want) {
			t.Errorf("group %s got %d events %v, want its %d", typ, len(got), got, len(want))
		}
		if r := filters[i].rejected.Load(); r != int64(len(evs)-len(want)) {
			t.Errorf("group %s's filter rejected %d, want %d (each other event once)", typ, r, len(evs)-len(want))
		}
	}
	end := listedOffsets(t, brokers, topic, false)
	for _, g := range groups {
		eventually(t, 30*time.Second, g+" to commit to the end", func() bool {
			return maps.Equal(committedOffsets(t, brokers, g, topic), end)
		})
	}
}

// A group whose handler stops taking records is moved off the shared read: the others go on
// delivering meanwhile, and once it takes records again it gets every one of its events.
func TestSlowGroupDoesNotHoldBackTheSharedRead(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, func(c *Config) { c.MaxBufferedPerPartition = 8 })
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 1})
	release := make(chan struct{})
	slow := &collect{}
	stuck := func(cl channel.Claim) {
		select {
		case <-release:
		case <-cl.Context().Done():
			return
		}
		slow.handle(cl)
	}
	fast := &collect{}
	var subs []channel.Subscription
	for _, h := range []channel.ClaimHandler{stuck, fast.handle} {
		g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest, Share: "broker"}
		s, err := b.Subscribe(testCtx(t, 30*time.Second), g, h)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
		t.Cleanup(func() { s.Close() })
	}
	evs := conformance.Events("ev", 200, nil)
	produceTo(t, brokers, topic, evs, 0)
	eventually(t, 30*time.Second, "the fast group's 200 events while the other takes none", func() bool {
		return len(fast.ids()) >= len(evs)
	})
	if m := subs[0].(*member); func() bool { m.f.mu.Lock(); defer m.f.mu.Unlock(); return m.attached }() {
		t.Error("the stuck group is still attached to the shared read")
	}
	close(release)
	eventually(t, 30*time.Second, "the slow group's events once it takes them", func() bool {
		return len(uniq(slow.ids())) >= len(evs)
	})
	if got := uniq(slow.ids()); !sameSet(got, conformance.IDs(evs)) {
		t.Errorf("the slow group got %d distinct events, want all %d", len(got), len(evs))
	}
	t.Logf("slow group: %d deliveries for %d events after it was moved to a read of its own", len(slow.ids()), len(evs))
}

// A group that joins with an earliest start after the shared read went past it reads on its own and
// misses nothing.
func TestLateEarliestGroupReadsOnItsOwn(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	first := &collect{}
	g1 := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest, Share: "broker"}
	s1, err := b.Subscribe(testCtx(t, 30*time.Second), g1, first.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s1.Close() })
	evs := conformance.Events("ev", 40, nil)
	produceTo(t, brokers, topic, evs, 0, 1)
	eventually(t, 30*time.Second, "the first group's events", func() bool { return len(first.ids()) >= len(evs) })

	late := &collect{}
	g2 := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest, Share: "broker"}
	s2, err := b.Subscribe(testCtx(t, 30*time.Second), g2, late.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if m := s2.(*member); m.own == nil {
		t.Error("the late earliest group was attached to a shared read already past its start")
	}
	eventually(t, 30*time.Second, "the late group's events from the start", func() bool { return len(late.ids()) >= len(evs) })
	if got := late.ids(); !sameSet(got, conformance.IDs(evs)) {
		t.Errorf("late earliest group got %v", got)
	}
}

func uniq(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
