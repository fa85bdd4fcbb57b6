package dispatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

func (h *harness) attempts(class string) float64 {
	return testutil.ToFloat64(h.m.DispatchAttempts.WithLabelValues("ns", "sub", class))
}

func (h *harness) count(name string, labels ...string) float64 {
	all := append([]string{"ns", "sub"}, labels...)
	switch name {
	case "delivered":
		return testutil.ToFloat64(h.m.Delivered.WithLabelValues(all...))
	case "dead_lettered":
		return testutil.ToFloat64(h.m.DeadLettered.WithLabelValues(all...))
	case "dropped":
		return testutil.ToFloat64(h.m.Dropped.WithLabelValues(all...))
	case "replies":
		return testutil.ToFloat64(h.m.Replies.WithLabelValues(all...))
	case "in_flight":
		return testutil.ToFloat64(h.m.InFlight.WithLabelValues(all...))
	}
	panic("unknown metric " + name)
}

func TestDeliverSuccess(t *testing.T) {
	srv := newRecorder(t, status(http.StatusAccepted))
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, MaxInFlight: 7}, nil)
	c := h.p.claim(t, 0)
	ev := testEvent("e-1")
	ev.SetExtension("traceparent", "00-abc-def-01")
	off := c.push(t, ev)
	c.waitDone(t, off)

	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("subscriber got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	for k, want := range map[string]string{"Ce-Id": "e-1", "Ce-Specversion": "1.0", "Ce-Source": "/test",
		"Ce-Type": "test.event", "Ce-Traceparent": "00-abc-def-01", "Content-Type": "application/json",
		"Prefer": "reply"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !bytes.Equal(r.body, ev.Data) {
		t.Errorf("body = %q, want %q", r.body, ev.Data)
	}
	if got := h.attempts("2xx"); got != 1 {
		t.Errorf("attempts{2xx} = %v, want 1", got)
	}
	if got := h.count("delivered"); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.m.ConcurrencyLimit.WithLabelValues("ns", "sub")); got != 7 {
		t.Errorf("concurrency limit = %v, want 7", got)
	}
	if got := testutil.CollectAndCount(h.m.DispatchDuration); got != 1 {
		t.Errorf("duration series = %d, want 1", got)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	srv := newRecorder(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	pol := Policy{Retry: 5, Backoff: BackoffLinear, BackoffDelay: time.Millisecond}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Policy: pol}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-1"))
	c.waitDone(t, off)
	if got := len(srv.requests()); got != 3 {
		t.Errorf("subscriber got %d requests, want 3 (two failures, then success)", got)
	}
	if h.attempts("5xx") != 1 || h.attempts("4xx") != 1 || h.attempts("2xx") != 1 {
		t.Errorf("attempts 5xx=%v 4xx=%v 2xx=%v, want 1 each", h.attempts("5xx"), h.attempts("4xx"), h.attempts("2xx"))
	}
	if got := h.count("delivered"); got != 1 {
		t.Errorf("delivered = %v, want 1", got)
	}
}

