package nats

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

// The baselines ("bare") do the same work with nats.go alone on the same embedded server in the same
// run: a synchronous JetStream publish of the event's headers and data, and a pull-and-ack loop, so the
// difference is the cost of the backend (codec, partitions, windows, claims, commit tracking).

// benchRun makes names and event ids unique across the runs of one process (-count), whose
// benchmarks may share a server: a repeated id would be dropped as a duplicate.
var benchRun atomic.Int64

func benchName(prefix string) string { return prefix + strconv.FormatInt(benchRun.Add(1), 10) }

// BenchmarkPublish publishes one event per call from 8 goroutines per CPU, as ingress does for
// concurrent requests.
func BenchmarkPublish(b *testing.B) {
	s := natstest.Server(b, natstest.Options{})
	ctx := context.Background()
	b.Run("nats", func(b *testing.B) {
		be := newBackend(b, testConfig(s.ClientURL()))
		ref := channel.Ref{Namespace: "bench", Name: benchName("publish-")}
		if err := be.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			b.Fatal(err)
		}
		var seq atomic.Int64
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e := conformance.NewEvent(ref.Name+"-"+strconv.FormatInt(seq.Add(1), 10), "")
				if err := be.Publish(ctx, ref, []*event.Event{e}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("bare", func(b *testing.B) {
		nc, js := bareClient(b, s.ClientURL())
		defer nc.Close()
		stream := benchName("BARE_PUBLISH_")
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".*"}}); err != nil {
			b.Fatal(err)
		}
		var seq atomic.Int64
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e := conformance.NewEvent("p-"+strconv.FormatInt(seq.Add(1), 10), "")
				m := nats.NewMsg(stream + ".p0")
				event.ToNATS(e, m.Header)
				m.Header.Set(jetstream.MsgIDHeader, e.ID)
				m.Data = e.Data
				if _, err := js.PublishMsg(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkDrain drains b.N stored events through one subscription whose handler marks each done
// (nats), against a pull-fetch-ack loop over one consumer (bare).
func BenchmarkDrain(b *testing.B) {
	s := natstest.Server(b, natstest.Options{})
	ctx := context.Background()
	b.Run("nats", func(b *testing.B) {
		be := newBackend(b, testConfig(s.ClientURL()))
		ref := channel.Ref{Namespace: "bench", Name: benchName("drain-")}
		if err := be.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			b.Fatal(err)
		}
		publishN(b, be, ref, b.N)
		var got atomic.Int64
		done := make(chan struct{})
		b.ResetTimer()
		sub, err := be.Subscribe(ctx, channel.Group{Channel: ref, Name: "drain", Start: channel.Earliest}, func(c channel.Claim) {
			for r := range c.Records() {
				c.MarkDone(r.Offset)
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		waitDone(b, done)
		b.StopTimer()
		sub.Close()
	})
	b.Run("bare", func(b *testing.B) {
		nc, js := bareClient(b, s.ClientURL())
		defer nc.Close()
		stream := benchName("BARE_DRAIN_")
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".*"}})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			if _, err := js.PublishAsync(stream+".p0", []byte("payload")); err != nil {
				b.Fatalf("bare publish: %v", err)
			}
			if i%500 == 499 {
				<-js.PublishAsyncComplete()
			}
		}
		<-js.PublishAsyncComplete()
		cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "drain", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for n := 0; n < b.N; {
			batch, err := cons.Fetch(min(32, b.N-n), jetstream.FetchMaxWait(time.Second))
			if err != nil {
				b.Fatalf("bare fetch: %v", err)
			}
			for m := range batch.Messages() {
				m.Ack()
				n++
			}
		}
		b.StopTimer()
	})
}

func bareClient(b *testing.B, url string) (*nats.Conn, jetstream.JetStream) {
	b.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return nc, js
}

// publishN stores n events on ref in batches of 500.
func publishN(b testing.TB, be *Backend, ref channel.Ref, n int) {
	b.Helper()
	for i := 0; i < n; i += 500 {
		evs := conformance.Events(fmt.Sprintf("%s-%d", ref.Name, i), min(500, n-i), nil)
		if err := be.Publish(context.Background(), ref, evs); err != nil {
			b.Fatal(err)
		}
	}
}

func waitDone(b *testing.B, done <-chan struct{}) {
	b.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("drain did not finish within 5 minutes")
	}
}
