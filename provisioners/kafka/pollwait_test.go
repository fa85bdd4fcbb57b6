package kafka

import (
	"context"
	"testing"
	"time"
)

// An idle subscription's poll waits for records with no deadline (its loop does not wake each
// commitInterval to find nothing to commit); one with records handed out and not yet committed
// polls only until its next commit is due.
func TestPollContextHasDeadlineOnlyWithSomethingToCommit(t *testing.T) {
	s := &subscription{claims: map[int32]*claim{}}
	c := newClaim(s, 0, 10, 10)
	s.claims[0] = c
	last := time.Now()

	ctx, cancel := s.pollContext(context.Background(), last)
	if _, ok := ctx.Deadline(); ok {
		t.Error("idle subscription: the poll has a deadline")
	}
	cancel()

	c.tracker.Track(10) // handed out, not done
	ctx, cancel = s.pollContext(context.Background(), last)
	if d, ok := ctx.Deadline(); !ok || !d.Equal(last.Add(commitInterval)) {
		t.Errorf("a record in progress: deadline %v (set %v), want the next commit at %v", d, ok, last.Add(commitInterval))
	}
	cancel()

	c.tracker.Done(10) // done, not committed
	ctx, cancel = s.pollContext(context.Background(), last)
	if _, ok := ctx.Deadline(); !ok {
		t.Error("a done record not yet committed: the poll has no deadline")
	}
	cancel()

	c.committed = 11 // committed
	ctx, cancel = s.pollContext(context.Background(), last)
	if _, ok := ctx.Deadline(); ok {
		t.Error("everything committed: the poll has a deadline")
	}
	cancel()
}
