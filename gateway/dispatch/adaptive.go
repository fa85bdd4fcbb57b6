package dispatch

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"
)

// Attempt is one request to the subscriber, as an AttemptObserver sees it.
type Attempt struct {
	// Start is when the attempt began; Latency is how long it took, reading the answer included.
	Start   time.Time
	Latency time.Duration
	// Status is the answer's HTTP status; 0 when there was none (transport error, timeout) or when the
	// subscriber is a channel.
	Status int
	// Err is the transport or publish error; nil when there was an answer.
	Err error
	// OK is true when the subscriber accepted the event (2xx, or a publish that succeeded).
	OK bool
	// Overloaded is true when the attempt timed out or was answered 429 or 503 (or the channel was full).
	Overloaded bool
	// RetryAfter is the subscriber's Retry-After, already capped by Policy.RetryAfterMax; 0 when the
	// answer had none or the policy ignores Retry-After.
	RetryAfter time.Duration
}

// AttemptObserver is implemented by a Limiter that wants every attempt to the subscriber, not only each
// finished delivery. The dispatcher calls ObserveAttempt after each subscriber attempt (never for reply
// or dead-letter sends, nor for attempts cut short by Stop or a revoke), from many goroutines at once,
// while the delivery still holds its slot. It must not block.
type AttemptObserver interface {
	ObserveAttempt(a Attempt)
}

// Signal is what one attempt says about the subscriber's spare capacity.
type Signal int

const (
	// Hold: the attempt says nothing about capacity (e.g. a 400 or a 500); the limit stays.
	Hold Signal = iota
	// Grow: accepted, with latency near the observed minimum; the limit may grow.
	Grow
	// ShrinkLatency: accepted, but latency rose well past the observed minimum (requests are queueing).
	ShrinkLatency
	// ShrinkOverload: the subscriber timed out or pushed back with 429 or 503.
	ShrinkOverload
)

func (s Signal) String() string {
	switch s {
	case Hold:
		return "hold"
	case Grow:
		return "grow"
	case ShrinkLatency:
		return "latency"
	case ShrinkOverload:
		return "overload"
	default:
		return "unknown"
	}
}

