package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
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

// A group that has a live member elsewhere (another replica that reads it on its own, or one killed
// whose session has not timed out yet) reads on its own from the start, beside that member: attached
// to the shared read, its plain commits would be refused, and what it delivered would be delivered
// again once it joined them.
func TestGroupWithMembersElsewhereReadsOnItsOwn(t *testing.T) {
	brokers := testBrokers(t)
	replica := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, replica, channel.Spec{Partitions: 2})
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest}
	there := &collect{}
	s1, err := replica.Subscribe(testCtx(t, 30*time.Second), g, there.handle) // no Share key: a member of g
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s1.Close() })
	name, err := replica.GroupName(g)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the other replica to be a member of "+name, func() bool {
		busy, err := replica.groupHasMembers(testCtx(t, 10*time.Second), name)
		return err == nil && busy
	})

	b := newBackend(t, brokers, nil)
	if err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	here := &collect{}
	g.Share = "subscriptions"
	s2, err := b.Subscribe(testCtx(t, 30*time.Second), g, here.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if m := s2.(*member); m.own == nil {
		t.Fatal("a group with a member on another replica was attached to the shared read")
	}
	evs := conformance.Events("ev", 40, nil)
	produceTo(t, brokers, topic, evs, 0, 1)
	eventually(t, 60*time.Second, "every event, by one replica or the other", func() bool {
		return len(uniq(append(there.ids(), here.ids()...))) >= len(evs)
	})
	if got := uniq(append(there.ids(), here.ids()...)); !sameSet(got, conformance.IDs(evs)) {
		t.Errorf("the two replicas got %v", got)
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

// sharedSub subscribes a group with Share key share on ref, closed at cleanup (a second Close is a
// no-op), and returns it as the fanout member it must be.
func sharedSub(t *testing.T, b *Backend, ref channel.Ref, share string, h channel.ClaimHandler) (*member, string) {
	t.Helper()
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Latest, Share: share}
	name, err := b.GroupName(g)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Subscribe(testCtx(t, 30*time.Second), g, h)
	if err != nil {
		t.Fatalf("Subscribe %s: %v", g.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	m, ok := s.(*member)
	if !ok {
		t.Fatalf("Subscribe with a Share key returned %T, want a shared read's member", s)
	}
	return m, name
}

// readerTopics returns the topics share's reader client consumes now (nil with no reader).
func readerTopics(b *Backend, share string) []string {
	b.mu.Lock()
	f := b.fanouts[share]
	b.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.cl.GetConsumeTopics()
}

// Two channels, a subscription each, one Share key: one reader (one client) reads both topics; each
// subscription gets exactly its channel's events, and each group's commits are on its own channel's
// topic, at its end, and on no other topic.
func TestOneSharedReadForManyChannels(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	refA, topicA := ensureChannel(t, b, channel.Spec{Partitions: 3})
	refB, topicB := ensureChannel(t, b, channel.Spec{Partitions: 2})
	colA, colB := &collect{}, &collect{}
	mA, groupA := sharedSub(t, b, refA, "subscriptions", colA.handle)
	mB, groupB := sharedSub(t, b, refB, "subscriptions", colB.handle)
	if mA.f != mB.f {
		t.Fatal("the two channels' subscriptions got two shared reads, want one")
	}
	b.mu.Lock()
	fanouts := len(b.fanouts)
	b.mu.Unlock()
	if fanouts != 1 {
		t.Fatalf("%d shared reads, want 1", fanouts)
	}
	evA, evB := conformance.Events("a", 90, nil), conformance.Events("b", 60, nil)
	produceTo(t, brokers, topicA, evA, 0, 1, 2)
	produceTo(t, brokers, topicB, evB, 0, 1)
	eventually(t, 30*time.Second, "both channels' events", func() bool {
		return len(colA.ids()) >= len(evA) && len(colB.ids()) >= len(evB)
	})
	if got := uniq(colA.ids()); !sameSet(got, conformance.IDs(evA)) {
		t.Errorf("channel A's subscription got %d events, want exactly A's %d", len(got), len(evA))
	}
	if got := uniq(colB.ids()); !sameSet(got, conformance.IDs(evB)) {
		t.Errorf("channel B's subscription got %d events, want exactly B's %d", len(got), len(evB))
	}
	endA, endB := listedOffsets(t, brokers, topicA, false), listedOffsets(t, brokers, topicB, false)
	eventually(t, 30*time.Second, "each group to commit its own topic to the end", func() bool {
		return maps.Equal(committedOffsets(t, brokers, groupA, topicA), endA) &&
			maps.Equal(committedOffsets(t, brokers, groupB, topicB), endB)
	})
	if c := committedOffsets(t, brokers, groupA, topicB); len(c) != 0 {
		t.Errorf("group A has commits on B's topic: %v", c)
	}
	if c := committedOffsets(t, brokers, groupB, topicA); len(c) != 0 {
		t.Errorf("group B has commits on A's topic: %v", c)
	}
}

// A channel whose last subscription closes leaves the shared read (its topic is purged from the
// reader's client), while another channel on the same read keeps delivering, before and after.
func TestChannelLeavesSharedReadOthersGoOn(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	refA, topicA := ensureChannel(t, b, channel.Spec{Partitions: 2})
	refB, topicB := ensureChannel(t, b, channel.Spec{Partitions: 2})
	colA, colB := &collect{}, &collect{}
	mA, _ := sharedSub(t, b, refA, "subscriptions", colA.handle)
	sharedSub(t, b, refB, "subscriptions", colB.handle)
	first := conformance.Events("first", 20, nil)
	produceTo(t, brokers, topicA, first, 0, 1)
	produceTo(t, brokers, topicB, first, 0, 1)
	eventually(t, 30*time.Second, "both channels' first events", func() bool {
		return len(colA.ids()) >= len(first) && len(colB.ids()) >= len(first)
	})

	if err := mA.Close(); err != nil {
		t.Fatalf("Close A's subscription: %v", err)
	}
	eventually(t, 10*time.Second, "A's topic to leave the shared read", func() bool {
		return !slices.Contains(readerTopics(b, "subscriptions"), topicA)
	})
	if topics := readerTopics(b, "subscriptions"); !slices.Contains(topics, topicB) {
		t.Errorf("the reader consumes %v after A's last subscription closed, want B's topic %s still", topics, topicB)
	}
	// The channel itself goes too (its topic deleted: the test backend deletes topics on Remove).
	if err := b.Remove(testCtx(t, 30*time.Second), refA); err != nil {
		t.Fatalf("Remove A: %v", err)
	}
	then := conformance.Events("then", 30, nil)
	produceTo(t, brokers, topicB, then, 0, 1)
	eventually(t, 30*time.Second, "B's events after A left the read", func() bool {
		return len(colB.ids()) >= len(first)+len(then)
	})
	if got := uniq(colB.ids()); !sameSet(got, append(conformance.IDs(first), conformance.IDs(then)...)) {
		t.Errorf("B got %d distinct events, want its %d", len(got), len(first)+len(then))
	}
	if n := len(uniq(colA.ids())); n != len(first) {
		t.Errorf("A's closed subscription got %d events, want only the first %d", n, len(first))
	}
}

// A subscription added to a channel whose topic the shared read already reads attaches to it (no
// client of its own) and gets every event published after Subscribe returned; the one already there
// misses nothing meanwhile.
func TestSubscriptionJoinsATopicAlreadyRead(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 3})
	first := &collect{}
	sharedSub(t, b, ref, "subscriptions", first.handle)
	before := conformance.Events("before", 30, nil)
	produceTo(t, brokers, topic, before, 0, 1, 2)
	eventually(t, 30*time.Second, "the first subscription's events", func() bool { return len(first.ids()) >= len(before) })

	second := &collect{}
	m2, _ := sharedSub(t, b, ref, "subscriptions", second.handle)
	if m2.own != nil {
		t.Fatal("a Latest subscription on a topic already read got a read of its own")
	}
	after := conformance.Events("after", 45, nil)
	produceTo(t, brokers, topic, after, 0, 1, 2)
	eventually(t, 30*time.Second, "both subscriptions' later events", func() bool {
		return len(second.ids()) >= len(after) && len(first.ids()) >= len(before)+len(after)
	})
	if got := uniq(second.ids()); !sameSet(got, conformance.IDs(after)) {
		t.Errorf("the added subscription got %d distinct events, want the %d published after it", len(got), len(after))
	}
	if got := uniq(first.ids()); !sameSet(got, append(conformance.IDs(before), conformance.IDs(after)...)) {
		t.Errorf("the first subscription got %d distinct events, want all %d", len(got), len(before)+len(after))
	}
}

// A channel's only subscription replaced at once (one closed, the next subscribed right after, as a
// reload renaming it does): its topic leaves the read and comes back, and the new subscription gets
// every event published after it subscribed. Another channel on the read keeps it running.
func TestTopicLeavesAndRejoinsTheSharedRead(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	other, _ := ensureChannel(t, b, channel.Spec{Partitions: 1})
	sharedSub(t, b, other, "subscriptions", (&collect{}).handle)
	old := &collect{}
	mOld, _ := sharedSub(t, b, ref, "subscriptions", old.handle)
	evs := conformance.Events("old", 10, nil)
	produceTo(t, brokers, topic, evs, 0, 1)
	eventually(t, 30*time.Second, "the old subscription's events", func() bool { return len(old.ids()) >= len(evs) })

	if err := mOld.Close(); err != nil {
		t.Fatal(err)
	}
	next := &collect{}
	start := time.Now()
	sharedSub(t, b, ref, "subscriptions", next.handle)
	after := conformance.Events("new", 20, nil)
	produceTo(t, brokers, topic, after, 0, 1)
	eventually(t, 45*time.Second, "the new subscription's events", func() bool { return len(next.ids()) >= len(after) })
	t.Logf("the replacing subscription had its events %v after it subscribed", time.Since(start).Round(time.Millisecond))
	if got := uniq(next.ids()); !sameSet(got, conformance.IDs(after)) {
		t.Errorf("the new subscription got %d distinct events, want the %d published after it", len(got), len(after))
	}
}

// A new channel's subscription on a reader that is already reading (and idle, its fetch in flight
// held by the broker) gets its first event without waiting for a metadata refresh: AddConsumeTopics
// asks for the topic's metadata at once. The time it took is logged (no timed assertion).
func TestNewChannelJoinsARunningSharedRead(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	busy, busyTopic := ensureChannel(t, b, channel.Spec{Partitions: 1})
	col := &collect{}
	sharedSub(t, b, busy, "subscriptions", col.handle)
	warm := conformance.Events("warm", 5, nil)
	produceTo(t, brokers, busyTopic, warm, 0)
	eventually(t, 30*time.Second, "the running read's events", func() bool { return len(col.ids()) >= len(warm) })

	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 3})
	fresh := &collect{}
	start := time.Now()
	sharedSub(t, b, ref, "subscriptions", fresh.handle)
	evs := conformance.Events("fresh", 3, nil)
	produceTo(t, brokers, topic, evs, 0, 1, 2)
	eventually(t, consumerMetadataMaxAge, "the new channel's events, within one metadata max age", func() bool {
		return len(fresh.ids()) >= len(evs)
	})
	t.Logf("a new channel's first events arrived %v after its subscription was made (fetch wait %v, metadata max age %v)",
		time.Since(start).Round(time.Millisecond), sharedFetchMaxWait, consumerMetadataMaxAge)
}

