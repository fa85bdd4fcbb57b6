// Command consume is the dispatch baseline: the minimal loop that reads a Kafka topic with a consumer
// group and POSTs every record to one URL as a binary-mode CloudEvent, with a fixed number of POSTs in
// flight. It imports nothing from eventgate but the baselines' start/stop code.
//
//	consume --brokers 127.0.0.1:9092 --topic T --group G --target http://127.0.0.1:8081 --in-flight 64
//	consume --brokers 127.0.0.1:9092 --topic T --group G --target http://127.0.0.1:8081 --ordered
//
// With --ordered it is the ordered dispatch baseline instead: one POST in flight per partition, in
// offset order (--in-flight is ignored). Each fetched partition's records go, as one slice, to a
// goroutine of that partition's own, which POSTs and marks them one after another: one hand-off per
// fetch, not per record.
//
// Records with ce_* headers are sent as binary mode (ce_x → Ce-X, content-type → Content-Type, value as
// the body). There are no retries: a failed POST is counted and the record is still marked. Offsets of
// delivered records are committed with franz-go's marked autocommit. It stops after --count records
// (0: on SIGTERM/SIGINT) and prints how many it delivered and how many failed. Its start/stop code is
// the baselines' shared bench/baseline/internal/harness.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/bench/baseline/internal/harness"
)

type options struct {
	brokers  []string
	topic    string
	group    string
	target   string
	inFlight int
	ordered  bool
	count    int64
}

func main() {
	var o options
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	flag.StringVar(&o.topic, "topic", "bench.baseline.produce", "topic to consume")
	flag.StringVar(&o.group, "group", "bench.baseline.consume", "consumer group (starts at the earliest offset when new)")
	flag.StringVar(&o.target, "target", "http://127.0.0.1:8081", "URL to POST every record to")
	flag.IntVar(&o.inFlight, "in-flight", 64, "POSTs in flight")
	flag.BoolVar(&o.ordered, "ordered", false, "one POST in flight per partition, in offset order (ignores --in-flight)")
	flag.Int64Var(&o.count, "count", 0, "stop after this many records (0: run until SIGTERM)")
	flag.Parse()
	o.brokers = strings.Split(*brokers, ",")
	harness.Main("consume", func(ctx context.Context) error {
		delivered, failed, err := run(ctx, o)
		fmt.Printf("delivered %d failed %d\n", delivered, failed)
		return err
	})
}

func run(ctx context.Context, o options) (int64, int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.brokers...), kgo.ConsumerGroup(o.group), kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitMarks(), kgo.BlockRebalanceOnPoll())
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := &http.Transport{MaxIdleConns: o.inFlight, MaxIdleConnsPerHost: o.inFlight, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var delivered, failed atomic.Int64
	// deliver POSTs one record, counts it and marks it for commit; it ends the run after --count records.
	deliver := func(rec *kgo.Record) {
		if post(ctx, client, o.target, rec) {
			delivered.Add(1)
		} else {
			failed.Add(1)
		}
		cl.MarkCommitRecords(rec)
		if o.count > 0 && delivered.Load()+failed.Load() >= o.count {
			cancel()
		}
	}
	var wg sync.WaitGroup
	if o.ordered {
		consumeOrdered(ctx, cl, deliver, &wg)
	} else {
		consumeConcurrent(ctx, cl, o.inFlight, deliver, &wg)
	}
	wg.Wait()
	commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelCommit()
	err = cl.CommitMarkedOffsets(commitCtx)
	return delivered.Load(), failed.Load(), err
}

// consumeConcurrent polls until ctx is done, handing each record to one of inFlight workers that run
// deliver. It returns once the workers have been told to stop (wg counts them).
func consumeConcurrent(ctx context.Context, cl *kgo.Client, inFlight int, deliver func(*kgo.Record), wg *sync.WaitGroup) {
	work := make(chan *kgo.Record, inFlight)
	for range inFlight {
		wg.Go(func() {
			for rec := range work {
				deliver(rec)
			}
		})
	}
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			select {
			case work <- r:
			case <-ctx.Done():
			}
		})
		cl.AllowRebalance()
	}
	close(work)
}

// consumeOrdered polls until ctx is done, handing each fetched partition's records, as one slice, to a
// goroutine of that partition that runs deliver on them one at a time in offset order. A partition's
// goroutine holds at most orderedBacklog fetches before the poll loop waits for it. It returns once the
// goroutines have been told to stop (wg counts them). The baseline runs as the group's only member, so
// it ignores revocation (a bare loop; eventgate's dispatcher handles it).
func consumeOrdered(ctx context.Context, cl *kgo.Client, deliver func(*kgo.Record), wg *sync.WaitGroup) {
	const orderedBacklog = 4
	parts := map[int32]chan []*kgo.Record{}
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			ch := parts[p.Partition]
			if ch == nil {
				ch = make(chan []*kgo.Record, orderedBacklog)
				parts[p.Partition] = ch
				wg.Go(func() {
					for recs := range ch {
						for _, rec := range recs {
							if ctx.Err() != nil {
								break
							}
							deliver(rec)
						}
					}
				})
			}
			select {
			case ch <- p.Records:
			case <-ctx.Done():
			}
		})
		cl.AllowRebalance()
	}
	for _, ch := range parts {
		close(ch)
	}
}

// post sends one record as a binary-mode CloudEvent and reports whether it was answered 2xx.
func post(ctx context.Context, client *http.Client, url string, rec *kgo.Record) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(rec.Value))
	if err != nil {
		return false
	}
	for _, h := range rec.Headers {
		switch {
		case h.Key == "content-type":
			req.Header.Set("Content-Type", string(h.Value))
		case strings.HasPrefix(h.Key, "ce_"):
			req.Header.Set("Ce-"+h.Key[3:], string(h.Value))
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
