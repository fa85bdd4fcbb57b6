package kafka

import (
	"context"
	"testing"
	"time"
)

// A claim that finishes (its member leaves a shared read by choice) hands out no more records and
// waits for the ones it handed out to be done, so that they are committed, not delivered again;
// the wait is bounded.
func TestFinishWaitsForRecordsInFlight(t *testing.T) {
	s := pollTestSub(t, 100, 0)
	c := s.claims[0]
	s.route(fetched(t, 0, 0, 10))
	ctx := context.Background()
	var inFlight []int64
	for range 3 {
		r, ok := c.Next(ctx)
		if !ok {
			t.Fatal("Next: no record")
		}
		inFlight = append(inFlight, r.Offset)
	}

	finished := make(chan struct{})
	go func() {
		finishAll([]*claim{c}, time.Minute)
		close(finished)
	}()
	// Once finishing, Next hands out nothing, though 7 records are queued.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		finishing := c.finishing
		c.mu.Unlock()
		if finishing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the claim never started finishing")
		}
		time.Sleep(time.Millisecond)
	}
	if r, ok := c.Next(ctx); ok {
		t.Fatalf("a finishing claim handed out offset %d", r.Offset)
	}
	c.MarkDone(inFlight[0])
	c.MarkDone(inFlight[2])
	select {
	case <-finished:
		t.Fatal("finished with offset 1 still in flight")
	default:
	}
	c.MarkDone(inFlight[1])
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("not finished 10s after the last record in flight was done")
	}
	if got := c.tracker.Commit(); got != 3 {
		t.Errorf("commit point %d, want 3", got)
	}

	// A record never done: finishAll gives up after its wait.
	s = pollTestSub(t, 100, 0)
	c = s.claims[0]
	s.route(fetched(t, 0, 0, 2))
	if _, ok := c.Next(ctx); !ok {
		t.Fatal("Next: no record")
	}
	start := time.Now()
	finishAll([]*claim{c}, 20*time.Millisecond)
	t.Logf("gave up on a stuck record after %v", time.Since(start))
}
