package conformance

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// Timeout bounds every wait in the suite. It is generous because a real Kafka broker takes seconds to
// create topics and rebalance groups; waits end as soon as their condition holds.
const Timeout = 30 * time.Second

// Partitions is the partition count of every channel the suite ensures.
const Partitions = 3

// runID makes names unique across runs, so a real broker that keeps topics and groups between runs
// never hands one run another run's events.
var (
	runID   = strconv.FormatInt(time.Now().UnixNano(), 36)
	nameSeq atomic.Int64
)

// UniqueName turns t.Name() into a lower-case name made of [a-z0-9-] (see sanitize), prefixed with
// prefix and suffixed so that it is unique in this process and across runs. Safe for concurrent use.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	return fmt.Sprintf("%s%s-%s-%d", prefix, sanitize(t.Name()), runID, nameSeq.Add(1))
}

// sanitize maps name to at most 80 characters of [a-z0-9-]: letters are lower-cased, every run of other
// characters becomes one '-', and the result neither starts nor ends with '-'. Long names keep their
// end, where subtest names differ.
func sanitize(name string) string {
	var b strings.Builder
	dash := true // suppresses a leading dash
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	out := b.String()
	if len(out) > 80 {
		out = out[len(out)-80:]
	}
	return strings.Trim(out, "-")
}

// NewEvent returns a valid event with the given id; key, when not empty, is its partitionkey.
func NewEvent(id, key string) *event.Event {
	e := &event.Event{
		ID:              id,
		Source:          "/eventgate/conformance",
		SpecVersion:     event.SpecVersion,
		Type:            "dev.eventgate.conformance",
		DataContentType: "text/plain",
		Data:            []byte("payload of " + id),
	}
	if key != "" {
		e.SetExtension(event.PartitionKeyExtension, key)
	}
	return e
}

// Events returns n events with ids prefix-0 … prefix-(n-1); keyOf (nil: no key) picks each one's
// partitionkey from its index.
func Events(prefix string, n int, keyOf func(i int) string) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		key := ""
		if keyOf != nil {
			key = keyOf(i)
		}
		evs[i] = NewEvent(prefix+"-"+strconv.Itoa(i), key)
	}
	return evs
}

// IDs returns the ids of evs, in order.
func IDs(evs []*event.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// Fixture is one channel on one provisioner, set up for a single (sub)test and torn down with it.
type Fixture struct {
	T  *testing.T
	P  channel.Provisioner
	Ch channel.Ref
}

// NewFixture ensures a fresh channel with Partitions partitions on p and registers its removal with
// t.Cleanup. It does not close p.
func NewFixture(t *testing.T, p channel.Provisioner) *Fixture {
	t.Helper()
	f := &Fixture{T: t, P: p, Ch: channel.Ref{Namespace: "conformance", Name: UniqueName(t, "ch-")}}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := p.Ensure(ctx, channel.Spec{Ref: f.Ch, Partitions: Partitions, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Ensure(%v): %v", f.Ch, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := p.Remove(ctx, f.Ch); err != nil {
			t.Errorf("Remove(%v): %v", f.Ch, err)
		}
	})
	return f
}

// Group returns a group on the fixture's channel with a unique name and registers DeleteGroup with
// t.Cleanup (it runs after the cleanups of subscriptions opened later).
func (f *Fixture) Group(start channel.StartOffset) channel.Group {
	f.T.Helper()
	g := channel.Group{Channel: f.Ch, Name: UniqueName(f.T, "g-"), Start: start}
	f.T.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := f.P.DeleteGroup(ctx, g); err != nil {
			f.T.Errorf("DeleteGroup(%s): %v", g.Name, err)
		}
	})
	return g
}

// Publish publishes evs to the fixture's channel in one call and fails the test on error.
func (f *Fixture) Publish(evs ...*event.Event) {
	f.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := f.P.Publish(ctx, f.Ch, evs); err != nil {
		f.T.Fatalf("Publish(%d events): %v", len(evs), err)
	}
}

// Sub is a subscription opened by the suite; Close is idempotent and also registered with t.Cleanup.
type Sub struct {
	t    *testing.T
	once sync.Once
	sub  channel.Subscription
	err  error
}

// Close closes the subscription once and returns its error (the first call's error on every call).
func (s *Sub) Close() error {
	s.once.Do(func() { s.err = s.sub.Close() })
	return s.err
}

// Subscribe subscribes h as a member of g and fails the test on error.
func (f *Fixture) Subscribe(g channel.Group, h channel.ClaimHandler) *Sub {
	f.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	sub, err := f.P.Subscribe(ctx, g, h)
	if err != nil {
		f.T.Fatalf("Subscribe(%s): %v", g.Name, err)
	}
	s := &Sub{t: f.T, sub: sub}
	f.T.Cleanup(func() {
		if err := s.Close(); err != nil {
			f.T.Errorf("Subscription.Close: %v", err)
		}
	})
	return s
}

// Collector gathers what claim handlers receive. Its Handle method is a ClaimHandler; several
// subscriptions may share one Collector, or each have its own. Safe for concurrent use.
type Collector struct {
	mark func(channel.Record) bool

	mu      sync.Mutex
	recs    []channel.Record
	active  map[int32]int // partition → claims of it currently running Handle
	changed chan struct{} // closed and replaced whenever recs or active change
}

