package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// Spans covers what a tail with the same start reads: everything for Earliest, nothing for a zero
// start or a time after the last event, and each partition ends where the log ends.
func TestSpans(t *testing.T) {
	b := newBackend(t, testBrokers(t), nil)
	ctx := testCtx(t, 60*time.Second)
	ref := channel.Ref{Namespace: "spans", Name: fmt.Sprintf("c%d", time.Now().UnixNano()%1e6)}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Remove(testCtx(t, 30*time.Second), ref) })
	var evs []*event.Event
	for i := range 7 {
		evs = append(evs, &event.Event{SpecVersion: "1.0", ID: fmt.Sprint(i), Source: "s", Type: "t"})
	}
	if err := b.Publish(ctx, ref, evs); err != nil {
		t.Fatal(err)
	}
	count := func(start channel.TailStart) int64 {
		spans, err := b.Spans(ctx, ref, start)
		if err != nil {
			t.Fatal(err)
		}
		if len(spans) != 3 {
			t.Fatalf("spans = %+v, want 3 partitions", spans)
		}
		var n int64
		for _, s := range spans {
			n += s.End - s.From
		}
		return n
	}
	if n := count(channel.TailStart{Earliest: true}); n != 7 {
		t.Errorf("earliest covers %d events, want 7", n)
	}
	if n := count(channel.TailStart{}); n != 0 {
		t.Errorf("a zero start covers %d events, want 0", n)
	}
	if n := count(channel.TailStart{Time: time.Now().Add(time.Hour)}); n != 0 {
		t.Errorf("a start after the last event covers %d events, want 0", n)
	}
	if _, err := b.Spans(ctx, channel.Ref{Namespace: "spans", Name: "nope"}, channel.TailStart{}); err == nil {
		t.Error("spans of an unknown channel: no error")
	}
}
