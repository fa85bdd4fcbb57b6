package dispatch

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventgate/eventgate/gateway/filter"
)

func (h *harness) trigger(outcome string) float64 {
	return testutil.ToFloat64(h.m.TriggerEvents.WithLabelValues("ns", "trig", outcome))
}

func compileFilter(t *testing.T, specs ...filter.Spec) *filter.Filter {
	t.Helper()
	f, err := filter.Compile(nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// An event the trigger's filter does not pass is marked done with no request; the others are
// delivered; each outcome is counted.
func TestTriggerFilterMarksFilteredDoneWithoutRequest(t *testing.T) {
	srv := newRecorder(t, status(http.StatusAccepted))
	f := compileFilter(t, filter.Spec{Prefix: map[string]string{"id": "keep-"}})
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()},
		Trigger: &Trigger{Name: "trig", Filter: f}}, nil)
	c := h.p.claim(t, 0)
	var offs []int64
	for _, id := range []string{"drop-1", "keep-1", "drop-2", "drop-3", "keep-2"} {
		offs = append(offs, c.push(t, testEvent(id)))
	}
	for _, off := range offs {
		c.waitDone(t, off)
	}
	reqs := srv.requests()
	if len(reqs) != 2 {
		t.Fatalf("subscriber got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if id := r.header.Get("Ce-Id"); id != "keep-1" && id != "keep-2" {
			t.Errorf("subscriber got %s, which the filter does not pass", id)
		}
	}
	if h.trigger("filtered") != 3 || h.trigger("delivered") != 2 || h.trigger("dead_lettered") != 0 {
		t.Errorf("trigger events filtered=%v delivered=%v dead_lettered=%v, want 3, 2, 0",
			h.trigger("filtered"), h.trigger("delivered"), h.trigger("dead_lettered"))
	}
	if got := h.attempts("2xx"); got != 2 {
		t.Errorf("attempts{2xx} = %v, want 2 (filtered events make none)", got)
	}
}

// A trigger dead-letters through the same code as a subscription, and counts it.
func TestTriggerDeadLetterCounted(t *testing.T) {
	srv := newRecorder(t, status(http.StatusBadRequest))
	dls := newRecorder(t, status(http.StatusAccepted))
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, DeadLetter: &Destination{URL: dls.url()},
		Policy:  Policy{Retry: 2, BackoffDelay: time.Millisecond},
		Trigger: &Trigger{Name: "trig", Filter: compileFilter(t, filter.Spec{CESQL: "type = 'test.event'"})}}, nil)
	c := h.p.claim(t, 0)
	c.waitDone(t, c.push(t, testEvent("e-1")))
	if got := len(dls.requests()); got != 1 {
		t.Fatalf("dead-letter sink got %d requests, want 1", got)
	}
	if h.trigger("dead_lettered") != 1 || h.trigger("delivered") != 0 {
		t.Errorf("trigger events dead_lettered=%v delivered=%v, want 1, 0", h.trigger("dead_lettered"), h.trigger("delivered"))
	}
}

// Ordered triggers filter too: a filtered event never waits for the ones before it, and the commit
// point still moves over it only with them (the provisioner's tracker).
func TestOrderedTriggerFilters(t *testing.T) {
	srv := newRecorder(t, status(http.StatusAccepted))
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url()}, Ordered: true,
		Trigger: &Trigger{Name: "trig", Filter: compileFilter(t, filter.Spec{Not: &filter.Spec{Exact: map[string]string{"id": "skip"}}})}}, nil)
	c := h.p.claim(t, 0)
	a, b, d := c.push(t, testEvent("a")), c.push(t, testEvent("skip")), c.push(t, testEvent("d"))
	for _, off := range []int64{a, b, d} {
		c.waitDone(t, off)
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[0].header.Get("Ce-Id") != "a" || reqs[1].header.Get("Ce-Id") != "d" {
		t.Fatalf("ordered trigger delivered %d requests, want a then d", len(reqs))
	}
}

// TestGroupShare checks which reads a dispatcher asks the backend to share: unordered subscriptions
// one per channel, unordered triggers one per broker; ordered subscriptions and ordered triggers read
// on their own (a shared read sizes its polls by its fullest member, which starves one delivery at a
// time per partition). A trigger's filter goes to the backend either way.
func TestGroupShare(t *testing.T) {
	srv := newRecorder(t, status(http.StatusAccepted))
	trig := func() *Trigger {
		return &Trigger{Name: "trig", Filter: compileFilter(t, filter.Spec{Exact: map[string]string{"type": "test.event"}})}
	}
	for _, tc := range []struct {
		name      string
		sub       Subscription
		share     string
		filtering bool
	}{
		{"unordered subscription", Subscription{}, subscriptionShare, false},
		{"ordered subscription", Subscription{Ordered: true}, "", false},
		{"unordered trigger", Subscription{Trigger: trig()}, triggerShare, true},
		{"ordered trigger", Subscription{Ordered: true, Trigger: trig()}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sub.Subscriber = Destination{URL: srv.url()}
			h := newHarness(t, 1, tc.sub, nil)
			h.p.claim(t, 0)
			h.p.mu.Lock()
			groups := slices.Clone(h.p.groups)
			h.p.mu.Unlock()
			if len(groups) != 1 {
				t.Fatalf("%d Subscribe calls, want 1", len(groups))
			}
			g := groups[0]
			if g.Share != tc.share || g.Ordered != tc.sub.Ordered || (g.Filter != nil) != tc.filtering {
				t.Errorf("group Share %q, Ordered %v, filter %v; want %q, %v, %v",
					g.Share, g.Ordered, g.Filter != nil, tc.share, tc.sub.Ordered, tc.filtering)
			}
		})
	}
}
