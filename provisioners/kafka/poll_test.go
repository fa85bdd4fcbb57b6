package kafka

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// pollTestSub is a subscription with claims of the given partitions and no client: enough for
// pollSize (while nothing is paused or resumed), route and the claims' Next.
func pollTestSub(t *testing.T, maxBuf int, partitions ...int32) *subscription {
	t.Helper()
	s := &subscription{b: &Backend{}, topic: "t", maxBuf: maxBuf, log: slog.New(slog.DiscardHandler),
		claims: map[int32]*claim{}, room: make(chan struct{}, 1)}
	for _, p := range partitions {
		s.claims[p] = newClaim(s, p, 0, -1)
	}
	return s
}

// fetched is what a poll returns for partition p: n records from offset from.
func fetched(t *testing.T, p int32, from int64, n int) kgo.FetchTopicPartition {
	t.Helper()
	ftp := kgo.FetchTopicPartition{Topic: "t", FetchPartition: kgo.FetchPartition{Partition: p}}
	for i := range n {
		e := &event.Event{SpecVersion: event.SpecVersion, ID: "id", Source: "/src", Type: "t"}
		key, hs, value := event.ToKafka(e)
		r := &kgo.Record{Topic: "t", Partition: p, Offset: from + int64(i), Key: key, Value: value}
		for _, h := range hs {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		ftp.Records = append(ftp.Records, r)
	}
	return ftp
}

// TestFullClaimDoesNotStarveTheOthers is the regression test for ordered subscriptions draining at
// two thirds of a bare loop's rate: the client returns a poll's records partition by partition, and
// a poll sized by the fullest claim's room fed only that claim while the others ran dry. A full claim
// without pending records now holds no poll back, and a poll takes everything fetched.
func TestFullClaimDoesNotStarveTheOthers(t *testing.T) {
	const buf = 8
	s := pollTestSub(t, buf, 0, 1, 2)
	s.route(fetched(t, 0, 0, buf)) // partition 0's buffer is full, the others are empty
	if n, _ := s.pollSize(time.Now()); n != pollAll {
		t.Fatalf("pollSize with one full claim and two empty = %d, want pollAll", n)
	}
}

// TestSurplusWaitsPendingInOrder checks what a poll returns beyond a claim's room: it waits pending,
// holds the next poll back, moves into the buffer in offset order as records are taken, and the poll
// loop is told when the last of it has moved.
func TestSurplusWaitsPendingInOrder(t *testing.T) {
	const buf = 4
	s := pollTestSub(t, buf, 0, 1)
	c := s.claims[0]
	s.route(fetched(t, 0, 0, 10))
	c.mu.Lock()
	queued, pending := len(c.queue), len(c.pending)
	c.mu.Unlock()
	if queued != buf || pending != 10-buf {
		t.Fatalf("after routing 10 records: %d queued, %d pending; want %d and %d", queued, pending, buf, 10-buf)
	}
	if n, wait := s.pollSize(time.Now()); n != 0 || wait <= 0 || wait > stallTimeout {
		t.Fatalf("pollSize with records pending = %d, %v; want 0 and a wait up to stallTimeout", n, wait)
	}
	select { // routing signals nothing; drop any stale signal
	case <-s.room:
	default:
	}
	ctx := context.Background()
	for want := range int64(10) {
		r, ok := c.Next(ctx)
		if !ok || r.Offset != want {
			t.Fatalf("Next = offset %d, %v; want %d", r.Offset, ok, want)
		}
		if want == 10-buf-1 { // the last pending record has just moved into the buffer
			select {
			case <-s.room:
			default:
				t.Fatalf("no room signal when the pending records had all moved into the buffer")
			}
			if n, _ := s.pollSize(time.Now()); n != pollAll {
				t.Fatalf("pollSize once nothing is pending = %d, want pollAll", n)
			}
		}
	}
	c.cancel()
	if _, ok := c.Next(ctx); ok {
		t.Fatalf("Next handed out a record after the claim was revoked")
	}
}

// TestNextStopsWithItsContext checks that Next waiting on an empty claim returns when its context
// ends, and that the claim still hands out what is routed to it afterwards.
func TestNextStopsWithItsContext(t *testing.T) {
	s := pollTestSub(t, 4, 0)
	c := s.claims[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() {
		_, ok := c.Next(ctx)
		done <- ok
	}()
	cancel()
	if ok := <-done; ok {
		t.Fatalf("Next on an empty claim returned a record after its context ended")
	}
	s.route(fetched(t, 0, 7, 1))
	r, ok := c.Next(context.Background())
	if !ok || r.Offset != 7 {
		t.Fatalf("Next = offset %d, %v; want 7", r.Offset, ok)
	}
	var _ channel.Puller = c
}
