package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pair runs eg and base alternately, runs times each (order flipped every run to spread drift), after
// one unmeasured warm-up of each. base may be nil: eg alone is measured.
func (r *runner) pair(ctx context.Context, eg, base func(context.Context) (float64, error)) ([]float64, []float64, error) {
	if base == nil {
		v, err := r.interleave(ctx, []string{"eventgate"}, eg)
		return v[0], nil, err
	}
	v, err := r.interleave(ctx, []string{"eventgate", "baseline"}, eg, base)
	return v[0], v[1], err
}

// interleave runs each of fns runs times, interleaved (run i starts with fns[i mod len], so each takes
// every place in the order), after one unmeasured warm-up of each. It returns each one's figures, in
// the order of fns; names label the progress lines and errors.
func (r *runner) interleave(ctx context.Context, names []string, fns ...func(context.Context) (float64, error)) ([][]float64, error) {
	out := make([][]float64, len(fns))
	for i, fn := range fns {
		if _, err := fn(ctx); err != nil {
			return out, fmt.Errorf("%s warm-up: %w", names[i], err)
		}
	}
	for run := range r.s.runs {
		for k := range fns {
			i := (run + k) % len(fns)
			v, err := fns[i](ctx)
			if err != nil {
				return out, fmt.Errorf("%s: %w", names[i], err)
			}
			out[i] = append(out[i], v)
			fmt.Fprintf(os.Stderr, "   run %d %-9s %.1f\n", run+1, names[i], v)
		}
	}
	return out, nil
}

// addRatio adds a row of egs beside bases with the ratio of their medians; min > 0 is the least ratio
// that meets the target.
func (r *runner) addRatio(path, metric, unit, target string, min float64, egs, bases []float64, note string) {
	var pass func(float64) bool
	if min > 0 {
		pass = func(ratio float64) bool { return ratio >= min }
	}
	r.addRow(path, metric, unit, target, pass, egs, bases, note)
}

// addRatioAtMost is addRatio for a figure where lower is better: max is the greatest ratio that meets
// the target.
func (r *runner) addRatioAtMost(path, metric, unit, target string, max float64, egs, bases []float64, note string) {
	r.addRow(path, metric, unit, target, func(ratio float64) bool { return ratio <= max }, egs, bases, note)
}

// addRow adds a row; pass (nil: no target to meet) judges the ratio of the medians.
func (r *runner) addRow(path, metric, unit, target string, pass func(float64) bool, egs, bases []float64, note string) {
	row := Row{Path: path, Metric: metric, Unit: unit, Eventgate: newSeries(egs), Baseline: newSeries(bases),
		Target: target, Note: note}
	if row.Eventgate != nil && row.Baseline != nil && row.Baseline.Median > 0 {
		ratio := row.Eventgate.Median / row.Baseline.Median
		row.Ratio = &ratio
		if pass != nil {
			ok := pass(ratio)
			row.Pass = &ok
		}
	}
	r.rep.Rows = append(r.rep.Rows, row)
}

// throughput measures closed-loop events/s of eventgate at egURL against the baseline at baseURL.
func (r *runner) throughput(ctx context.Context, egURL, baseURL string, args ...string) ([]float64, []float64, error) {
	measure := func(url string) func(context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			res, err := r.load(ctx, url, append([]string{"--duration", r.s.duration.String(), "--size", strconv.Itoa(r.s.size)}, args...)...)
			return res.EventsPS, err
		}
	}
	return r.pair(ctx, measure(egURL), measure(baseURL))
}