// Regression: channels joining the shared read together each begin a rebalance that cut the
// assignment session in progress, and its members were sent to reads of their own ("commits could
// not be read: context canceled"): 1,000 channels ended with 1,000 clients. Every subscription of
// many channels subscribed at once stays on the one read and gets its channel's events.
func TestManyChannelsJoiningAtOnceStayOnTheSharedRead(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	const n = 120
	refs, topics := make([]channel.Ref, n), make([]string, n)
	for i := range n {
		refs[i], topics[i] = ensureChannel(t, b, channel.Spec{Partitions: 3})
	}
	cols, members := make([]*collect, n), make([]*member, n)
	for i := range n {
		cols[i] = &collect{}
	}
	// Four at a time, one after the other, as the gateway starts subscriptions: topics keep joining
	// while the reader is being assigned the earlier ones.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				members[i], _ = sharedSub(t, b, refs[i], "subscriptions", cols[i].handle)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i := range n {
		produceTo(t, brokers, topics[i], conformance.Events(fmt.Sprintf("c%d-", i), 3, nil), 0, 1, 2)
	}
	eventually(t, 60*time.Second, "every channel's 3 events", func() bool {
		for _, c := range cols {
			if len(c.ids()) < 3 {
				return false
			}
		}
		return true
	})
	for i, m := range members {
		m.ownMu.Lock()
		own := m.own
		m.ownMu.Unlock()
		if own != nil {
			t.Errorf("channel %d's subscription reads on its own", i)
		}
	}
}

