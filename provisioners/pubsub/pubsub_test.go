package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

// These tests check, in Pub/Sub's terms (subscribe first, then publish), what the conformance cases
// that cannot hold on Pub/Sub check (see cannotHold), and what is particular to this backend.

func TestPubSubEveryEventOnce(t *testing.T) {
	b := newTestBackend(t, testConfig(fakeServer(t).Addr))
	f := conformance.NewFixture(t, b)
	c := conformance.NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c.Handle)
	evs := conformance.Events("e", 30, func(i int) string { return "key-" + strconv.Itoa(i%7) })
	delete(evs[3].Extensions, "partitionkey") // no key: no ordering key
	evs[4].Subject = "with subject"
	evs[4].Time = "2026-11-27T10:00:00Z"
	evs[4].SetExtension("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Publish(evs[:10]...)
	f.Publish(evs[10:]...)
	conformance.WaitForIDs(t, conformance.IDs(evs), c)

	byID := map[string]*event.Event{}
	for _, e := range evs {
		byID[e.ID] = e
	}
	recs := c.Records()
	for _, r := range recs {
		if want := byID[r.Event.ID]; !r.Event.Equal(want) {
			t.Errorf("%s: stored as %+v, published as %+v", r.Event.ID, r.Event, want)
		}
		if r.Partition < 0 || r.Partition >= conformance.Partitions {
			t.Errorf("%s: partition %d out of range", r.Event.ID, r.Partition)
		}
	}
	if len(recs) != len(evs) {
		t.Errorf("received %d records, want %d (no duplicates in a quiet group)", len(recs), len(evs))
	}
}

func TestPubSubOrderPerKey(t *testing.T) {
	b := newTestBackend(t, testConfig(fakeServer(t).Addr))
	f := conformance.NewFixture(t, b)
	c := conformance.NewCollector(nil)
	f.Subscribe(f.Group(channel.Latest), c.Handle)
	const keys, perKey = 5, 20
	var all []string
	for batch := 0; batch < 4; batch++ {
		var evs []*event.Event
		for seq := batch * perKey / 4; seq < (batch+1)*perKey/4; seq++ {
			for k := 0; k < keys; k++ {
				id := fmt.Sprintf("k%d-%03d", k, seq)
				evs = append(evs, conformance.NewEvent(id, fmt.Sprintf("k%d", k)))
				all = append(all, id)
			}
		}
		f.Publish(evs...)
	}
	conformance.WaitForIDs(t, all, c)

	lastOffset := map[int32]int64{}
	keyPartition := map[string]int32{}
	keySeq := map[string]string{}
	for _, r := range c.Records() {
		if last, ok := lastOffset[r.Partition]; ok && r.Offset <= last {
			t.Errorf("partition %d: offset %d arrived after %d", r.Partition, r.Offset, last)
		}
		lastOffset[r.Partition] = r.Offset
		key := r.Event.Extension("partitionkey")
		if p, ok := keyPartition[key]; ok && p != r.Partition {
			t.Errorf("key %s on partitions %d and %d", key, p, r.Partition)
		}
		keyPartition[key] = r.Partition
		if prev := keySeq[key]; prev != "" && r.Event.ID <= prev {
			t.Errorf("key %s: %s arrived after %s (publish order broken)", key, r.Event.ID, prev)
		}
		keySeq[key] = r.Event.ID
	}
}