func (r *runner) ingressMemory(ctx context.Context) error {
	gw, err := r.gateway(ctx, inMemoryChannel("ingress"))
	if err != nil {
		return err
	}
	defer gw.stop()
	noop, url, err := r.server(ctx, "noop", nil, "--addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer noop.stop()
	egs, bases, err := r.throughput(ctx, gw.ingress+"/bench/ingress", url, "--concurrency", strconv.Itoa(r.s.concurrency))
	r.addRatio("ingress in memory vs no-op handler", "throughput", "events/s", "≥ 0.5", 0.5, egs, bases,
		fmt.Sprintf("binary mode, %d B, closed loop c=%d", r.s.size, r.s.concurrency))
	if s := newSeries(egs); s != nil {
		r.memMax = s.Median
	}
	return err
}

// kafkaIngress starts a gateway with the Kafka channel ch and, beside it, the produce baseline on a
// topic of its own (bench.baseline.BASE-ID); it calls measure with their ingress URLs and stops both
// once measure returns. Both topics are recorded for deletion at the end of the run.
func (r *runner) kafkaIngress(ctx context.Context, ch, base string, measure func(egURL, baseURL string) error) error {
	r.topic(ch)
	gw, err := r.gateway(ctx, kafkaChannel(ch))
	if err != nil {
		return err
	}
	defer gw.stop()
	baseTopic := "bench.baseline." + base + "-" + r.id
	r.topics = append(r.topics, baseTopic)
	prod, url, err := r.server(ctx, "produce", nil, "--addr", "127.0.0.1:0", "--brokers", r.s.brokers, "--topic", baseTopic)
	if err != nil {
		return err
	}
	defer prod.stop()
	return measure(gw.ingress+"/bench/"+ch, url)
}

func (r *runner) ingressKafka(ctx context.Context) error {
	return r.kafkaIngress(ctx, "ingress-"+r.id, "produce", func(egURL, baseURL string) error {
		egs, bases, err := r.throughput(ctx, egURL, baseURL, "--concurrency", strconv.Itoa(r.s.concurrency))
		r.addRatio("ingress on Kafka vs net/http + ProduceSync", "throughput", "events/s", "≥ 0.8", 0.8, egs, bases,
			fmt.Sprintf("acks=all, 3 partitions, binary mode, %d B, c=%d", r.s.size, r.s.concurrency))
		if s := newSeries(egs); s != nil {
			r.kafkaMax = s.Median
		}
		return err
	})
}

func (r *runner) batchKafka(ctx context.Context) error {
	return r.kafkaIngress(ctx, "batch-"+r.id, "batch", func(egURL, baseURL string) error {
		egs, bases, err := r.throughput(ctx, egURL, baseURL, "--concurrency", strconv.Itoa(r.s.batchConc),
			"--mode", "batch", "--batch-size", "100")
		r.addRatio("batched ingress on Kafka vs batched ProduceSync", "throughput", "events/s", "", 0, egs, bases,
			fmt.Sprintf("100 events/request, acks=all, %d B, c=%d", r.s.size, r.s.batchConc))
		return err
	})
}

// fill stores n events on channel ch (declared by manifest) through a gateway with no subscription,
// in batches; loadArgs go to `eventgate bench` (--keys N, say).
func (r *runner) fill(ctx context.Context, manifest, ch string, n int64, loadArgs ...string) error {
	gw, err := r.gateway(ctx, manifest)
	if err != nil {
		return err
	}
	defer gw.stop()
	start := time.Now()
	res, err := r.load(ctx, gw.ingress+"/bench/"+ch, append([]string{"--count", strconv.FormatInt(n, 10), "--mode", "batch",
		"--batch-size", "100", "--concurrency", "4", "--size", strconv.Itoa(r.s.size), "--timeout", "60s"}, loadArgs...)...)
	if err != nil {
		return fmt.Errorf("filling %s: %w", ch, err)
	}
	fmt.Fprintf(os.Stderr, "   filled %s with %d events in %.1fs\n", ch, res.Events, time.Since(start).Seconds())
	return nil
}

// deliverer starts what delivers a drain run's backlog to the sink at url, with env ("KEY=value"
// each: what it needs to trust an https sink, see sinkTLS.trust; nil for http) added to its
// environment; seq numbers the drain runs (a new consumer group, or subscription, for each).
type deliverer func(ctx context.Context, url string, env []string, seq int) (*proc, error)

// subscriber is the deliverer of a gateway on manifest with a new earliest Subscription of channel ch
// (of kind) to the sink, named NAME-SEQ and carrying annotations ("key: value" each); extra goes to
// `eventgate serve`.
func (r *runner) subscriber(manifest, kind, ch, name string, annotations []string, extra ...string) deliverer {
	return func(ctx context.Context, url string, env []string, seq int) (*proc, error) {
		gw, err := r.gatewayWithin(ctx, gatewayReady, env, manifest+subscription(fmt.Sprintf("%s-%d", name, seq), kind, ch, url, annotations...), extra...)
		if err != nil {
			return nil, err
		}
		return gw.proc, nil
	}
}

// consumer is the deliverer of the consume baseline reading topic with a new group, with args added
// (--in-flight N, or --ordered).
func (r *runner) consumer(topic string, args ...string) deliverer {
	return func(ctx context.Context, url string, env []string, seq int) (*proc, error) {
		cons, _, err := start(ctx, "consume", nil, env, r.bin("consume"), append([]string{"--brokers", r.s.brokers,
			"--topic", topic, "--group", fmt.Sprintf("bench.baseline.%s.%d", r.id, seq), "--target", url,
			"--count", strconv.FormatInt(r.s.drainN, 10)}, args...)...)
		return cons, err
	}
}

// drain fills channel ch (of kind, declared by manifest) with the drain backlog once, then measures,
// interleaved, how fast a gateway with a new earliest Subscription on it delivers the backlog to a
// sink, and how fast what baseline starts does. See drainAll for the figures and tls.
func (r *runner) drain(ctx context.Context, manifest, kind, ch string, tls *sinkTLS, baseline deliverer) (egs, bases, egCPU, baseCPU []float64, err error) {
	rates, cpu, err := r.drainAll(ctx, manifest, ch, tls, nil, []string{"eventgate", "baseline"},
		r.subscriber(manifest, kind, ch, "drain", nil), baseline)
	return rates[0], rates[1], cpu[0], cpu[1], err
}

// drainAll fills channel ch (declared by manifest) with the drain backlog once (fillArgs go to the
// load generator), then measures,
// interleaved (see interleave), how fast each of ds delivers the whole backlog to a sink of its own
// (each run reads it anew: a new group). The figure is the sink's events/s from the first arrival to
// the last, so no side's group join is counted. Beside it, it returns the CPU time each delivering
// process used per event (µs, from /proc, start-up included), a figure the other work on a shared
// machine disturbs less than the rate. names label the deliverers in progress lines and errors. With
// tls set, the sinks serve HTTPS (HTTP/1.1) with it and the deliverers are given its trust.
func (r *runner) drainAll(ctx context.Context, manifest, ch string, tls *sinkTLS, fillArgs, names []string, ds ...deliverer) (rates, cpu [][]float64, err error) {
	rates, cpu = make([][]float64, len(ds)), make([][]float64, len(ds))
	if err := r.fill(ctx, manifest, ch, r.s.drainN, fillArgs...); err != nil {
		return rates, cpu, err
	}
	n := strconv.FormatInt(r.s.drainN, 10)
	limit := 10 * time.Minute
	seq := 0
	// drainOnce starts a sink expecting the whole backlog, then what deliver starts towards the sink's
	// URL, and returns the sink's events/s once every event arrived, and the deliverer's CPU µs per
	// event into cpu; it stops both before returning.
	drainOnce := func(ctx context.Context, cpu *[]float64, deliver deliverer) (float64, error) {
		seq++
		sink, url, err := r.sinkOver(ctx, tls, "--count", n)
		if err != nil {
			return 0, err
		}
		defer sink.stop()
		p, err := deliver(ctx, url, tls.trust(), seq)
		if err != nil {
			return 0, err
		}
		defer p.stop()
		if err := sink.wait(ctx, limit); err != nil {
			return 0, err
		}
		if used, err := p.cpuUsed(); err == nil {
			*cpu = append(*cpu, float64(used.Microseconds())/float64(r.s.drainN))
		}
		res, err := sinkOutput(sink)
		return res.EventsPS, err
	}
	fns := make([]func(context.Context) (float64, error), len(ds))
	for i, d := range ds {
		fns[i] = func(ctx context.Context) (float64, error) { return drainOnce(ctx, &cpu[i], d) }
	}
	got, err := r.interleave(ctx, names, fns...)
	for i := range ds {
		rates[i] = got[i]
		// The warm-up runs are not measured: their CPU figures are dropped.
		if len(cpu[i]) > len(rates[i]) {
			cpu[i] = cpu[i][1:]
		}
	}
	return rates, cpu, err
}

// addDrainRows adds a drain path's rate row (target ≥ 0.8) and its CPU-per-event row (target: at most
// cpuMax times the baseline's, when cpuMax > 0).
func (r *runner) addDrainRows(path, note string, cpuMax float64, egs, bases, egCPU, baseCPU []float64) {
	r.addRatio(path, "throughput", "events/s", "≥ 0.8", 0.8, egs, bases, note)
	cpuPath, cpuNote := path+", CPU per event", "user+system CPU of the delivering process (gateway or baseline) per event, start-up included; lower is better"
	if cpuMax > 0 {
		r.addRatioAtMost(cpuPath, "cpu", "µs", fmt.Sprintf("≤ %.1f", cpuMax), cpuMax, egCPU, baseCPU, cpuNote)
		return
	}
	r.addRatio(cpuPath, "cpu", "µs", "", 0, egCPU, baseCPU, cpuNote)
}

func (r *runner) dispatch(ctx context.Context) error {
	return r.kafkaDispatch(ctx, "drain-"+r.id, nil, "dispatch of a Kafka backlog vs consume-and-POST", "no-op subscriber")
}

// dispatchHTTPS is dispatch to a subscriber served over HTTPS, HTTP/1.1 only: the gateway and the
// baseline both POST over TLS to a sink with a self-signed certificate for 127.0.0.1 (written to the
// run's temporary directory), which they trust through SSL_CERT_FILE. It measures what delivering to
// https:// subscribers costs.
func (r *runner) dispatchHTTPS(ctx context.Context) error {
	tls, err := writeSelfSigned(r.tmp, time.Now())
	if err != nil {
		return err
	}
	return r.kafkaDispatch(ctx, "drain-https-"+r.id, tls,
		"dispatch of a Kafka backlog to an https subscriber vs consume-and-POST over https",
		"no-op subscriber over HTTPS (HTTP/1.1, self-signed ECDSA P-256 certificate)")
}

// kafkaDispatch drains a Kafka channel's backlog through a gateway and through the consume baseline
// (--in-flight), to sinks served with tls (nil: plain HTTP), and adds the rows of path (rate, and CPU
// per event, at most 1.1 times the baseline's); subscriber describes the sink in the note.
func (r *runner) kafkaDispatch(ctx context.Context, ch string, tls *sinkTLS, path, subscriber string) error {
	topic := r.topic(ch)
	egs, bases, egCPU, baseCPU, err := r.drain(ctx, kafkaChannel(ch), "KafkaChannel", ch, tls,
		r.consumer(topic, "--in-flight", strconv.Itoa(r.s.inFlight)))
	r.addDrainRows(path,
		fmt.Sprintf("%d-event backlog, 3 partitions, %s, baseline in-flight %d; first→last arrival at the sink", r.s.drainN, subscriber, r.s.inFlight),
		1.1, egs, bases, egCPU, baseCPU)
	return err
}

// orderedAnnotation is Knative's annotation that makes a subscription ordered.
const orderedAnnotation = "kafka.eventing.knative.dev/delivery.order: ordered"

// dispatchOrdered drains one Kafka backlog three ways, interleaved: a gateway with an ordered
// subscription, the consume baseline with one POST in flight per partition (--ordered), and a gateway
// with an unordered subscription. Its rows: ordered eventgate against the ordered baseline (rate,
// target ≥ 1.0; CPU per event), and ordered eventgate's CPU per event against unordered eventgate's
// (target ≤ 1.2).
func (r *runner) dispatchOrdered(ctx context.Context) error {
	ch := "drain-ordered-" + r.id
	topic := r.topic(ch)
	m := kafkaChannel(ch)
	rates, cpu, err := r.drainAll(ctx, m, ch, nil, nil, []string{"ordered", "baseline", "unordered"},
		r.subscriber(m, "KafkaChannel", ch, "ordered", []string{orderedAnnotation}),
		r.consumer(topic, "--ordered"),
		r.subscriber(m, "KafkaChannel", ch, "unordered", nil))
	path := "ordered dispatch of a Kafka backlog vs ordered consume-and-POST"
	r.addRatio(path, "throughput", "events/s", "≥ 1.0", 1.0, rates[0], rates[1],
		fmt.Sprintf("%d-event backlog, 3 partitions, keyless events, no-op subscriber; both one POST in flight per partition, in offset order; first→last arrival at the sink", r.s.drainN))
	r.addRatio(path+", CPU per event", "cpu", "µs", "", 0, cpu[0], cpu[1],
		"user+system CPU of the delivering process (gateway or baseline) per event, start-up included; lower is better")
	r.addRatioAtMost("ordered vs unordered dispatch (eventgate both), CPU per event", "cpu", "µs", "≤ 1.2", 1.2, cpu[0], cpu[2],
		"the same backlog drained by an unordered subscription in the same run; the baseline column is unordered eventgate")
	r.addRatio("unordered vs ordered dispatch (eventgate both), throughput", "throughput", "events/s", "", 0, rates[2], rates[0],
		"for scale: the eventgate column is unordered, the baseline column ordered")
	return err
}

// dispatchOrderedTrigger is dispatchOrdered for a Kafka Broker: its backlog drained by an ordered
// Trigger (its filter passes every event, so it is evaluated on each), by the ordered consume
// baseline on the broker's topic, and by an unordered Trigger. Its rows: the ordered trigger against
// the ordered baseline (rate, target ≥ 1.0 as for ordered subscriptions; CPU per event), and its CPU
// per event against the unordered trigger's.
func (r *runner) dispatchOrderedTrigger(ctx context.Context) error {
	broker := "drain-trig-" + r.id
	topic := "eventgate.bench.broker." + broker
	r.topics = append(r.topics, topic)
	m := kafkaBroker(broker)
	triggered := func(name string, annotations ...string) deliverer {
		return func(ctx context.Context, url string, env []string, seq int) (*proc, error) {
			gw, err := r.gatewayWithin(ctx, gatewayReady, env, m+trigger(fmt.Sprintf("%s-%d", name, seq), broker, "dev.eventgate.bench", url, annotations...))
			if err != nil {
				return nil, err
			}
			return gw.proc, nil
		}
	}
	rates, cpu, err := r.drainAll(ctx, m, broker, nil, nil, []string{"ordered", "baseline", "unordered"},
		triggered("ordered", orderedAnnotation), r.consumer(topic, "--ordered"), triggered("unordered"))
	path := "ordered trigger's dispatch of a Kafka broker's backlog vs ordered consume-and-POST"
	r.addRatio(path, "throughput", "events/s", "≥ 1.0", 1.0, rates[0], rates[1],
		fmt.Sprintf("%d-event backlog, 3 partitions, keyless events, a filter every event passes, no-op subscriber; both one POST in flight per partition, in offset order; first→last arrival at the sink", r.s.drainN))
	r.addRatio(path+", CPU per event", "cpu", "µs", "", 0, cpu[0], cpu[1],
		"user+system CPU of the delivering process (gateway or baseline) per event, start-up included; lower is better")
	r.addRatio("ordered vs unordered trigger (eventgate both), CPU per event", "cpu", "µs", "", 0, cpu[0], cpu[2],
		"the same backlog drained by an unordered trigger in the same run; the baseline column is the unordered trigger")
	return err
}

// dispatchKeyed drains one Kafka backlog of keyed events (a partitionkey of --drain-keys values in
// turn, so about a third of them on each of the 3 partitions) two ways, interleaved: a gateway with an
// ordered subscription, which delivers each key's events one at a time in offset order and different
// keys concurrently, and one with an unordered subscription. No bare loop keeps order per key, so its
// rows set keyed ordered delivery beside unordered eventgate's, for scale: what order per key costs.
func (r *runner) dispatchKeyed(ctx context.Context) error {
	ch := "drain-keyed-" + r.id
	m := kafkaChannel(ch)
	rates, cpu, err := r.drainAll(ctx, m, ch, nil, []string{"--keys", strconv.Itoa(r.s.drainKeys)}, []string{"keyed", "unordered"},
		r.subscriber(m, "KafkaChannel", ch, "keyed", []string{orderedAnnotation}),
		r.subscriber(m, "KafkaChannel", ch, "unordered", nil))
	path := "ordered dispatch of keyed events vs unordered dispatch (eventgate both)"
	r.addRatio(path, "throughput", "events/s", "", 0, rates[0], rates[1],
		fmt.Sprintf("%d-event backlog, 3 partitions, %d partition keys, no-op subscriber; the baseline column is unordered eventgate; first→last arrival at the sink", r.s.drainN, r.s.drainKeys))
	r.addRatio(path+", CPU per event", "cpu", "µs", "", 0, cpu[0], cpu[1],
		"user+system CPU of the gateway per event, start-up included; lower is better")
	return err
}

// dispatchMemory measures how fast a gateway delivers an in-memory backlog to a no-op subscriber,
// beside how fast the in-memory ingress accepts events (closed loop, the ingress-memory path's load) on
// the same machine, interleaved: the target is a dispatch that keeps up with the ingress (ratio ≥ 1).
// An in-memory backlog lives only in its gateway, so each run fills a channel that has no subscription
// yet, then adds the Subscription to the watched manifest directory (a reload) and times the sink from
// its first arrival to its last. The gateway's CPU per event is counted from that reload to the last
// arrival.
func (r *runner) dispatchMemory(ctx context.Context) error {
	ingressGW, err := r.gateway(ctx, inMemoryChannel("ingress"))
	if err != nil {
		return err
	}
	defer ingressGW.stop()
	var egCPU []float64
	eg := func(ctx context.Context) (float64, error) {
		res, cpu, err := r.memoryDrain(ctx, r.s.drainN, nil)
		if err != nil {
			return 0, err
		}
		egCPU = append(egCPU, float64(cpu.Microseconds())/float64(r.s.drainN))
		return res.EventsPS, nil
	}
	base := func(ctx context.Context) (float64, error) {
		res, err := r.load(ctx, ingressGW.ingress+"/bench/ingress", "--duration", r.s.duration.String(),
			"--size", strconv.Itoa(r.s.size), "--concurrency", strconv.Itoa(r.s.concurrency))
		return res.EventsPS, err
	}
	egs, bases, err := r.pair(ctx, eg, base)
	if len(egCPU) > len(egs) {
		egCPU = egCPU[1:] // the warm-up's
	}
	r.addRatio("dispatch of an in-memory backlog vs in-memory ingress", "throughput", "events/s", "≥ 1.0", 1.0, egs, bases,
		fmt.Sprintf("%d-event backlog, 4 partitions, no-op subscriber, first→last arrival at the sink; beside it the in-memory ingress, closed loop c=%d, %d B", r.s.drainN, r.s.concurrency, r.s.size))
	r.addRatio("dispatch of an in-memory backlog, CPU per event", "cpu", "µs", "", 0, egCPU, nil,
		"user+system CPU of the gateway from adding the subscription to the last arrival, per event; lower is better")
	return err
}

// memoryDrain starts a gateway (with extra serve flags gwArgs), fills a new in-memory channel on it
// with n events that no subscription reads yet, starts `eventgate bench sink --count n` (with
// sinkArgs), then adds a Subscription to the sink to the gateway's watched manifest directory (a
// reload) and waits until every event arrived. It returns the sink's figures and the gateway's CPU
// time from the reload to the last arrival, and stops the gateway and the sink.
func (r *runner) memoryDrain(ctx context.Context, n int64, sinkArgs []string, gwArgs ...string) (sinkResult, time.Duration, error) {
	r.memSeq++
	ch := fmt.Sprintf("drain-mem-%d", r.memSeq)
	room := "inmemory.bytesPerChannel=" + strconv.FormatInt(2*n*int64(r.s.size+512), 10)
	gw, err := r.gateway(ctx, inMemoryChannel(ch), append([]string{"--set", room}, gwArgs...)...)
	if err != nil {
		return sinkResult{}, 0, err
	}
	defer gw.stop()
	count := strconv.FormatInt(n, 10)
	if _, err := r.load(ctx, gw.ingress+"/bench/"+ch, "--count", count, "--mode", "batch", "--batch-size", "100",
		"--concurrency", "4", "--size", strconv.Itoa(r.s.size), "--timeout", "60s"); err != nil {
		return sinkResult{}, 0, fmt.Errorf("filling %s: %w", ch, err)
	}
	sink, url, err := r.sink(ctx, append([]string{"--count", count}, sinkArgs...)...)
	if err != nil {
		return sinkResult{}, 0, err
	}
	defer sink.stop()
	before, err := gw.cpuUsed()
	if err != nil {
		return sinkResult{}, 0, err
	}
	sub := subscription("drain", "InMemoryChannel", ch, url)
	if err := os.WriteFile(filepath.Join(gw.dir, "subscription.yaml"), []byte(sub), 0o600); err != nil {
		return sinkResult{}, 0, err
	}
	if err := sink.wait(ctx, 10*time.Minute); err != nil {
		return sinkResult{}, 0, err
	}
	after, err := gw.cpuUsed()
	if err != nil {
		return sinkResult{}, 0, err
	}
	res, err := sinkOutput(sink)
	return res, after - before, err
}

// natsIngress starts a gateway with the NATS channel ch and, beside it, the jspublish baseline on a
// stream of its own (3 subjects, as the channel has 3 partitions); it calls measure with their
// ingress URLs and stops both once measure returns. Both streams are recorded for deletion.
func (r *runner) natsIngress(ctx context.Context, ch string, measure func(egURL, baseURL string) error) error {
	r.stream(ch)
	gw, err := r.gateway(ctx, natsChannel(ch))
	if err != nil {
		return err
	}
	defer gw.stop()
	baseStream := r.stream("baseline-" + ch)
	pub, url, err := r.server(ctx, "jspublish", nil, "--addr", "127.0.0.1:0", "--servers", r.s.nats,
		"--stream", baseStream, "--subject", "bench.baseline."+ch, "--partitions", "3")
	if err != nil {
		return err
	}
	defer pub.stop()
	return measure(gw.ingress+"/bench/"+ch, url)
}

func (r *runner) ingressNATS(ctx context.Context) error {
	return r.natsIngress(ctx, "ingress-nats-"+r.id, func(egURL, baseURL string) error {
		egs, bases, err := r.throughput(ctx, egURL, baseURL, "--concurrency", strconv.Itoa(r.s.concurrency))
		r.addRatio("ingress on NATS JetStream vs net/http + JetStream publish", "throughput", "events/s", "≥ 0.8", 0.8, egs, bases,
			fmt.Sprintf("202 after the stream's ack, file storage, 3 partition subjects, Nats-Msg-Id, binary mode, %d B, c=%d", r.s.size, r.s.concurrency))
		if s := newSeries(egs); s != nil {
			r.natsMax = s.Median
		}
		return err
	})
}

func (r *runner) batchNATS(ctx context.Context) error {
	return r.natsIngress(ctx, "batch-nats-"+r.id, func(egURL, baseURL string) error {
		egs, bases, err := r.throughput(ctx, egURL, baseURL, "--concurrency", strconv.Itoa(r.s.batchConc),
			"--mode", "batch", "--batch-size", "100")
		r.addRatio("batched ingress on NATS JetStream vs batched async JetStream publish", "throughput", "events/s", "", 0, egs, bases,
			fmt.Sprintf("100 events/request, async publishes awaited together, %d B, c=%d", r.s.size, r.s.batchConc))
		return err
	})
}

func (r *runner) dispatchNATS(ctx context.Context) error {
	ch := "drain-nats-" + r.id
	stream := r.stream(ch)
	n := strconv.FormatInt(r.s.drainN, 10)
	egs, bases, egCPU, baseCPU, err := r.drain(ctx, natsChannel(ch), "NatsJetStreamChannel", ch, nil, func(ctx context.Context, url string, env []string, seq int) (*proc, error) {
		cons, _, err := start(ctx, "jsconsume", nil, env, r.bin("jsconsume"), "--servers", r.s.nats, "--stream", stream,
			"--consumer", fmt.Sprintf("bench-baseline-%s-%d", r.id, seq), "--target", url,
			"--in-flight", strconv.Itoa(r.s.inFlight), "--count", n)
		return cons, err
	})
	r.addDrainRows("dispatch of a NATS JetStream backlog vs consume-and-POST",
		fmt.Sprintf("%d-event backlog, 3 partitions (eventgate: a pull consumer each; baseline: one consumer, nats.go's Messages iterator), no-op subscriber, baseline in-flight %d; first→last arrival at the sink", r.s.drainN, r.s.inFlight),
		0, egs, bases, egCPU, baseCPU)
	return err
}

// latency measures end-to-end latency (event time → subscriber) at half and a tenth of the measured
// maximum ingress rate, each run beside the same open loop through the bare pipeline of its backend
// (latencyBaseline), interleaved: what the gateway adds to what the machine, the broker and HTTP cost.
func (r *runner) latency(ctx context.Context) error {
	type target struct {
		name, kind, channel string
		max                 float64
	}
	var targets []target
	if r.memMax > 0 {
		targets = append(targets, target{name: "in memory", kind: "InMemoryChannel", channel: "e2e", max: r.memMax})
	}
	if r.kafka && r.kafkaMax > 0 {
		targets = append(targets, target{name: "Kafka", kind: "KafkaChannel", channel: "e2e-" + r.id, max: r.kafkaMax})
	}
	if r.nats && r.natsMax > 0 {
		targets = append(targets, target{name: "NATS", kind: "NatsJetStreamChannel", channel: "e2e-nats-" + r.id, max: r.natsMax})
	}
	if len(targets) == 0 {
		return errors.New("no ingress maximum measured: run the ingress paths first")
	}
	// Half the maximum is the operating point; a tenth shows the latency of a lightly loaded
	// gateway, which on 2 shared cores is not dominated by queueing.
	type point struct {
		target
		fraction float64
	}
	var points []point
	for _, t := range targets {
		points = append(points, point{t, 0.5}, point{t, 0.1})
	}
	runs := min(r.s.runs, 3)
	for pi, pt := range points {
		t := pt.target
		rate := t.max * pt.fraction
		count := int64(rate * r.s.duration.Seconds())
		loadArgs := []string{"--rate", strconv.FormatFloat(rate, 'f', 0, 64), "--count", strconv.FormatInt(count, 10),
			"--size", strconv.Itoa(r.s.size)}
		var p50s, p99s, cpus, base50s, base99s, baseCPUs []float64
		// openLoop sends the run's open loop to url, waits until the sink has every event, stops the
		// pipeline (stop), and returns the sink's latencies and the CPU the pipeline's processes used
		// per event meanwhile (µs; their start-up is not counted).
		openLoop := func(sink *proc, url string, procs []*proc, stop func()) (sinkResult, float64, error) {
			defer sink.stop()
			defer stop()
			cpu := func() (time.Duration, error) {
				var sum time.Duration
				for _, p := range procs {
					d, err := p.cpuUsed()
					if err != nil {
						return 0, err
					}
					sum += d
				}
				return sum, nil
			}
			before, cerr := cpu()
			_, lerr := r.load(ctx, url, loadArgs...)
			werr := sink.wait(ctx, 2*time.Minute)
			after, cerr2 := cpu()
			if err := errors.Join(lerr, werr, cerr, cerr2); err != nil {
				return sinkResult{}, 0, err
			}
			res, err := sinkOutput(sink)
			return res, float64((after - before).Microseconds()) / float64(count), err
		}
		for i := range runs {
			base := r.latencyBaseline(ctx, t.kind, fmt.Sprintf("%s-%d-%d-base", t.channel, pi, i))
			order := []bool{true} // eventgate first, then the baseline; flipped every other run
			if base != nil {
				order = append(order, false)
				if i%2 == 1 {
					order = []bool{false, true}
				}
			}
			for _, isEG := range order {
				sink, sinkURL, err := r.sink(ctx, "--count", strconv.FormatInt(count, 10))
				if err != nil {
					return err
				}
				if !isEG {
					url, procs, stop, err := base(sinkURL)
					if err != nil {
						sink.stop()
						return fmt.Errorf("%s baseline: %w", t.name, err)
					}
					res, cpu, err := openLoop(sink, url, procs, stop)
					if err != nil {
						return fmt.Errorf("%s baseline: %w", t.name, err)
					}
					base50s, base99s, baseCPUs = append(base50s, res.Latency.P50), append(base99s, res.Latency.P99), append(baseCPUs, cpu)
					fmt.Fprintf(os.Stderr, "   %s %.0f/s run %d baseline: p50 %.2fms p99 %.2fms, %.0f µs CPU/event\n", t.name, rate, i+1, res.Latency.P50, res.Latency.P99, cpu)
					continue
				}
				// A fresh channel per run: the subscription starts at the earliest offset and must see
				// only this run's events.
				ch := fmt.Sprintf("%s-%d-%d", t.channel, pi, i)
				chm := inMemoryChannel(ch)
				switch t.kind {
				case "KafkaChannel":
					r.topic(ch)
					chm = kafkaChannel(ch)
				case "NatsJetStreamChannel":
					r.stream(ch)
					chm = natsChannel(ch)
				}
				// The in-memory channel gets room for the whole run: this path measures latency, and a
				// full channel would turn a dispatch slower than the offered rate into 429s instead of
				// into the queueing delay it really is.
				gw, err := r.gateway(ctx, chm+subscription(fmt.Sprintf("e2e-%d", i), t.kind, ch, sinkURL),
					"--set", "inmemory.bytesPerChannel="+strconv.FormatInt(2*count*int64(r.s.size+512), 10))
				if err != nil {
					sink.stop()
					return err
				}
				res, cpu, err := openLoop(sink, gw.ingress+"/bench/"+ch, []*proc{gw.proc}, gw.stop)
				if err != nil {
					return err
				}
				p50s, p99s, cpus = append(p50s, res.Latency.P50), append(p99s, res.Latency.P99), append(cpus, cpu)
				fmt.Fprintf(os.Stderr, "   %s %.0f/s run %d: p50 %.2fms p99 %.2fms, %.0f µs CPU/event\n", t.name, rate, i+1, res.Latency.P50, res.Latency.P99, cpu)
			}
		}
		pct := int(pt.fraction * 100)
		note := fmt.Sprintf("open loop at %.0f events/s (%d%% of the measured ingress maximum), %d B, POST → subscriber; %s",
			rate, pct, r.s.size, latencyBaselineNote[t.kind])
		name := fmt.Sprintf("end-to-end latency %s at %d%% load", t.name, pct)
		r.addRatio(name+", p50", "latency", "ms", "", 0, p50s, base50s, note)
		r.addRatio(name+", p99", "latency", "ms", "", 0, p99s, base99s, note)
		r.addRatio(name+", CPU per event", "cpu", "µs", "", 0, cpus, baseCPUs,
			"user+system CPU per event of the gateway, and of the baseline's processes together, from the open loop's start to the last arrival")
	}
	return nil
}

// latencyBaselineNote says, per channel kind, what the latency path's baseline is.
var latencyBaselineNote = map[string]string{
	"InMemoryChannel":      "baseline: bench/baseline/relay (net/http handler → Go channel → 64 http.Client workers)",
	"KafkaChannel":         "baseline: bench/baseline/produce (net/http + ProduceSync) → the broker → bench/baseline/consume (64 in flight)",
	"NatsJetStreamChannel": "no baseline",
}

// latencyBaseline returns what starts the bare pipeline of a channel kind towards a sink's URL, as a
// function that returns the URL to send the open loop to, the pipeline's processes and what stops them; nil when the kind
// has none. name makes the pipeline's topic and consumer group new for each run.
func (r *runner) latencyBaseline(ctx context.Context, kind, name string) func(sinkURL string) (string, []*proc, func(), error) {
	switch kind {
	case "InMemoryChannel":
		return func(sinkURL string) (string, []*proc, func(), error) {
			relay, url, err := r.server(ctx, "relay", nil, "--addr", "127.0.0.1:0", "--target", sinkURL,
				"--in-flight", strconv.Itoa(r.s.inFlight))
			if err != nil {
				return "", nil, nil, err
			}
			return url, []*proc{relay}, relay.stop, nil
		}
	case "KafkaChannel":
		return func(sinkURL string) (string, []*proc, func(), error) {
			topic := "bench.baseline." + name
			r.topics = append(r.topics, topic)
			prod, url, err := r.server(ctx, "produce", nil, "--addr", "127.0.0.1:0", "--brokers", r.s.brokers, "--topic", topic)
			if err != nil {
				return "", nil, nil, err
			}
			group := "bench.baseline." + name
			cons, _, err := start(ctx, "consume", nil, nil, r.bin("consume"), "--brokers", r.s.brokers, "--topic", topic,
				"--group", group, "--target", sinkURL, "--in-flight", strconv.Itoa(r.s.inFlight))
			if err != nil {
				prod.stop()
				return "", nil, nil, err
			}
			stop := func() { cons.stop(); prod.stop() }
			// As eventgate's /readyz waits for its subscription, the open loop waits until the
			// baseline's consumer group owns every partition, so that neither side's join is timed.
			if err := r.waitGroupAssigned(ctx, group, topic, time.Minute); err != nil {
				stop()
				return "", nil, nil, err
			}
			return url, []*proc{prod, cons}, stop, nil
		}
	}
	return nil
}

// waitGroupAssigned polls until consumer group group is stable with every partition of topic assigned
// to one of its members, or limit passes.
func (r *runner) waitGroupAssigned(ctx context.Context, group, topic string, limit time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.s.brokers))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		if assigned, total := groupAssignment(ctx, adm, group, topic); total > 0 && assigned == total {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consumer group %s: partitions of %s not all assigned within %v", group, topic, limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// groupAssignment returns how many of topic's partitions group's members hold, and how many it has.
func groupAssignment(ctx context.Context, adm *kadm.Client, group, topic string) (assigned, total int) {
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil || topics.Error() != nil {
		return 0, 0
	}
	total = len(topics[topic].Partitions)
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return 0, total
	}
	g, ok := groups[group]
	if !ok || g.Err != nil || g.State != "Stable" {
		return 0, total
	}
	for _, m := range g.Members {
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				if t.Topic == topic {
					assigned += len(t.Partitions)
				}
			}
		}
	}
	return assigned, total
}

