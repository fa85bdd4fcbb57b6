package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// otlpSink is an OTLP/HTTP trace receiver inside the runner that reads every export and discards it
// undecoded, as a collector in another process costs the gateway nothing beyond the export itself.
type otlpSink struct {
	url     string
	exports atomic.Int64
	srv     *http.Server
}

func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			s.exports.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse is zero bytes
	})}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *otlpSink) stop() { _ = s.srv.Close() }

// tracingArgs turn tracing on in a gateway, every event sampled, exporting to s.
func (s *otlpSink) tracingArgs() []string {
	return []string{"--set", "tracing.endpoint=" + s.url, "--set", "tracing.protocol=http/protobuf",
		"--set", "tracing.sampling=1"}
}

// tracingIngress measures the in-memory ingress with tracing on (every event sampled, exported)
// against the same gateway with tracing off, interleaved; the row's "eventgate" column is tracing
// on, its "baseline" column tracing off.
func (r *runner) tracingIngress(ctx context.Context) error {
	otlp, err := startOTLPSink()
	if err != nil {
		return err
	}
	defer otlp.stop()
	off, err := r.gateway(ctx, inMemoryChannel("untraced"))
	if err != nil {
		return err
	}
	defer off.stop()
	on, err := r.gateway(ctx, inMemoryChannel("traced"), otlp.tracingArgs()...)
	if err != nil {
		return err
	}
	defer on.stop()
	egs, bases, err := r.throughput(ctx, on.ingress+"/bench/traced", off.ingress+"/bench/untraced",
		"--concurrency", strconv.Itoa(r.s.concurrency))
	r.addRatio("ingress in memory, tracing on vs off", "throughput", "events/s", "", 0, egs, bases,
		fmt.Sprintf("on: every event sampled, a PRODUCER span each, exported over OTLP/HTTP to a discarding receiver; %d B, c=%d", r.s.size, r.s.concurrency))
	if err == nil && otlp.exports.Load() == 0 {
		err = fmt.Errorf("the traced gateway exported no spans")
	}
	return err
}

// tracingDispatch drains a Kafka backlog with tracing on (every event sampled: a CONSUMER and a
// CLIENT span per event, exported) against the same drain with tracing off, interleaved; the rows'
// "eventgate" column is tracing on, their "baseline" column tracing off.
func (r *runner) tracingDispatch(ctx context.Context) error {
	otlp, err := startOTLPSink()
	if err != nil {
		return err
	}
	defer otlp.stop()
	ch := "traced-drain-" + r.id
	r.topic(ch)
	off, on, offCPU, onCPU, err := r.drain(ctx, kafkaChannel(ch), "KafkaChannel", ch, nil,
		r.subscriber(kafkaChannel(ch), "KafkaChannel", ch, "traced", nil, otlp.tracingArgs()...))
	path := "dispatch of a Kafka backlog, tracing on vs off"
	r.addRatio(path, "throughput", "events/s", "", 0, on, off,
		fmt.Sprintf("%d-event backlog, 3 partitions, no-op subscriber; on: every event sampled, exported over OTLP/HTTP to a discarding receiver", r.s.drainN))
	r.addRatio(path+", CPU per event", "cpu", "µs", "", 0, onCPU, offCPU,
		"user+system CPU of the gateway per event, start-up included; lower is better")
	if err == nil && otlp.exports.Load() == 0 {
		err = fmt.Errorf("the traced gateway exported no spans")
	}
	return err
}
