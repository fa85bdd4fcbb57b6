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
