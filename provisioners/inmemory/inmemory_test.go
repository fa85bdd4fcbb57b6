package inmemory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newBackend returns a Backend on DefaultConfig changed by mutate (when not nil), closed at cleanup.
func newBackend(t *testing.T, mutate func(*Config)) *Backend {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	b := New(cfg, testLogger(t))
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// TestConformance runs the suite with handlers that pull (Next), as the dispatcher does;
// TestConformanceRecords with handlers that range over Records.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) channel.Provisioner { return newBackend(t, nil) })
}

func TestConformanceRecords(t *testing.T) {
	conformance.Run(t, func(t *testing.T) channel.Provisioner { return conformance.RecordsOnly(newBackend(t, nil)) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), conformance.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// delivery is one record handed to a handler together with its claim, so a test can mark it done
// when it chooses.
type delivery struct {
	cl channel.Claim
	r  channel.Record
}

// forward returns a handler that passes every record to out and marks nothing done itself.
func forward(out chan<- delivery) channel.ClaimHandler {
	return func(cl channel.Claim) {
		for r := range cl.Records() {
			select {
			case out <- delivery{cl, r}:
			case <-cl.Context().Done():
			}
		}
	}
}

// next receives the next delivery or fails the test after the suite's timeout.
func next(t *testing.T, in <-chan delivery) delivery {
	t.Helper()
	timer := time.NewTimer(conformance.Timeout)
	defer timer.Stop()
	select {
	case d := <-in:
		return d
	case <-timer.C:
		t.Fatal("timed out waiting for a record")
		return delivery{}
	}
}

// eventSize is the Size of every event conformance.NewEvent makes for ids of equal length.
var eventSize = int64(conformance.NewEvent("e-00", "").Size())

// smallChannel returns a Backend whose channels hold exactly n events of eventSize, and one channel
// on it with one partition (so offsets follow publish order).
func smallChannel(t *testing.T, n int64) (*Backend, channel.Ref) {
	t.Helper()
	b := newBackend(t, func(c *Config) { c.BytesPerChannel, c.RetryAfter = n*eventSize, 3*time.Second })
	ref := channel.Ref{Namespace: "test", Name: "small"}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	return b, ref
}

func evs(from, to int) []*event.Event {
	var out []*event.Event
	for i := from; i < to; i++ {
		out = append(out, conformance.NewEvent(fmt.Sprintf("e-%02d", i), ""))
	}
	return out
}

func subscribe(t *testing.T, b *Backend, g channel.Group, h channel.ClaimHandler) channel.Subscription {
	t.Helper()
	s, err := b.Subscribe(ctxT(t), g, h)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A pulling handler: Next waits for a publish, gives up with its own context (the claim goes on and
// Next works again), hands out records in offset order, and returns false once the claim is revoked.
func TestNextWaitsForPublishesAndStopsAtRevoke(t *testing.T) {
	b, ref := smallChannel(t, 100)
	type step struct {
		r  channel.Record
		ok bool
	}
	steps := make(chan step, 8) // room for the last step: Close waits for the handler
	early := make(chan bool, 1)
	sub := subscribe(t, b, channel.Group{Channel: ref, Name: "g", Start: channel.Latest}, func(cl channel.Claim) {
		p := cl.(channel.Puller)
		ctx, cancel := context.WithCancel(cl.Context())
		cancel()
		_, ok := p.Next(ctx) // nothing published, and ctx is done
		early <- ok
		for {
			r, ok := p.Next(cl.Context())
			steps <- step{r, ok}
			if !ok {
				return
			}
			cl.MarkDone(r.Offset)
		}
	})
	if ok := <-early; ok {
		t.Fatal("Next with a done context and nothing published returned a record")
	}
	if err := b.Publish(ctxT(t), ref, evs(0, 3)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s := <-steps
		if !s.ok || s.r.Offset != int64(i) || s.r.Event.ID != fmt.Sprintf("e-%02d", i) {
			t.Fatalf("Next #%d = offset %d, %v, ok %v; want offset %d, e-%02d", i, s.r.Offset, s.r.Event, s.ok, i, i)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if s := <-steps; s.ok {
		t.Fatalf("Next after the claim was revoked returned offset %d", s.r.Offset)
	}
}

func TestFullChannelRefusesUntilSlowGroupMarksDone(t *testing.T) {
	b, ref := smallChannel(t, 10)
	got := make(chan delivery, 100)
	subscribe(t, b, channel.Group{Channel: ref, Name: "slow", Start: channel.Earliest}, forward(got))

	for _, e := range evs(0, 10) {
		if err := b.Publish(ctxT(t), ref, []*event.Event{e}); err != nil {
			t.Fatalf("Publish %s: %v", e.ID, err)
		}
	}
	err := b.Publish(ctxT(t), ref, evs(10, 11))
	var full *channel.FullError
	if !errors.As(err, &full) || !errors.Is(err, channel.ErrFull) {
		t.Fatalf("Publish to a full channel: err = %v, want *channel.FullError", err)
	}
	if full.RetryAfter != 3*time.Second {
		t.Errorf("RetryAfter = %v, want the configured 3s", full.RetryAfter)
	}
	if bytes, limit := b.Stats(ref); bytes != 10*eventSize || limit != 10*eventSize {
		t.Errorf("Stats = %d/%d, want %d/%d", bytes, limit, 10*eventSize, 10*eventSize)
	}

	// The slow group still gets all ten acknowledged events, and marking three done makes room.
	var ds []delivery
	for i := 0; i < 10; i++ {
		ds = append(ds, next(t, got))
		if want := fmt.Sprintf("e-%02d", i); ds[i].r.Event.ID != want {
			t.Fatalf("record %d is %s, want %s", i, ds[i].r.Event.ID, want)
		}
	}
	ds[2].cl.MarkDone(ds[2].r.Offset) // after a gap: frees nothing yet
	if err := b.Publish(ctxT(t), ref, evs(10, 11)); !errors.Is(err, channel.ErrFull) {
		t.Fatalf("with only a record after a gap done, Publish: err = %v, want ErrFull", err)
	}
	ds[0].cl.MarkDone(ds[0].r.Offset)
	ds[1].cl.MarkDone(ds[1].r.Offset)
	if bytes, _ := b.Stats(ref); bytes != 7*eventSize {
		t.Errorf("after 3 done, Stats bytes = %d, want %d", bytes, 7*eventSize)
	}
	if err := b.Publish(ctxT(t), ref, evs(10, 13)); err != nil {
		t.Fatalf("Publish after the slow group caught up: %v", err)
	}
	for i := 10; i < 13; i++ {
		if d := next(t, got); d.r.Event.ID != fmt.Sprintf("e-%02d", i) {
			t.Fatalf("got %s, want e-%02d", d.r.Event.ID, i)
		}
	}
}

func TestBatchThatDoesNotFitIsRefusedWhole(t *testing.T) {
	b, ref := smallChannel(t, 10)
	got := make(chan delivery, 100)
	subscribe(t, b, channel.Group{Channel: ref, Name: "g", Start: channel.Earliest}, forward(got))

	if err := b.Publish(ctxT(t), ref, evs(0, 8)); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t), ref, evs(8, 11)); !errors.Is(err, channel.ErrFull) {
		t.Fatalf("3 events into room for 2: err = %v, want ErrFull", err)
	}
	if bytes, _ := b.Stats(ref); bytes != 8*eventSize {
		t.Errorf("a refused batch changed the bytes held: %d, want %d", bytes, 8*eventSize)
	}
	if err := b.Publish(ctxT(t), ref, evs(20, 22)); err != nil {
		t.Fatalf("2 events into room for 2: %v", err)
	}
	var ids []string
	for range 10 {
		ids = append(ids, next(t, got).r.Event.ID)
	}
	want := []string{"e-00", "e-01", "e-02", "e-03", "e-04", "e-05", "e-06", "e-07", "e-20", "e-21"}
	if !slices.Equal(ids, want) {
		t.Errorf("received %v, want %v (nothing of the refused batch)", ids, want)
	}
}

func TestBatchLargerThanTheBoundIsRefused(t *testing.T) {
	b, ref := smallChannel(t, 10)
	err := b.Publish(ctxT(t), ref, evs(0, 11))
	var full *channel.FullError
	if !errors.As(err, &full) {
		t.Fatalf("err = %v, want *channel.FullError", err)
	}
}

func TestChannelWithoutGroupsNeverFills(t *testing.T) {
	b, ref := smallChannel(t, 10)
	for i := 0; i < 95; i++ {
		if err := b.Publish(ctxT(t), ref, evs(i, i+1)); err != nil {
			t.Fatalf("Publish %d with no groups: %v", i, err)
		}
	}
	if bytes, limit := b.Stats(ref); bytes != limit {
		t.Errorf("Stats = %d/%d: a channel without groups should keep what fits", bytes, limit)
	}
	// Nothing retained the oldest; the newest ten are still there for an Earliest group.
	c := conformance.NewCollector(nil)
	subscribe(t, b, channel.Group{Channel: ref, Name: "late", Start: channel.Earliest}, c.Handle)
	want := conformance.IDs(evs(85, 95))
	conformance.WaitForIDs(t, want, c)
	if got := conformance.ReceivedIDs(c.Records()); !slices.Equal(got, want) {
		t.Errorf("late Earliest group got %v, want %v", got, want)
	}
}

func TestDeleteGroupReleasesRetention(t *testing.T) {
	b, ref := smallChannel(t, 10)
	fast := conformance.NewCollector(nil)
	slowGot := make(chan delivery, 100)
	slow := channel.Group{Channel: ref, Name: "slow", Start: channel.Earliest}
	subscribe(t, b, channel.Group{Channel: ref, Name: "fast", Start: channel.Earliest}, fast.Handle)
	slowSub := subscribe(t, b, slow, forward(slowGot))

	if err := b.Publish(ctxT(t), ref, evs(0, 10)); err != nil {
		t.Fatal(err)
	}
	conformance.WaitForIDs(t, conformance.IDs(evs(0, 10)), fast)
	if bytes, _ := b.Stats(ref); bytes != 10*eventSize {
		t.Fatalf("bytes = %d, want %d retained by the slow group", bytes, 10*eventSize)
	}
	if err := b.Publish(ctxT(t), ref, evs(10, 11)); !errors.Is(err, channel.ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	if err := slowSub.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes, _ := b.Stats(ref); bytes != 10*eventSize {
		t.Fatalf("closing a subscription must keep its group's retention: bytes = %d", bytes)
	}
	if err := b.DeleteGroup(ctxT(t), slow); err != nil {
		t.Fatal(err)
	}
	if bytes, _ := b.Stats(ref); bytes != 0 {
		t.Errorf("after DeleteGroup, bytes = %d, want 0 (the fast group is done with everything)", bytes)
	}
	if err := b.Publish(ctxT(t), ref, evs(10, 20)); err != nil {
		t.Errorf("Publish after DeleteGroup: %v", err)
	}
	if err := b.DeleteGroup(ctxT(t), slow); err != nil {
		t.Errorf("second DeleteGroup: %v", err)
	}
}

func TestDeleteLastGroupLetsPublishEvict(t *testing.T) {
	b, ref := smallChannel(t, 10)
	g := channel.Group{Channel: ref, Name: "only", Start: channel.Earliest}
	s := subscribe(t, b, g, forward(make(chan delivery, 100)))
	if err := b.Publish(ctxT(t), ref, evs(0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t), ref, evs(10, 11)); !errors.Is(err, channel.ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	// Deleting the group revokes the claims of its still-open subscription.
	if err := b.DeleteGroup(ctxT(t), g); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t), ref, evs(10, 15)); err != nil {
		t.Errorf("Publish with no group left: %v", err)
	}
}

func TestRemoveReleasesChannel(t *testing.T) {
	b, ref := smallChannel(t, 10)
	c := conformance.NewCollector(func(channel.Record) bool { return false })
	s := subscribe(t, b, channel.Group{Channel: ref, Name: "g", Start: channel.Earliest}, c.Handle)
	if err := b.Publish(ctxT(t), ref, evs(0, 10)); err != nil {
		t.Fatal(err)
	}
	conformance.WaitForIDs(t, conformance.IDs(evs(0, 10)), c)

	if err := b.Remove(ctxT(t), ref); err != nil {
		t.Fatal(err)
	}
	if len(c.Active()) != 0 {
		t.Errorf("claims still running after Remove: %v", c.Active())
	}
	if err := b.Publish(ctxT(t), ref, evs(10, 11)); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Publish after Remove: err = %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Remove: %v", err)
	}
	if err := b.Remove(ctxT(t), ref); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	// Ensured again, the channel starts empty.
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if bytes, _ := b.Stats(ref); bytes != 0 {
		t.Errorf("re-created channel holds %d bytes, want 0", bytes)
	}
	if err := b.Publish(ctxT(t), ref, evs(0, 10)); err != nil {
		t.Errorf("Publish to re-created channel: %v", err)
	}
}

func TestLagFollowsCommits(t *testing.T) {
	b, ref := smallChannel(t, 100)
	var _ channel.LagReporter = b
	got := make(chan delivery, 100)
	g := channel.Group{Channel: ref, Name: "g", Start: channel.Earliest}
	subscribe(t, b, g, forward(got))
	if err := b.Publish(ctxT(t), ref, evs(0, 5)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		d := next(t, got)
		if i < 2 {
			d.cl.MarkDone(d.r.Offset)
		}
	}
	lag := b.Lag(ctxT(t))
	want := []channel.LagSample{{Group: g, Partition: 0, Lag: 3}}
	if !slices.Equal(lag, want) {
		t.Errorf("Lag = %+v, want %+v", lag, want)
	}
}

func TestStatsUnknownChannel(t *testing.T) {
	b := newBackend(t, nil)
	if bytes, limit := b.Stats(channel.Ref{Namespace: "x", Name: "y"}); bytes != 0 || limit != 0 {
		t.Errorf("Stats = %d/%d, want 0/0", bytes, limit)
	}
}

func TestDefaults(t *testing.T) {
	b := New(DefaultConfig(), nil)
	defer b.Close()
	if b.cfg.BytesPerChannel != 64<<20 || b.cfg.Partitions != 4 || b.cfg.RetryAfter != time.Second {
		t.Errorf("defaults = %+v", b.cfg)
	}
	ref := channel.Ref{Namespace: "d", Name: "d"}
	if err := b.Ensure(context.Background(), channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(context.Background(), channel.Group{Channel: ref, Name: "g"}, func(channel.Claim) {}); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Lag(context.Background())); n != 4 {
		t.Errorf("a default channel has %d partitions, want 4", n)
	}
}

func TestEnsureRaisesPartitions(t *testing.T) {
	b := newBackend(t, nil)
	ref := channel.Ref{Namespace: "test", Name: "grow"}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	c := conformance.NewCollector(nil)
	subscribe(t, b, channel.Group{Channel: ref, Name: "g", Start: channel.Earliest}, c.Handle)
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	conformance.WaitForActive(t, c) // three partitions, all claimed
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: 2}); err != nil {
		t.Errorf("Ensure with fewer partitions: %v (want kept, not an error)", err)
	}
	all := conformance.Events("e", 30, func(i int) string { return strconv.Itoa(i) })
	if err := b.Publish(ctxT(t), ref, all); err != nil {
		t.Fatal(err)
	}
	conformance.WaitForIDs(t, conformance.IDs(all), c)
}

func TestLeavingMemberHandsPartitionsOver(t *testing.T) {
	b := newBackend(t, nil)
	ref := channel.Ref{Namespace: "test", Name: "leave"}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: conformance.Partitions}); err != nil {
		t.Fatal(err)
	}
	g := channel.Group{Channel: ref, Name: "g", Start: channel.Earliest}
	c1, c2 := conformance.NewCollector(nil), conformance.NewCollector(nil)
	subscribe(t, b, g, c1.Handle)
	s2 := subscribe(t, b, g, c2.Handle)
	conformance.WaitForActive(t, c1, c2)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if act := c2.Active(); len(act) != 0 {
		t.Errorf("closed member still holds %v", act)
	}
	conformance.WaitForActive(t, c1)
}

