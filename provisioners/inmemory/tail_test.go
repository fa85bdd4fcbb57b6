package inmemory

import (
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
)

// A tail holds nothing back: events evicted before a slow tail read them are gone, and the next event
// it reads says how many it missed.
func TestSlowTailCountsWhatItMissed(t *testing.T) {
	b, ref := smallChannel(t, 10) // one partition, room for ten events, no groups: the oldest are evicted
	tail, err := b.Tail(ctxT(t), ref, channel.TailStart{})
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	for i := range 25 {
		if err := b.Publish(ctxT(t), ref, evs(i, i+1)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	r, err := tail.Next(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Event.ID != "e-15" || r.Skipped != 15 {
		t.Errorf("first read: %s with %d skipped, want e-15 after the 15 evicted", r.Event.ID, r.Skipped)
	}
	if r, _ := tail.Next(ctxT(t)); r.Event.ID != "e-16" || r.Skipped != 0 {
		t.Errorf("second read: %s with %d skipped, want e-16 with none", r.Event.ID, r.Skipped)
	}
	if _, err := b.Tail(ctxT(t), channel.Ref{Namespace: "test", Name: "nope"}, channel.TailStart{}); err == nil {
		t.Error("Tail of an unknown channel succeeded")
	}
}

// Spans says where a tail with the same start begins and where the log ends, after evictions too.
func TestSpansMatchTheTail(t *testing.T) {
	b, ref := smallChannel(t, 10)
	for i := range 25 { // room for ten: the first 15 are evicted
		if err := b.Publish(ctxT(t), ref, evs(i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		start      channel.TailStart
		from, ends int64
	}{
		{channel.TailStart{Earliest: true}, 15, 25},
		{channel.TailStart{}, 25, 25},
	} {
		spans, err := b.Spans(ctxT(t), ref, c.start)
		if err != nil {
			t.Fatal(err)
		}
		if len(spans) != 1 || spans[0].From != c.from || spans[0].End != c.ends {
			t.Errorf("%+v: spans %+v, want [%d, %d)", c.start, spans, c.from, c.ends)
		}
	}
	if _, err := b.Spans(ctxT(t), channel.Ref{Namespace: "test", Name: "nope"}, channel.TailStart{}); err == nil {
		t.Error("Spans of an unknown channel succeeded")
	}
}
