// Command jspublish is the NATS JetStream ingress baseline: a net/http handler that turns each request
// into JetStream messages and answers 202 only after the stream acknowledged them (the promise
// eventgate's ingress makes on a NATS channel). It imports nothing from eventgate but the baselines'
// start/stop code.
//
//	jspublish --addr 127.0.0.1:0 --servers nats://127.0.0.1:4222 --stream BENCH_BASELINE --subject bench.baseline
//
// A binary-mode request becomes one message on SUBJECT.pN (N round robin over --partitions): the body
// as the payload, each Ce-X header as a NATS header ce-x, Content-Type as content-type, and
// Nats-Msg-Id set to the event's source and id so that the stream deduplicates as it does for
// eventgate. A request with Content-Type application/cloudevents-batch+json is split into one
// message per element of the JSON array (kept as structured JSON, deduplicated by position), all
// published before the acknowledgements are awaited: the batched baseline. The stream (SUBJECT.*,
// file storage) is created when missing. It prints "listening on HOST:PORT" on standard error once
// it serves, and exits 0 on SIGTERM/SIGINT.
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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventgate/eventgate/bench/baseline/internal/harness"
)

type options struct {
	addr       string
	servers    string
	stream     string
	subject    string
	partitions int
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:8092", "address to listen on (port 0: any free port)")
	flag.StringVar(&o.servers, "servers", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	flag.StringVar(&o.stream, "stream", "BENCH_BASELINE", "stream to publish to (created when missing)")
	flag.StringVar(&o.subject, "subject", "bench.baseline", "subject prefix: the stream holds SUBJECT.*")
	flag.IntVar(&o.partitions, "partitions", 3, "subjects SUBJECT.p0 … to spread messages over, round robin")
	flag.Parse()
	harness.Main("jspublish", func(ctx context.Context) error { return run(ctx, o) })
}

func run(ctx context.Context, o options) error {
	if o.partitions < 1 {
		return errors.New("--partitions must be at least 1")
	}
	nc, err := nats.Connect(o.servers)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = js.CreateOrUpdateStream(cctx, jetstream.StreamConfig{Name: o.stream, Subjects: []string{o.subject + ".*"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	cancel()
	if err != nil {
		return fmt.Errorf("stream %s: %w", o.stream, err)
	}
	subjects := make([]string, o.partitions)
	for i := range subjects {
		subjects[i] = o.subject + ".p" + strconv.Itoa(i)
	}
	return harness.Serve(ctx, o.addr, handler(js, subjects))
}

func handler(js jetstream.JetStream, subjects []string) http.Handler {
	var rr, batches atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ct := r.Header.Get("Content-Type")
		if mt, _, _ := mime.ParseMediaType(ct); mt == "application/cloudevents-batch+json" {
			var elems []json.RawMessage
			if err := json.Unmarshal(body, &elems); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			prefix := "batch-" + strconv.FormatUint(batches.Add(1), 10) + "-"
			futures := make([]jetstream.PubAckFuture, len(elems))
			for i, e := range elems {
				m := nats.NewMsg(subjects[rr.Add(1)%uint64(len(subjects))])
				m.Header.Set("content-type", "application/cloudevents+json")
				m.Header.Set(jetstream.MsgIDHeader, prefix+strconv.Itoa(i))
				m.Data = e
				if futures[i], err = js.PublishMsgAsync(m); err != nil {
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				}
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					http.Error(w, err.Error(), http.StatusServiceUnavailable)
					return
				case <-r.Context().Done():
					return
				}
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
		m := nats.NewMsg(subjects[rr.Add(1)%uint64(len(subjects))])
		for k, vs := range r.Header {
			if name, ok := strings.CutPrefix(k, "Ce-"); ok && len(vs) > 0 {
				m.Header["ce-"+strings.ToLower(name)] = []string{vs[0]}
			}
		}
		if ct != "" {
			m.Header["content-type"] = []string{ct}
		}
		m.Header[jetstream.MsgIDHeader] = []string{r.Header.Get("Ce-Source") + " " + r.Header.Get("Ce-Id")}
		m.Data = body
		if _, err := js.PublishMsg(r.Context(), m); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}
