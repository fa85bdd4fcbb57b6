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
	// each try that finds the same knee doubles the wait, up to ProbeWaitMax rounds (default 128),
	// and from the second on also waits for 32×the wait accepted attempts (a probe past the knee
	// costs one request a service time; this keeps that to one request in hundreds however small
	// the knee). A try that finds room, past where a queue would have shown, forgets the knee and
	// resumes slow start. Its cap bounds how late new capacity is noticed.
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
	// above it, by one per round. Every decrease sets it to the new limit, but a dip (see dip),
	// which leaves it at least at the limit before the dip.
	SlowStartEnd float64
	// Knee is where the last queueing round or probe put the limit (the subscriber's capacity as
	// then measured; a dip keeps it); 0 when unknown (at the start, after an overload cut, after a
	// probe found room, or once the minimum latency it was measured against is forgotten). KneeMin
	// is that minimum.
	Knee    float64
	KneeMin time.Duration
	// Since counts the rounds since the last cut; Wait is how many rounds the limit waits at Knee
	// before probing past it.
	Since, Wait int
	// Suspect is true after a round whose latency was past the threshold, but by less than twice it,
	// with no cut yet: a second such round in a row cuts.
	Suspect bool
	// Cut is the limit before the last queueing round's or probe's cut (0: none yet).
	Cut float64
	// Done counts the accepted attempts judged (in rounds) since the last cut or knee found: at a
	// knee found again a probe also waits for 32×Wait of them (see RoundLimit).
	Done int
	// Grant is how many probe admissions (past Limit) RoundLimit asks for: the limit grows only by
	// the probes that are answered without waiting (ProbeLimit). 0: none.
	Grant int
	// Clean is the highest limit at which a round that had the limit in use found no queue, or to
	// which a probe none of whose requests waited raised it (their latency a quarter of the way to
	// the threshold at most), since the last knee was found, cut or forgotten (0: none): a queue
	// found within an eighth of it is not the gateway's doing (see keeps).
	Clean float64
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
	// Attempts is how many attempts the round judged.
	Attempts int
}

// WaitThreshold is the latency past which one attempt counts as having waited at the subscriber
// for a server to free up: a quarter of the minimum past the minimum, and at least Slack past it. A
// subscriber that serves its knee's requests together makes any request past the knee wait up to a
// whole service time (twice the minimum; half of it when its servers run half a service time
// apart), so the count of such attempts is how far past the knee the load went, and a wait of a
// quarter service time is already what a subscription's p99 feels; Slack keeps a fast subscriber's
// jitter and a busy machine's scheduling delays from counting. c must have its defaults applied.
// Pure.
func WaitThreshold(minLatency time.Duration, c AdaptiveConfig) time.Duration {
	return max(minLatency+minLatency/4, minLatency+c.Slack)
}

// slotsTell reports whether the slots still held at a probe's deadline (WaitThreshold after its last
// member started) can be requests that waited behind a knee: only when such a wait, about one
// minimum latency, takes a request past WaitThreshold, that is when the minimum is above Slack.
// Below it (a subscriber answering in a millisecond or less) a request one service time late is
// not past the threshold yet, and what is still held there is a stall of a busy machine, or a queue
// many service times deep, which the rounds' gradient cuts: counted as waits, those slots cut the
// limit of a no-op subscriber on a busy 2-core machine over and over (about 50 cuts in a
// 100,000-event in-memory drain, 14% slower than a fixed limit of 64). The probe is then judged by
// its answers' latencies (see waited). Pure.
func slotsTell(minLatency time.Duration, c AdaptiveConfig) bool {
	return 2*minLatency > WaitThreshold(minLatency, c)
}

// waited reports whether an attempt of latency d waited at the subscriber (see WaitThreshold): past
// the threshold, and at most three times the minimum (+ Slack). A request that took longer while
// the rest of its round or probe did not wait is not queued behind a knee (three knees' worth of
// requests would be ahead of it): a stall of a busy machine, which the rounds' mean leaves out.
// Pure.
func waited(d, minLatency time.Duration, c AdaptiveConfig) bool {
	return d > WaitThreshold(minLatency, c) && d <= 3*minLatency+c.Slack
}

