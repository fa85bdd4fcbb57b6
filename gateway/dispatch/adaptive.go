package dispatch

import (
	"context"
	"log/slog"
	"math"
	"slices"
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

// Signal is what one attempt, or one round of them, says about the subscriber's spare capacity.
type Signal int

const (
	// Hold: the attempt says nothing about capacity (e.g. a 400 or a 500); the limit stays.
	Hold Signal = iota
	// Grow: accepted; its latency counts towards its round (see RoundLimit).
	Grow
	// ShrinkLatency: a round of accepted attempts whose latency (see Round) rose past the threshold
	// (requests queue at the subscriber). Only a round says this; Classify never returns it.
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
	// Tolerance and Slack set the queueing check: a round whose latency (see Round) is above
	// Tolerance×minimum + Slack means requests wait at the subscriber. Defaults 1.1 and 3ms; a
	// negative Slack means none.
	// Tolerance is relative, so the check scales with the subscriber's own latency (one request
	// queued behind a knee of 8 adds an eighth); Slack keeps the jitter of sub-millisecond
	// subscribers, and the scheduling delays of a busy machine, from reading as queueing. Tolerance
	// below 1 means the default.
	Tolerance float64
	Slack     time.Duration
	// OverloadBackoff multiplies the limit on a timeout, 429 or 503 (an explicit refusal, like a TCP
	// loss), and is the deepest cut a queueing round makes; default 0.5. Must be in (0, 1).
	OverloadBackoff float64
	// SlowStartGrowth multiplies the limit after each round without queueing in slow start (at least
	// +1); default 1.5, above 1. Smaller overshoots the knee less on the way up; larger reaches a
	// high knee in fewer round trips.
	SlowStartGrowth float64
	// ProbeWait is how many rounds the limit waits at a known knee before trying one more (default 8);
	// each try that finds the same knee doubles the wait, up to ProbeWaitMax rounds (default 128). A
	// try that finds room forgets the knee and resumes slow start. The wait makes the queue a probe
	// costs rare once the knee is known; its cap bounds how late new capacity is noticed.
	ProbeWait, ProbeWaitMax int
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
	DefaultTolerance       = 1.1
	DefaultSlack           = 3 * time.Millisecond
	DefaultOverloadBackoff = 0.5
	DefaultSlowStartGrowth = 1.5
	DefaultProbeWait       = 8
	DefaultProbeWaitMax    = 128
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
	if !(c.OverloadBackoff > 0 && c.OverloadBackoff < 1) {
		c.OverloadBackoff = DefaultOverloadBackoff
	}
	if !(c.SlowStartGrowth > 1) || math.IsInf(c.SlowStartGrowth, 0) {
		c.SlowStartGrowth = DefaultSlowStartGrowth
	}
	if c.ProbeWait < 1 {
		c.ProbeWait = DefaultProbeWait
	}
	if c.ProbeWaitMax < 1 {
		c.ProbeWaitMax = DefaultProbeWaitMax
	}
	c.ProbeWaitMax = max(c.ProbeWaitMax, c.ProbeWait)
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

// Classify turns one attempt into a Signal: an overloaded attempt shrinks, any other failure holds,
// an accepted one grows (its latency is judged with its round's, by RoundLimit). Pure.
func Classify(a Attempt) Signal {
	switch {
	case a.Overloaded:
		return ShrinkOverload
	case !a.OK:
		return Hold
	default:
		return Grow
	}
}

// LatencyThreshold is the latency above which a round's latency counts as queueing:
// Tolerance×minLatency + Slack, saturating instead of overflowing. c must have its defaults applied.
// Pure.
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
	// SlowStartEnd (TCP's ssthresh): below it the limit grows by SlowStartGrowth per round; at or
	// above it, by one per round. Every decrease sets it to the new limit.
	SlowStartEnd float64
	// Knee is where the last queueing round put the limit (the subscriber's capacity as then
	// measured); 0 when unknown (at the start, after an overload cut, after a probe found room, or
	// once the minimum latency it was measured against is forgotten). KneeMin is that minimum.
	Knee    float64
	KneeMin time.Duration
	// Since counts the rounds since the last cut; Wait is how many rounds the limit waits at Knee
	// before probing past it.
	Since, Wait int
	// Suspect is true after a round whose latency was past the threshold, but by less than twice it,
	// with no cut yet: a second such round in a row cuts.
	Suspect bool
	// Cut is the limit before the last queueing round's cut (0: none yet).
	Cut float64
}

// Round is what one round of accepted attempts (about one round trip: as many attempts as the limit,
// all started after the last cut) says, as RoundLimit sees it.
type Round struct {
	// Latency is the round's latency: the mean of its attempts' latencies without the slowest eighth
	// (at least the slowest one; roundLatency). Min is the lowest round latency of the last one to
	// two windows (this one included).
	//
	// The mean, not the median: when a limit first passes the knee, only the excess requests wait, so
	// the median stays at the minimum until more than half of a round queues (a limit of twice the
	// knee), while the mean rises with the first few. Without the slowest eighth: one attempt stalled
	// by a busy machine (a GC pause, a scheduling delay) does not move it.
	Latency, Min time.Duration
	// PeakInFlight is the most deliveries in flight during the round.
	PeakInFlight int
}

// RoundLimit is the rule applied at the end of each round: a delay-based limit in the manner of TCP
// Vegas and Netflix's concurrency-limits Gradient. A subscriber's latency stays at its minimum while
// fewer requests than its capacity (its knee) are in flight and rises in proportion to the excess
// past it (they queue), so Limit×Min/Latency is the knee.
//
//   - A minimum that rose past the threshold of the one Knee was measured against forgets Knee and
//     restarts slow start: the subscriber changed, and what was learned is in the old units.
//   - Queueing (Latency > LatencyThreshold(Min)), in two rounds in a row or by more than twice the
//     threshold in one (one marginal round alone holds the limit and sets Suspect: a busy machine's
//     scheduling stalls slow a whole round now and then, a queue slows every round): Limit×Min/Latency, no deeper than ×OverloadBackoff,
//     never below c.Min; that is the new Knee and SlowStartEnd. When the limit was past the previous
//     Knee and the round was marginal (a probe that found the same knee; past twice the threshold it
//     found a stall or a new knee), Wait doubles, up to ProbeWaitMax; otherwise it is
//     ProbeWait.
//   - No queueing, and the limit in use (PeakInFlight×2 ≥ Limit: an idle subscription learns nothing):
//     ×SlowStartGrowth (at least +1, at most SlowStartEnd) below SlowStartEnd, but only +1 when the
//     round's latency is past a quarter of the way from Min to the threshold (the queue is starting:
//     approach the knee gently, so slow start's last step puts a few requests into the queue, not
//     up to half the knee, each waiting a whole service time); else +1, except at or
//     past Knee, where it holds until Wait rounds have passed since the cut. A limit past
//     Knee×LatencyThreshold(KneeMin)/KneeMin + 1 (where the latency of a queue would have crossed the
//     threshold) with no queueing means the knee moved (or a stall caused the cut): Knee is
//     forgotten, slow start resumes up to Cut (the limit before that cut; not to the maximum, so a
//     subscriber whose capacity is not a queue, e.g. one that only slows past some load, is not
//     overshot each time), and past it the limit climbs by one per round.
//   - Never above c.Max.
//
// decreased reports a cut. c must have its defaults applied. Pure; safe for concurrent use.
func RoundLimit(s LimitState, r Round, c AdaptiveConfig) (next LimitState, decreased bool) {
	lo, hi := float64(c.Min), float64(c.Max)
	forget := func() { s.Knee, s.KneeMin, s.Wait, s.SlowStartEnd = 0, 0, 0, hi }
	if s.Knee > 0 && r.Min > LatencyThreshold(s.KneeMin, c) {
		forget()
	}
	s.Since++
	switch {
	case r.Min > 0 && r.Latency > LatencyThreshold(r.Min, c) && !s.Suspect && r.Latency <= 2*LatencyThreshold(r.Min, c):
		s.Suspect = true // a stall of a busy machine, or a queue: the next round tells
	case r.Min > 0 && r.Latency > LatencyThreshold(r.Min, c):
		s.Suspect = false
		f := max(c.OverloadBackoff, math.Min(1, float64(r.Min)/float64(r.Latency)))
		next := math.Min(math.Max(s.Limit*f, lo), hi)
		if s.Knee > 0 && s.Limit > s.Knee && r.Latency <= 2*LatencyThreshold(r.Min, c) {
			s.Wait = min(max(2*s.Wait, c.ProbeWait), c.ProbeWaitMax)
		} else {
			s.Wait = c.ProbeWait // a new knee (or a stall): probe again soon
		}
		s.Cut = s.Limit
		s.Limit = next
		s.Knee, s.KneeMin, s.SlowStartEnd, s.Since = s.Limit, r.Min, s.Limit, 0
		return s, true
	case float64(r.PeakInFlight)*2 < s.Limit:
		s.Suspect = false // not in use
	case s.Limit < s.SlowStartEnd:
		s.Suspect = false
		grow := math.Max(s.Limit*c.SlowStartGrowth, s.Limit+1)
		if th := LatencyThreshold(r.Min, c); r.Min > 0 && r.Latency > r.Min+(th-r.Min)/4 {
			grow = s.Limit + 1 // latency is rising: the knee is near
		}
		s.Limit = math.Min(grow, s.SlowStartEnd)
	case s.Knee > 0 && s.Limit >= s.Knee && s.Since < s.Wait:
		s.Suspect = false // at the knee: wait before probing past it
	default:
		s.Suspect = false
		s.Limit++
		// Past the knee, latency rises by Limit/Knee; once that would have crossed the threshold and
		// did not, the knee moved.
		if s.Knee > 0 && s.Limit > s.Knee*float64(LatencyThreshold(s.KneeMin, c))/float64(s.KneeMin)+1 {
			// Back to where the cut came from in slow start (a cut a stall caused costs a few rounds,
			// not one per lost step), then on by one per round.
			s.Knee, s.KneeMin, s.Wait, s.SlowStartEnd = 0, 0, 0, math.Max(s.SlowStartEnd, s.Cut)
		}
	}
	s.Limit = math.Min(math.Max(s.Limit, lo), hi)
	return s, false
}

// OverloadLimit is the rule for a timeout, 429 or 503 from an attempt started after the last cut
// (one cut per round trip, as TCP cuts once per loss event): Limit×OverloadBackoff, never below
// c.Min. An overload says the limit was too high, not where the knee is: Knee is forgotten, and the
// limit climbs back by one per round (SlowStartEnd is the new limit). Pure.
func OverloadLimit(s LimitState, c AdaptiveConfig) LimitState {
	s.Limit = math.Min(math.Max(s.Limit*c.OverloadBackoff, float64(c.Min)), float64(c.Max))
	s.SlowStartEnd = s.Limit
	s.Knee, s.KneeMin, s.Wait, s.Since, s.Cut = 0, 0, 0, 0, 0
	return s
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

// Adaptive is a Limiter whose limit follows the subscriber's measured capacity: per round of
// accepted attempts, the delay-based rule of RoundLimit against a windowed minimum latency; on a
// timeout, 429 or 503, the cut of OverloadLimit. It bounds the limit to [Min, Max].
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
	// The current round: latencies of accepted attempts started after the last cut, until there are
	// target of them (the limit when the round began); peak is the most in flight meanwhile.
	round  []time.Duration
	target int
	peak   int
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
		target:     max(minRound, c.Initial),
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

// ObserveAttempt updates the limit from one subscriber attempt and starts a pause when the answer
// carries Retry-After. It never blocks on anything but the limiter's own lock.
//
// Accepted attempts are judged by round, not one by one: a round is as many accepted attempts as
// the limit was when it began (at least minRound), all started after the last cut (answers to
// requests sent before it describe the load before it; and as Acquire lets none start until fewer
// than the new limit are in flight, those sent after it never share the subscriber with more), and
// RoundLimit judges their latency (Round.Latency) against the lowest round latency of the last one
// to two Windows. (A round's latency, not a single attempt's, is the base: on a busy machine the
// luckiest attempt is much faster than a typical one, and a queue is judged against what is typical
// when there is none.) A queue at the subscriber
// slows every attempt past the knee, in every round; one slow attempt among fast ones (a scheduling
// delay on a busy machine, a GC pause) is left out of the round's latency. A timeout, 429 or 503
// from an attempt started after the last cut cuts at once (OverloadLimit).
func (a *Adaptive) ObserveAttempt(at Attempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	sig := Classify(at)
	switch {
	case sig == ShrinkOverload && at.Start.After(a.lastDecrease):
		a.state = OverloadLimit(a.state, a.cfg)
		a.cut(now)
	case sig == Grow:
		if at.Start.Before(a.lastDecrease) {
			break
		}
		a.round = append(a.round, at.Latency)
		a.peak = max(a.peak, a.inFlight)
		if len(a.round) < a.target {
			break
		}
		lat := roundLatency(a.round)
		a.minLatency.add(now, lat)
		r := Round{Latency: lat, Min: a.minLatency.get(now), PeakInFlight: a.peak}
		next, decreased := RoundLimit(a.state, r, a.cfg)
		a.state = next
		if decreased {
			sig = ShrinkLatency
			a.cut(now)
		} else {
			a.newRound()
		}
	}
	if n := int(a.state.Limit); n != a.shown {
		a.cfg.Log.Debug("concurrency limit changed", "limit", n, "previous", a.shown, "signal", sig.String(),
			"latency", at.Latency, "min_latency", a.minLatency.get(now), "knee", a.state.Knee, "status", at.Status)
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

// cut records a decrease at now: attempts started before it no longer count. a.mu must be held.
func (a *Adaptive) cut(now time.Time) {
	a.lastDecrease = now
	a.newRound()
}

// minRound is the fewest attempts a round judges: a round of one or two says too little.
const minRound = 3

// newRound starts a round of as many attempts as the limit, at least minRound. a.mu must be held.
func (a *Adaptive) newRound() {
	a.round = a.round[:0]
	a.target = max(minRound, int(a.state.Limit))
	a.peak = a.inFlight
}

// roundLatency is a round's latency (see Round): the mean of ds without its slowest eighth, and
// without its slowest one at least (a round of 3 in slow start with one stalled attempt must not read
// as a queue). It sorts ds; ds must not be empty.
func roundLatency(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	keep := ds[:max(1, len(ds)-max(1, len(ds)/8))]
	var sum time.Duration
	for _, d := range keep {
		sum += d
	}
	return sum / time.Duration(len(keep))
}

// wakeLocked wakes every goroutine blocked in Acquire, to re-check. a.mu must be held.
func (a *Adaptive) wakeLocked() {
	if a.waiters == 0 {
		return
	}
	close(a.changed)
	a.changed = make(chan struct{})
}