// logLines records the messages logged at info and above.
type logLines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logLines) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	l.mu.Lock()
	l.msgs = append(l.msgs, line)
	l.mu.Unlock()
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

func (l *logLines) matching(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			out = append(out, m)
		}
	}
	return out
}

func (l *logLines) count(substr string) int { return len(l.matching(substr)) }

// Two groups on the shared read, both with a subscriber slower than the backlog, hold nobody back
// (neither has room the other keeps it from using): they stay attached (the read waits for room in
// their claims, as a read of their own would), and each gets every event once, in offset order on
// each partition. Each was detached after stallTimeout, so a backlog on 1,000 subscriptions made
// 1,000 clients.
func TestSlowGroupsAsFarBehindStayOnTheSharedRead(t *testing.T) {
	brokers := testBrokers(t)
	logs := &logLines{}
	cfg := DefaultConfig()
	cfg.Brokers, cfg.DeleteTopicsOnRemove, cfg.MaxBufferedPerPartition = brokers, true, 100
	b, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	// A quarter of a claim's buffer (the room a poll waits for) takes each 500 ms, twice stallTimeout.
	slow := []*slowTaker{
		{every: 20 * time.Millisecond, stopped: make(chan struct{})},
		{every: 20 * time.Millisecond, stopped: make(chan struct{})},
	}
	var members []*member
	var groups []string
	for _, s := range slow {
		m, group := sharedSub(t, b, ref, "subscriptions", s.handle)
		members, groups = append(members, m), append(groups, group)
	}
	evs := conformance.Events("ev", 300, nil)
	produceTo(t, brokers, topic, evs, 0, 1)
	end := listedOffsets(t, brokers, topic, false)
	for i, s := range slow {
		eventually(t, 60*time.Second, "every event", func() bool { return len(s.ids()) >= len(evs) })
		eventually(t, 30*time.Second, "the group to commit to the end", func() bool {
			return maps.Equal(committedOffsets(t, brokers, groups[i], topic), end)
		})
		if got := s.ids(); len(got) != len(evs) || !sameSet(got, conformance.IDs(evs)) {
			t.Errorf("group %d: %d deliveries of %d distinct events, want each of the %d once", i, len(got), len(uniq(got)), len(evs))
		}
		last := map[int32]int64{}
		s.mu.Lock()
		for _, r := range s.recs {
			if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
				t.Errorf("group %d, partition %d: offset %d delivered after %d", i, r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
		}
		s.mu.Unlock()
		if !attached(members[i]) || members[i].own != nil {
			t.Errorf("group %d was moved off the shared read", i)
		}
	}
	if n := logs.count("detached"); n > 0 {
		t.Errorf("%d detach log lines, want none: %q", n, logs.matching("detached"))
	}
	b.mu.Lock()
	own := len(b.subs)
	b.mu.Unlock()
	if own > 0 {
		t.Errorf("%d reads of their own, want none", own)
	}
}

// A group alone on the shared read that cannot keep up is moved to a read of its own, which drains a
// backlog faster than the shared read (the shared read stops with it: no client more), and gets every
// event there.
func TestSlowGroupAloneReadsOnItsOwn(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, func(c *Config) { c.MaxBufferedPerPartition = 100 })
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	slow := &slowTaker{every: 20 * time.Millisecond, stopped: make(chan struct{})}
	m, _ := sharedSub(t, b, ref, "subscriptions", slow.handle)
	evs := conformance.Events("ev", 300, nil)
	produceTo(t, brokers, topic, evs, 0, 1)
	eventually(t, 30*time.Second, "the group to read on its own", func() bool { return readsOnItsOwn(m) })
	eventually(t, 60*time.Second, "every event", func() bool { return len(uniq(slow.ids())) >= len(evs) })
	if got := uniq(slow.ids()); !sameSet(got, conformance.IDs(evs)) {
		t.Errorf("got %d distinct events, want all %d", len(got), len(evs))
	}
	b.mu.Lock()
	shared := len(b.fanouts)
	b.mu.Unlock()
	if shared != 0 {
		t.Errorf("%d shared reads still running with their only member gone, want none", shared)
	}
}

