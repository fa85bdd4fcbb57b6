package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

// testTail checks channel.Tailer, for provisioners that implement it: a tail from now reads exactly
// what is published after Tail returned, in offset order per partition; a tail from the earliest
// reads what was there before; a time before the first publish reads everything, one after the last
// nothing; and a tail is an observer: a group that subscribes after a tail read everything still
// finds every event, its position untouched.
func testTail(t *testing.T, p channel.Provisioner) {
	tl, ok := p.(channel.Tailer)
	if !ok {
		t.Skip("the provisioner has no tail")
	}
	f := NewFixture(t, p)
	beforeStart := time.Now().Add(-time.Second)
	before := Events("before", 6, spread)
	f.Publish(before...)

	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	open := func(start channel.TailStart) channel.Tail {
		t.Helper()
		tail, err := tl.Tail(ctx, f.Ch, start)
		if err != nil {
			t.Fatalf("Tail(%+v): %v", start, err)
		}
		t.Cleanup(func() { tail.Close() })
		return tail
	}
	read := func(tail channel.Tail, n int) []channel.TailRecord {
		t.Helper()
		var out []channel.TailRecord
		for len(out) < n {
			r, err := tail.Next(ctx)
			if err != nil {
				t.Fatalf("Next after %d of %d: %v", len(out), n, err)
			}
			out = append(out, r)
		}
		return out
	}
	ids := func(rs []channel.TailRecord) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Event.ID
		}
		return out
	}
	inOrder := func(what string, rs []channel.TailRecord) {
		t.Helper()
		last := map[int32]int64{}
		for _, r := range rs {
			if o, ok := last[r.Partition]; ok && r.Offset <= o {
				t.Errorf("%s: partition %d offset %d after %d", what, r.Partition, r.Offset, o)
			}
			last[r.Partition] = r.Offset
		}
	}

	fromNow := open(channel.TailStart{})
	earliest := open(channel.TailStart{Earliest: true})
	byTime := open(channel.TailStart{Time: beforeStart})
	after := Events("after", 9, spread)
	f.Publish(after...)
	afterAll := open(channel.TailStart{Time: time.Now().Add(time.Hour)})

	got := read(fromNow, len(after))
	if !sameSet(ids(got), IDs(after)) {
		t.Errorf("tail from now read %v, want the events published after it opened %v", ids(got), IDs(after))
	}
	inOrder("tail from now", got)
	all := append(IDs(before), IDs(after)...)
	got = read(earliest, len(all))
	if !sameSet(ids(got), all) {
		t.Errorf("tail from the earliest read %v, want %v", ids(got), all)
	}
	inOrder("tail from the earliest", got)
	if got := read(byTime, len(all)); !sameSet(ids(got), all) {
		t.Errorf("tail from a time before the first publish read %v, want %v", ids(got), all)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if r, err := afterAll.Next(short); err == nil {
		t.Errorf("tail from a time after the last publish read %s, want nothing", r.Event.ID)
	}

	// The tails moved no group: an earliest group still gets every event.
	c := NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c.Handle)
	WaitForIDs(t, all, c)
}

// sameSet reports whether a and b hold the same strings, each as often.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	n := map[string]int{}
	for _, s := range a {
		n[s]++
	}
	for _, s := range b {
		n[s]--
	}
	for _, c := range n {
		if c != 0 {
			return false
		}
	}
	return true
}