func TestClosedBackend(t *testing.T) {
	b := New(DefaultConfig(), testLogger(t))
	ref := channel.Ref{Namespace: "test", Name: "closed"}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	c := conformance.NewCollector(nil)
	s, err := b.Subscribe(ctxT(t), channel.Group{Channel: ref, Name: "g"}, c.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if act := c.Active(); len(act) != 0 {
		t.Errorf("handlers still running after Close: %v", act)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Subscription.Close after Backend.Close: %v", err)
	}
	if err := b.Publish(ctxT(t), ref, evs(0, 1)); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Publish after Close: err = %v, want ErrUnavailable", err)
	}
	if _, err := b.Subscribe(ctxT(t), channel.Group{Channel: ref, Name: "g"}, c.Handle); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Subscribe after Close: err = %v, want ErrUnavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	b := newBackend(t, nil)
	ref := channel.Ref{Namespace: "test", Name: "bad"}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: channel.Ref{Name: "x"}}); err == nil {
		t.Error("Ensure without namespace: want error")
	}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: -1}); err == nil {
		t.Error("Ensure with negative partitions: want error")
	}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxT(t), ref, []*event.Event{nil}); err == nil {
		t.Error("Publish of a nil event: want error")
	}
	if err := b.Publish(ctxT(t), ref, nil); err != nil {
		t.Errorf("Publish of nothing: %v", err)
	}
	if _, err := b.Subscribe(ctxT(t), channel.Group{Channel: ref, Name: "g"}, nil); err == nil {
		t.Error("Subscribe with a nil handler: want error")
	}
	if _, err := b.Subscribe(ctxT(t), channel.Group{Channel: ref}, func(channel.Claim) {}); err == nil {
		t.Error("Subscribe with no group name: want error")
	}
	if _, err := b.Subscribe(ctxT(t), channel.Group{Channel: channel.Ref{Namespace: "no", Name: "pe"}, Name: "g"},
		func(channel.Claim) {}); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Subscribe to unknown channel: err = %v, want ErrNotFound", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(ctx, ref, evs(0, 1)); !errors.Is(err, channel.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a done context: err = %v", err)
	}
}