// A slow group beside a fast one on the shared read holds the fast one back: it is detached, and the
// fast one gets all its events while the slow one has taken fewer than half of its own; the slow one
// then gets every event on its own read.
func TestSlowGroupBesideAFastOneIsDetached(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, func(c *Config) { c.MaxBufferedPerPartition = 100 })
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 1})
	// A quarter of a claim's buffer (the room a poll waits for) takes it 500 ms, twice stallTimeout.
	slow := &slowTaker{every: 20 * time.Millisecond, stopped: make(chan struct{})}
	fast := &collect{}
	ms, _ := sharedSub(t, b, ref, "subscriptions", slow.handle)
	sharedSub(t, b, ref, "subscriptions", fast.handle)
	evs := conformance.Events("ev", 200, nil)
	produceTo(t, brokers, topic, evs, 0)
	eventually(t, 60*time.Second, "the fast group's events", func() bool { return len(fast.ids()) >= len(evs) })
	if n := len(slow.ids()); n >= len(evs)/2 {
		t.Errorf("the fast group got its %d events only once the slow one had taken %d: it waited for it", len(evs), n)
	}
	eventually(t, 10*time.Second, "the slow group to read on its own", func() bool { return readsOnItsOwn(ms) })
	eventually(t, 60*time.Second, "the slow group's events on its own read", func() bool {
		return len(uniq(slow.ids())) >= len(evs)
	})
	if got := uniq(slow.ids()); !sameSet(got, conformance.IDs(evs)) {
		t.Errorf("the slow group got %d distinct events, want all %d", len(got), len(evs))
	}
}

// slowTaker takes one record per tick from each claim, and none once stopped: a subscriber far slower
// than the backlog, so the claims' buffers stay full.
type slowTaker struct {
	collect
	every   time.Duration
	claims  atomic.Int64
	stopped chan struct{}
}

func (s *slowTaker) handle(cl channel.Claim) {
	s.claims.Add(1)
	defer s.claims.Add(-1)
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-cl.Context().Done():
			return
		case <-s.stopped:
			<-cl.Context().Done()
			return
		case <-tick.C:
		}
		r, ok := cl.(channel.Puller).Next(cl.Context())
		if !ok {
			return
		}
		s.mu.Lock()
		s.recs = append(s.recs, r)
		s.mu.Unlock()
		cl.MarkDone(r.Offset)
	}
}

// readsOnItsOwn reports whether m has left its fanout for a read of its own.
func readsOnItsOwn(m *member) bool {
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	return !attached(m) && m.own != nil
}

// attached reports whether m is served by its fanout now.
func attached(m *member) bool {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	return m.attached
}