// AdaptiveConfig tunes an Adaptive limiter. Zero values take the defaults given on each field.
type AdaptiveConfig struct {
	// Min and Max bound the limit. Min < 1 means 1; Max < Min means Min (a fixed limit).
	Min, Max int
	// Initial is the starting limit; 0 means Min (slow start then finds the level quickly).
	Initial int
	// Tolerance and Slack set the latency check: an accepted attempt slower than
	// Tolerance×minimum + Slack counts as congestion. Defaults 2 and 5ms. Slack keeps the jitter of
	// sub-millisecond subscribers from reading as congestion.
	Tolerance float64
	Slack     time.Duration
	// OverloadBackoff multiplies the limit on a timeout, 429 or 503 (an explicit refusal, like a TCP
	// loss); default 0.5. LatencyBackoff is the gentlest cut on a latency signal (default 0.9): the cut
	// deepens with the excess, to threshold/latency, but never below OverloadBackoff. Each must be in
	// (0, 1).
	LatencyBackoff, OverloadBackoff float64
	// Window is how long a minimum-latency observation is remembered: the estimate is the minimum over
	// the current and the previous window, so a subscriber that becomes permanently slower is
	// re-measured after one to two windows. Default 10s.
	Window time.Duration

	// Gauge, when set, is given the limit (rounded down) whenever that changes, and at construction.
	Gauge interface{ Set(float64) }
	// Log receives limit changes (debug) and pauses (info); nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Adaptive limiter defaults; see AdaptiveConfig.
const (
	DefaultTolerance       = 2.0
	DefaultSlack           = 5 * time.Millisecond
	DefaultLatencyBackoff  = 0.9
	DefaultOverloadBackoff = 0.5
	DefaultLatencyWindow   = 10 * time.Second
)

// withDefaults fills zero and out-of-range fields with the defaults.
func (c AdaptiveConfig) withDefaults() AdaptiveConfig {
	if c.Min < 1 {
		c.Min = 1
	}
	if c.Max < c.Min {
		c.Max = c.Min
	}
	if c.Initial < c.Min {
		c.Initial = c.Min
	}
	if c.Initial > c.Max {
		c.Initial = c.Max
	}
	if !(c.Tolerance >= 1) || math.IsInf(c.Tolerance, 0) {
		c.Tolerance = DefaultTolerance
	}
	if c.Slack < 0 {
		c.Slack = 0
	} else if c.Slack == 0 {
		c.Slack = DefaultSlack
	}
	if !(c.LatencyBackoff > 0 && c.LatencyBackoff < 1) {
		c.LatencyBackoff = DefaultLatencyBackoff
	}
	if !(c.OverloadBackoff > 0 && c.OverloadBackoff < 1) {
		c.OverloadBackoff = DefaultOverloadBackoff
	}
	if c.Window <= 0 {
		c.Window = DefaultLatencyWindow
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Classify turns one attempt into a Signal, given the current minimum-latency estimate (0: none yet).
// An overloaded attempt shrinks; any other failure holds; an accepted one grows unless its latency is
// above Tolerance×minLatency + Slack. c must have its defaults applied. Pure; safe for concurrent use.
func Classify(a Attempt, minLatency time.Duration, c AdaptiveConfig) Signal {
	switch {
	case a.Overloaded:
		return ShrinkOverload
	case !a.OK:
		return Hold
	case minLatency > 0 && a.Latency > LatencyThreshold(minLatency, c):
		return ShrinkLatency
	default:
		return Grow
	}
}

// LatencyThreshold is the latency above which an accepted attempt counts as congestion:
// Tolerance×minLatency + Slack, saturating instead of overflowing. Pure.
func LatencyThreshold(minLatency time.Duration, c AdaptiveConfig) time.Duration {
	f := float64(minLatency)*c.Tolerance + float64(c.Slack)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

// LimitState is the adaptive limit between observations.
type LimitState struct {
	// Limit is the concurrency limit; deliveries may start while fewer than ⌊Limit⌋ are in flight.
	Limit float64
	// SlowStartEnd (TCP's ssthresh): below it the limit grows by one per good attempt (doubling per
	// round trip); at or above it, by 1/Limit (one per round trip). Every decrease sets it to the new limit.
	SlowStartEnd float64
}

// Step is one observation as NextLimit sees it.
type Step struct {
	Signal Signal
	// InFlight is how many deliveries hold a slot (the observed one included) when the attempt ended.
	InFlight int
	// Fresh is true when the attempt started after the last decrease. Only fresh attempts may shrink
	// the limit: the answers to requests sent before a cut describe the load before it, and counting
	// them too would cut once per request instead of once per round trip (TCP cuts once per loss event).
	Fresh bool
	// Excess is latency / LatencyThreshold for a ShrinkLatency step (> 1); 0 otherwise.
	Excess float64
}

// NextLimit is the limit update rule: additive increase, multiplicative decrease (AIMD, as in TCP
// Reno and Netflix's concurrency-limits AIMDLimit), driven by both explicit overload and a delay signal
// (as TCP Vegas and concurrency-limits' Gradient compare latency with its minimum).
//
//   - Grow: only when the limit is in use (InFlight×2 ≥ Limit: an idle subscription learns nothing
//     about its subscriber); +1 below SlowStartEnd, else +1/Limit; never above c.Max.
//   - ShrinkOverload: when Fresh, Limit×OverloadBackoff.
//   - ShrinkLatency: when Fresh, Limit×f with f = 1/Excess (threshold/latency, the gradient of
//     concurrency-limits' Gradient limiter) clamped to [OverloadBackoff, LatencyBackoff]: a little
//     queueing cuts a little, a latency many times the minimum cuts as hard as a refusal.
//   - After a cut the limit is never below c.Min, and SlowStartEnd becomes the new limit.
//   - Hold, or a shrink that is not Fresh: unchanged.
//
// decreased reports a cut. c must have its defaults applied. Pure; safe for concurrent use.
func NextLimit(s LimitState, st Step, c AdaptiveConfig) (next LimitState, decreased bool) {
	lo, hi := float64(c.Min), float64(c.Max)
	switch st.Signal {
	case Grow:
		if float64(st.InFlight)*2 < s.Limit {
			return s, false
		}
		if s.Limit < s.SlowStartEnd {
			s.Limit++
		} else {
			s.Limit += 1 / math.Max(s.Limit, 1)
		}
	case ShrinkLatency, ShrinkOverload:
		if !st.Fresh {
			return s, false
		}
		f := c.LatencyBackoff
		if st.Signal == ShrinkOverload {
			f = c.OverloadBackoff
		} else if st.Excess > 1 {
			f = math.Max(c.OverloadBackoff, math.Min(f, 1/st.Excess))
		}
		s.Limit *= f
		decreased = true
	default:
		return s, false
	}
	s.Limit = math.Min(math.Max(s.Limit, lo), hi)
	if decreased {
		s.SlowStartEnd = s.Limit
	}
	return s, decreased
}

// windowedMin estimates the minimum latency over the recent past: the minimum of the current window
// and the one before it, so an observation is forgotten one to two windows after it was made.
// Not safe for concurrent use.
type windowedMin struct {
	window    time.Duration
	start     time.Time     // start of the current window
	cur, prev time.Duration // 0: no observation
}

func (w *windowedMin) rotate(now time.Time) {
	if w.start.IsZero() {
		w.start = now
		return
	}
	el := now.Sub(w.start)
	if el < w.window {
		return
	}
	if el >= 2*w.window {
		w.prev = 0 // the current window is stale too
	} else {
		w.prev = w.cur
	}
	w.cur = 0
	w.start = now
}

// add records one latency observed at now (d <= 0 counts as 1ns).
func (w *windowedMin) add(now time.Time, d time.Duration) {
	w.rotate(now)
	d = max(d, 1)
	if w.cur == 0 || d < w.cur {
		w.cur = d
	}
}

// get returns the estimate at now; 0 when nothing recent was observed.
func (w *windowedMin) get(now time.Time) time.Duration {
	w.rotate(now)
	switch {
	case w.cur == 0:
		return w.prev
	case w.prev == 0:
		return w.cur
	default:
		return min(w.cur, w.prev)
	}
}

// Adaptive is a Limiter whose limit follows the subscriber's measured capacity, with the rule of
// NextLimit: AIMD on overload signals (timeouts, 429, 503) combined with a Vegas-style latency check
// against a windowed minimum latency. It bounds the limit to [Min, Max].
//
// A failed answer carrying Retry-After (Attempt.RetryAfter > 0) pauses the limiter: until then no
// Acquire succeeds, so the whole subscription stops sending new events (deliveries already in
// flight finish under their own retry policy).
//
// Adaptive implements Limiter and AttemptObserver; all its methods are safe for concurrent use.
type Adaptive struct {
	cfg AdaptiveConfig

	mu           sync.Mutex
	state        LimitState
	shown        int // the limit last given to the gauge
	inFlight     int
	waiters      int           // goroutines blocked in Acquire
	changed      chan struct{} // closed (and replaced) when a waiter may proceed
	pausedUntil  time.Time
	lastDecrease time.Time
	minLatency   windowedMin
	// smoothed is the accepted attempts' latency, smoothed (see smoothLatency); 0 before the first.
	smoothed time.Duration
}

// smoothWeight is the weight of one accepted attempt in the smoothed latency: TCP's 1/8 for its
// smoothed round-trip time.
const smoothWeight = 1.0 / 8

// smoothLatency folds one accepted attempt's latency d into the running average prev (0: none yet)
// and returns it. Pure.
func smoothLatency(prev, d time.Duration) time.Duration {
	if prev <= 0 {
		return d
	}
	return prev + time.Duration(float64(d-prev)*smoothWeight)
}

var (
	_ Limiter         = (*Adaptive)(nil)
	_ AttemptObserver = (*Adaptive)(nil)
)

// NewAdaptive returns an Adaptive limiter starting at c.Initial (default c.Min) in slow start.
func NewAdaptive(c AdaptiveConfig) *Adaptive {
	c = c.withDefaults()
	a := &Adaptive{
		cfg:        c,
		state:      LimitState{Limit: float64(c.Initial), SlowStartEnd: float64(c.Max)},
		shown:      c.Initial,
		changed:    make(chan struct{}),
		minLatency: windowedMin{window: c.Window},
	}
	if c.Gauge != nil {
		c.Gauge.Set(float64(c.Initial))
	}
	return a
}

// Config returns the configuration in use, defaults applied.
func (a *Adaptive) Config() AdaptiveConfig { return a.cfg }

// Limit returns the current limit (how many deliveries may be in flight).
func (a *Adaptive) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.state.Limit)
}

// InFlight returns how many slots are held.
func (a *Adaptive) InFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inFlight
}

// PausedUntil returns the end of the current Retry-After pause (zero time when none was ever set).
func (a *Adaptive) PausedUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pausedUntil
}

