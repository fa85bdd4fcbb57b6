// Command jsconsume is the NATS JetStream dispatch baseline: the minimal loop that reads a stream with a
// durable pull consumer (nats.go's Messages iterator, its default prefetch) and POSTs every message to
// one URL as a binary-mode CloudEvent, with a fixed number of POSTs in flight, acknowledging each one
// after its POST. It imports nothing from eventgate but the baselines' start/stop code.
//
//	jsconsume --servers nats://127.0.0.1:4222 --stream S --consumer C --target http://127.0.0.1:8081 --in-flight 64
//
// Messages with ce-* headers are sent as binary mode (ce-x → Ce-X, content-type → Content-Type, the
// payload as the body). There are no retries: a failed POST is counted and the message still
// acknowledged. The consumer is created when missing, at the start of the stream, with explicit
// acknowledgements. It stops after --count messages (0: on SIGTERM/SIGINT) and prints how many it
// delivered and how many failed.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/bench/baseline/internal/harness"
)

type options struct {
	servers  string
	stream   string
	consumer string
	target   string
	inFlight int
	count    int64
}

func main() {
	var o options
	flag.StringVar(&o.servers, "servers", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	flag.StringVar(&o.stream, "stream", "BENCH_BASELINE", "stream to consume")
	flag.StringVar(&o.consumer, "consumer", "bench-baseline", "durable consumer (starts at the beginning of the stream when new)")
	flag.StringVar(&o.target, "target", "http://127.0.0.1:8081", "URL to POST every message to")
	flag.IntVar(&o.inFlight, "in-flight", 64, "POSTs in flight")
	flag.Int64Var(&o.count, "count", 0, "stop after this many messages (0: run until SIGTERM)")
	flag.Parse()
	harness.Main("jsconsume", func(ctx context.Context) error {
		delivered, failed, err := run(ctx, o)
		fmt.Printf("delivered %d failed %d\n", delivered, failed)
		return err
	})
}

func run(ctx context.Context, o options) (int64, int64, error) {
	if o.inFlight < 1 {
		return 0, 0, errors.New("--in-flight must be at least 1")
	}
	nc, err := nats.Connect(o.servers)
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, err
	}
	cctx, cancelCreate := context.WithTimeout(ctx, 30*time.Second)
	cons, err := js.CreateOrUpdateConsumer(cctx, o.stream, jetstream.ConsumerConfig{Durable: o.consumer,
		DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy})
	cancelCreate()
	if err != nil {
		return 0, 0, fmt.Errorf("consumer %s on %s: %w", o.consumer, o.stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, 0, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := &http.Transport{MaxIdleConns: o.inFlight, MaxIdleConnsPerHost: o.inFlight, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var delivered, failed atomic.Int64
	work := make(chan jetstream.Msg, o.inFlight)
	var wg sync.WaitGroup
	for range o.inFlight {
		wg.Go(func() {
			for m := range work {
				if post(ctx, client, o.target, m) {
					delivered.Add(1)
				} else {
					failed.Add(1)
				}
				_ = m.Ack()
				if o.count > 0 && delivered.Load()+failed.Load() >= o.count {
					cancel()
				}
			}
		})
	}
	// Next blocks without a context: stop the iterator once ctx is done, which ends Next.
	stopIt := context.AfterFunc(ctx, it.Stop)
	defer stopIt()
	for ctx.Err() == nil {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			continue // a missed heartbeat or a reconnect: the iterator keeps pulling
		}
		select {
		case work <- m:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	it.Stop()
	return delivered.Load(), failed.Load(), nc.FlushTimeout(10 * time.Second)
}

// post sends one message as a binary-mode CloudEvent and reports whether it was answered 2xx.
func post(ctx context.Context, client *http.Client, url string, m jetstream.Msg) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Data()))
	if err != nil {
		return false
	}
	for k, vs := range m.Headers() {
		switch lk := strings.ToLower(k); {
		case lk == "content-type" && len(vs) > 0:
			req.Header.Set("Content-Type", vs[0])
		case strings.HasPrefix(lk, "ce-") && len(vs) > 0:
			req.Header.Set("Ce-"+k[3:], vs[0])
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode/100 == 2
}
