package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

func TestRetryable(t *testing.T) {
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name   string
		status int
		err    error
		want   bool
	}{
		{"connection refused", 0, netErr, true},
		{"attempt timeout", 0, fmt.Errorf("post: %w", context.DeadlineExceeded), true},
		{"invalid destination", 0, fmt.Errorf("x: %w", ErrInvalidDestination), false},
		{"400 bad request", 400, nil, false},
		{"401 unauthorized", 401, nil, false},
		{"403 forbidden", 403, nil, false},
		{"404 not found (not routed yet)", 404, nil, true},
		{"405 method not allowed", 405, nil, false},
		{"408 request timeout", 408, nil, true},
		{"409 conflict", 409, nil, true},
		{"410 gone", 410, nil, false},
		{"413 too large", 413, nil, false},
		{"415 unsupported media type", 415, nil, false},
		{"422 unprocessable", 422, nil, false},
		{"429 too many requests", 429, nil, true},
		{"500 internal error", 500, nil, true},
		{"502 bad gateway", 502, nil, true},
		{"503 unavailable", 503, nil, true},
		{"504 gateway timeout", 504, nil, true},
		{"599 top of 5xx", 599, nil, true},
		{"301 redirect not followed", 301, nil, false},
		{"no status, no error", 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.status, tt.err); got != tt.want {
				t.Errorf("Retryable(%d, %v) = %v, want %v", tt.status, tt.err, got, tt.want)
			}
		})
	}
}

func TestPublishRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("publish: %w", channel.ErrNotFound), false},
		{&channel.FullError{RetryAfter: time.Second}, true},
		{fmt.Errorf("publish: %w", channel.ErrUnavailable), true},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("x: %w", ErrInvalidDestination), false},
		{errors.New("something else"), true},
	}
	for _, tt := range tests {
		if got := publishRetryable(tt.err); got != tt.want {
			t.Errorf("publishRetryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	lin := Policy{Backoff: BackoffLinear, BackoffDelay: 100 * ms}
	exp := Policy{Backoff: BackoffExponential, BackoffDelay: 100 * ms}
	tests := []struct {
		name string
		p    Policy
		n    int
		want time.Duration
	}{
		{"linear n=1", lin, 1, 100 * ms},
		{"linear n=2", lin, 2, 200 * ms},
		{"linear n=5", lin, 5, 500 * ms},
		{"exponential n=1", exp, 1, 200 * ms},
		{"exponential n=2", exp, 2, 400 * ms},
		{"exponential n=3", exp, 3, 800 * ms},
		{"empty policy is exponential", Policy{BackoffDelay: 100 * ms}, 2, 400 * ms},
		{"unknown policy is exponential", Policy{Backoff: "fibonacci", BackoffDelay: 100 * ms}, 1, 200 * ms},
		{"capped by BackoffMax", Policy{BackoffDelay: 100 * ms, BackoffMax: 300 * ms}, 3, 300 * ms},
		{"below BackoffMax untouched", Policy{BackoffDelay: 100 * ms, BackoffMax: 300 * ms}, 1, 200 * ms},
		{"linear capped", Policy{Backoff: BackoffLinear, BackoffDelay: 100 * ms, BackoffMax: 250 * ms}, 3, 250 * ms},
		{"n=0", exp, 0, 0},
		{"negative n", exp, -3, 0},
		{"no delay", Policy{}, 4, 0},
		{"negative delay", Policy{BackoffDelay: -ms}, 4, 0},
		{"exponential overflow saturates", exp, 62, math.MaxInt64},
		{"exponential huge n saturates", exp, 1000, math.MaxInt64},
		{"exponential overflow then capped", Policy{BackoffDelay: time.Hour, BackoffMax: time.Minute}, 200, time.Minute},
		{"linear overflow saturates", Policy{Backoff: BackoffLinear, BackoffDelay: time.Hour}, math.MaxInt, math.MaxInt64},
		{"exponential largest exact", Policy{BackoffDelay: 1}, 62, 1 << 62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Backoff(tt.p, tt.n); got != tt.want {
				t.Errorf("Backoff(%+v, %d) = %v, want %v", tt.p, tt.n, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		value  string // "" means absent
		want   time.Duration
		wantOK bool
	}{
		{"absent", "", 0, false},
		{"seconds", "120", 120 * time.Second, true},
		{"zero", "0", 0, true},
		{"spaces trimmed", "  7 ", 7 * time.Second, true},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"digits then text", "10s", 0, false},
		{"huge seconds saturate", "99999999999999999999999", maxRetryAfter, true},
		{"above duration range saturates", strconv.FormatUint(math.MaxInt64/uint64(time.Second)+1, 10), maxRetryAfter, true},
		{"http date in the future", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"http date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"rfc850 date", "Saturday, 01-Mar-25 12:00:30 GMT", 30 * time.Second, true},
		{"asctime date", "Sat Mar  1 12:01:00 2025", time.Minute, true},
		{"bad date", "Sat, 99 Foo 2025 00:00:00 GMT", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := RetryAfter(h, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzRetryAfter checks RetryAfter's invariants on any header value: it never panics, never returns
// a negative delay, returns 0 whenever ok is false, and gives exactly s seconds for a plain
// decimal s below 10⁹.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "1.5", "Sat, 01 Mar 2025 12:00:30 GMT",
		"Saturday, 01-Mar-25 12:00:30 GMT", "99999999999999999999", " 3 ", "", "\x00"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Retry-After": {v}}
		d, ok := RetryAfter(h, now)
		if d < 0 {
			t.Fatalf("RetryAfter(%q) = %v: negative", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("RetryAfter(%q) = %v, false: delay without ok", v, d)
		}
		if s, err := strconv.ParseUint(v, 10, 64); err == nil && s < 1e9 {
			if !ok || d != time.Duration(s)*time.Second {
				t.Fatalf("RetryAfter(%q) = %v, %v; want %ds", v, d, ok, s)
			}
		}
	})
}

func TestNextDelay(t *testing.T) {
	ms := time.Millisecond
	p := Policy{Backoff: BackoffLinear, BackoffDelay: 100 * ms, RetryAfterMax: 2 * time.Second}
	tests := []struct {
		name string
		p    Policy
		n    int
		ra   time.Duration
		has  bool
		want time.Duration
	}{
		{"no hint: backoff", p, 1, 0, false, 100 * ms},
		{"hint larger than backoff wins", p, 1, time.Second, true, time.Second},
		{"hint smaller than backoff loses", p, 3, 50 * ms, true, 300 * ms},
		{"hint capped at RetryAfterMax", p, 1, time.Hour, true, 2 * time.Second},
		{"hint ignored without RetryAfterMax", Policy{Backoff: BackoffLinear, BackoffDelay: 100 * ms}, 1, time.Hour, true, 100 * ms},
		{"zero hint keeps backoff", p, 2, 0, true, 200 * ms},
		{"backoff above RetryAfterMax is kept", Policy{Backoff: BackoffLinear, BackoffDelay: 5 * time.Second, RetryAfterMax: time.Second}, 1, time.Hour, true, 5 * time.Second},
		{"has=false ignores a value", p, 1, time.Second, false, 100 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextDelay(tt.p, tt.n, tt.ra, tt.has); got != tt.want {
				t.Errorf("NextDelay(n=%d, %v, %v) = %v, want %v", tt.n, tt.ra, tt.has, got, tt.want)
			}
		})
	}
}

func TestCycleDelay(t *testing.T) {
	tests := []struct {
		max, floor, want time.Duration
	}{
		{0, time.Second, time.Second},
		{500 * time.Millisecond, time.Second, time.Second},
		{time.Minute, time.Second, time.Minute},
	}
	for _, tt := range tests {
		if got := cycleDelay(Policy{BackoffMax: tt.max}, tt.floor); got != tt.want {
			t.Errorf("cycleDelay(max=%v, floor=%v) = %v, want %v", tt.max, tt.floor, got, tt.want)
		}
	}
	if minCycleDelay != time.Second {
		t.Errorf("minCycleDelay = %v, the contract says 1s", minCycleDelay)
	}
}

func TestDestinationValidate(t *testing.T) {
	ref := &channel.Ref{Namespace: "ns", Name: "c"}
	tests := []struct {
		name string
		d    Destination
		ok   bool
	}{
		{"url", Destination{URL: "http://svc.ns.svc.cluster.local/x"}, true},
		{"https url", Destination{URL: "https://example.test"}, true},
		{"channel", Destination{Channel: ref}, true},
		{"neither", Destination{}, false},
		{"both", Destination{URL: "http://a", Channel: ref}, false},
		{"relative", Destination{URL: "/path"}, false},
		{"other scheme", Destination{URL: "ftp://a/b"}, false},
		{"unparsable", Destination{URL: "http://[::1"}, false},
	}
	for _, tt := range tests {
		err := tt.d.validate()
		if (err == nil) != tt.ok {
			t.Errorf("%s: validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidDestination) {
			t.Errorf("%s: error %v does not wrap ErrInvalidDestination", tt.name, err)
		}
	}
}

func TestSemaphore(t *testing.T) {
	s := NewSemaphore(2)
	ctx := context.Background()
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Acquire = %v, want DeadlineExceeded", err)
	}
	s.Release(Outcome{Result: Delivered})
	if err := s.Acquire(ctx); err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if NewSemaphore(0).Limit() != 1 {
		t.Error("NewSemaphore(0) should allow 1")
	}
}