// Acquire blocks until fewer than Limit deliveries are in flight and no pause is in force, or until
// ctx is done (then it returns ctx's error and holds nothing).
func (a *Adaptive) Acquire(ctx context.Context) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		a.mu.Lock()
		pause := a.pausedUntil.Sub(a.cfg.Now())
		if pause <= 0 && a.inFlight < int(a.state.Limit) {
			a.inFlight++
			a.mu.Unlock()
			return nil
		}
		a.waiters++
		ch := a.changed
		a.mu.Unlock()

		var expired <-chan time.Time
		if pause > 0 {
			if timer == nil {
				timer = time.NewTimer(pause)
			} else {
				timer.Reset(pause)
			}
			expired = timer.C
		}
		select {
		case <-ch:
		case <-expired:
		case <-ctx.Done():
		}
		a.mu.Lock()
		a.waiters--
		a.mu.Unlock()
	}
}

// Release frees the slot taken by a successful Acquire. The limit learns from ObserveAttempt, not from
// the outcome.
func (a *Adaptive) Release(Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight > 0 {
		a.inFlight--
	}
	a.wakeLocked()
}

// ObserveAttempt updates the limit from one subscriber attempt (see NextLimit) and starts a pause when
// the answer carries Retry-After. It never blocks on anything but the limiter's own lock.
//
// The latency it classifies is the smaller of the attempt's own and the smoothed latency of the
// accepted attempts (a running average weighting each 1/8; the depth of a cut still follows the
// attempt's own latency): a queue at the subscriber slows every
// attempt and moves the average within a few of them, while one slow attempt among fast ones (a
// scheduling delay on a busy machine, a GC pause, in the gateway or the subscriber) does not. Before
// this, single spikes cut the limit again and again on a loaded machine: an in-memory subscription
// offered 4,000 events/s sat at a limit of 1–5 with seconds of events queued behind it.
func (a *Adaptive) ObserveAttempt(at Attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	judged := at
	if at.OK {
		a.minLatency.add(now, at.Latency)
		a.smoothed = smoothLatency(a.smoothed, at.Latency)
		judged.Latency = min(at.Latency, a.smoothed)
	}
	sig := Classify(judged, a.minLatency.get(now), a.cfg)
	step := Step{Signal: sig, InFlight: a.inFlight, Fresh: at.Start.After(a.lastDecrease)}
	if sig == ShrinkLatency {
		step.Excess = float64(at.Latency) / float64(LatencyThreshold(a.minLatency.get(now), a.cfg))
	}
	next, decreased := NextLimit(a.state, step, a.cfg)
	a.state = next
	if decreased {
		a.lastDecrease = now
	}
	if n := int(next.Limit); n != a.shown {
		a.cfg.Log.Debug("concurrency limit changed", "limit", n, "previous", a.shown, "signal", sig.String(),
			"latency", at.Latency, "min_latency", a.minLatency.get(now), "status", at.Status)
		a.shown = n
		if a.cfg.Gauge != nil {
			a.cfg.Gauge.Set(float64(n))
		}
		a.wakeLocked()
	}
	if at.RetryAfter > 0 {
		if until := now.Add(at.RetryAfter); until.After(a.pausedUntil) {
			if !now.Before(a.pausedUntil) {
				a.cfg.Log.Info("subscriber asked to wait (Retry-After); pausing the subscription",
					"retry_after", at.RetryAfter, "status", at.Status)
			}
			a.pausedUntil = until
			a.wakeLocked() // waiters recompute how long to wait
		}
	}
}

// wakeLocked wakes every goroutine blocked in Acquire, to re-check. a.mu must be held.
func (a *Adaptive) wakeLocked() {
	if a.waiters == 0 {
		return
	}
	close(a.changed)
	a.changed = make(chan struct{})
}