// NewCollector returns a Collector whose handler marks a record done when mark returns true for it
// (mark nil: every record). A record is marked done before it becomes visible to Wait conditions, so
// a test that has seen a record may rely on its MarkDone having been called.
func NewCollector(mark func(channel.Record) bool) *Collector {
	if mark == nil {
		mark = func(channel.Record) bool { return true }
	}
	return &Collector{mark: mark, active: make(map[int32]int), changed: make(chan struct{})}
}

func (c *Collector) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Handle is a channel.ClaimHandler: it takes the claim's records with Next where the claim is a
// channel.Puller, else from Records, until the claim is revoked.
func (c *Collector) Handle(cl channel.Claim) {
	c.mu.Lock()
	c.active[cl.Partition()]++
	c.notifyLocked()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.active[cl.Partition()]--; c.active[cl.Partition()] == 0 {
			delete(c.active, cl.Partition())
		}
		c.notifyLocked()
		c.mu.Unlock()
	}()
	take := func(r channel.Record) {
		if c.mark(r) {
			cl.MarkDone(r.Offset)
		}
		c.mu.Lock()
		c.recs = append(c.recs, r)
		c.notifyLocked()
		c.mu.Unlock()
	}
	if p, ok := cl.(channel.Puller); ok {
		for {
			r, ok := p.Next(cl.Context())
			if !ok {
				return
			}
			take(r)
		}
	}
	for r := range cl.Records() {
		take(r)
	}
}

// RecordsOnly returns p with its claims' Next hidden, so that the suite's handlers take records from
// Records. Collector pulls from a claim that is a channel.Puller, as the dispatcher does; a
// provisioner with such claims runs the suite through RecordsOnly as well, to cover handlers that
// range over Records. It keeps p's Tail.
func RecordsOnly(p channel.Provisioner) channel.Provisioner {
	if tl, ok := p.(channel.Tailer); ok {
		return recordsOnlyTail{recordsOnly{p}, tl}
	}
	return recordsOnly{p}
}

type recordsOnly struct{ channel.Provisioner }

// ClaimOnly returns c with nothing but the channel.Claim methods: its Next hidden, so that a
// Collector handed it ranges over its Records.
func ClaimOnly(c channel.Claim) channel.Claim { return claimOnly{c} }

type claimOnly struct{ channel.Claim }

func (r recordsOnly) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	return r.Provisioner.Subscribe(ctx, g, func(c channel.Claim) { h(ClaimOnly(c)) })
}

type recordsOnlyTail struct {
	recordsOnly
	channel.Tailer
}

// Records returns a copy of everything received so far, in arrival order.
func (c *Collector) Records() []channel.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// Active returns the partitions this collector's handlers currently hold claims for, sorted.
func (c *Collector) Active() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]int32, 0, len(c.active))
	for p := range c.active {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// signal returns a channel closed at the next change.
func (c *Collector) signal() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// WaitFor blocks until cond holds or Timeout passes (then it fails the test, naming what). cond is
// evaluated after every change to any of the collectors, never by sleeping.
func WaitFor(t testing.TB, what string, cond func() bool, cs ...*Collector) {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		// Take the signals before evaluating, so a change between the two is not missed.
		sigs := make([]<-chan struct{}, len(cs))
		for i, c := range cs {
			sigs[i] = c.signal()
		}
		if cond() {
			return
		}
		if !waitAny(sigs, deadline.C) {
			t.Fatalf("timed out after %v waiting for %s", Timeout, what)
		}
	}
}

// waitAny waits for one of sigs to close (true) or for timeout (false).
func waitAny(sigs []<-chan struct{}, timeout <-chan time.Time) bool {
	agg := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range sigs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-s:
				select {
				case agg <- struct{}{}:
				default:
				}
			case <-stop:
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	select {
	case <-agg:
		return true
	case <-timeout:
		return false
	}
}

// ReceivedIDs returns the ids of recs, in order.
func ReceivedIDs(recs []channel.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.Event.ID
	}
	return ids
}

// HasAll reports whether recs contain every id in want.
func HasAll(recs []channel.Record, want []string) bool {
	got := make(map[string]bool, len(recs))
	for _, r := range recs {
		got[r.Event.ID] = true
	}
	for _, id := range want {
		if !got[id] {
			return false
		}
	}
	return true
}

// WaitForIDs waits until the collectors together have received every id in want.
func WaitForIDs(t testing.TB, want []string, cs ...*Collector) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("%d events", len(want)), func() bool {
		var all []channel.Record
		for _, c := range cs {
			all = append(all, c.Records()...)
		}
		return HasAll(all, want)
	}, cs...)
}

// WaitForActive waits until the collectors' claims together cover every partition, each exactly once,
// and every collector holds at least one claim.
func WaitForActive(t testing.TB, cs ...*Collector) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("%d partitions claimed by %d members", Partitions, len(cs)), func() bool {
		seen := make(map[int32]bool)
		for _, c := range cs {
			act := c.Active()
			if len(act) == 0 {
				return false
			}
			for _, p := range act {
				if seen[p] {
					return false
				}
				seen[p] = true
			}
		}
		return len(seen) == Partitions
	}, cs...)
}