// grant is how many probes state s asks for (see RoundLimit); gentle asks for one in slow start.
// Pure.
func grant(s LimitState, c AdaptiveConfig, gentle bool) int {
	n := 0
	switch {
	case s.Limit < s.SlowStartEnd:
		grow := math.Max(s.Limit*c.SlowStartGrowth, s.Limit+1)
		if gentle {
			grow = s.Limit + 1
		}
		n = max(1, int(math.Min(grow, s.SlowStartEnd))-int(s.Limit))
	case s.Knee > 0 && s.Limit >= s.Knee && (s.Since < s.Wait || (s.Wait > c.ProbeWait && s.Done < 32*s.Wait)):
		// at the knee: wait before probing past it
	default:
		n = 1
	}
	return max(0, min(n, c.Max-int(s.Limit)))
}

// RoundLimit is the rule applied at the end of each round: a delay-based limit in the manner of TCP
// Vegas and Netflix's concurrency-limits Gradient, which grows only through probes. A subscriber's
// latency stays at its minimum while fewer requests than its capacity (its knee) are in flight;
// past it requests wait for a server, so the mean latency rises with the excess
// (Limit×Min/Latency is the knee) and each request past the knee waits (see WaitThreshold).
//
//   - A minimum that rose past the threshold of the one Knee was measured against forgets Knee and
//     restarts slow start: the subscriber changed, and what was learned is in the old units.
//   - Queueing (Latency > LatencyThreshold(Min)), in two rounds in a row or by more than twice the
//     threshold in one (one marginal round alone holds the limit and sets Suspect: a busy machine's
//     scheduling stalls slow a whole round now and then, a queue slows every round): Limit×Min/Latency, no deeper than ×OverloadBackoff,
//     never below c.Min; that is the new Knee and SlowStartEnd. When the limit was past the previous
//     Knee and the round was marginal (the same knee; past twice the threshold it found a stall or a
//     new knee), Wait doubles, up to ProbeWaitMax; otherwise it is ProbeWait. When the limit was
//     within an eighth of a limit a round found clean (keeps: the gateway's own load could not
//     have built the queue), the same cut is a dip instead: Knee is kept, and slow start resumes
//     up to the limit before it (see dip).
//   - A round without a queue, with the limit in use, raises Clean to the limit.
//   - No queueing, and the limit in use (PeakInFlight×2 ≥ Limit: an idle subscription learns
//     nothing): the round asks for probes (Grant) rather than raising the limit; ProbeLimit raises it
//     by the probes that did not wait. Below SlowStartEnd the grant is ×SlowStartGrowth − 1 of the
//     limit (at least 1, up to SlowStartEnd), only 1 when the round's latency is past a quarter of
//     the way from Min to the threshold (the queue is starting); else 1, except at or past Knee,
//     where there is none until Wait rounds have passed since the cut, and, once a probe found
//     the same knee again (Wait past ProbeWait), 32×Wait accepted attempts (Done) too: however
//     small the knee, at most one request in 32×Wait then goes past it.
//   - Never above c.Max.
//
// decreased reports a cut. c must have its defaults applied. Pure; safe for concurrent use.
func RoundLimit(s LimitState, r Round, c AdaptiveConfig) (next LimitState, decreased bool) {
	lo, hi := float64(c.Min), float64(c.Max)
	forget := func() { s.Knee, s.KneeMin, s.Wait, s.SlowStartEnd, s.Clean = 0, 0, 0, hi, 0 }
	if s.Knee > 0 && r.Min > LatencyThreshold(s.KneeMin, c) {
		forget()
	}
	s.Since++
	s.Done += r.Attempts
	s.Grant = 0
	cut := func(next float64) (LimitState, bool) {
		s.Suspect = false
		s.Cut = s.Limit
		s.Limit = math.Min(math.Max(next, lo), hi)
		s.Knee, s.KneeMin, s.SlowStartEnd, s.Since, s.Done, s.Clean = s.Limit, r.Min, s.Limit, 0, 0, 0
		return s, true
	}
	th := LatencyThreshold(r.Min, c)
	switch {
	case r.Min > 0 && r.Latency > th && !s.Suspect && r.Latency <= 2*th:
		s.Suspect = true // a stall of a busy machine, or a queue: the next round tells
		return s, false
	case r.Min > 0 && r.Latency > th:
		f := max(c.OverloadBackoff, math.Min(1, float64(r.Min)/float64(r.Latency)))
		if keeps(s) {
			return dip(s, c, s.Limit*f), true
		}
		if s.Knee > 0 && s.Limit > s.Knee && r.Latency <= 2*th {
			s.Wait = min(max(2*s.Wait, c.ProbeWait), c.ProbeWaitMax)
		} else {
			s.Wait = c.ProbeWait // a new knee (or a stall): probe again soon
		}
		return cut(s.Limit * f)
	}
	s.Suspect = false
	s.Limit = math.Min(math.Max(s.Limit, lo), hi)
	if r.PeakInFlight >= int(s.Limit) {
		s.Clean = math.Max(s.Clean, s.Limit)
	}
	if float64(r.PeakInFlight)*2 >= s.Limit { // an idle subscription learns nothing
		// latency rising in slow start: the knee is near, approach it gently
		s.Grant = grant(s, c, r.Min > 0 && r.Latency > r.Min+(th-r.Min)/4)
	}
	return s, false
}

