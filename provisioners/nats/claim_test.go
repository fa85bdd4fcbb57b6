package nats

import (
	"context"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"

	"github.com/eventgate/eventgate/gateway/channel"
)

// TestPullAheadIsBounded: behind a handler that takes one record and then stops taking, a claim
// holds at most its Records buffer (FetchBatch) plus that one plus the one it is handing out, and
// has pulled from the server exactly two batches: the one that filled the buffer and the next,
// made while the buffer was full. Nothing more is pulled however long the handler stalls, and the
// rest of the backlog stays on the server; none of it is acknowledged, since the handler marked
// nothing done.
func TestPullAheadIsBounded(t *testing.T) {
	s := natstest.Server(t, natstest.Options{})
	cfg := testConfig(s.ClientURL())
	cfg.DefaultPartitions, cfg.FetchBatch = 1, 8
	b := newBackend(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ref := channel.Ref{Namespace: "bench", Name: "bounded"}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	const total = 200
	publishN(t, b, ref, total)

	took := make(chan struct{})
	var held *claim
	sub, err := b.Subscribe(ctx, channel.Group{Channel: ref, Name: "stalled", Start: channel.Earliest}, func(c channel.Claim) {
		held = c.(*claim)
		<-c.Records()
		close(took)
		<-c.Context().Done() // stalled until revoked
		for range c.Records() {
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-took:
	case <-ctx.Done():
		t.Fatal("no record handed out")
	}
	// The feeder has accepted FetchBatch+2 events only once it is blocked handing one out: wait
	// for that (polling with a deadline), then read what the server delivered.
	want := cfg.FetchBatch + 2
	for {
		held.lock()
		n := len(held.entries)
		held.unlock()
		if n == want {
			break
		}
		if n > want {
			t.Fatalf("the claim holds %d events, want at most %d", n, want)
		}
		if ctx.Err() != nil {
			t.Fatalf("the claim holds %d events, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond) // poll interval; the deadline is ctx's
	}
	_, js, err := b.connected()
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.Consumer(ctx, "EVENTGATE_bench_bounded", consumerName("stalled", 0))
	if err != nil {
		t.Fatal(err)
	}
	ci := info.CachedInfo()
	if ci.NumAckPending != 2*cfg.FetchBatch || ci.NumPending != uint64(total-2*cfg.FetchBatch) {
		t.Errorf("server: %d delivered and unacknowledged, %d not yet delivered; want %d and %d",
			ci.NumAckPending, ci.NumPending, 2*cfg.FetchBatch, total-2*cfg.FetchBatch)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	info, err = js.Consumer(ctx, "EVENTGATE_bench_bounded", consumerName("stalled", 0))
	if err != nil {
		t.Fatal(err)
	}
	if ci := info.CachedInfo(); ci.AckFloor.Stream != 0 {
		t.Errorf("after the revoke: acknowledged up to %d; want 0 (nothing was done)", ci.AckFloor.Stream)
	}
}