func TestPublishedEventsAreIsolatedFromCaller(t *testing.T) {
	b, ref := smallChannel(t, 10)
	c := conformance.NewCollector(nil)
	subscribe(t, b, channel.Group{Channel: ref, Name: "g", Start: channel.Earliest}, c.Handle)
	e := conformance.NewEvent("e-00", "")
	if err := b.Publish(ctxT(t), ref, []*event.Event{e}); err != nil {
		t.Fatal(err)
	}
	e.Data[0] = 'X'
	e.SetExtension("mutated", "yes")
	conformance.WaitForIDs(t, []string{"e-00"}, c)
	got := c.Records()[0].Event
	if string(got.Data) != "payload of e-00" || got.Extension("mutated") != "" {
		t.Errorf("stored event changed with the caller's: %+v", got)
	}
}

// TestConcurrentPublishersAndConsumersLoseNothing runs publishers against a small channel (so they
// meet FullError and retry) while two groups consume with members joining mid-stream.
func TestConcurrentPublishersAndConsumersLoseNothing(t *testing.T) {
	const publishers, perPublisher = 4, 300
	b := newBackend(t, func(c *Config) { c.BytesPerChannel, c.RetryAfter = 40*eventSize, time.Millisecond })
	ref := channel.Ref{Namespace: "test", Name: "busy"}
	if err := b.Ensure(ctxT(t), channel.Spec{Ref: ref, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	groups := []channel.Group{
		{Channel: ref, Name: "a", Start: channel.Earliest},
		{Channel: ref, Name: "b", Start: channel.Earliest},
	}
	var cols []*conformance.Collector
	for _, g := range groups {
		c := conformance.NewCollector(nil)
		cols = append(cols, c)
		subscribe(t, b, g, c.Handle)
	}

	ctx := ctxT(t)
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		batch := conformance.Events("p"+strconv.Itoa(p), perPublisher, nil)
		want = append(want, conformance.IDs(batch)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(batch); {
				n := min(1+i%3, len(batch)-i)
				err := b.Publish(ctx, ref, batch[i:i+n])
				var full *channel.FullError
				switch {
				case err == nil:
					i += n
				case errors.As(err, &full):
					// Honour the hint, as ingress's clients do.
					timer := time.NewTimer(full.RetryAfter)
					select {
					case <-timer.C:
					case <-ctx.Done():
						timer.Stop()
						errs <- ctx.Err()
						return
					}
				default:
					errs <- err
					return
				}
			}
		}()
	}
	// Second members join (and one leaves) while publishing runs: rebalances under load.
	extra := make([]*conformance.Collector, len(groups))
	for i, g := range groups {
		extra[i] = conformance.NewCollector(nil)
		s := subscribe(t, b, g, extra[i].Handle)
		if i == 1 {
			conformance.WaitFor(t, "a claim for the extra member", func() bool { return len(extra[i].Active()) > 0 }, extra[i])
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publisher: %v", err)
	}
	for i := range groups {
		conformance.WaitForIDs(t, want, cols[i], extra[i])
	}
}

func TestConfigValidateNamesEveryKey(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	err := Config{}.Validate()
	for _, key := range []string{"bytesPerChannel", "partitions", "retryAfter"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}

// A zero Config used to be filled with defaults; now it is a caller's mistake New reports at once.
func TestNewPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "partitions") {
			t.Errorf("recovered %v, want a panic naming partitions", r)
		}
	}()
	New(Config{}, nil)
}