// Probe is what the requests sent with a probe say, as ProbeLimit sees it.
type Probe struct {
	// Probes is how many requests were admitted past the limit; Waited how many of the requests
	// sent with them waited at the subscriber (see WaitThreshold); Answered how many of those were
	// answered and judged.
	Probes, Answered, Waited int
	// Latency is their latency as a round's is taken (see Round); Min the minimum latency they were
	// judged against.
	Latency, Min time.Duration
}

// ProbeLimit is the rule for a probe's verdict. The requests past the knee are the last to arrive
// and wait for a server, so the probes that did not wait fit: the limit grows by
// Probes − Waited.
//
//   - None waited: Limit + Probes, and the next probe at once (Grant, as RoundLimit grants it);
//     Clean, too, when their latency stayed within a quarter of the way to the threshold (a
//     latency that rises with every request, as a CPU-bound subscriber's, proves nothing clean).
//     Past Knee×LatencyThreshold(KneeMin)/KneeMin + 1 (where the latency of a queue would have
//     crossed the threshold) the knee moved (or a stall, or one slow answer, caused the cut): Knee
//     is forgotten and slow start resumes up to Cut (the limit before that cut) or twice the
//     limit, whichever is higher (not to the maximum, so a subscriber whose capacity is not a
//     queue is not overshot each time), past which the limit climbs by one probe per round. (Up
//     to Cut alone, a knee found low in slow start, by a stall or one slow answer, left the limit
//     climbing by one a round from there: from 12 to a knee of 64, 50 round trips.)
//   - Some waited, no more than the probes: that is the knee, Limit + Probes − Waited (never below
//     Limit: the base was not probed); it becomes Knee and SlowStartEnd. So does the gradient's
//     knee, (Limit + Probes)×Min/Latency (RoundLimit's), when none waited but their latency is past
//     LatencyThreshold (a queue that spreads its wait over every request). A probe at a known knee
//     that found it again (within an eighth, or one) doubles Wait, up to ProbeWaitMax; otherwise
//     Wait is ProbeWait.
//   - More waited than there were probes, but no more than half of Limit + Probes: the limit
//     itself was past the knee, which is Limit + Probes − Waited (a cut), unless two or more
//     past the probes waited at a limit found clean (keeps): then the base requests waited for a
//     stall, not for the limit, and the cut is a dip (see dip). (One past the probes is still a
//     cut: a probe that went out between the answers of a lock-step pair finds a limit one past a
//     small knee clean.) More than half, or
//     exactly half unless one more than the probes waited (a queue that spreads its wait, a stall of
//     a busy machine, a slower subscriber): the gradient's knee as above when their latency is past
//     LatencyThreshold, at most ×OverloadBackoff below Limit; otherwise the probe says nothing.
//     A gradient's knee below the limit is a dip where keeps says so, as RoundLimit's cut is.
//   - More than half waited and more than the probes, the probes' load within an eighth of Clean:
//     the requests sent before the probe waited too, at a load found clean before, so not for the
//     probe: a stall of a busy machine, and the probe says nothing (the rounds judge).
//     Judged as a queue, every stall that caught a probe cut the limit, and at a small limit it
//     read as the same knee found again, doubling the wait before the next probe: a knee of 32
//     drained at a tenth of its capacity at ten stalls a second, the limit held at 1 or 2 for
//     seconds.
//   - Slow start after a dip stops at the limit it had.
//
// Pure.
func ProbeLimit(s LimitState, p Probe, c AdaptiveConfig) LimitState {
	hi, th := float64(c.Max), LatencyThreshold(p.Min, c)
	// More than half waited: a queue that spreads its wait, or a stall. Exactly half is that too,
	// except when one more waited than the probes: a limit one past a knee of 2 and its probe, which
	// nothing else brings back (see TestAdaptiveStaysAtASmallKneeInALongDrain). That verdict cuts by
	// one only, so a stall that happens to leave half waiting costs one slot, not half the limit.
	total := int(s.Limit) + p.Probes
	many := 2*p.Waited > total || (2*p.Waited == total && p.Waited != p.Probes+1)
	switch {
	case p.Probes <= 0 || (p.Answered == 0 && p.Waited == 0):
	case many && p.Waited > p.Probes && clean(s, s.Limit+float64(p.Probes)):
	case (p.Waited == 0 || many) && p.Latency > th:
		// A queue whose wait spreads over every request (or a stall): the gradient's knee, no
		// deeper than ×OverloadBackoff.
		knee := math.Max((s.Limit+float64(p.Probes))*float64(p.Min)/float64(p.Latency), s.Limit*c.OverloadBackoff)
		fit := int(math.Floor(knee - s.Limit))
		if fit < 0 && keeps(s) {
			s = dip(s, c, s.Limit+float64(fit))
		} else {
			s = probeFound(s, c, p, fit)
		}
	case many:
	case p.Waited == 0:
		if s.Limit < s.SlowStartEnd {
			hi = math.Min(hi, s.SlowStartEnd) // (after a dip: up to the limit it had, not past it)
		}
		s.Limit = math.Min(s.Limit+float64(p.Probes), hi)
		if p.Latency <= p.Min+(th-p.Min)/4 {
			s.Clean = math.Max(s.Clean, s.Limit) // the probe found this load clean, and its latency too
		}
		if s.Knee > 0 && s.Limit > s.Knee*float64(LatencyThreshold(s.KneeMin, c))/float64(s.KneeMin)+1 {
			s.Knee, s.KneeMin, s.Wait, s.SlowStartEnd = 0, 0, 0, math.Max(s.SlowStartEnd, math.Max(s.Cut, 2*s.Limit))
		}
		s.Grant = grant(s, c, false)
	case p.Waited > p.Probes+1 && keeps(s):
		s = dip(s, c, s.Limit+float64(p.Probes-p.Waited))
	default:
		s = probeFound(s, c, p, p.Probes-p.Waited)
	}
	return s
}