// TestPubSubAcksEachDoneMessage marks done, on a one-partition channel, the records at offsets 0-2, 4
// and 6 (in arrival order; events without a key arrive in any order): after the member leaves, the
// group gets again exactly the others. Pub/Sub acks each message, so 4 and 6, done after a gap, do not
// come again (on Kafka they would: its commit point stops at 3).
func TestPubSubAcksEachDoneMessage(t *testing.T) {
	b := newTestBackend(t, testConfig(fakeServer(t).Addr))
	ref := channel.Ref{Namespace: "test", Name: "one-lane"}
	ctx := context.Background()
	if err := b.Ensure(ctx, channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	f := &conformance.Fixture{T: t, P: b, Ch: ref}
	g := f.Group(channel.Earliest)
	done := map[int64]bool{0: true, 1: true, 2: true, 4: true, 6: true}
	c1 := conformance.NewCollector(func(r channel.Record) bool { return done[r.Offset] })
	s1 := f.Subscribe(g, c1.Handle)
	evs := conformance.Events("e", 10, nil)
	f.Publish(evs...)
	conformance.WaitForIDs(t, conformance.IDs(evs), c1)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	var acked, again []string
	for _, r := range c1.Records() {
		if done[r.Offset] {
			acked = append(acked, r.Event.ID)
		} else {
			again = append(again, r.Event.ID)
		}
	}

	c2 := conformance.NewCollector(nil)
	f.Subscribe(g, c2.Handle)
	conformance.WaitForIDs(t, again, c2)
	// Publish a marker and wait for it: anything acked that were to come again would come before it
	// is through (nacked messages are redelivered at once).
	f.Publish(conformance.NewEvent("marker", ""))
	conformance.WaitForIDs(t, []string{"marker"}, c2)
	got := conformance.ReceivedIDs(c2.Records())
	for _, id := range acked {
		if slices.Contains(got, id) {
			t.Errorf("%s was done and acked but came again", id)
		}
	}
	if len(got) != len(again)+1 {
		t.Errorf("after resubscribing got %v, want each of %v once and the marker", got, again)
	}
}

func TestPubSubResubscribeResumes(t *testing.T) {
	b := newTestBackend(t, testConfig(fakeServer(t).Addr))
	f := conformance.NewFixture(t, b)
	g := f.Group(channel.Earliest)
	c1 := conformance.NewCollector(nil)
	s1 := f.Subscribe(g, c1.Handle)
	first := conformance.Events("first", 15, func(i int) string { return "key-" + strconv.Itoa(i%4) })
	f.Publish(first...)
	conformance.WaitForIDs(t, conformance.IDs(first), c1)
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	second := conformance.Events("second", 15, func(i int) string { return "key-" + strconv.Itoa(i%4) })
	f.Publish(second...) // while no member is subscribed: the subscription keeps them
	c2 := conformance.NewCollector(nil)
	f.Subscribe(g, c2.Handle)
	conformance.WaitForIDs(t, conformance.IDs(second), c2)
	for _, r := range c2.Records() {
		if slices.Contains(conformance.IDs(first), r.Event.ID) {
			t.Errorf("%s was done and acked before the restart but came again", r.Event.ID)
		}
	}
}

// TestPubSubUndecodableMessageIsSkipped: a message another publisher put on the topic that is not a
// CloudEvent is counted and acked, and does not hold back the events after it.
func TestPubSubUndecodableMessageIsSkipped(t *testing.T) {
	srv := fakeServer(t)
	b := newTestBackend(t, testConfig(srv.Addr))
	f := conformance.NewFixture(t, b)
	c := conformance.NewCollector(nil)
	f.Subscribe(f.Group(channel.Latest), c.Handle)
	topic, err := b.TopicName(f.Ch)
	if err != nil {
		t.Fatal(err)
	}
	srv.Publish(topic, []byte("not an event"), map[string]string{"ce-id": "only-an-id"})
	evs := conformance.Events("after", 3, nil)
	f.Publish(evs...)
	conformance.WaitForIDs(t, conformance.IDs(evs), c)
	deadline := time.Now().Add(conformance.Timeout)
	for b.UndecodableMessages() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("undecodable messages = %d, want 1", b.UndecodableMessages())
		}
		time.Sleep(10 * time.Millisecond) // polling a counter with a deadline
	}
}

func TestPubSubMessageShape(t *testing.T) {
	srv := fakeServer(t)
	b := newTestBackend(t, testConfig(srv.Addr))
	f := conformance.NewFixture(t, b)
	e := conformance.NewEvent("shape-1", "customer-7")
	e.DataContentType = "application/json"
	e.Data = []byte(`{"n":1}`)
	f.Publish(e)
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	want := map[string]string{
		"ce-specversion": "1.0", "ce-id": "shape-1", "ce-source": "/eventgate/conformance",
		"ce-type": "dev.eventgate.conformance", "ce-partitionkey": "customer-7", "content-type": "application/json",
	}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q (all: %v)", k, m.Attributes[k], v, m.Attributes)
		}
	}
	if len(m.Attributes) != len(want) {
		t.Errorf("attributes %v, want exactly %v", m.Attributes, want)
	}
	if string(m.Data) != `{"n":1}` || m.OrderingKey != "customer-7" {
		t.Errorf("data %q, ordering key %q", m.Data, m.OrderingKey)
	}
	if topic, _ := b.TopicName(f.Ch); !strings.HasSuffix(topic, "/topics/eventgate."+f.Ch.Namespace+"."+f.Ch.Name) {
		t.Errorf("topic %s does not follow the default template", topic)
	}
}

