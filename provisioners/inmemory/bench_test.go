package inmemory

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

// The baselines ("gochan") move the same events through a buffered Go channel, cloning each as
// Publish does, so the difference is the cost of the partitioned log, groups and commits.

func benchEvents() []*event.Event {
	return conformance.Events("bench", 64, func(i int) string {
		if i%2 == 0 {
			return "" // half round robin, half keyed
		}
		return "key"
	})
}

func BenchmarkPublish(b *testing.B) {
	evs := benchEvents()
	b.Run("inmemory", func(b *testing.B) {
		be := New(DefaultConfig(), nil)
		defer be.Close()
		ref := channel.Ref{Namespace: "bench", Name: "publish"}
		ctx := context.Background()
		if err := be.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			// No group: the log evicts the oldest events, so this measures the store alone.
			if err := be.Publish(ctx, ref, evs[i%len(evs):i%len(evs)+1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gochan", func(b *testing.B) {
		ch := make(chan *event.Event, 256)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range ch {
			}
		}()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			ch <- evs[i%len(evs)].Clone()
		}
		close(ch)
		<-done
	})
}

func BenchmarkPublishConsume(b *testing.B) {
	evs := benchEvents()
	b.Run("inmemory", func(b *testing.B) {
		be := New(DefaultConfig(), nil)
		defer be.Close()
		ref := channel.Ref{Namespace: "bench", Name: "consume"}
		ctx := context.Background()
		if err := be.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			b.Fatal(err)
		}
		received := make(chan struct{}, 1024)
		sub, err := be.Subscribe(ctx, channel.Group{Channel: ref, Name: "g", Start: channel.Earliest},
			func(cl channel.Claim) {
				for r := range cl.Records() {
					cl.MarkDone(r.Offset)
					received <- struct{}{}
				}
			})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		b.ReportAllocs()
		n := 0 // published and not yet received
		drain := func() {
			for {
				select {
				case <-received:
					n--
				default:
					return
				}
			}
		}
		for i := 0; b.Loop(); i++ {
			for {
				err := be.Publish(ctx, ref, evs[i%len(evs):i%len(evs)+1])
				if err == nil {
					break
				}
				if !errors.Is(err, channel.ErrFull) {
					b.Fatal(err)
				}
				// The consumer frees room once it can report; a RetryAfter pause would skew timing.
				drain()
				runtime.Gosched()
			}
			n++
			drain() // so that the handler never blocks on received for long
		}
		for ; n > 0; n-- {
			<-received
		}
	})
	b.Run("gochan", func(b *testing.B) {
		ch := make(chan *event.Event, 256)
		received := make(chan struct{}, 1024)
		go func() {
			for range ch {
				received <- struct{}{}
			}
		}()
		b.ReportAllocs()
		n := 0
		for i := 0; b.Loop(); i++ {
			ch <- evs[i%len(evs)].Clone()
			n++
			for drained := false; !drained; {
				select {
				case <-received:
					n--
				default:
					drained = true
				}
			}
		}
		close(ch)
		for ; n > 0; n-- {
			<-received
		}
	})
}

// BenchmarkDrain takes a backlog from one partition as a dispatcher does, marking each record done:
// "records" ranges over Records (the feeder goroutine hands each record over a channel), "pull"
// takes them with Next (channel.Puller). The backlog is published before the timer starts.
func BenchmarkDrain(b *testing.B) {
	for _, mode := range []string{"records", "pull"} {
		b.Run(mode, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.BytesPerChannel = 1 << 40
			be := New(cfg, nil)
			defer be.Close()
			ref := channel.Ref{Namespace: "bench", Name: "drain"}
			ctx := context.Background()
			if err := be.Ensure(ctx, channel.Spec{Ref: ref, Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			start, done := make(chan struct{}), make(chan struct{})
			sub, err := be.Subscribe(ctx, channel.Group{Channel: ref, Name: "g", Start: channel.Earliest},
				func(cl channel.Claim) {
					select {
					case <-start:
					case <-cl.Context().Done():
						return
					}
					n := 0
					take := func(r channel.Record) {
						cl.MarkDone(r.Offset)
						if n++; n == b.N {
							close(done)
						}
					}
					if p, ok := cl.(channel.Puller); ok && mode == "pull" {
						for r, ok := p.Next(cl.Context()); ok; r, ok = p.Next(cl.Context()) {
							take(r)
						}
						return
					}
					for r := range cl.Records() {
						take(r)
					}
				})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			evs := benchEvents()
			for i := 0; i < b.N; i += len(evs) {
				if err := be.Publish(ctx, ref, evs[:min(len(evs), b.N-i)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			close(start)
			<-done
		})
	}
}
