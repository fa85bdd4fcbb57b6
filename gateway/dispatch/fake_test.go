package dispatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
)

// waitTimeout bounds every wait in these tests; reaching it fails the test.
const waitTimeout = 10 * time.Second

// broadcast lets tests wait for a condition on shared state without sleeping: every change closes
// the current channel and replaces it.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) lockedChanged() {
	if b.ch != nil {
		close(b.ch)
	}
	b.ch = make(chan struct{})
}

// waitFor polls cond (called with b.mu held) at every change until it is true or the deadline passes.
func (b *broadcast) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		if cond() {
			b.mu.Unlock()
			return
		}
		if b.ch == nil {
			b.ch = make(chan struct{})
		}
		ch := b.ch
		b.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fakeProvisioner is a small channel.Provisioner: Subscribe hands out one claim per partition whose
// records the test pushes; Publish records what it is given (or fails as publishErr says).
type fakeProvisioner struct {
	partitions int32

	broadcast
	claims     []*fakeClaim
	groups     []channel.Group // every Subscribe's group, in order
	published  map[channel.Ref][]*event.Event
	publishErr func(ch channel.Ref) error
	closed     bool
}

var _ channel.Provisioner = (*fakeProvisioner)(nil)

func newFakeProvisioner(partitions int32) *fakeProvisioner {
	return &fakeProvisioner{partitions: partitions, published: map[channel.Ref][]*event.Event{}}
}

func (p *fakeProvisioner) Publish(ctx context.Context, ch channel.Ref, events []*event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.publishErr != nil {
		if err := p.publishErr(ch); err != nil {
			p.lockedChanged()
			return err
		}
	}
	p.published[ch] = append(p.published[ch], events...)
	p.lockedChanged()
	return nil
}

func (p *fakeProvisioner) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &fakeSubscription{p: p}
	p.mu.Lock()
	p.groups = append(p.groups, g)
	for i := int32(0); i < p.partitions; i++ {
		cctx, cancel := context.WithCancel(context.Background())
		c := &fakeClaim{p: p, ref: g.Channel, partition: i, records: make(chan channel.Record, 256),
			ctx: cctx, cancel: cancel, done: map[int64]bool{}}
		p.claims = append(p.claims, c)
		s.claims = append(s.claims, c)
	}
	p.mu.Unlock()
	for _, c := range s.claims {
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			h(c)
		}()
	}
	return s, nil
}

func (p *fakeProvisioner) Ensure(context.Context, channel.Spec) error       { return nil }
func (p *fakeProvisioner) Remove(context.Context, channel.Ref) error        { return nil }
func (p *fakeProvisioner) DeleteGroup(context.Context, channel.Group) error { return nil }
func (p *fakeProvisioner) Ready(context.Context) error                      { return nil }
func (p *fakeProvisioner) Close() error                                     { return nil }

// claim waits for the claim of partition to exist and returns it.
func (p *fakeProvisioner) claim(t *testing.T, partition int32) *fakeClaim {
	t.Helper()
	var c *fakeClaim
	p.waitFor(t, "claim", func() bool {
		for _, x := range p.claims {
			if x.partition == partition {
				c = x
				return true
			}
		}
		return false
	})
	return c
}

// publishedTo returns a copy of what was published to ch.
func (p *fakeProvisioner) publishedTo(ch channel.Ref) []*event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*event.Event(nil), p.published[ch]...)
}

type fakeSubscription struct {
	p        *fakeProvisioner
	claims   []*fakeClaim
	handlers sync.WaitGroup
	once     sync.Once
}

// Close revokes every claim (closes Records, cancels the context) and waits for the handlers.
func (s *fakeSubscription) Close() error {
	s.once.Do(func() {
		for _, c := range s.claims {
			c.revoke()
		}
		s.handlers.Wait()
		s.p.mu.Lock()
		s.p.closed = true
		s.p.lockedChanged()
		s.p.mu.Unlock()
	})
	return nil
}

type fakeClaim struct {
	p         *fakeProvisioner
	ref       channel.Ref
	partition int32
	records   chan channel.Record
	ctx       context.Context
	cancel    context.CancelFunc

	// Guarded by p.mu.
	next    int64
	done    map[int64]bool
	order   []int64 // offsets in the order they were marked done
	revoked bool
}