// rss measures the gateway's peak RSS while a large Kafka backlog drains to a slow subscriber.
func (r *runner) rss(ctx context.Context) error {
	ch := "backlog-" + r.id
	r.topic(ch)
	if err := r.fill(ctx, kafkaChannel(ch), ch, r.s.backlog); err != nil {
		return err
	}
	sink, url, err := r.sink(ctx, "--delay", r.s.slowDelay.String())
	if err != nil {
		return err
	}
	defer sink.stop()
	gw, err := r.gateway(ctx, kafkaChannel(ch)+subscription("backlog", "KafkaChannel", ch, url))
	if err != nil {
		return err
	}
	defer gw.stop()
	var peak int64
	deadline := time.Now().Add(r.s.rssWindow)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if kb, err := gw.statusKB("VmRSS"); err == nil && kb > peak {
			peak = kb
		}
	}
	hwm, err := gw.statusKB("VmHWM")
	if err != nil {
		return err
	}
	gw.stop()
	sink.stop()
	res, _ := sinkOutput(sink)
	mib := float64(max(hwm, peak)) / 1024
	pass := mib < 256
	r.rep.Rows = append(r.rep.Rows, Row{Path: "peak RSS while a backlog drains to a slow subscriber", Metric: "memory",
		Unit: "MiB", Eventgate: newSeries([]float64{mib}), Target: "< 256", Pass: &pass,
		Note: fmt.Sprintf("%d-event backlog, subscriber answers after %v, watched %v (VmHWM); %d delivered meanwhile",
			r.s.backlog, r.s.slowDelay, r.s.rssWindow, res.Events)})
	return nil
}
