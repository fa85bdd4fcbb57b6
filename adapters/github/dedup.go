package github

import (
	"container/list"
	"sync"
	"time"
)

// deliveries remembers the delivery ids whose event the sink accepted, for a window, so that a
// redelivery is answered without producing the event twice. It also tracks deliveries in progress, so
// that a redelivery arriving while the first attempt is still sending waits for its outcome instead of
// sending a second copy.
//
// Memory is bounded: at most capacity accepted ids are kept (the oldest is forgotten first, even
// inside the window), plus one entry per request in progress. It is safe for concurrent use.
type deliveries struct {
	window   time.Duration // 0 disables redelivery detection
	capacity int

	mu       sync.Mutex
	byID     map[string]*delivery
	accepted *list.List // of *delivery in acceptance order, oldest at the front
}

// delivery is one delivery id, either in progress (elem == nil, done open) or accepted (done closed).
type delivery struct {
	id       string
	done     chan struct{} // closed when the attempt in progress finished
	accepted bool          // valid once done is closed
	at       time.Time     // when it was accepted
	elem     *list.Element // its place in deliveries.accepted
	waiters  int           // requests that found it in progress (for tests)
}

func newDeliveries(window time.Duration, capacity int) *deliveries {
	return &deliveries{window: window, capacity: capacity, byID: make(map[string]*delivery), accepted: list.New()}
}

// claim is what begin decided about a delivery id.
type claim int

const (
	claimNew       claim = iota // the caller owns the attempt: send, then call finish
	claimDuplicate              // accepted within the window: do not send again
	claimBusy                   // another attempt is in progress: wait on the returned delivery's done
)

// begin looks id up at time now. For claimNew the caller must call finish with the returned delivery
// exactly once. It never blocks.
func (s *deliveries) begin(id string, now time.Time) (*delivery, claim) {
	if s.window <= 0 {
		return nil, claimNew
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if d, ok := s.byID[id]; ok {
		if d.elem == nil {
			d.waiters++
			return d, claimBusy
		}
		return d, claimDuplicate
	}
	d := &delivery{id: id, done: make(chan struct{})}
	s.byID[id] = d
	return d, claimNew
}

// finish ends the attempt d began: an accepted delivery is remembered for the window, a failed one
// is forgotten so that a redelivery is sent again. Waiters on d.done are released either way.
func (s *deliveries) finish(d *delivery, accepted bool, now time.Time) {
	if d == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if accepted {
		d.accepted, d.at = true, now
		d.elem = s.accepted.PushBack(d)
		for s.accepted.Len() > s.capacity {
			s.forget(s.accepted.Front())
		}
	} else {
		delete(s.byID, d.id)
	}
	close(d.done)
}

// expire forgets accepted ids older than the window. Acceptance times are appended in order, so only
// the front of the list needs looking at. s.mu must be held.
func (s *deliveries) expire(now time.Time) {
	for e := s.accepted.Front(); e != nil; e = s.accepted.Front() {
		if now.Sub(e.Value.(*delivery).at) < s.window {
			return
		}
		s.forget(e)
	}
}

// forget removes an accepted entry. s.mu must be held.
func (s *deliveries) forget(e *list.Element) {
	d := s.accepted.Remove(e).(*delivery)
	if s.byID[d.id] == d {
		delete(s.byID, d.id)
	}
}

// waiting returns how many requests found id in progress (for tests).
func (s *deliveries) waiting(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.byID[id]; ok {
		return d.waiters
	}
	return 0
}

// size returns how many ids are remembered or in progress (for tests).
func (s *deliveries) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}
