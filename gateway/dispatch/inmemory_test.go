package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

// End to end over the in-memory provisioner: every published event reaches the subscriber (some after
// a retry), and once the dispatcher stops, the group's committed position is the end of every partition.
func TestInMemoryEndToEnd(t *testing.T) {
	const total = 60
	var mu sync.Mutex
	seen := map[string]int{} // event id → requests
	all := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Ce-Id")
		mu.Lock()
		seen[id]++
		n := seen[id]
		if len(seen) == total && n == 1 {
			close(all)
		}
		mu.Unlock()
		if n == 1 && len(id)%2 == 0 { // fail the first attempt of some events
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)

	ctx := context.Background()
	backend := inmemory.New(inmemory.DefaultConfig(), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = backend.Close() })
	ref := channel.Ref{Namespace: "ns", Name: "e2e"}
	if err := backend.Ensure(ctx, channel.Spec{Ref: ref, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Build{})
	d := dispatch.New(dispatch.Subscription{
		Namespace: "ns", Name: "e2e-sub", Channel: ref,
		Subscriber:  dispatch.Destination{URL: srv.URL},
		Policy:      dispatch.Policy{Retry: 2, BackoffDelay: time.Millisecond},
		Start:       channel.Earliest,
		MaxInFlight: 4,
	}, dispatch.Deps{Channels: backend, Metrics: m, Log: slog.New(slog.DiscardHandler)})
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range total {
		ev := &event.Event{ID: fmt.Sprintf("id-%d", i), Source: "/e2e", SpecVersion: "1.0", Type: "t"}
		ev.SetExtension(event.PartitionKeyExtension, fmt.Sprintf("k%d", i%7))
		if err := backend.Publish(ctx, ref, []*event.Event{ev}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("not every event reached the subscriber")
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	samples := 0
	for _, s := range backend.Lag(ctx) {
		if s.Group.Name != "e2e-sub" {
			continue
		}
		samples++
		if s.Lag != 0 {
			t.Errorf("partition %d: lag %d after every event was delivered", s.Partition, s.Lag)
		}
	}
	if samples != 3 {
		t.Errorf("lag samples for the group = %d, want 3 (one per partition)", samples)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if want := 1 + (len(id)+1)%2; n != want {
			t.Errorf("%s: %d requests, want %d", id, n, want)
		}
	}
}