func TestBadRequestGoesStraightToDeadLetter(t *testing.T) {
	answer := bytes.Repeat([]byte("why-"), 600) // 2400 bytes: only the first 1024 travel
	srv := newRecorder(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(answer)
	})
	dls := newRecorder(t, status(http.StatusAccepted))
	h := newHarness(t, 1, Subscription{
		Subscriber: Destination{URL: srv.url()},
		DeadLetter: &Destination{URL: dls.url()},
		Policy:     Policy{Retry: 3, BackoffDelay: time.Millisecond},
	}, nil)
	c := h.p.claim(t, 0)
	ev := testEvent("e-400")
	ev.SetExtension(ExtErrorCode, "999") // stale, from an earlier hop: must be replaced
	off := c.push(t, ev)
	c.waitDone(t, off)

	if got := len(srv.requests()); got != 1 {
		t.Errorf("subscriber got %d requests, want 1 (400 is not retried)", got)
	}
	got := dls.requests()
	if len(got) != 1 {
		t.Fatalf("dead-letter sink got %d requests, want 1", len(got))
	}
	hd := got[0].header
	if v := hd.Get("Ce-Knativeerrordest"); v != srv.url() {
		t.Errorf("Ce-Knativeerrordest = %q, want %q", v, srv.url())
	}
	if v := hd.Get("Ce-Knativeerrorcode"); v != "400" {
		t.Errorf("Ce-Knativeerrorcode = %q, want 400", v)
	}
	data, err := base64.StdEncoding.DecodeString(hd.Get("Ce-Knativeerrordata"))
	if err != nil {
		t.Fatalf("Ce-Knativeerrordata is not base64: %v", err)
	}
	if !bytes.Equal(data, answer[:1024]) {
		t.Errorf("knativeerrordata decodes to %d bytes, want the first 1024 of the answer", len(data))
	}
	if hd.Get("Ce-Id") != "e-400" || !bytes.Equal(got[0].body, ev.Data) {
		t.Errorf("dead letter is not the original event: id %q body %q", hd.Get("Ce-Id"), got[0].body)
	}
	if ev.Extension(ExtErrorDest) != "" {
		t.Error("the record's own event was modified")
	}
	if h.count("dead_lettered") != 1 || h.count("delivered") != 0 {
		t.Errorf("dead_lettered=%v delivered=%v, want 1 and 0", h.count("dead_lettered"), h.count("delivered"))
	}
}

