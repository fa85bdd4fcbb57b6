package inmemory_test

import (
	"context"
	"fmt"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

// A channel with one consumer group: publish, receive, mark done (which commits and frees the memory).
func ExampleBackend() {
	ctx := context.Background()
	cfg := inmemory.DefaultConfig()
	cfg.Partitions = 1
	b := inmemory.New(cfg, nil)
	defer b.Close()

	ref := channel.Ref{Namespace: "default", Name: "demo"}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
		panic(err)
	}
	got := make(chan string)
	sub, err := b.Subscribe(ctx, channel.Group{Channel: ref, Name: "printer", Start: channel.Earliest},
		func(cl channel.Claim) {
			for r := range cl.Records() {
				cl.MarkDone(r.Offset)
				got <- fmt.Sprintf("%s at %d/%d", r.Event.ID, r.Partition, r.Offset)
			}
		})
	if err != nil {
		panic(err)
	}
	e := &event.Event{ID: "1", Source: "/example", SpecVersion: event.SpecVersion, Type: "demo"}
	if err := b.Publish(ctx, ref, []*event.Event{e}); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	if err := sub.Close(); err != nil {
		panic(err)
	}
	bytes, limit := b.Stats(ref)
	fmt.Println(bytes, limit)
	// Output:
	// 1 at 0/0
	// 0 67108864
}
