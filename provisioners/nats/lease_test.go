package nats

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

// replica is one gateway process in the ordered-group tests: its own Backend (its own connection),
// subscribed to the group with a handler that delivers each record to the shared receiver.
type replica struct {
	name   string
	b      *Backend
	sub    channel.Subscription
	killed atomic.Bool // from the kill on, it delivers nothing (a dead process cannot)
}

// receiver records deliveries per partition key, and checks that no two replicas ever have a claim
// on one partition at the same time.
type receiver struct {
	mu        sync.Mutex
	byKey     map[string][]int // the event numbers of each key, in delivery order
	ids       map[string]int
	total     int
	active    map[int32]string // the replica running a claim on each partition
	overlaps  []string
	takeovers map[string]int // claims started, by replica
}

func newReceiver() *receiver {
	return &receiver{byKey: map[string][]int{}, ids: map[string]int{}, active: map[int32]string{}, takeovers: map[string]int{}}
}

func (rc *receiver) handler(r *replica) channel.ClaimHandler {
	return func(c channel.Claim) {
		p := c.Partition()
		rc.mu.Lock()
		if other, ok := rc.active[p]; ok {
			rc.overlaps = append(rc.overlaps, fmt.Sprintf("partition %d claimed by %s while %s still ran it", p, r.name, other))
		}
		rc.active[p] = r.name
		rc.takeovers[r.name]++
		rc.mu.Unlock()
		defer func() {
			rc.mu.Lock()
			if rc.active[p] == r.name {
				delete(rc.active, p)
			}
			rc.mu.Unlock()
		}()
		for rec := range c.Records() {
			if r.killed.Load() {
				continue
			}
			key, n := splitOrderedID(rec.Event)
			rc.mu.Lock()
			rc.byKey[key] = append(rc.byKey[key], n)
			rc.ids[rec.Event.ID]++
			rc.total++
			rc.mu.Unlock()
			c.MarkDone(rec.Offset)
		}
	}
}

// distinct returns how many distinct events were delivered.
func (rc *receiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.ids)
}

// checkOrder fails t for a key whose events were first delivered out of order: when event n of a key
// is delivered for the first time, every earlier event of the key must have been delivered before
// (a redelivery may go back, as after a Kafka consumer's restart from its committed offset).
func (rc *receiver) checkOrder(t *testing.T) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for key, ns := range rc.byKey {
		seen := map[int]bool{}
		for i, n := range ns {
			if !seen[n] && len(seen) != n {
				t.Errorf("key %s: event %d first delivered after only %d distinct events of the key (deliveries %v)",
					key, n, len(seen), ns[max(0, i-5):min(len(ns), i+5)])
				break
			}
			seen[n] = true
		}
	}
	for _, o := range rc.overlaps {
		t.Error(o)
	}
}

func splitOrderedID(e *event.Event) (string, int) {
	i := strings.LastIndexByte(e.ID, '-')
	n, _ := strconv.Atoi(e.ID[i+1:])
	return e.Extension(event.PartitionKeyExtension), n
}

// orderedEvents returns events from..to-1 of each of keys keys, interleaved by key.
func orderedEvents(keys, from, to int) []*event.Event {
	var evs []*event.Event
	for n := from; n < to; n++ {
		for k := 0; k < keys; k++ {
			key := "key" + strconv.Itoa(k)
			evs = append(evs, conformance.NewEvent(key+"-"+strconv.Itoa(n), key))
		}
	}
	return evs
}

// claimsOf returns how many claims b runs for group on ref.
func claimsOf(b *Backend, ref channel.Ref, group string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.groups[groupKey{ch: ref, name: group}]
	if g == nil {
		return 0
	}
	return len(g.claims)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond) // poll interval; the deadline bounds the wait
	}
}