func TestPubSubPublishUnknownAndRemoved(t *testing.T) {
	b := newTestBackend(t, testConfig(fakeServer(t).Addr))
	ctx := context.Background()
	ref := channel.Ref{Namespace: "test", Name: "gone"}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, ref, conformance.Events("e", 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, ref, conformance.Events("e", 1, nil)); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Publish after Remove: %v, want ErrNotFound", err)
	}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
		t.Fatalf("Ensure again of a kept topic: %v", err)
	}
}

// TestPubSubEnsureUnreachable: with nothing listening, Ensure fails within AdminTimeout with an error
// wrapping channel.ErrUnavailable, and Ready fails too.
func TestPubSubEnsureUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testConfig(addr)
	cfg.AdminTimeout = 500 * time.Millisecond
	b := newTestBackend(t, cfg)
	if err := b.Ready(context.Background()); err != nil {
		t.Errorf("Ready before any channel: %v, want nil (nothing to store yet)", err)
	}
	err = b.Ensure(context.Background(), channel.Spec{Ref: channel.Ref{Namespace: "test", Name: "ch"}})
	if !errors.Is(err, channel.ErrUnavailable) {
		t.Fatalf("Ensure: %v, want ErrUnavailable", err)
	}
	if err := b.Ready(context.Background()); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Ready: %v, want ErrUnavailable", err)
	}
}

// TestPubSubSubscriptionSettings: the subscription a group gets has message ordering on and the
// configured ack deadline, and DeleteGroup deletes it.
func TestPubSubSubscriptionSettings(t *testing.T) {
	srv := fakeServer(t)
	b := newTestBackend(t, testConfig(srv.Addr))
	f := conformance.NewFixture(t, b)
	g := channel.Group{Channel: f.Ch, Name: "orders-sub", Start: channel.Latest}
	s := f.Subscribe(g, conformance.NewCollector(nil).Handle)
	name, err := b.SubscriptionName(g)
	if err != nil {
		t.Fatal(err)
	}
	admin := adminClient(t, srv.Addr)
	ctx := context.Background()
	sub, err := admin.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.EnableMessageOrdering || sub.AckDeadlineSeconds != 10 {
		t.Errorf("subscription %s: ordering %v, ack deadline %ds; want true, 10s", name, sub.EnableMessageOrdering, sub.AckDeadlineSeconds)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name}); err == nil {
		t.Errorf("subscription %s still exists after DeleteGroup", name)
	}
	if err := b.DeleteGroup(ctx, g); err != nil {
		t.Errorf("DeleteGroup of a deleted group: %v", err)
	}
}

func adminClient(t *testing.T, addr string) *ps.Client {
	t.Helper()
	c, err := ps.NewClient(context.Background(), testProject, option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestPubSubRefusedMessageIsInvalid: a message Pub/Sub can never take (over its 10 MB) is an error
// wrapping event.ErrInvalid (ingress: 400), not ErrUnavailable (503, retried for ever); a long
// partitionkey is no such message.
func TestPubSubRefusedMessageIsInvalid(t *testing.T) {
	b := newTestBackend(t, testConfig(fakeServer(t).Addr))
	f := conformance.NewFixture(t, b)
	big := conformance.NewEvent("big", "")
	big.Data = make([]byte, 10<<20+1)
	err := b.Publish(context.Background(), f.Ch, []*event.Event{big})
	if !errors.Is(err, event.ErrInvalid) || errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Publish of an 10 MB event: %v, want event.ErrInvalid", err)
	}
	c := conformance.NewCollector(nil)
	f.Subscribe(f.Group(channel.Latest), c.Handle)
	f.Publish(conformance.NewEvent("long-key", strings.Repeat("k", 2000)))
	conformance.WaitForIDs(t, []string{"long-key"}, c)
}

// TestPubSubSubscriptionOfAnotherTopic: a group whose subscription name is taken by a subscription of
// another topic is refused with ErrSubscriptionConflict; nothing is deleted.
func TestPubSubSubscriptionOfAnotherTopic(t *testing.T) {
	srv := fakeServer(t)
	b := newTestBackend(t, testConfig(srv.Addr))
	f := conformance.NewFixture(t, b)
	g := channel.Group{Channel: f.Ch, Name: "taken", Start: channel.Latest}
	name, _ := b.SubscriptionName(g)
	admin := adminClient(t, srv.Addr)
	ctx := context.Background()
	other := "projects/" + testProject + "/topics/other"
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: other}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: name, Topic: other}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Subscribe(ctx, g, conformance.NewCollector(nil).Handle)
	if !errors.Is(err, ErrSubscriptionConflict) {
		t.Fatalf("Subscribe: %v, want ErrSubscriptionConflict", err)
	}
	if _, err := admin.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name}); err != nil {
		t.Errorf("the other topic's subscription is gone: %v", err)
	}
}
