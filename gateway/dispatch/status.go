package dispatch

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Status is what a dispatcher can say about its subscription's delivery at one moment: the figures
// `GET /status` shows. Times are zero when the thing has not happened yet.
type Status struct {
	// Limit is the current concurrency limit: how many deliveries may be in flight. With the adaptive
	// limiter it moves between MinInFlight and MaxInFlight; 0 when the limiter does not report one.
	Limit int
	// LastDelivered is when the subscriber last accepted an event.
	LastDelivered time.Time
	// LastError is the last failed attempt to the subscriber (its HTTP status, or the transport or
	// publish error without the URL), and LastErrorAt when it ended. A later success does not clear
	// it: compare the times.
	LastError   string
	LastErrorAt time.Time
}

// Status returns the subscription's delivery status. Safe for concurrent use, and cheap: it takes no
// lock the delivery path holds for longer than a field copy.
func (d *Dispatcher) Status() Status {
	s := d.status.snapshot()
	if l, ok := d.lim.(interface{ Limit() int }); ok {
		s.Limit = l.Limit()
	}
	return s
}

// statusRecorder keeps the outcome of the latest subscriber attempts. Every attempt writes it, so
// success is one atomic store; failures, rarer, take a mutex.
type statusRecorder struct {
	lastDelivered atomic.Int64 // Unix nanoseconds; 0: never

	mu          sync.Mutex
	lastError   string
	lastErrorAt time.Time
}

// attempt records one finished subscriber attempt that ended at now.
func (r *statusRecorder) attempt(res attemptResult, now time.Time) {
	if res.ok {
		r.lastDelivered.Store(now.UnixNano())
		return
	}
	msg := attemptError(res)
	r.mu.Lock()
	r.lastError, r.lastErrorAt = msg, now
	r.mu.Unlock()
}

func (r *statusRecorder) snapshot() Status {
	var s Status
	if ns := r.lastDelivered.Load(); ns != 0 {
		s.LastDelivered = time.Unix(0, ns)
	}
	r.mu.Lock()
	s.LastError, s.LastErrorAt = r.lastError, r.lastErrorAt
	r.mu.Unlock()
	return s
}

// attemptError describes a failed attempt for people: "answered 500 Internal Server Error", or the
// error without the destination's URL (it may carry credentials). Pure.
func attemptError(res attemptResult) string {
	switch {
	case res.status > 0:
		return fmt.Sprintf("answered %d %s", res.status, http.StatusText(res.status))
	case res.err != nil:
		return errString(res.err)
	default:
		return "failed"
	}
}