func TestRetriesExhaustedGoToDeadLetter(t *testing.T) {
	srv := newRecorder(t, status(http.StatusInternalServerError))
	dls := newRecorder(t, status(http.StatusOK))
	h := newHarness(t, 1, Subscription{
		Subscriber: Destination{URL: srv.url()},
		DeadLetter: &Destination{URL: dls.url()},
		Policy:     Policy{Retry: 2, BackoffDelay: time.Millisecond},
	}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-500"))
	c.waitDone(t, off)
	if got := len(srv.requests()); got != 3 {
		t.Errorf("subscriber got %d requests, want 3 (1 + 2 retries)", got)
	}
	d := dls.requests()
	if len(d) != 1 {
		t.Fatalf("dead-letter sink got %d requests, want 1", len(d))
	}
	if code := d[0].header.Get("Ce-Knativeerrorcode"); code != "500" {
		t.Errorf("Ce-Knativeerrorcode = %q, want 500", code)
	}
	if d[0].header.Get("Ce-Knativeerrordata") != "" {
		t.Error("knativeerrordata set for an empty answer body")
	}
	if got := h.attempts("5xx"); got != 3 {
		t.Errorf("attempts{5xx} = %v, want 3 (dead-letter attempts are not counted)", got)
	}
}

func TestNoDeadLetterDropsAndMarksDone(t *testing.T) {
	srv := newRecorder(t, status(http.StatusBadGateway))
	h := newHarness(t, 1, Subscription{
		Subscriber: Destination{URL: srv.url()},
		Policy:     Policy{Retry: 1, BackoffDelay: time.Millisecond},
	}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-drop"))
	c.waitDone(t, off)
	if got := len(srv.requests()); got != 2 {
		t.Errorf("subscriber got %d requests, want 2", got)
	}
	if got := h.count("dropped", "retries_exhausted"); got != 1 {
		t.Errorf("dropped{retries_exhausted} = %v, want 1", got)
	}
}

func TestDeadLetterDownKeepsEventUntilItLands(t *testing.T) {
	srv := newRecorder(t, status(http.StatusUnprocessableEntity))
	dlsUpCh := make(chan struct{})
	dls := newRecorder(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		select {
		case <-dlsUpCh:
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	h := newHarness(t, 1, Subscription{
		Subscriber: Destination{URL: srv.url()},
		DeadLetter: &Destination{URL: dls.url()},
		Policy:     Policy{Retry: 1, BackoffDelay: time.Millisecond},
	}, func(d *Dispatcher) { d.cycleMin = 5 * time.Millisecond })
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-dls"))

	// Three whole cycles: each is one subscriber attempt (422 is not retried) and two DLS attempts.
	dls.waitRequests(t, 6)
	if c.isDone(off) {
		t.Fatal("event marked done while the dead-letter sink is failing")
	}
	if got := len(srv.requests()); got < 3 {
		t.Errorf("subscriber got %d requests after 3 cycles, want >= 3 (each cycle retries it)", got)
	}
	close(dlsUpCh)
	c.waitDone(t, off)
	if got := h.count("dead_lettered"); got != 1 {
		t.Errorf("dead_lettered = %v, want 1", got)
	}
	if got := h.count("dropped", "retries_exhausted"); got != 0 {
		t.Errorf("dropped = %v, want 0", got)
	}
}

// TestPerAttemptTimeout runs on a delivery worker (unordered), on the claim's own goroutine
// (ordered, keyless) and on a partition key's goroutine (ordered, keyed): each makes its attempts
// in an attemptScope.
func TestPerAttemptTimeout(t *testing.T) {
	for _, mode := range []struct {
		name    string
		ordered bool
		key     string
	}{{"unordered", false, ""}, {"ordered", true, ""}, {"ordered keyed", true, "k"}} {
		t.Run(mode.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			t.Cleanup(func() { close(release) })
			h := newHarness(t, 1, Subscription{
				Subscriber: Destination{URL: srv.url()},
				Ordered:    mode.ordered,
				Policy:     Policy{Retry: 1, BackoffDelay: time.Millisecond, Timeout: 50 * time.Millisecond},
			}, nil)
			c := h.p.claim(t, 0)
			start := time.Now()
			ev := testEvent("e-hang")
			if mode.key != "" {
				ev.SetExtension(event.PartitionKeyExtension, mode.key)
			}
			off := c.push(t, ev)
			c.waitDone(t, off)
			if el := time.Since(start); el < 100*time.Millisecond {
				t.Errorf("two timed-out attempts took %v, want >= 100ms", el)
			}
			if got := h.attempts("timeout"); got != 2 {
				t.Errorf("attempts{timeout} = %v, want 2", got)
			}
			if got := h.count("dropped", "retries_exhausted"); got != 1 {
				t.Errorf("dropped = %v, want 1", got)
			}
		})
	}
}

// TestAttemptScopeDeadlines checks the timeout contexts an attemptScope hands out: each attempt's
// deadline lies between its timeout and a 64th of it later, attempts close together share one
// context, a context the scope has moved on from or ended is released, and the scope's parent
// still ends them.
func TestAttemptScopeDeadlines(t *testing.T) {
	const timeout, grace = 640 * time.Millisecond, 10 * time.Millisecond
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	s := newAttemptScope(parent)
	var made []context.Context
	attempts := 0
	// Attempts one after another for four graces: the scope must move on at least three times.
	for end := time.Now().Add(4 * grace); time.Now().Before(end); attempts++ {
		before := time.Now()
		ctx := s.attempt(timeout)
		after := time.Now()
		dl, ok := ctx.Deadline()
		if !ok || dl.Before(before.Add(timeout)) || dl.After(after.Add(timeout+grace)) {
			t.Fatalf("attempt %d between %v and %v: deadline %v (set %v), want within [start+%v, start+%v]",
				attempts, before, after, dl, ok, timeout, timeout+grace)
		}
		if len(made) == 0 || made[len(made)-1] != ctx {
			if len(made) > 0 && made[len(made)-1].Err() != context.Canceled {
				t.Fatalf("the context before attempt %d was not released when the scope moved on: %v", attempts, made[len(made)-1].Err())
			}
			made = append(made, ctx)
		}
	}
	if len(made) < 4 || len(made) >= attempts {
		t.Fatalf("%d attempts over %v made %d contexts: want at least 4, and fewer than the attempts", attempts, 4*grace, len(made))
	}
	last := made[len(made)-1]
	s.end()
	if last.Err() != context.Canceled {
		t.Errorf("end left the last context %v, want it released", last.Err())
	}

	s = newAttemptScope(parent)
	ctx := s.attempt(timeout)
	cancelParent()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the scope's parent ended, its attempt's context did not")
	}
	s.end()
}

func TestRetryAfterHonouredUpToRetryAfterMax(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		retryAfter string
		pol        Policy
		want       time.Duration
	}{
		{"seconds honoured", "2", Policy{Retry: 1, BackoffDelay: 10 * time.Millisecond, RetryAfterMax: 5 * time.Second}, 2 * time.Second},
		{"capped at RetryAfterMax", "3600", Policy{Retry: 1, BackoffDelay: 10 * time.Millisecond, RetryAfterMax: 3 * time.Second}, 3 * time.Second},
		{"ignored without RetryAfterMax", "3600", Policy{Retry: 1, BackoffDelay: 10 * time.Millisecond}, 20 * time.Millisecond},
		{"http date", now.Add(4 * time.Second).Format(http.TimeFormat), Policy{Retry: 1, BackoffDelay: 10 * time.Millisecond, RetryAfterMax: time.Minute}, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, func(n int, _ *http.Request, w http.ResponseWriter) {
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			clock := &noWait{}
			h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Policy: tt.pol},
				func(d *Dispatcher) {
					d.wait = clock.wait
					d.now = func() time.Time { return now }
				})
			c := h.p.claim(t, 0)
			off := c.push(t, testEvent("e-ra"))
			c.waitDone(t, off)
			if got := clock.got(); !slices.Equal(got, []time.Duration{tt.want}) {
				t.Errorf("waits = %v, want [%v]", got, tt.want)
			}
			if got := len(srv.requests()); got != 2 {
				t.Errorf("subscriber got %d requests, want 2", got)
			}
		})
	}
}