// probeFound is ProbeLimit's verdict when a probe found the knee with fit of its probes fitting
// (negative: the limit was past it).
func probeFound(s LimitState, c AdaptiveConfig, p Probe, fit int) LimitState {
	next := math.Min(math.Max(s.Limit+float64(fit), float64(c.Min)), float64(c.Max))
	if s.Knee > 0 && s.Limit >= s.Knee && next <= s.Knee+1 && next >= s.Knee*7/8-1 {
		s.Wait = min(max(2*s.Wait, c.ProbeWait), c.ProbeWaitMax) // the same knee again
	} else {
		s.Wait = c.ProbeWait // a new knee (or a stall): probe again soon
	}
	if fit < 0 {
		s.Cut = s.Limit
	}
	s.Limit = next
	s.Knee, s.KneeMin, s.SlowStartEnd, s.Since, s.Done, s.Clean = s.Limit, p.Min, s.Limit, 0, 0, 0
	return s
}

// keeps reports whether a queue found now is a dip (see dip): the limit is within an eighth of
// the highest limit found clean since the last knee was found (Clean), so the gateway's own load
// could not have built it. A queue past that (a knee found in slow start past the
// subscriber's real capacity, a limit probing past the knee) is cut as any other. Pure.
func keeps(s LimitState) bool { return clean(s, s.Limit) }

// clean reports whether load (requests in flight) is within an eighth of Clean: a queue that load
// alone could not have built. Pure.
func clean(s LimitState, load float64) bool {
	return s.Clean > 0 && load <= s.Clean+s.Clean/8
}

