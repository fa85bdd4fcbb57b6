package inmemory

import (
	"slices"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

type rejectOdd struct{}

func (rejectOdd) Pass(e *event.Event) bool { return e.ID[len(e.ID)-1]%2 == 0 }

// A group's Filter: what it rejects never reaches the handler and is done (the log is trimmed past it),
// whether the handler pulls (Next) or ranges over Records.
func TestGroupFilterSkipsRejectedEvents(t *testing.T) {
	for _, mode := range []string{"pull", "records"} {
		t.Run(mode, func(t *testing.T) {
			b, ref := smallChannel(t, 100)
			c := conformance.NewCollector(nil)
			h := c.Handle
			if mode == "records" {
				h = func(cl channel.Claim) { c.Handle(conformance.ClaimOnly(cl)) }
			}
			subscribe(t, b, channel.Group{Channel: ref, Name: "even", Start: channel.Latest, Filter: rejectOdd{}}, h)
			if err := b.Publish(ctxT(t), ref, evs(0, 10)); err != nil {
				t.Fatal(err)
			}
			want := []string{"e-00", "e-02", "e-04", "e-06", "e-08"}
			conformance.WaitForIDs(t, want, c)
			if got := conformance.ReceivedIDs(c.Records()); !slices.Equal(got, want) {
				t.Errorf("the handler got %v, want only the events the filter passes %v", got, want)
			}
			eventually := func() bool { bytes, _ := b.Stats(ref); return bytes == 0 }
			for deadline := time.Now().Add(5 * time.Second); !eventually(); {
				if time.Now().After(deadline) {
					bytes, _ := b.Stats(ref)
					t.Fatalf("%d bytes still held: the rejected events were not marked done", bytes)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
