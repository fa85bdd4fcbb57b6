package dispatch

import (
	"context"
	"time"
)

// Result is how one record's delivery ended.
type Result int

const (
	// Delivered: the subscriber accepted the event (possibly after retries).
	Delivered Result = iota
	// DeadLettered: the subscriber refused the event or every retry failed; the dead-letter sink took it.
	DeadLettered
	// Dropped: every retry failed and there is no dead-letter sink; the event was given up (and counted).
	Dropped
	// Abandoned: the subscription stopped or the partition was revoked before the delivery ended;
	// the record was not marked done and will be delivered again.
	Abandoned
)

func (r Result) String() string {
	switch r {
	case Delivered:
		return "delivered"
	case DeadLettered:
		return "dead_lettered"
	case Dropped:
		return "dropped"
	case Abandoned:
		return "abandoned"
	default:
		return "unknown"
	}
}

// Outcome describes one finished delivery to the Limiter, so that an adaptive limiter can react to
// the subscriber's health.
type Outcome struct {
	Result Result
	// Attempts is how many requests went to the subscriber (across every delivery cycle).
	Attempts int
	// Overloaded is true when some attempt timed out or was answered 429 or 503.
	Overloaded bool
	// Duration is the time from the start of the delivery to its end, retries and backoff included.
	Duration time.Duration
}

// Limiter bounds the deliveries in flight for one subscription, across all its partitions.
//
// Acquire blocks until a delivery may start or ctx is done (then it returns ctx's error and nothing
// is held). Every successful Acquire is paired with exactly one Release, given the delivery's outcome.
// Implementations are safe for concurrent use.
type Limiter interface {
	Acquire(ctx context.Context) error
	Release(o Outcome)
}

// Semaphore is a fixed Limiter: at most n deliveries in flight.
type Semaphore struct {
	slots chan struct{}
}

var _ Limiter = (*Semaphore)(nil)

// NewSemaphore returns a Limiter allowing n concurrent deliveries (n < 1 means 1).
func NewSemaphore(n int) *Semaphore {
	if n < 1 {
		n = 1
	}
	return &Semaphore{slots: make(chan struct{}, n)}
}

// Acquire takes a slot, blocking until one is free or ctx is done.
func (s *Semaphore) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release frees the slot taken by a successful Acquire. The outcome is ignored.
func (s *Semaphore) Release(Outcome) {
	select {
	case <-s.slots:
	default:
		// Release without Acquire: a caller bug; ignore rather than block forever.
	}
}

// Limit returns the fixed bound.
func (s *Semaphore) Limit() int { return cap(s.slots) }