// A real-time check of the same rule: the server records when each request arrives.
func TestRetryAfterMeasuredByServer(t *testing.T) {
	srv := newRecorder(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	pol := Policy{Retry: 1, BackoffDelay: time.Millisecond, RetryAfterMax: 150 * time.Millisecond}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Policy: pol}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-ra"))
	c.waitDone(t, off)
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("subscriber got %d requests, want 2", len(reqs))
	}
	gap := reqs[1].at.Sub(reqs[0].at)
	if gap < 150*time.Millisecond || gap > 5*time.Second {
		t.Errorf("gap between attempts = %v, want about RetryAfterMax (150ms), far below Retry-After (1h)", gap)
	}
}

// replyingServer answers 200 with a binary-mode CloudEvent reply.
func replyingServer(t *testing.T) *recorder {
	return newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", "reply-to-"+r.Header.Get("Ce-Id"))
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "test.reply")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("pong"))
	})
}

func TestReplyToURL(t *testing.T) {
	srv := replyingServer(t)
	replies := newRecorder(t, status(http.StatusAccepted))
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Reply: &Destination{URL: replies.url()}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-1"))
	c.waitDone(t, off)
	got := replies.requests()
	if len(got) != 1 {
		t.Fatalf("reply destination got %d requests, want 1", len(got))
	}
	if got[0].header.Get("Ce-Id") != "reply-to-e-1" || got[0].header.Get("Ce-Type") != "test.reply" ||
		string(got[0].body) != "pong" {
		t.Errorf("reply = id %q type %q body %q", got[0].header.Get("Ce-Id"), got[0].header.Get("Ce-Type"), got[0].body)
	}
	if v := h.count("replies", "sent"); v != 1 {
		t.Errorf("replies{sent} = %v, want 1", v)
	}
}

func TestReplyToChannel(t *testing.T) {
	srv := replyingServer(t)
	out := channel.Ref{Namespace: "ns", Name: "replies"}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Reply: &Destination{Channel: &out}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-2"))
	c.waitDone(t, off)
	got := h.p.publishedTo(out)
	if len(got) != 1 || got[0].ID != "reply-to-e-2" || string(got[0].Data) != "pong" {
		t.Fatalf("published to reply channel: %+v", got)
	}
}

