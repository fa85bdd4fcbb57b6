package redrive

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

var dlq = channel.Ref{Namespace: "default", Name: "dlq"}

// deadLetters returns a backend whose dlq channel holds n dead letters, ids e0…, types
// "even"/"odd", each with the dispatcher's error extensions.
func deadLetters(t *testing.T, n int) *inmemory.Backend {
	t.Helper()
	b := inmemory.New(inmemory.DefaultConfig(), nil)
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if err := b.Ensure(ctx, channel.Spec{Ref: dlq}); err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for i := range n {
		e := &event.Event{SpecVersion: "1.0", ID: fmt.Sprintf("e%d", i), Source: "test", Type: []string{"even", "odd"}[i%2]}
		e.SetExtension(ExtErrorDest, "http://subscriber.example/")
		e.SetExtension(ExtErrorCode, "500")
		e.SetExtension(ExtErrorData, "Ym9vbQ==")
		evs = append(evs, e)
	}
	if err := b.Publish(ctx, dlq, evs); err != nil {
		t.Fatal(err)
	}
	return b
}

// sink records what is sent; fail, when set, fails the events it names.
type sink struct {
	mu   sync.Mutex
	got  []*event.Event
	dest []string
	fail func(*event.Event) bool
	// gate, when set, is received from before each send (a test lets sends through one by one).
	gate chan struct{}
	// sending is told about each send as it starts.
	sending chan string
}

func (s *sink) Send(ctx context.Context, _ *channel.Ref, dest string, ev *event.Event) error {
	if s.sending != nil {
		s.sending <- ev.ID
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil && s.fail(ev) {
		return errors.New("subscriber still failing")
	}
	s.got = append(s.got, ev)
	s.dest = append(s.dest, dest)
	return nil
}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.got {
		out = append(out, e.ID)
	}
	slices.Sort(out)
	return out
}

// memStore is a Store in a map.
type memStore struct {
	mu sync.Mutex
	m  map[string]Status
}

func (s *memStore) Save(st Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Status{}
	}
	st.Positions = slices.Clone(st.Positions)
	s.m[st.ID] = st
	return nil
}

func (s *memStore) Load() ([]Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.m)), nil
}

