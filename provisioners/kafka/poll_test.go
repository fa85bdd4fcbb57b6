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

// TestSurplusWaitsPendingInOrder checks what a poll returns beyond a claim's room: it waits pending
// and moves into the buffer in offset order as records are taken. Within one fetch of the end of its
// list (the last poll's share) it holds no poll back; beyond that it does, and the poll loop is told
// when the list comes back within one fetch and when it has all moved.
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
	if n, _ := s.pollSize(time.Now()); n != pollAll {
		t.Fatalf("pollSize with one fetch pending and an empty claim = %d, want pollAll", n)
	}
	s.route(fetched(t, 0, 10, 3)) // the next fetch's share: 9 pending, more than the 3 of the last poll
	if n, wait := s.pollSize(time.Now()); n != 0 || wait <= 0 || wait > stallTimeout {
		t.Fatalf("pollSize with more than one fetch pending = %d, %v; want 0 and a wait up to stallTimeout", n, wait)
	}
	select { // routing signals nothing; drop any stale signal
	case <-s.room:
	default:
	}
	signalled := func() bool {
		select {
		case <-s.room:
			return true
		default:
			return false
		}
	}
	ctx := context.Background()
	for want := range int64(13) {
		r, ok := c.Next(ctx)
		if !ok || r.Offset != want {
			t.Fatalf("Next = offset %d, %v; want %d", r.Offset, ok, want)
		}
		switch want {
		case 5: // 3 pending: within one fetch again
			if !signalled() {
				t.Fatalf("no room signal when the pending list came within one fetch")
			}
			if n, _ := s.pollSize(time.Now()); n != pollAll {
				t.Fatalf("pollSize with one fetch pending = %d, want pollAll", n)
			}
		case 8: // the last pending record has just moved into the buffer
			if !signalled() {
				t.Fatalf("no room signal when the pending records had all moved into the buffer")
			}
		}
	}
	c.cancel()
	if _, ok := c.Next(ctx); ok {
		t.Fatalf("Next handed out a record after the claim was revoked")
	}
}

// TestHungryClaimIsFedWhileOthersFinishTheirFetch is the regression test for ordered drains that
// ran below a bare loop's rate: no poll was made while any claim had records pending, so the
// partition that drained its list first went hungry until the others had drained theirs. A poll is
// now made once a claim wants records and the others are within one fetch of the end of their
// lists; what a claim holds pending stays within two fetches' shares while it keeps up.
func TestHungryClaimIsFedWhileOthersFinishTheirFetch(t *testing.T) {
	const buf, share = 4, 20
	s := pollTestSub(t, buf, 0, 1)
	slow, fast := s.claims[0], s.claims[1]
	ctx := context.Background()
	next := map[*claim]int64{}
	take := func(c *claim, n int) {
		t.Helper()
		for range n {
			r, ok := c.Next(ctx)
			if !ok || r.Offset != next[c] {
				t.Fatalf("partition %d: Next = offset %d, %v; want %d", c.partition, r.Offset, ok, next[c])
			}
			next[c]++
		}
	}
	routed := map[*claim]int64{}
	poll := func() {
		for _, c := range []*claim{slow, fast} {
			s.route(fetched(t, c.partition, routed[c], share))
			routed[c] += share
		}
	}
	poll()
	for round := range 10 {
		take(fast, share) // the fast partition has taken its whole share: hungry
		take(slow, share/2)
		now := time.Now()
		if n, _ := s.pollSize(now); n != pollAll {
			t.Fatalf("round %d: pollSize with a hungry claim and the other within one fetch = %d, want pollAll", round, n)
		}
		poll()
		slow.mu.Lock()
		pending, paused := len(slow.pending)+len(slow.queue), slow.paused
		slow.mu.Unlock()
		if pending > buf+2*share {
			t.Fatalf("round %d: the slow claim holds %d records, bound is the buffer %d plus two shares of %d",
				round, pending, buf, share)
		}
		if paused {
			t.Fatalf("round %d: a claim that keeps taking records was paused", round)
		}
		take(slow, share/2)
		take(fast, 0)
	}
}

// TestBusyClaimHoldsNothingBackWhileNoPollIsWanted checks that a claim with more than a fetch
// pending is not paused, however long it stays so, while no other claim wants records: pausing
// makes the client fetch again what it holds, which slowed ordered drains to half their rate.
func TestBusyClaimHoldsNothingBackWhileNoPollIsWanted(t *testing.T) {
	const buf = 4
	s := pollTestSub(t, buf, 0, 1)
	for p := range int32(2) {
		s.route(fetched(t, p, 0, 10))
		s.route(fetched(t, p, 10, 2)) // 8 pending, more than the last poll's 2
	}
	now := time.Now()
	for i := range 5 {
		if n, _ := s.pollSize(now.Add(time.Duration(i) * stallLimit)); n != 0 {
			t.Fatalf("pollSize with no claim wanting records = %d, want 0", n)
		}
	}
	for _, c := range s.claims {
		if c.paused {
			t.Fatalf("partition %d was paused though no poll was wanted", c.partition)
		}
	}
}

// TestStuckClaimIsPausedWhenItHoldsOthersBack checks the other side: a claim with more than a fetch
// pending that takes nothing while another claim wants records is paused after stallTimeout, its
// pending records kept, and the poll goes ahead.
func TestStuckClaimIsPausedWhenItHoldsOthersBack(t *testing.T) {
	const buf = 4
	s := pollTestSub(t, buf, 0, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer cl.Close()
	s.cl = cl
	stuck := s.claims[0]
	s.route(fetched(t, 0, 0, 10))
	s.route(fetched(t, 0, 10, 2))
	now := time.Now()
	if n, wait := s.pollSize(now); n != 0 || wait != stallTimeout {
		t.Fatalf("pollSize with a claim held back = %d, %v; want 0, %v", n, wait, stallTimeout)
	}
	if n, _ := s.pollSize(now.Add(stallTimeout)); n != pollAll {
		t.Fatalf("pollSize once the stuck claim is paused = %d, want pollAll", n)
	}
	stuck.mu.Lock()
	paused, kept := stuck.paused, len(stuck.queue)+len(stuck.pending)
	stuck.mu.Unlock()
	if !paused || kept != 12 {
		t.Fatalf("stuck claim: paused %v with %d records kept; want paused with 12", paused, kept)
	}
	if got := cl.PauseFetchPartitions(nil); len(got["t"]) != 1 || got["t"][0] != 0 {
		t.Fatalf("paused partitions in the client = %v, want t: [0]", got)
	}
	if s.pauses.Load() != 1 {
		t.Fatalf("pauses = %d, want 1", s.pauses.Load())
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