func TestReplyFailureStillMarksDone(t *testing.T) {
	srv := replyingServer(t)
	out := channel.Ref{Namespace: "ns", Name: "gone"}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Reply: &Destination{Channel: &out},
		Policy: Policy{Retry: 3, BackoffDelay: time.Millisecond}}, nil)
	h.p.mu.Lock()
	h.p.publishErr = func(channel.Ref) error { return fmt.Errorf("publish: %w", channel.ErrNotFound) }
	h.p.mu.Unlock()
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-3"))
	c.waitDone(t, off)
	if v := h.count("replies", "failed"); v != 1 {
		t.Errorf("replies{failed} = %v, want 1", v)
	}
	if v := h.count("delivered"); v != 1 {
		t.Errorf("delivered = %v, want 1", v)
	}
}

func TestReplyWithoutDestinationIsDropped(t *testing.T) {
	srv := replyingServer(t)
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-4"))
	c.waitDone(t, off)
	if v := h.count("dropped", "no_reply_destination"); v != 1 {
		t.Errorf("dropped{no_reply_destination} = %v, want 1", v)
	}
}

func TestChannelSubscriberAndDeadLetter(t *testing.T) {
	target := channel.Ref{Namespace: "ns", Name: "next"}
	dead := channel.Ref{Namespace: "ns", Name: "dead"}
	var fullOnce bool
	clock := &noWait{}
	h := newHarness(t, 1, Subscription{
		Subscriber: Destination{Channel: &target},
		DeadLetter: &Destination{Channel: &dead},
		Policy:     Policy{Retry: 2, BackoffDelay: time.Millisecond, RetryAfterMax: time.Minute},
	}, func(d *Dispatcher) { d.wait = clock.wait })
	h.p.mu.Lock()
	h.p.publishErr = func(ch channel.Ref) error {
		if ch == target && !fullOnce {
			fullOnce = true
			return &channel.FullError{RetryAfter: 7 * time.Second}
		}
		if ch == target {
			return fmt.Errorf("publish: %w", channel.ErrNotFound)
		}
		return nil
	}
	h.p.mu.Unlock()
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-ch"))
	c.waitDone(t, off)
	// Full (retried after its RetryAfter hint), then not found (not retried): dead-lettered.
	if got := clock.got(); !slices.Equal(got, []time.Duration{7 * time.Second}) {
		t.Errorf("waits = %v, want [7s] from FullError.RetryAfter", got)
	}
	dl := h.p.publishedTo(dead)
	if len(dl) != 1 || dl[0].Extension(ExtErrorDest) != "channel:ns/next" || dl[0].Extension(ExtErrorCode) != "" {
		t.Fatalf("dead letters = %+v", dl)
	}
}

func TestOrderedPreservesOrderPerPartition(t *testing.T) {
	block := make(chan struct{})
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get("Ce-Id") == "p0-0" {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, 2, Subscription{Subscriber: Destination{URL: srv.url()}, Ordered: true}, nil)
	c0, c1 := h.p.claim(t, 0), h.p.claim(t, 1)
	for i := range 3 {
		c0.push(t, testEvent("p0-"+strconv.Itoa(i)))
	}
	var last int64
	for i := range 5 {
		last = c1.push(t, testEvent("p1-"+strconv.Itoa(i)))
	}
	// Partition 1 finishes while partition 0's first event is still blocked.
	c1.waitDone(t, last)
	for _, r := range srv.requests() {
		if id := r.header.Get("Ce-Id"); id == "p0-1" || id == "p0-2" {
			t.Fatalf("%s sent while p0-0 is in flight", id)
		}
	}
	close(block)
	c0.waitDone(t, 2)

	var p0, p1 []string
	for _, r := range srv.requests() {
		id := r.header.Get("Ce-Id")
		if id[:2] == "p0" {
			p0 = append(p0, id)
		} else {
			p1 = append(p1, id)
		}
	}
	if want := []string{"p0-0", "p0-1", "p0-2"}; !slices.Equal(p0, want) {
		t.Errorf("partition 0 order = %v, want %v", p0, want)
	}
	if want := []string{"p1-0", "p1-1", "p1-2", "p1-3", "p1-4"}; !slices.Equal(p1, want) {
		t.Errorf("partition 1 order = %v, want %v", p1, want)
	}
	if got := c0.doneOrder(); !slices.Equal(got, []int64{0, 1, 2}) {
		t.Errorf("partition 0 marked done in order %v", got)
	}
}