func (c *fakeClaim) Channel() channel.Ref           { return c.ref }
func (c *fakeClaim) Partition() int32               { return c.partition }
func (c *fakeClaim) Records() <-chan channel.Record { return c.records }
func (c *fakeClaim) Context() context.Context       { return c.ctx }
func (c *fakeClaim) isDone(offset int64) bool {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.done[offset]
}
func (c *fakeClaim) doneOrder() []int64 {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return append([]int64(nil), c.order...)
}
func (c *fakeClaim) MarkDone(offset int64) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if offset >= c.next || c.done[offset] {
		return
	}
	c.done[offset] = true
	c.order = append(c.order, offset)
	c.p.lockedChanged()
}

func (c *fakeClaim) revoke() {
	c.p.mu.Lock()
	if c.revoked {
		c.p.mu.Unlock()
		return
	}
	c.revoked = true
	c.p.mu.Unlock()
	c.cancel()
	close(c.records)
}

// push hands ev to the claim's handler and returns its offset.
func (c *fakeClaim) push(t *testing.T, ev *event.Event) int64 {
	t.Helper()
	c.p.mu.Lock()
	off := c.next
	c.next++
	c.p.mu.Unlock()
	select {
	case c.records <- channel.Record{Partition: c.partition, Offset: off, Event: ev}:
	case <-time.After(waitTimeout):
		t.Fatalf("partition %d: handler does not take records", c.partition)
	}
	return off
}

// waitDone waits until offset is marked done.
func (c *fakeClaim) waitDone(t *testing.T, offset int64) {
	t.Helper()
	c.p.waitFor(t, "offset marked done", func() bool { return c.done[offset] })
}

// request is what a test server saw.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// recorder is an httptest server whose answer the test chooses per request.
type recorder struct {
	broadcast
	srv      *httptest.Server
	reqs     []request
	current  int // requests being handled now
	maxSeen  int
	handlerF func(n int, r *http.Request, w http.ResponseWriter) // n counts from 1
}

func newRecorder(t *testing.T, h func(n int, r *http.Request, w http.ResponseWriter)) *recorder {
	t.Helper()
	rec := &recorder{handlerF: h}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, request{header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(rec.reqs)
		rec.current++
		if rec.current > rec.maxSeen {
			rec.maxSeen = rec.current
		}
		rec.lockedChanged()
		rec.mu.Unlock()
		defer func() {
			rec.mu.Lock()
			rec.current--
			rec.lockedChanged()
			rec.mu.Unlock()
		}()
		if rec.handlerF != nil {
			rec.handlerF(n, r, w)
		}
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) url() string { return r.srv.URL + "/sink" }

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

func (r *recorder) waitRequests(t *testing.T, n int) []request {
	t.Helper()
	r.waitFor(t, "requests", func() bool { return len(r.reqs) >= n })
	return r.requests()
}

// status answers every request with code.
func status(code int) func(int, *http.Request, http.ResponseWriter) {
	return func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(code) }
}

var testChannel = channel.Ref{Namespace: "ns", Name: "orders"}

func testEvent(id string) *event.Event {
	return &event.Event{ID: id, Source: "/test", SpecVersion: event.SpecVersion, Type: "test.event",
		DataContentType: "application/json", Data: []byte(`{"n":"` + id + `"}`)}
}

// harness builds a dispatcher over a fake provisioner.
type harness struct {
	p *fakeProvisioner
	m *metrics.Metrics
	d *Dispatcher
}

// newHarness creates and starts a dispatcher for s (namespace/name/channel filled in when empty);
// setup, when not nil, adjusts the dispatcher before Start. Stop runs at cleanup.
func newHarness(t *testing.T, partitions int32, s Subscription, setup func(*Dispatcher)) *harness {
	t.Helper()
	if s.Namespace == "" {
		s.Namespace, s.Name = "ns", "sub"
	}
	if s.Channel == (channel.Ref{}) {
		s.Channel = testChannel
	}
	if s.MaxInFlight == 0 { // the configured bound, unless the test is about the bound
		s.MaxInFlight = DefaultConfig().MaxInFlight
	}
	h := &harness{p: newFakeProvisioner(partitions), m: metrics.New(metrics.Build{})}
	h.d = New(s, Deps{Channels: h.p, Metrics: h.m, Log: slog.New(slog.DiscardHandler)})
	if setup != nil {
		setup(h.d)
	}
	if err := h.d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.d.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop: %v", err)
		}
	})
	return h
}

// noWait replaces backoff waits with an instant return, recording each requested delay.
type noWait struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (n *noWait) wait(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.delays = append(n.delays, d)
	n.mu.Unlock()
	return ctx.Err()
}

func (n *noWait) got() []time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Duration(nil), n.delays...)
}
