package dispatch

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidDestination marks a destination that can never be reached as given (no URL and no
// channel, both, or a URL that does not parse). Sending to it is not retried.
var ErrInvalidDestination = errors.New("invalid destination")

// Retryable reports whether a failed delivery attempt is worth repeating. status is the HTTP status
// of the answer (0 when there was none) and err the transport error (nil when there was an answer).
// A 2xx is success and is never passed here. Pure; safe for concurrent use.
func Retryable(status int, err error) bool {
	if err != nil {
		// The destination itself is malformed: repeating cannot help.
		if errors.Is(err, ErrInvalidDestination) {
			return false
		}
		// Connection refused or reset, DNS failure, per-attempt timeout: the subscriber may be back
		// or less busy on the next attempt.
		return true
	}
	switch {
	case status == http.StatusNotFound:
		// 404: the subscriber may not be deployed or routed yet (a Knative service scaling from zero).
		return true
	case status == http.StatusRequestTimeout:
		// 408: the server gave up waiting for the request; a new attempt may arrive in time.
		return true
	case status == http.StatusConflict:
		// 409: a conflicting update the subscriber expects to clear (optimistic concurrency).
		return true
	case status == http.StatusTooManyRequests:
		// 429: the subscriber sheds load; retry after the backoff or its Retry-After.
		return true
	case status >= 500 && status <= 599:
		// 5xx: the subscriber failed or is unavailable; the fault is on its side and may pass.
		return true
	case status == 0:
		// No status and no error cannot come from a real exchange; treat it as a broken answer.
		return true
	default:
		// Any other 4xx (400 bad request, 401, 403, 413, 415, ...): the event itself is refused and
		// will be refused again; it goes straight to the dead letter. 1xx/3xx that reach here are
		// answers we cannot use either.
		return false
	}
}

// Backoff returns the delay before retry n (n from 1) under p, without any Retry-After hint:
// linear is BackoffDelay×n, exponential (the default for any other BackoffPolicy) BackoffDelay×2ⁿ.
// The result is capped by BackoffMax when BackoffMax > 0, never negative, and saturates at the
// largest time.Duration instead of overflowing. n < 1 or BackoffDelay <= 0 gives 0.
func Backoff(p Policy, n int) time.Duration {
	if n < 1 || p.BackoffDelay <= 0 {
		return 0
	}
	d := p.BackoffDelay
	var out time.Duration
	if p.Backoff == BackoffLinear {
		if int64(n) > math.MaxInt64/int64(d) {
			out = math.MaxInt64
		} else {
			out = d * time.Duration(n)
		}
	} else {
		if n >= 63 || int64(d) > math.MaxInt64>>uint(n) {
			out = math.MaxInt64
		} else {
			out = d << uint(n)
		}
	}
	if p.BackoffMax > 0 && out > p.BackoffMax {
		out = p.BackoffMax
	}
	return out
}

// maxRetryAfter bounds what RetryAfter returns so that seconds×1e9 cannot overflow.
const maxRetryAfter = time.Duration(math.MaxInt64)

// RetryAfter parses a response's Retry-After header: either a non-negative number of seconds or an
// HTTP-date (relative to now). It returns the delay and true when the header is present and valid;
// a date in the past gives (0, true). A missing or malformed header gives (0, false).
//
// Invariants (checked by FuzzRetryAfter): it never panics; the delay is never negative; when ok is
// false the delay is 0; a plain seconds value s below 10⁹ gives exactly s seconds.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			var numErr *strconv.NumError
			if errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) && allDigits(v) {
				return maxRetryAfter, true
			}
			return 0, false
		}
		if secs > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// NextDelay returns how long to wait before retry n (n from 1): Backoff(p, n), or the server's
// Retry-After (retryAfter, when has) when that is larger. Retry-After is honoured only when
// p.RetryAfterMax > 0, and never beyond RetryAfterMax.
func NextDelay(p Policy, n int, retryAfter time.Duration, has bool) time.Duration {
	b := Backoff(p, n)
	if !has || p.RetryAfterMax <= 0 {
		return b
	}
	if retryAfter > p.RetryAfterMax {
		retryAfter = p.RetryAfterMax
	}
	if retryAfter > b {
		return retryAfter
	}
	return b
}

// minCycleDelay is the least wait between two full delivery cycles (subscriber, then dead letter)
// when the dead-letter sink is failing too.
const minCycleDelay = time.Second

// cycleDelay is the wait before starting a whole delivery cycle again after the dead-letter send
// failed: BackoffMax, but at least floor.
func cycleDelay(p Policy, floor time.Duration) time.Duration {
	if p.BackoffMax > floor {
		return p.BackoffMax
	}
	return floor
}
