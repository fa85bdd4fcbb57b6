package dispatch

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestStatusRecordsLastErrorThenDelivery(t *testing.T) {
	srv := newRecorder(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pol := Policy{Retry: 2, BackoffDelay: time.Millisecond}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Policy: pol, MaxInFlight: 5},
		func(d *Dispatcher) {
			if s := d.Status(); !s.LastDelivered.IsZero() || s.LastError != "" || !s.LastErrorAt.IsZero() {
				t.Errorf("status before any delivery = %+v, want no times and no error", s)
			}
			d.now = func() time.Time { return clock }
		})
	c := h.p.claim(t, 0)
	c.waitDone(t, c.push(t, testEvent("e-1")))

	s := h.d.Status()
	if s.LastError != "answered 500 Internal Server Error" || !s.LastErrorAt.Equal(clock) {
		t.Errorf("last error = %q at %v, want the 500 at %v", s.LastError, s.LastErrorAt, clock)
	}
	if !s.LastDelivered.Equal(clock) {
		t.Errorf("last delivered = %v, want %v (the retry succeeded)", s.LastDelivered, clock)
	}
	if s.Limit != 5 {
		t.Errorf("limit = %d, want 5 (MaxInFlight of the fixed limiter)", s.Limit)
	}
}

func TestAttemptErrorLeavesTheURLOut(t *testing.T) {
	err := &url.Error{Op: "Post", URL: "http://user:secret@sub.example/?token=t", Err: errors.New("connection refused")}
	for _, c := range []struct {
		res  attemptResult
		want string
	}{
		{attemptResult{status: 503}, "answered 503 Service Unavailable"},
		{attemptResult{err: err}, "Post: connection refused"},
		{attemptResult{err: errors.New("channel is full")}, "channel is full"},
		{attemptResult{}, "failed"},
	} {
		if got := attemptError(c.res); got != c.want {
			t.Errorf("attemptError(%+v) = %q, want %q", c.res, got, c.want)
		}
	}
}