// dip is the cut of a round, or of a probe whose wait spread over every request or whose base
// requests waited, that found a queue at a load found clean before (see keeps): the gateway's own
// load had not grown, so what slowed the subscriber is a stall of a busy machine (every request
// held up together), a slower subscriber, or someone else's load on it. The limit is cut to next as
// any cut is, but Knee and Clean are kept, and slow start resumes up to the limit it had: its
// probes find that limit clean again after a stall, or find where the knee moved to (probeFound).
// (Taken as a new Knee, a stall's cut left the limit there, and one probe per round after ProbeWait
// rounds brought it back: at ten stalls a second of 5–25 ms, a limit at a knee of 32 delivered a
// sixth of what a fixed limit at the knee did; see TestAdaptiveRidesOutANoisyMachine.) Pure.
func dip(s LimitState, c AdaptiveConfig, next float64) LimitState {
	s.Suspect = false
	s.Cut = s.Limit
	s.Limit = math.Min(math.Max(next, float64(c.Min)), float64(c.Max))
	s.SlowStartEnd, s.Wait, s.Since, s.Done = math.Max(s.SlowStartEnd, s.Cut), c.ProbeWait, 0, 0
	return s
}

// OverloadLimit is the rule for a timeout, 429 or 503 from an attempt started after the last cut
// (one cut per round trip, as TCP cuts once per loss event): Limit×OverloadBackoff, never below
// c.Min. An overload says the limit was too high, not where the knee is: Knee is forgotten, and the
// limit climbs back by one per round (SlowStartEnd is the new limit). Pure.
func OverloadLimit(s LimitState, c AdaptiveConfig) LimitState {
	s.Limit = math.Min(math.Max(s.Limit*c.OverloadBackoff, float64(c.Min)), float64(c.Max))
	s.SlowStartEnd = s.Limit
	s.Knee, s.KneeMin, s.Wait, s.Since, s.Cut, s.Done, s.Grant, s.Clean = 0, 0, 0, 0, 0, 0, 0, 0
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
// accepted attempts, the delay-based rule of RoundLimit against a windowed minimum latency; per
// probe (requests admitted past the limit when a round asks for them), the rule of ProbeLimit; on a
// timeout, 429 or 503, the cut of OverloadLimit. It bounds the limit to [Min, Max]. The limit grows
// only by probes that were answered without waiting, and while a probe is out no other request goes
// past the limit, so going past the subscriber's knee costs the probes that did not fit, and no
// more.
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
	waiting      []*waiter // goroutines blocked in Acquire, first come first
	pausedUntil  time.Time
	lastDecrease time.Time
	minLatency   windowedMin
	// The current round: latencies of accepted attempts started after the last cut, until there are
	// target of them (the limit when the round began); peak is the most in flight meanwhile.
	round  []time.Duration
	target int
	peak   int
	probe  probe
}

// probe is a probe in progress: requests admitted past the limit, and the deliveries admitted
// beside them (the subscriber serves those that came first, so the requests that wait are as many
// as went past its knee). It opens when a round grants probes (LimitState.Grant) and closes with a
// verdict (ProbeLimit). Its members are the attempts started from its opening to a little after its
// last probe was admitted.
//
// The dispatcher does not say which attempt an admission became, so the verdict counts slots: once
// no slot is held but by this answer and the admissions since the members, every member has
// answered, and those that waited are counted among the answers (see waited). Otherwise, at the
// first answer WaitThreshold after the last member started (by when a request that did not wait
// has answered), every slot held but by admissions since then is a request that waited, where
// slotsTell (a subscriber slower than Slack); faster ones are judged by the answers alone.
type probe struct {
	open            bool
	granted, credit int             // probes granted; of those, not yet admitted
	from, last      time.Time       // opened; the last probe admitted (or from, while credit is left)
	after           int             // admissions since
	answered        int             // accepted member attempts answered
	waited          int             // of those, how many waited (see waited)
	latencies       []time.Duration // theirs
	min             time.Duration   // the minimum latency when it opened
}

// slop is how long after its admission an attempt may start and still count as admitted with the
// last probe.
func (p *probe) slop() time.Duration { return p.min / 2 }

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
		target:     c.Initial, // the first round: see minRound
		minLatency: windowedMin{window: c.Window},
	}
	if c.Gauge != nil {
		c.Gauge.Set(float64(c.Initial))
	}
	return a
}

// Config returns the configuration in use, defaults applied.
func (a *Adaptive) Config() AdaptiveConfig { return a.cfg }

