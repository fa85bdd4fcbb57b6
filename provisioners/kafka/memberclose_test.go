package kafka

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
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

// A member detached while the cluster refuses to say where its group stands (an ACL that denies the
// group, say, fixed a few seconds later) keeps trying to start its own read, and once the cluster
// answers it reads on its own and gets the events published since: it is not left delivering
// nothing until the next restart. kfake, because the refusal has to pick one group's requests.
func TestDetachedMemberRetriesItsOwnReadUntilItStarts(t *testing.T) {
	cluster := fakeCluster(t)
	logs := &logLines{}
	cfg := DefaultConfig()
	cfg.Brokers = cluster.ListenAddrs()
	b, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2})
	got := &collect{}
	m, group := sharedSub(t, b, ref, "subscriptions", got.handle)

	var refusing atomic.Bool
	var refused atomic.Int64
	refusing.Store(true)
	cluster.ControlKey(int16(kmsg.OffsetFetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		r := req.(*kmsg.OffsetFetchRequest)
		asks := r.Group == group
		for _, g := range r.Groups {
			asks = asks || g.Group == group
		}
		if !asks || !refusing.Load() {
			return nil, nil, false
		}
		refused.Add(1)
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.Version = r.Version
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		for _, g := range r.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil, true
	})

	detached := make(chan struct{})
	go func() {
		defer close(detached)
		m.f.detach(m, "a test moved it")
	}()
	eventually(t, 30*time.Second, "two failed starts of the own read", func() bool {
		return logs.count("could not start on its own; retrying") >= 2
	})
	if readsOnItsOwn(m) {
		t.Fatal("the member reads on its own while the cluster refuses its group")
	}
	refusing.Store(false)
	select {
	case <-detached:
	case <-time.After(30 * time.Second):
		t.Fatal("the detach still retrying 30 s after the cluster answered again")
	}
	if !readsOnItsOwn(m) {
		t.Fatalf("the detach ended without an own read (%d refusals)", refused.Load())
	}
	evs := conformance.Events("ev", 50, nil)
	produceTo(t, cluster.ListenAddrs(), topic, evs, 0, 1)
	eventually(t, 30*time.Second, "the events on the member's own read", func() bool { return len(uniq(got.ids())) >= len(evs) })
	if ids := uniq(got.ids()); !sameSet(ids, conformance.IDs(evs)) {
		t.Errorf("got %d distinct events, want the %d published", len(ids), len(evs))
	}
	t.Logf("own read started after %d refused offset fetches", refused.Load())
}
