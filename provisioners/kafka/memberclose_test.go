package kafka

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

// A member closed while a detach is starting its own read does not wait for that start, which
// retries for up to adminWaitTimeout while the brokers do not answer: a gateway shutting down while
// the cluster is unreachable then took 30 s more to stop.
func TestMemberCloseDoesNotWaitForAnOwnReadStarting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:1"} // nothing listens: every request fails and is retried
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f, err := b.fanoutFor("subscriptions")
	if err != nil {
		t.Fatal(err)
	}
	g := channel.Group{Channel: channel.Ref{Namespace: "ns", Name: "ch"}, Name: "sub", Share: "subscriptions"}
	m := newMember(f, g, func(channel.Claim) {}, "eventgate.ns.ch", "eventgate.ns.ch.sub")
	started := make(chan error, 1)
	go func() { started <- m.runOwn(m.life) }() // as detach does once the member left the read
	deadline := time.Now().Add(10 * time.Second)
	for m.ownMu.TryLock() { // until runOwn holds it (fixing the group's start, retrying)
		m.ownMu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("the own read did not start")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("Close still waiting after 10 s for the own read starting (it retries for %v)", adminWaitTimeout)
	}
	select {
	case err := <-started:
		if err == nil {
			t.Fatal("the own read started with no broker answering")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the own read's start did not give up when the member closed")
	}
	if m.own != nil {
		t.Fatal("a closed member has an own read")
	}
}