func TestOrderedFailingEventBlocksOnlyItsPartition(t *testing.T) {
	var p0Up = make(chan struct{})
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get("Ce-Id") == "p0-0" {
			select {
			case <-p0Up:
			default:
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	dls := newRecorder(t, status(http.StatusServiceUnavailable)) // the dead letter is down too
	h := newHarness(t, 2, Subscription{Subscriber: Destination{URL: srv.url()}, DeadLetter: &Destination{URL: dls.url()},
		Ordered: true, Policy: Policy{BackoffDelay: time.Millisecond}}, func(d *Dispatcher) { d.cycleMin = time.Millisecond })
	c0, c1 := h.p.claim(t, 0), h.p.claim(t, 1)
	c0.push(t, testEvent("p0-0"))
	c0.push(t, testEvent("p0-1"))
	last := c1.push(t, testEvent("p1-0"))
	c1.waitDone(t, last)
	dls.waitRequests(t, 2) // at least two cycles went by
	if c0.isDone(0) || c0.isDone(1) {
		t.Fatal("partition 0 moved past a failing event")
	}
	close(p0Up)
	c0.waitDone(t, 1)
}

func TestUnorderedNeverExceedsMaxInFlight(t *testing.T) {
	const limit, total = 3, 20
	tokens := make(chan struct{})
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		select {
		case <-tokens:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, 2, Subscription{Subscriber: Destination{URL: srv.url()}, MaxInFlight: limit}, nil)
	c0, c1 := h.p.claim(t, 0), h.p.claim(t, 1)
	for i := range total / 2 {
		c0.push(t, testEvent("a"+strconv.Itoa(i)))
		c1.push(t, testEvent("b"+strconv.Itoa(i)))
	}
	for left := total; left > 0; left-- {
		// Let the dispatcher fill every slot it may before releasing one request.
		want := min(limit, left)
		srv.waitFor(t, "requests in flight", func() bool { return srv.current >= want })
		if v := h.count("in_flight"); v > limit {
			t.Fatalf("in-flight gauge = %v, above %d", v, limit)
		}
		tokens <- struct{}{}
	}
	for off := range int64(total / 2) {
		c0.waitDone(t, off)
		c1.waitDone(t, off)
	}
	srv.mu.Lock()
	maxSeen := srv.maxSeen
	srv.mu.Unlock()
	if maxSeen != limit {
		t.Errorf("max concurrent requests = %d, want exactly %d", maxSeen, limit)
	}
}

func TestStopWaitsForInFlight(t *testing.T) {
	release := make(chan struct{})
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-1"))
	srv.waitRequests(t, 1)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		stopped <- h.d.Stop(ctx)
	}()
	// Once Stop has stopped intake, a record pushed is not delivered; Stop waits for the in-flight one.
	select {
	case <-h.d.stopCtx.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Stop did not stop intake")
	}
	c.push(t, testEvent("e-late"))
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v before the in-flight delivery finished", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !c.isDone(off) {
		t.Error("the finished in-flight delivery was not marked done")
	}
	if c.isDone(off + 1) {
		t.Error("a record taken after Stop was marked done")
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("subscriber got %d requests, want 1", n)
	}
	h.p.mu.Lock()
	closed := h.p.closed
	h.p.mu.Unlock()
	if !closed {
		t.Error("Stop did not close the subscription")
	}
}

