package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/gateway/event"
)

// SinkOptions configures a Sink. Zero values mean the documented default.
type SinkOptions struct {
	// Expect closes Done once this many events have arrived; 0: never.
	Expect int64
	// Delay holds every answer this long (a slow subscriber); 0: answer at once. A request whose
	// context ends first is answered 503.
	Delay time.Duration
	// Knee and Service make a subscriber with a knee: at most Knee requests are served at once, each
	// for Service (a sleep, so a benchmark measures the sender, not the CPU); requests beyond Knee wait
	// in arrival order, so latency rises with every request in flight past Knee and throughput is
	// capped at Knee/Service. Both set or neither; they exclude Delay (see Validate). A request whose
	// context ends while it waits or is served is answered 503.
	Knee    int
	Service time.Duration
	// Stalls, when positive, pauses the subscriber about this many times a second, at random (a
	// Poisson process), for 5–25 ms each, as a busy machine's stalls do (a GC pause, a process
	// descheduled): no request is answered during a pause, and those whose answer fell due in it
	// are answered when it ends (a request being served holds its server meanwhile, so those
	// waiting for one wait longer too). The pauses come from a fixed seed and start from the first
	// request, so two runs see the same ones.
	Stalls float64
	// MaxBodyBytes bounds a request body; default 4 MiB. Larger requests are answered 413.
	MaxBodyBytes int64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Sink is a CloudEvents receiver that answers 202 and measures each event's end-to-end latency: the
// time of arrival minus the event's `time` attribute (events without one are counted as untimed).
// Binary-mode requests are read from the ce-time header without decoding the rest; structured and
// batched requests are decoded in full. Requests that carry no valid CloudEvent are answered 400.
//
// A Sink is an http.Handler and is safe for concurrent use. Create it with NewSink.
type Sink struct {
	opts   SinkOptions
	done   chan struct{}
	slots  chan struct{} // Knee servers: a request holds one while it is served; nil without a knee
	queued atomic.Int64  // requests waiting for one of the Knee servers
	stalls *stalls       // nil without Stalls

	mu       sync.Mutex
	hist     Histogram
	response Histogram
	events   int64
	requests int64
	invalid  int64
	untimed  int64
	first    time.Time
	last     time.Time
	answered time.Time // the last 202 answer
	closed   bool
}

// Validate reports options that contradict each other or are out of range.
func (o SinkOptions) Validate() error {
	var errs []error
	if o.Delay < 0 {
		errs = append(errs, errors.New("delay must not be negative"))
	}
	if o.Knee < 0 {
		errs = append(errs, errors.New("knee must not be negative"))
	}
	if o.Service < 0 {
		errs = append(errs, errors.New("service must not be negative"))
	}
	if (o.Knee > 0) != (o.Service > 0) {
		errs = append(errs, errors.New("knee and service go together: give both or neither"))
	}
	if o.Knee > 0 && o.Delay > 0 {
		errs = append(errs, errors.New("delay and knee exclude each other: a knee's service time is the delay"))
	}
	if !(o.Stalls >= 0) || math.IsInf(o.Stalls, 0) {
		errs = append(errs, fmt.Errorf("stalls must be a rate of at least 0 a second, not %v", o.Stalls))
	}
	return errors.Join(errs...)
}

// NewSink returns a Sink that has seen nothing yet. Options that fail Validate are an error.
func NewSink(o SinkOptions) (*Sink, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("sink options: %w", err)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sink{opts: o, done: make(chan struct{})}
	if o.Knee > 0 {
		s.slots = make(chan struct{}, o.Knee)
	}
	if o.Stalls > 0 {
		s.stalls = &stalls{rate: o.Stalls, rng: rand.New(rand.NewPCG(1, 2))}
	}
	return s, nil
}

// Done is closed once Expect events have arrived (never when Expect is 0).
func (s *Sink) Done() <-chan struct{} { return s.done }

// SinkResult is what a Sink has measured. Elapsed runs from the first event's arrival to the last's.
type SinkResult struct {
	Events     int64   `json:"events"`
	Requests   int64   `json:"requests"`
	Invalid    int64   `json:"invalid"` // requests answered 400
	Untimed    int64   `json:"untimed"` // events without a readable time attribute
	Elapsed    float64 `json:"elapsed_s"`
	EventsPerS float64 `json:"events_per_s"`
	// AnsweredPerS is events over the time from the first arrival to the last answer: with a knee or a
	// delay, a subscriber's real rate (requests may arrive long before they are served).
	AnsweredPerS float64 `json:"answered_per_s"`
	Latency      Summary `json:"latency"` // end to end, from each event's time attribute
	// Response is the time from each answered request's arrival to its answer: the wait for a server
	// and the service time with a knee, the delay with Delay, about 0 otherwise. Requests answered
	// 400, 413 or 503 are not counted.
	Response Summary `json:"response"`
	FirstAt  string  `json:"first_at,omitempty"`
	LastAt   string  `json:"last_at,omitempty"`
}

// Result returns the figures so far. It does not block beyond a short lock.
func (s *Sink) Result() SinkResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := SinkResult{Events: s.events, Requests: s.requests, Invalid: s.invalid, Untimed: s.untimed,
		Latency: s.hist.Summarize(), Response: s.response.Summarize()}
	if s.events > 0 {
		r.FirstAt = s.first.UTC().Format(time.RFC3339Nano)
		r.LastAt = s.last.UTC().Format(time.RFC3339Nano)
		r.Elapsed = s.last.Sub(s.first).Seconds()
		if r.Elapsed > 0 {
			r.EventsPerS = float64(s.events) / r.Elapsed
		}
		if d := s.answered.Sub(s.first).Seconds(); d > 0 {
			r.AnsweredPerS = float64(s.events) / d
		}
	}
	return r
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var times []string
	if ts := r.Header.Get("Ce-Time"); ts != "" || r.Header.Get("Ce-Specversion") != "" {
		// Binary mode: the time header is all the sink needs.
		if _, err := io.Copy(io.Discard, io.LimitReader(r.Body, s.opts.MaxBodyBytes)); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		times = []string{ts}
	} else {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
		if err != nil {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		evs, err := event.ParseHTTP(r.Header, body)
		if err != nil {
			s.mu.Lock()
			s.requests++
			s.invalid++
			s.mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		times = make([]string, len(evs))
		for i, e := range evs {
			times[i] = e.Time
		}
	}
	now := s.opts.Now()
	s.record(now, times)
	if !s.serve(r.Context()) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	end := s.opts.Now()
	s.mu.Lock()
	s.response.Record(end.Sub(now))
	if end.After(s.answered) {
		s.answered = end
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// serve holds the request as the options say: Delay, or a wait for one of the Knee servers and
// Service on it, then to the end of a stall in force (Stalls). It returns false when ctx ended first.
func (s *Sink) serve(ctx context.Context) bool {
	hold := s.opts.Delay
	if s.slots != nil {
		s.queued.Add(1)
		select {
		case s.slots <- struct{}{}: // waiting senders are let in in arrival order
			s.queued.Add(-1)
		case <-ctx.Done():
			s.queued.Add(-1)
			return false
		}
		defer func() { <-s.slots }()
		hold = s.opts.Service
	}
	if !sleep(ctx, hold) {
		return false
	}
	if s.stalls != nil {
		now := s.opts.Now()
		return sleep(ctx, s.stalls.until(now).Sub(now))
	}
	return true
}

// sleep waits for d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stalls is the schedule of SinkOptions.Stalls: pauses drawn one after another, from the first
// time asked about. Safe for concurrent use.
type stalls struct {
	rate float64 // a second

	mu       sync.Mutex
	rng      *rand.Rand
	from, to time.Time // the pause in force or next; zero until the first call
}

// until returns when the pause in force at t ends, or t when there is none.
func (s *stalls) until(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from.IsZero() {
		s.from, s.to = t, t
		s.next()
	}
	for !s.to.After(t) {
		s.next()
	}
	if t.Before(s.from) {
		return t
	}
	return s.to
}

// next draws the pause after the current one: its start the rate's exponential gap after the
// current one's (and not before its end). s.mu must be held.
func (s *stalls) next() {
	s.from = later(s.from.Add(time.Duration(s.rng.ExpFloat64()/s.rate*float64(time.Second))), s.to)
	s.to = s.from.Add(5*time.Millisecond + time.Duration(s.rng.Int64N(int64(20*time.Millisecond))))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// occupancy returns how many requests hold one of the Knee servers and how many wait for one.
func (s *Sink) occupancy() (serving, waiting int) {
	return len(s.slots), int(s.queued.Load())
}

// record counts one request's events arriving at now.
func (s *Sink) record(now time.Time, times []string) {
	lat := make([]time.Duration, 0, len(times))
	untimed := int64(0)
	for _, ts := range times {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			untimed++
			continue
		}
		lat = append(lat, now.Sub(t))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events == 0 {
		s.first = now
	}
	s.last = now
	s.requests++
	s.events += int64(len(times))
	s.untimed += untimed
	for _, d := range lat {
		s.hist.Record(d)
	}
	if s.opts.Expect > 0 && s.events >= s.opts.Expect && !s.closed {
		s.closed = true
		close(s.done)
	}
}