// wait polls job id until it is no longer running, with a deadline.
func wait(t *testing.T, m *Manager, id string) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != Running {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still running: %+v", id, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedriveSendsTheMatchingOnesOnce(t *testing.T) {
	b := deadLetters(t, 10)
	s := &sink{}
	m := NewManager(Deps{Source: b, Sender: s})
	defer m.Close(context.Background())
	st, err := m.Start(context.Background(), Request{From: "default/dlq", Filter: "type = 'even'"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Remaining != 10 {
		t.Errorf("remaining at start = %d, want 10", st.Remaining)
	}
	st = wait(t, m, st.ID)
	if st.State != Done || st.Matched != 5 || st.Sent != 5 || st.Failed != 0 || st.Remaining != 0 {
		t.Fatalf("status = %+v", st)
	}
	if got, want := s.ids(), []string{"e0", "e2", "e4", "e6", "e8"}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	for i, e := range s.got {
		if e.Extension(ExtErrorDest) != "" || e.Extension(ExtErrorCode) != "" || e.Extension(ExtErrorData) != "" {
			t.Errorf("%s still carries error extensions: %v", e.ID, e.Extensions)
		}
		if e.Extension(ExtRedrives) != "1" {
			t.Errorf("%s: %s = %q, want 1", e.ID, ExtRedrives, e.Extension(ExtRedrives))
		}
		if s.dest[i] != "http://subscriber.example/" {
			t.Errorf("%s sent to %q", e.ID, s.dest[i])
		}
	}
	// The dead letters are still there: a second job reads them all again.
	st2, err := m.Start(context.Background(), Request{From: "default/dlq", Type: "odd", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	st2 = wait(t, m, st2.ID)
	if st2.State != Done || st2.Matched != 5 || st2.Sent != 0 {
		t.Fatalf("dry run: %+v", st2)
	}
	if len(s.ids()) != 5 {
		t.Fatalf("the dry run sent: %v", s.ids())
	}
	if l := m.List(); len(l) != 2 || l[0].ID != st.ID {
		t.Errorf("List = %+v", l)
	}
}

func TestRedriveCountsFailures(t *testing.T) {
	b := deadLetters(t, 4)
	s := &sink{fail: func(e *event.Event) bool { return e.ID == "e1" }}
	m := NewManager(Deps{Source: b, Sender: s})
	defer m.Close(context.Background())
	st, err := m.Start(context.Background(), Request{From: "default/dlq"})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, m, st.ID)
	if st.Matched != 4 || st.Sent != 3 || st.Failed != 1 || st.LastError == "" {
		t.Fatalf("status = %+v", st)
	}
}

func TestRedriveStopsAtTheEndItStartedWith(t *testing.T) {
	b := deadLetters(t, 2)
	// The sender dead-letters again into the same channel what it is sent: the job must not read it.
	s := SenderFunc(func(ctx context.Context, _ *channel.Ref, dest string, ev *event.Event) error {
		again := ev.Clone()
		again.SetExtension(ExtErrorDest, dest)
		return b.Publish(ctx, dlq, []*event.Event{again})
	})
	m := NewManager(Deps{Source: b, Sender: s})
	defer m.Close(context.Background())
	st, err := m.Start(context.Background(), Request{From: "default/dlq"})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, m, st.ID)
	if st.State != Done || st.Sent != 2 {
		t.Fatalf("status = %+v", st)
	}
}

func TestRedriveCancel(t *testing.T) {
	b := deadLetters(t, 5)
	s := &sink{gate: make(chan struct{}), sending: make(chan string, 10)}
	m := NewManager(Deps{Source: b, Sender: s})
	defer m.Close(context.Background())
	st, err := m.Start(context.Background(), Request{From: "default/dlq"})
	if err != nil {
		t.Fatal(err)
	}
	<-s.sending
	s.gate <- struct{}{} // the first goes through
	<-s.sending          // the second is being sent while we cancel
	cancelled := make(chan Status)
	go func() {
		st, _ := m.Cancel(context.Background(), st.ID)
		cancelled <- st
	}()
	waitFor(t, func() bool { return m.cancelling(st.ID) })
	s.gate <- struct{}{} // Cancel waits for it
	st = <-cancelled
	if st.State != Cancelled || st.Sent != 2 || st.Remaining != 3 {
		t.Fatalf("status = %+v", st)
	}
	if got := s.ids(); len(got) != 2 {
		t.Fatalf("sent %v", got)
	}
	if _, err := m.Cancel(context.Background(), "rd-none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel of an unknown job: %v", err)
	}
}

func TestRedriveResumesWhereItStopped(t *testing.T) {
	b := deadLetters(t, 6)
	store := &memStore{}
	s := &sink{gate: make(chan struct{}), sending: make(chan string, 10)}
	m := NewManager(Deps{Source: b, Sender: s, Store: store, Durable: func(channel.Ref) bool { return true }})
	st, err := m.Start(context.Background(), Request{From: "default/dlq"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-s.sending
		s.gate <- struct{}{}
	}
	<-s.sending // the fourth is in flight when the gateway stops: Close waits for it
	closed := make(chan struct{})
	go func() { m.Close(context.Background()); close(closed) }()
	waitFor(t, func() bool { return m.stopCtx.Err() != nil })
	s.gate <- struct{}{}
	<-closed
	if got := store.m[st.ID]; got.State != Running || got.Sent != 4 || got.Remaining != 2 {
		t.Fatalf("stored = %+v", got)
	}

	s2 := &sink{}
	m2 := NewManager(Deps{Source: b, Sender: s2, Store: store, Durable: func(channel.Ref) bool { return true }})
	defer m2.Close(context.Background())
	if err := m2.Resume(); err != nil {
		t.Fatal(err)
	}
	got := wait(t, m2, st.ID)
	if got.State != Done || got.Sent != 6 || got.Matched != 6 {
		t.Fatalf("resumed: %+v", got)
	}
	all := append(s.ids(), s2.ids()...)
	slices.Sort(all)
	if want := []string{"e0", "e1", "e2", "e3", "e4", "e5"}; !slices.Equal(all, want) {
		t.Fatalf("sent %v (before %v, after %v), want each once", all, s.ids(), s2.ids())
	}
}

func TestRedriveInMemoryJobIsReportedInterrupted(t *testing.T) {
	store := &memStore{}
	store.Save(Status{ID: "rd-1", Request: Request{From: "default/dlq"}, State: Running,
		Positions: []Position{{Partition: 0, Next: 1, End: 3}}})
	m := NewManager(Deps{Source: deadLetters(t, 1), Sender: &sink{}, Store: store})
	defer m.Close(context.Background())
	if err := m.Resume(); err != nil {
		t.Fatal(err)
	}
	st, err := m.Get("rd-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != Interrupted || st.Error == "" || store.m["rd-1"].State != Interrupted {
		t.Fatalf("status = %+v", st)
	}
}

func TestRedriveBadRequests(t *testing.T) {
	m := NewManager(Deps{Source: deadLetters(t, 1), Sender: &sink{}})
	defer m.Close(context.Background())
	for _, r := range []Request{{}, {From: "dlq"}, {From: "default/dlq", To: "x"},
		{From: "default/dlq", Filter: "type ="}, {From: "default/dlq", Rate: -1}, {From: "default/dlq", Rate: 1e-9}} {
		if _, err := m.Start(context.Background(), r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", r, err)
		}
	}
	if _, err := m.Start(context.Background(), Request{From: "default/nope"}); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestRedrivenCountsRedrives(t *testing.T) {
	e := &event.Event{ID: "x"}
	e.SetExtension(ExtRedrives, "2")
	if got := Redriven(e).Extension(ExtRedrives); got != "3" {
		t.Errorf("got %q, want 3", got)
	}
	e.SetExtension(ExtRedrives, "junk")
	if got := Redriven(e).Extension(ExtRedrives); got != "1" {
		t.Errorf("got %q, want 1", got)
	}
}

// cancelling reports whether job id was told to stop.
func (m *Manager) cancelling(id string) bool {
	m.mu.Lock()
	j := m.jobs[id]
	m.mu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cancelled
}

// waitFor polls cond until it holds, with a deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// flaky is a Source whose first Tail fails as a backend that cannot serve does.
type flaky struct {
	*inmemory.Backend
	mu    sync.Mutex
	fails int
}

func (f *flaky) Tail(ctx context.Context, ch channel.Ref, start channel.TailStart) (channel.Tail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return nil, fmt.Errorf("broker restarting: %w", channel.ErrUnavailable)
	}
	return f.Backend.Tail(ctx, ch, start)
}

// A channel whose backend cannot serve for a while makes the job wait and read again, not fail.
func TestRedriveWaitsForItsBackend(t *testing.T) {
	src := &flaky{Backend: deadLetters(t, 3), fails: 1}
	s := &sink{}
	m := NewManager(Deps{Source: src, Sender: s})
	defer m.Close(context.Background())
	st, err := m.Start(context.Background(), Request{From: "default/dlq"})
	if err != nil {
		t.Fatal(err)
	}
	if st = wait(t, m, st.ID); st.State != Done || st.Sent != 3 || !strings.Contains(st.LastError, "broker restarting") {
		t.Fatalf("status = %+v", st)
	}
}