func TestStopAbandonsInFlightWhenCtxExpires(t *testing.T) {
	release := make(chan struct{})
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()},
		Policy: Policy{Retry: 10, BackoffDelay: time.Millisecond}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-hang"))
	srv.waitRequests(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := h.d.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want DeadlineExceeded", err)
	}
	if c.isDone(off) {
		t.Error("abandoned delivery was marked done")
	}
	if v := h.count("dropped", "retries_exhausted"); v != 0 {
		t.Errorf("abandoned delivery counted as dropped (%v)", v)
	}
	if v := h.count("in_flight"); v != 0 {
		t.Errorf("in-flight gauge = %v after Stop, want 0", v)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("subscriber got %d requests, want 1 (no retry after abandon)", n)
	}
}

func TestRevokeAbandonsInFlight(t *testing.T) {
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		<-r.Context().Done()
	})
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-1"))
	srv.waitRequests(t, 1)
	c.revoke()
	// The handler returns once the delivery gave up; Close waits for it.
	if err := h.d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if c.isDone(off) {
		t.Error("a delivery abandoned by revoke was marked done")
	}
}

func TestStartErrors(t *testing.T) {
	p := newFakeProvisioner(1)
	limit := DefaultConfig().MaxInFlight
	d := New(Subscription{Namespace: "ns", Name: "s", Channel: testChannel, MaxInFlight: limit}, Deps{Channels: p})
	if err := d.Start(context.Background()); !errors.Is(err, ErrInvalidDestination) {
		t.Errorf("Start without subscriber = %v, want ErrInvalidDestination", err)
	}
	bad := &Destination{URL: "not a url"}
	d = New(Subscription{Namespace: "ns", Name: "s", Channel: testChannel, MaxInFlight: limit,
		Subscriber: Destination{URL: "http://127.0.0.1:1"}, DeadLetter: bad}, Deps{Channels: p})
	if err := d.Start(context.Background()); !errors.Is(err, ErrInvalidDestination) {
		t.Errorf("Start with a bad dead letter = %v, want ErrInvalidDestination", err)
	}
	d = New(Subscription{Namespace: "ns", Name: "s", Channel: testChannel,
		Subscriber: Destination{URL: "http://127.0.0.1:1"}}, Deps{Channels: p})
	if err := d.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "MaxInFlight") {
		t.Errorf("Start with MaxInFlight 0 = %v, want an error naming MaxInFlight", err)
	}
	d = New(Subscription{Namespace: "ns", Name: "s", Channel: testChannel, MaxInFlight: limit,
		Subscriber: Destination{URL: "http://127.0.0.1:1"}}, Deps{Channels: p})
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestNilEventIsDroppedNotPanicking(t *testing.T) {
	srv := newRecorder(t, status(http.StatusOK))
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, nil)
	c.waitDone(t, off)
	if v := h.count("dropped", "invalid_record"); v != 1 {
		t.Errorf("dropped{invalid_record} = %v, want 1", v)
	}
}

// The event codec is the one shared with ingress: a reply it cannot parse counts as a failed reply.
func TestMalformedReplyCountsFailed(t *testing.T) {
	srv := newRecorder(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		w.Header().Set("Ce-Specversion", "1.0") // no id, source, type
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}}, nil)
	c := h.p.claim(t, 0)
	off := c.push(t, testEvent("e-5"))
	c.waitDone(t, off)
	if v := h.count("replies", "failed"); v != 1 {
		t.Errorf("replies{failed} = %v, want 1", v)
	}
	if v := h.count("delivered"); v != 1 {
		t.Errorf("delivered = %v, want 1", v)
	}
}

func keyedEvent(id, key string) *event.Event {
	e := testEvent(id)
	if key != "" {
		e.SetExtension(event.PartitionKeyExtension, key)
	}
	return e
}