// Limit returns how many deliveries may be in flight now: the limit, and while a probe's requests
// are being admitted, the probes past it.
func (a *Adaptive) Limit() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.probe.credit > 0 {
		return int(a.state.Limit) + a.probe.granted
	}
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

// Acquire blocks until fewer than Limit deliveries are in flight (the limit and any probe not yet
// admitted) and no pause is in force, or until ctx is done (then it returns ctx's error and holds
// nothing).
func (a *Adaptive) Acquire(ctx context.Context) error {
	var (
		w     *waiter
		timer *time.Timer
	)
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
		if pause <= 0 && a.roomLocked() {
			a.admitLocked()
			a.mu.Unlock()
			return nil
		}
		if w == nil {
			w = &waiter{ready: make(chan struct{}, 1)}
		}
		a.waiting = append(a.waiting, w)
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
		case <-w.ready:
		case <-expired:
		case <-ctx.Done():
		}
		a.mu.Lock()
		if !a.unqueueLocked(w) {
			// Woken (taken off the queue) for a slot: a waiter that leaves now hands the wake on,
			// or that slot would wait for the next Release with goroutines queued for it.
			select {
			case <-w.ready:
			default:
			}
			if ctx.Err() != nil {
				a.wakeOneLocked()
			}
		}
		a.mu.Unlock()
	}
}

// roomLocked reports whether a delivery may start now, pauses aside: fewer than the limit in flight,
// or a probe's admissions left. a.mu must be held.
func (a *Adaptive) roomLocked() bool {
	return a.inFlight < int(a.state.Limit) || a.probe.credit > 0
}

// admitLocked takes a slot (roomLocked was true), counting it towards the probe in progress. a.mu
// must be held.
func (a *Adaptive) admitLocked() {
	if p := &a.probe; p.open {
		switch {
		case p.credit > 0:
			if a.inFlight >= int(a.state.Limit) {
				if p.credit--; p.credit == 0 {
					p.last = a.cfg.Now()
				}
			}
		case a.cfg.Now().After(p.last.Add(p.slop())):
			p.after++
		}
	}
	a.inFlight++
}

