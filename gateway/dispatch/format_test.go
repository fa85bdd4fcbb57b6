package dispatch

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
)

// With delivery.format json every delivery is a structured-mode POST -- the whole event as an
// application/cloudevents+json body, no Ce-* headers -- to the subscriber (on its own connection,
// and through the transport for an event over ownMaxBody) and to the dead-letter sink, whose copy
// carries the error extensions as members.
func TestStructuredDeliveries(t *testing.T) {
	sub := newRecorder(t, status(http.StatusAccepted))
	rejecting := newRecorder(t, status(http.StatusUnprocessableEntity))
	dls := newRecorder(t, status(http.StatusAccepted))
	json := Policy{Format: resources.FormatJSON, BackoffDelay: time.Millisecond}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: sub.url()}, Policy: json}, nil)
	if h.d.urls[sub.url()].head == nil {
		t.Fatal("the subscriber is not sent to on own connections: the test would not test them")
	}
	small := testEvent("small")
	small.SetExtension("myext", "café")
	large := testEvent("large")
	large.DataContentType = "application/octet-stream"
	large.Data = bytes.Repeat([]byte{0, 1, 2, 0xff}, ownMaxBody/4+1)
	c := h.p.claim(t, 0)
	c.waitDone(t, c.push(t, small))
	c.waitDone(t, c.push(t, large))
	got := sub.requests()
	if len(got) != 2 {
		t.Fatalf("the subscriber got %d requests, want 2", len(got))
	}
	for i, want := range []*event.Event{small, large} {
		r := got[i]
		if ct := r.header.Get("Content-Type"); ct != event.MediaTypeStructuredJSON || r.header.Get("Ce-Id") != "" {
			t.Errorf("%s: Content-Type %q, Ce-Id %q; want structured mode, no Ce-* headers", want.ID, ct, r.header.Get("Ce-Id"))
		}
		if r.header.Get("Prefer") != "reply" {
			t.Errorf("%s: no Prefer: reply", want.ID)
		}
		evs, err := event.ParseHTTP(r.header, r.body)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: the body is not one structured event: %v", want.ID, err)
		}
		e := evs[0]
		if e.ID != want.ID || e.Type != want.Type || !bytes.Equal(e.Data, want.Data) ||
			e.DataContentType != want.DataContentType || e.Extension("myext") != want.Extension("myext") {
			t.Errorf("%s: the subscriber got %+v", want.ID, e)
		}
	}
	if !strings.HasPrefix(string(got[0].body), `{"specversion":"1.0","id":"small"`) || !strings.Contains(string(got[0].body), `"data":{"n":"small"}`) {
		t.Errorf("small event's body %s: want JSON data inline", got[0].body)
	}

	h2 := newHarness(t, 1, Subscription{Namespace: "ns", Name: "to-dls", Subscriber: Destination{URL: rejecting.url()},
		DeadLetter: &Destination{URL: dls.url()}, Policy: json}, nil)
	c2 := h2.p.claim(t, 0)
	c2.waitDone(t, c2.push(t, testEvent("rejected")))
	d := dls.requests()
	if len(d) != 1 {
		t.Fatalf("the dead-letter sink got %d requests, want 1", len(d))
	}
	evs, err := event.ParseHTTP(d[0].header, d[0].body)
	if err != nil || len(evs) != 1 || d[0].header.Get("Content-Type") != event.MediaTypeStructuredJSON {
		t.Fatalf("dead letter: %v, Content-Type %q; want one structured event", err, d[0].header.Get("Content-Type"))
	}
	if e := evs[0]; e.ID != "rejected" || e.Extension(ExtErrorCode) != "422" || e.Extension(ExtErrorDest) != rejecting.url() {
		t.Errorf("dead letter %+v: want the event with knativeerrorcode 422 and knativeerrordest", e)
	}
}
