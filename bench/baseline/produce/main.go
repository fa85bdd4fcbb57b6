// Command produce is the Kafka ingress baseline: a net/http handler that turns each request into Kafka
// records and answers 202 only after franz-go's ProduceSync returns with acks=all (the same promise
// eventgate's ingress makes). It imports nothing from eventgate.
//
//	produce --addr 127.0.0.1:0 --brokers 127.0.0.1:9092 --topic bench.baseline
//
// A binary-mode request becomes one record: body as value, ce-* headers as ce_* record headers. A
// request with Content-Type application/cloudevents-batch+json is split into one record per element of
// the JSON array (each kept as structured JSON), produced in one ProduceSync: the batched baseline.
// Anything else is stored as one record as it came. The topic is created when missing (--partitions,
// replication factor 1). It prints "listening on HOST:PORT" on standard error once it serves, and exits
// 0 on SIGTERM/SIGINT. Its start/stop code is the baselines' shared bench/baseline/internal/harness.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/bench/baseline/internal/harness"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "address to listen on (port 0: any free port)")
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	topic := flag.String("topic", "bench.baseline.produce", "topic to produce to")
	partitions := flag.Int("partitions", 3, "partitions of the topic when it has to be created")
	flag.Parse()
	harness.Main("produce", func(ctx context.Context) error {
		return run(ctx, *addr, strings.Split(*brokers, ","), *topic, int32(*partitions))
	})
}

func run(ctx context.Context, addr string, brokers []string, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := ensureTopic(ctx, cl, topic, partitions); err != nil {
		return err
	}
	return harness.Serve(ctx, addr, handler(cl))
}

func ensureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, resp.Err)
	}
	return nil
}

func handler(cl *kgo.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ct := r.Header.Get("Content-Type")
		var records []*kgo.Record
		if mt, _, _ := mime.ParseMediaType(ct); mt == "application/cloudevents-batch+json" {
			var elems []json.RawMessage
			if err := json.Unmarshal(body, &elems); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			structured := []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}
			records = make([]*kgo.Record, len(elems))
			for i, e := range elems {
				records[i] = &kgo.Record{Value: e, Headers: structured}
			}
		} else {
			rec := &kgo.Record{Value: body}
			for k, vs := range r.Header {
				if name, ok := strings.CutPrefix(k, "Ce-"); ok && len(vs) > 0 {
					rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "ce_" + strings.ToLower(name), Value: []byte(vs[0])})
				}
			}
			if ct != "" {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(ct)})
			}
			records = []*kgo.Record{rec}
		}
		if err := cl.ProduceSync(r.Context(), records...).FirstErr(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}