// Release frees the slot taken by a successful Acquire and wakes the first goroutine waiting for
// one, if a delivery may start on it. The limit learns from ObserveAttempt, not from the outcome.
func (a *Adaptive) Release(Outcome) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight > 0 {
		a.inFlight--
	}
	if len(a.waiting) > 0 && a.roomLocked() && (a.pausedUntil.IsZero() || !a.cfg.Now().Before(a.pausedUntil)) {
		a.wakeOneLocked()
	}
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
// from an attempt started after the last cut cuts at once (OverloadLimit). The attempts that share
// the subscriber with a probe are the probe's to judge (see probe), not a round's.
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
		if at.Start.Before(a.lastDecrease) || a.observeProbe(at, now) {
			break
		}
		a.round = append(a.round, at.Latency)
		a.peak = max(a.peak, a.inFlight)
		if len(a.round) < a.target {
			break
		}
		lat := roundLatency(a.round)
		a.minLatency.add(now, lat)
		r := Round{Latency: lat, Min: a.minLatency.get(now), PeakInFlight: a.peak, Attempts: len(a.round)}
		next, decreased := RoundLimit(a.state, r, a.cfg)
		a.state = next
		if decreased {
			sig = ShrinkLatency
			a.cut(now)
		} else {
			a.newRound()
		}
		a.openProbe(now, r.Min)
	}
	if a.probe.open && sig != Grow {
		a.observeProbe(at, now) // a deadline may have passed
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

// cut records a decrease at now: attempts started before it no longer count, and a probe in
// progress is dropped (its requests were admitted under the limit before the cut). a.mu must be
// held.
func (a *Adaptive) cut(now time.Time) {
	a.lastDecrease = now
	a.probe = probe{latencies: a.probe.latencies[:0]}
	a.newRound()
}

// observeProbe counts at towards the probe in progress when it is one of its members and closes
// the probe with its verdict (ProbeLimit) once every member answered or its deadline passed. It
// reports whether at was a member or the probe closed (the rounds leave both out: the probes'
// waits are the probe's to judge). a.mu must be held.
func (a *Adaptive) observeProbe(at Attempt, now time.Time) bool {
	p := &a.probe
	if !p.open {
		return false
	}
	member, self := false, 0 // self: 1 when at is a member that waited
	if p.credit == 0 && !at.Start.Before(p.from) && !at.Start.After(p.last.Add(p.slop())) && Classify(at) == Grow {
		member = true
		p.answered++
		p.latencies = append(p.latencies, at.Latency)
		if waited(at.Latency, p.min, a.cfg) {
			p.waited++
			self = 1
		}
	}
	short := false
	if p.credit > 0 && now.After(p.from.Add(2*WaitThreshold(p.min, a.cfg))) {
		// Not all the probes were taken (too few events to send): judge those that were.
		p.granted -= p.credit
		p.credit, p.last, short = 0, now, true
	}
	if p.credit > 0 {
		return member
	}
	// Slots held by members and older requests, but for this answer's own (unless it was admitted
	// after the members, when it is one of p.after).
	held := a.inFlight - p.after
	if !at.Start.After(p.last.Add(p.slop())) {
		held--
	}
	switch {
	case held <= 0:
	case now.After(p.last.Add(p.slop() + WaitThreshold(p.min, a.cfg))):
		if slotsTell(p.min, a.cfg) {
			p.waited = max(p.waited, held+self)
		}
	default:
		return member
	}
	prev := a.state
	v := Probe{Probes: p.granted, Answered: p.answered, Waited: p.waited, Min: p.min}
	if len(p.latencies) > 0 {
		v.Latency = roundLatency(p.latencies)
	}
	a.state = ProbeLimit(a.state, v, a.cfg)
	a.cfg.Log.Debug("concurrency probe judged", "probes", p.granted, "answered", p.answered, "waited", p.waited, "held", held,
		"limit", int(a.state.Limit), "previous", int(prev.Limit), "knee", a.state.Knee)
	min := p.min
	*p = probe{latencies: p.latencies[:0]} // (its buffer is reused)
	// Rounds resume after the verdict, at the new limit.
	a.newRound()
	a.lastDecrease = now
	if short {
		a.state.Grant = 0 // the limit is not in use
	}
	a.openProbe(now, min)
	return true // at started before the verdict: no round counts it
}

// openProbe opens the probe the state grants, if any and none is open, and clears the grant. a.mu
// must be held.
func (a *Adaptive) openProbe(now time.Time, min time.Duration) {
	if g := a.state.Grant; g > 0 && !a.probe.open && min > 0 {
		a.probe = probe{open: true, granted: g, credit: g, from: now, last: now, min: min,
			latencies: a.probe.latencies[:0]}
		a.wakeLocked()
	}
	a.state.Grant = 0
}

// minRound is the fewest attempts a round judges: a round of one or two says too little. The first
// round is the exception: as many as the limit, for it has nothing to judge against yet (its latency
// becomes the minimum) and only asks for the first probe; at a limit of 1, three attempts are three
// round trips, 150 ms of a 50 ms subscriber before the limit first grows. A first answer slowed by
// a new connection only makes that first probe lenient: the next round's latency replaces it.
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

// waiter is a goroutine blocked in Acquire; ready is signalled (capacity 1) when it is taken off
// the queue to look again.
type waiter struct{ ready chan struct{} }

// wakeOneLocked wakes the first goroutine blocked in Acquire, to look again. A freed slot wakes one
// waiter, not all of them: with a waiter per partition (each claim's intake), waking every one per
// Release woke the others only to find no slot and sleep again, a few goroutine switches per
// delivery (and a channel allocated per Release). a.mu must be held.
func (a *Adaptive) wakeOneLocked() {
	if len(a.waiting) == 0 {
		return
	}
	w := a.waiting[0]
	a.waiting[0] = nil
	a.waiting = a.waiting[1:]
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// wakeLocked wakes every goroutine blocked in Acquire, to look again: the limit or a pause changed,
// or a probe opened. a.mu must be held.
func (a *Adaptive) wakeLocked() {
	for _, w := range a.waiting {
		select {
		case w.ready <- struct{}{}:
		default:
		}
	}
	clear(a.waiting)
	a.waiting = a.waiting[:0]
}

// unqueueLocked takes w off the queue; false when it was not on it (it had been woken). a.mu must
// be held.
func (a *Adaptive) unqueueLocked(w *waiter) bool {
	for i, q := range a.waiting {
		if q == w {
			a.waiting = slices.Delete(a.waiting, i, i+1)
			return true
		}
	}
	return false
}
