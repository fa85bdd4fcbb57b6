package nats

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"

	"github.com/nats-io/nats.go"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

// TestPublishLargeBatch: a batch far larger than what the client lets wait for acknowledgements at
// once is stored whole, and publishing it again stores nothing new (Nats-Msg-Id).
func TestPublishLargeBatch(t *testing.T) {
	s := natstest.Server(t, natstest.Options{})
	b := newBackend(t, testConfig(s.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ref := channel.Ref{Namespace: "ns", Name: "big"}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	evs := conformance.Events("e", 6000, nil)
	for range 2 {
		if err := b.Publish(ctx, ref, evs); err != nil {
			t.Fatalf("Publish(%d events): %v", len(evs), err)
		}
	}
	_, js, _ := b.connected()
	st, err := js.Stream(ctx, "EVENTGATE_ns_big")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != uint64(len(evs)) {
		t.Errorf("stream holds %d messages, want %d (each event once)", n, len(evs))
	}
}

// TestPublishOverMaxPayload: an event the server cannot take is invalid input (the ingress answers
// 400 naming it), not a failure worth retrying, and nothing of it is stored.
func TestPublishOverMaxPayload(t *testing.T) {
	srv := natstest.Server(t, natstest.Options{MaxPayload: 4096})
	b := newBackend(t, testConfig(srv.ClientURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref := channel.Ref{Namespace: "ns", Name: "small"}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	e := conformance.NewEvent("huge", "")
	e.Data = []byte(strings.Repeat("x", 8192))
	err := b.Publish(ctx, ref, []*event.Event{e})
	if !errors.Is(err, event.ErrInvalid) || errors.Is(err, channel.ErrUnavailable) {
		t.Fatalf("Publish of an event over max_payload = %v, want an error wrapping event.ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), "max_payload") || !strings.Contains(err.Error(), "huge") {
		t.Errorf("error %q does not name the event and the limit", err)
	}
}

// TestForeignMessagesAreSkipped: messages someone else published on a channel's partition subject
// that are not events (no headers, garbage headers, a structured body that is not JSON) are counted
// and skipped, never delivered or crashing the claim, and the events around them are delivered.
func TestForeignMessagesAreSkipped(t *testing.T) {
	s := natstest.Server(t, natstest.Options{})
	b := newBackend(t, testConfig(s.ClientURL()))
	f := conformance.NewFixture(t, b)
	before := conformance.Events("before", 3, func(int) string { return "k" })
	f.Publish(before...)

	_, js, err := b.connected()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subject := "eventgate.conformance." + f.Ch.Name + ".p" + strconv.Itoa(int(b.partition(before[0], conformance.Partitions)))
	bad := []*nats.Msg{
		{Subject: subject, Data: []byte("no headers at all")},
		{Subject: subject, Header: nats.Header{"ce-id": {"%zz"}, "ce-specversion": {"1.0"}}, Data: []byte("x")},
		{Subject: subject, Header: nats.Header{"content-type": {event.MediaTypeStructuredJSON}}, Data: []byte("{not json")},
	}
	for _, m := range bad {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("publish a foreign message: %v", err)
		}
	}
	after := conformance.Events("after", 3, func(int) string { return "k" })
	f.Publish(after...)

	c := conformance.NewCollector(nil)
	f.Subscribe(f.Group(channel.Earliest), c.Handle)
	all := append(conformance.IDs(before), conformance.IDs(after)...)
	conformance.WaitForIDs(t, all, c)
	if got := conformance.ReceivedIDs(c.Records()); len(got) != len(all) {
		t.Errorf("received %v, want exactly %v", got, all)
	}
	if n := b.UndecodableRecords(); n != int64(len(bad)) {
		t.Errorf("UndecodableRecords = %d, want %d", n, len(bad))
	}
}