// TestOrderedGroupOnePartitionOwnerAcrossReplicas: two gateways (two Backends) on one ordered
// subscription. The first takes every partition; when the second joins, the first hands half over
// (the second has them well before a lease could expire); no partition is ever claimed by both at
// once, and every key's events arrive in order. Then the first dies without a word (its connection
// closes): the second takes every partition over once the dead one's leases expire, delivers again
// what the dead one had not acknowledged, and everything arrives, in order per key.
func TestOrderedGroupOnePartitionOwnerAcrossReplicas(t *testing.T) {
	s := natstest.Server(t, natstest.Options{})
	cfg := testConfig(s.ClientURL())
	cfg.DefaultPartitions, cfg.FetchBatch, cfg.LeaseTTL = 6, 8, 3*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := channel.Ref{Namespace: "ordered", Name: "replicas"}
	const group, keys, perKey = "in-order", 40, 60

	rc := newReceiver()
	a := &replica{name: "a", b: newBackend(t, cfg)}
	b := &replica{name: "b", b: newBackend(t, cfg)}
	g := channel.Group{Channel: ref, Name: group, Start: channel.Earliest, Ordered: true}
	for _, r := range []*replica{a, b} {
		if err := r.b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if a.sub, err = a.b.Subscribe(ctx, g, rc.handler(a)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a claims all 6 partitions", func() bool { return claimsOf(a.b, ref, group) == 6 })
	if err := a.b.Publish(ctx, ref, orderedEvents(keys, 0, perKey/3)); err != nil {
		t.Fatal(err)
	}

	joined := time.Now()
	if b.sub, err = b.b.Subscribe(ctx, g, rc.handler(b)); err != nil {
		t.Fatal(err)
	}
	if err := b.b.Publish(ctx, ref, orderedEvents(keys, perKey/3, 2*perKey/3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the partitions split 3 and 3", func() bool {
		return claimsOf(a.b, ref, group) == 3 && claimsOf(b.b, ref, group) == 3
	})
	handover := time.Since(joined)
	t.Logf("handover to the joining replica: %v", handover.Round(time.Millisecond))
	if err := b.b.Publish(ctx, ref, orderedEvents(keys, 2*perKey/3, perKey)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "three quarters delivered", func() bool { return rc.distinct() >= keys*3*perKey/4 })

	// a dies while it holds events it pulled and has not acknowledged: nothing more from it, and
	// its connection closes without releasing anything.
	a.killed.Store(true)
	killed := time.Now()
	a.b.nc.Close()
	waitFor(t, 60*time.Second, "a, cut off from the server, gives its partitions up", func() bool { return claimsOf(a.b, ref, group) == 0 })
	waitFor(t, 60*time.Second, "b claims all 6 partitions", func() bool { return claimsOf(b.b, ref, group) == 6 })
	failover := time.Since(killed)
	waitFor(t, 60*time.Second, "every event delivered", func() bool { return rc.distinct() == keys*perKey })
	rc.checkOrder(t)
	rc.mu.Lock()
	t.Logf("ordered group, 2 replicas: %d events over %d keys, found %d, lost 0, duplicates %d; failover after the kill %v (leaseTTL %v)",
		keys*perKey, keys, len(rc.ids), rc.total-len(rc.ids), failover.Round(time.Millisecond), cfg.LeaseTTL)
	rc.mu.Unlock()
	if err := b.sub.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.sub.Close()
}

// TestOrderedGroupCleanLeaveHandsOver: when one of two replicas closes its subscription (a rolling
// restart), the other takes its partitions at once, not after the leases expire.
func TestOrderedGroupCleanLeaveHandsOver(t *testing.T) {
	s := natstest.Server(t, natstest.Options{})
	cfg := testConfig(s.ClientURL())
	cfg.DefaultPartitions, cfg.LeaseTTL = 4, time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ref := channel.Ref{Namespace: "ordered", Name: "leave"}
	g := channel.Group{Channel: ref, Name: "leaving", Ordered: true}
	rc := newReceiver()
	a := &replica{name: "a", b: newBackend(t, cfg)}
	b := &replica{name: "b", b: newBackend(t, cfg)}
	for _, r := range []*replica{a, b} {
		if err := r.b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			t.Fatal(err)
		}
		var err error
		if r.sub, err = r.b.Subscribe(ctx, g, rc.handler(r)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the partitions split 2 and 2", func() bool {
		return claimsOf(a.b, ref, g.Name) == 2 && claimsOf(b.b, ref, g.Name) == 2
	})
	if err := a.sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.b.Close(); err != nil { // deletes its leases before the connection closes
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "b claims all 4 partitions (leases live a minute: only a handover does it)", func() bool {
		return claimsOf(b.b, ref, g.Name) == 4
	})
	if err := b.b.Publish(ctx, ref, orderedEvents(5, 0, 20)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every event delivered", func() bool { return rc.distinct() == 100 })
	rc.checkOrder(t)
	if err := b.sub.Close(); err != nil {
		t.Fatal(err)
	}
}