// Ordered with partition keys: a slow key does not hold up the others, order holds within each key,
// and an event without a key waits for everything before it.
func TestOrderedPerPartitionKey(t *testing.T) {
	release := make(chan struct{})
	srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		if r.Header.Get("Ce-Partitionkey") == "slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Ordered: true, MaxInFlight: 16}, nil)
	c := h.p.claim(t, 0)
	c.push(t, keyedEvent("slow-0", "slow"))
	c.push(t, keyedEvent("slow-1", "slow"))
	var fastLast int64
	for i := range 4 {
		fastLast = c.push(t, keyedEvent("fast-"+strconv.Itoa(i), "fast"))
	}
	// The fast key finishes while the slow key's first event is still in flight.
	c.waitDone(t, fastLast)
	for _, r := range srv.requests() {
		if r.header.Get("Ce-Id") == "slow-1" {
			t.Fatal("slow-1 sent while slow-0 is in flight")
		}
	}
	// A keyless event waits for the slow key.
	barrier := c.push(t, keyedEvent("nokey", ""))
	after := c.push(t, keyedEvent("fast-after", "fast"))
	for _, r := range srv.requests() {
		if id := r.header.Get("Ce-Id"); id == "nokey" || id == "fast-after" {
			t.Fatalf("%s sent before the slow key finished", id)
		}
	}
	if c.isDone(barrier) {
		t.Fatal("the keyless event finished before the events before it")
	}
	close(release)
	c.waitDone(t, after)

	order := map[string][]string{}
	pos := map[string]int{}
	for i, r := range srv.requests() {
		id := r.header.Get("Ce-Id")
		pos[id] = i
		key := r.header.Get("Ce-Partitionkey")
		order[key] = append(order[key], id)
	}
	if want := []string{"slow-0", "slow-1"}; !slices.Equal(order["slow"], want) {
		t.Errorf("slow key order %v, want %v", order["slow"], want)
	}
	if want := []string{"fast-0", "fast-1", "fast-2", "fast-3", "fast-after"}; !slices.Equal(order["fast"], want) {
		t.Errorf("fast key order %v, want %v", order["fast"], want)
	}
	if !(pos["slow-1"] < pos["nokey"] && pos["nokey"] < pos["fast-after"]) {
		t.Errorf("the keyless event is not a barrier: positions %v", pos)
	}
}

// TestIdleWorkersExit checks that a claim's delivery workers are reused while records come and exit
// once none has come for their idle period: an unordered claim's workers, and an ordered claim's
// partition-key runners (each record a key of its own, so each runs on a runner while the others
// are in flight).
func TestIdleWorkersExit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ordered bool
		key     func(i int) string
	}{
		{"unordered", false, func(int) string { return "" }},
		{"ordered keyed", true, func(i int) string { return "k" + strconv.Itoa(i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const limit = 4
			tokens := make(chan struct{})
			srv := newRecorder(t, func(_ int, r *http.Request, w http.ResponseWriter) {
				select {
				case <-tokens:
				case <-r.Context().Done():
				}
				w.WriteHeader(http.StatusOK)
			})
			h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, MaxInFlight: limit, Ordered: tc.ordered},
				func(d *Dispatcher) { d.workerIdle = 20 * time.Millisecond })
			c := h.p.claim(t, 0)
			var last int64
			for i := range 3 * limit {
				last = c.push(t, keyedEvent("w"+strconv.Itoa(i), tc.key(i)))
			}
			most := int64(0)
			for range 3 * limit {
				srv.waitFor(t, "a request in flight", func() bool { return srv.current > 0 })
				n := h.d.workers.Load()
				if n > limit {
					t.Fatalf("%d workers for at most %d deliveries in flight", n, limit)
				}
				most = max(most, n)
				tokens <- struct{}{}
			}
			c.waitDone(t, last)
			if most == 0 {
				t.Fatal("no worker counted while deliveries were in flight")
			}
			deadline := time.Now().Add(waitTimeout)
			for h.d.workers.Load() > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d workers still alive long after their idle period", h.d.workers.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			// A record after they exited starts a worker again.
			c.push(t, keyedEvent("again", tc.key(0)))
			srv.waitFor(t, "a request in flight", func() bool { return srv.current > 0 })
			tokens <- struct{}{}
			c.waitDone(t, last+1)
		})
	}
}
