// Command runner is the engine of scripts/bench: it runs each eventgate path beside its baseline from
// bench/baseline, repeated and interleaved, and prints one table of medians, ratios and noise, and
// writes the same as JSON. It drives only built binaries (eventgate, noop, produce, consume) as child
// processes on loopback; see scripts/bench for how it is invoked and docs/performance.md for the
// figures.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type settings struct {
	bin         string // directory holding eventgate, noop, produce, consume
	out         string
	brokers     string
	quick       bool
	runs        int
	duration    time.Duration
	concurrency int
	size        int
	batchConc   int
	drainN      int64
	inFlight    int
	backlog     int64
	rssWindow   time.Duration
	slowDelay   time.Duration
	only        string
}

func main() {
	var s settings
	flag.StringVar(&s.bin, "bin", "", "directory with the eventgate, noop, produce and consume binaries (required)")
	flag.StringVar(&s.out, "out", "bench/results/latest.json", "where to write the JSON results")
	flag.StringVar(&s.brokers, "brokers", "127.0.0.1:9092", "Kafka broker; Kafka paths are skipped when it does not answer")
	flag.BoolVar(&s.quick, "quick", false, "a ~2 minute smoke run: fewer, shorter runs and smaller backlogs")
	flag.IntVar(&s.runs, "runs", 0, "repetitions of each path (default 5, quick 3)")
	flag.DurationVar(&s.duration, "duration", 0, "length of each throughput run (default 10s, quick 3s)")
	flag.IntVar(&s.concurrency, "concurrency", 32, "closed-loop concurrency of the single-event ingress runs")
	flag.IntVar(&s.size, "size", 512, "bytes of data per event")
	flag.IntVar(&s.batchConc, "batch-concurrency", 8, "closed-loop concurrency of the batched ingress runs")
	flag.Int64Var(&s.drainN, "drain", 0, "backlog size of each dispatch drain run (default 100000, quick 20000)")
	flag.IntVar(&s.inFlight, "in-flight", 64, "in-flight deliveries of the consume-and-POST baseline (eventgate's dispatch.maxInFlight default)")
	flag.DurationVar(&s.rssWindow, "rss-window", 0, "how long the RSS run watches the backlog drain (default 30s, quick 5s)")
	flag.DurationVar(&s.slowDelay, "slow-delay", 50*time.Millisecond, "the slow subscriber's answer delay in the RSS run")
	flag.StringVar(&s.only, "only", "", "comma-separated subset of paths: ingress-memory,ingress-kafka,batch-kafka,dispatch,latency,rss")
	flag.Parse()
	s.defaults()
	if s.bin == "" {
		fmt.Fprintln(os.Stderr, "runner: --bin is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	r := &runner{s: s, id: strconv.FormatInt(time.Now().Unix(), 36)}
	rep, err := r.run(ctx)
	if rep != nil {
		printTable(os.Stdout, rep)
		if werr := writeReport(s.out, rep); werr != nil {
			fmt.Fprintln(os.Stderr, "runner:", werr)
		} else {
			fmt.Printf("\nwritten to %s\n", s.out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "runner:", err)
		os.Exit(1)
	}
}

func (s *settings) defaults() {
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if s.quick {
				*v = quick
			}
		}
	}
	def(&s.runs, 5, 3)
	if s.duration == 0 {
		s.duration = map[bool]time.Duration{false: 10 * time.Second, true: 3 * time.Second}[s.quick]
	}
	if s.drainN == 0 {
		s.drainN = map[bool]int64{false: 100000, true: 20000}[s.quick]
	}
	if s.rssWindow == 0 {
		s.rssWindow = map[bool]time.Duration{false: 30 * time.Second, true: 5 * time.Second}[s.quick]
	}
	s.backlog = map[bool]int64{false: 1000000, true: 50000}[s.quick]
	if v := os.Getenv("EVENTGATE_BENCH_BACKLOG"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			s.backlog = n
		}
	}
}

func (s *settings) want(path string) bool {
	return s.only == "" || slices.Contains(strings.Split(s.only, ","), path)
}

// Series is one measured figure repeated: every run and its min/median/max.
type Series struct {
	Runs   []float64 `json:"runs"`
	Min    float64   `json:"min"`
	Median float64   `json:"median"`
	Max    float64   `json:"max"`
}

func newSeries(v []float64) *Series {
	if len(v) == 0 {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &Series{Runs: v, Min: s[0], Median: med, Max: s[len(s)-1]}
}

// Row is one line of the table.
type Row struct {
	Path      string  `json:"path"`
	Metric    string  `json:"metric"`
	Unit      string  `json:"unit"`
	Eventgate *Series `json:"eventgate,omitempty"`
	Baseline  *Series `json:"baseline,omitempty"`
	// Ratio is eventgate's median over the baseline's.
	Ratio  *float64 `json:"ratio,omitempty"`
	Target string   `json:"target,omitempty"`
	Pass   *bool    `json:"pass,omitempty"`
	Note   string   `json:"note,omitempty"`
}

// Report is the JSON written by the runner.
type Report struct {
	Date     string            `json:"date"`
	Machine  map[string]string `json:"machine"`
	Settings map[string]any    `json:"settings"`
	Rows     []Row             `json:"rows"`
	Errors   []string          `json:"errors,omitempty"`
}

type runner struct {
	s     settings
	id    string // makes topic, channel and group names unique to this run
	rep   *Report
	kafka bool
	// measured maxima that later paths derive their rate from
	memMax, kafkaMax float64
	topics           []string
}

func (r *runner) bin(name string) string { return filepath.Join(r.s.bin, name) }

func (r *runner) run(ctx context.Context) (*Report, error) {
	r.rep = &Report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Settings: map[string]any{
		"quick": r.s.quick, "runs": r.s.runs, "duration_s": r.s.duration.Seconds(), "concurrency": r.s.concurrency,
		"size": r.s.size, "batch_concurrency": r.s.batchConc, "batch_size": 100, "drain_events": r.s.drainN,
		"in_flight": r.s.inFlight, "backlog_events": r.s.backlog, "rss_window_s": r.s.rssWindow.Seconds(),
		"slow_delay_ms": r.s.slowDelay.Milliseconds(),
	}}
	r.kafka = reachable(r.s.brokers)
	if !r.kafka {
		r.rep.Errors = append(r.rep.Errors, "Kafka at "+r.s.brokers+" does not answer: Kafka paths skipped (scripts/kafka up)")
	}
	defer r.deleteTopics()
	steps := []struct {
		path  string
		kafka bool
		fn    func(context.Context) error
	}{
		{"ingress-memory", false, r.ingressMemory},
		{"ingress-kafka", true, r.ingressKafka},
		{"batch-kafka", true, r.batchKafka},
		{"dispatch", true, r.dispatch},
		{"latency", false, r.latency},
		{"rss", true, r.rss},
	}
	for _, st := range steps {
		if !r.s.want(st.path) || (st.kafka && !r.kafka) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", st.path)
		if err := st.fn(ctx); err != nil {
			if ctx.Err() != nil {
				return r.rep, ctx.Err()
			}
			r.rep.Errors = append(r.rep.Errors, st.path+": "+err.Error())
			fmt.Fprintf(os.Stderr, "%s failed: %v\n", st.path, err)
		}
	}
	return r.rep, nil
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func machine() map[string]string {
	m := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "goos": runtime.GOOS, "goarch": runtime.GOARCH,
		"go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			m["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
		}
	}
	return m
}

// ---- processes ----

var (
	readyGateway = regexp.MustCompile(`ingress on (\S+) .*admin on (\S+) `)
	readyListen  = regexp.MustCompile(`listening on (\S+)`)
)

type gatewayProc struct {
	*proc
	ingress string // http://HOST:PORT
}

// gateway starts `eventgate serve` with the given manifests on loopback ports and waits until /readyz.
func (r *runner) gateway(ctx context.Context, manifests string, extra ...string) (*gatewayProc, error) {
	dir, err := os.MkdirTemp("", "eventgate-bench-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(manifests), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"serve", "-f", dir, "--set", "ingress.address=127.0.0.1:0", "--set", "admin.address=127.0.0.1:0",
		"--set", "log.level=warn", "--set", "log.format=json"}, extra...)
	var env []string
	if r.kafka {
		env = append(env, "EVENTGATE_KAFKA__BROKERS="+r.s.brokers)
	}
	p, m, err := start(ctx, "eventgate", readyGateway, env, r.bin("eventgate"), args...)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+m[2]+"/readyz", 60*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("eventgate: %w\n%s", err, tail(p.stderr.String(), 20))
	}
	return &gatewayProc{proc: p, ingress: "http://" + m[1]}, nil
}

// server starts a baseline or sink that prints "listening on HOST:PORT" and returns its base URL.
func (r *runner) server(ctx context.Context, name string, env []string, args ...string) (*proc, string, error) {
	p, m, err := start(ctx, name, readyListen, env, r.bin(name), args...)
	if err != nil {
		return nil, "", err
	}
	return p, "http://" + m[1], nil
}

// benchResult is the part of `eventgate bench --json` the runner reads.
type benchResult struct {
	Events   int64            `json:"events"`
	EventsPS float64          `json:"events_per_s"`
	Codes    map[string]int64 `json:"codes"`
	Latency  struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
	FirstErrors []string `json:"first_errors"`
}

// load runs `eventgate bench URL args... --json` to completion.
func (r *runner) load(ctx context.Context, url string, args ...string) (benchResult, error) {
	var res benchResult
	p, _, err := start(ctx, "bench", nil, nil, r.bin("eventgate"), append([]string{"bench", url, "--json"}, args...)...)
	if err != nil {
		return res, err
	}
	if err := p.wait(ctx, 30*time.Minute); err != nil {
		return res, err
	}
	if err := json.Unmarshal([]byte(p.stdout.String()), &res); err != nil {
		return res, fmt.Errorf("bench output: %w", err)
	}
	for code, n := range res.Codes {
		if !strings.HasPrefix(code, "2") {
			return res, fmt.Errorf("bench against %s: %d answers %s (%v)", url, n, code, res.FirstErrors)
		}
	}
	return res, nil
}

// sinkResult is the part of `eventgate bench sink --json` the runner reads.
type sinkResult struct {
	Events   int64   `json:"events"`
	EventsPS float64 `json:"events_per_s"`
	Elapsed  float64 `json:"elapsed_s"`
	Latency  struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
}

func (r *runner) sink(ctx context.Context, args ...string) (*proc, string, error) {
	p, m, err := start(ctx, "sink", readyListen, nil, r.bin("eventgate"), append([]string{"bench", "sink", "--port", "0", "--json"}, args...)...)
	if err != nil {
		return nil, "", err
	}
	return p, "http://" + m[1], nil
}

func sinkOutput(p *proc) (sinkResult, error) {
	var res sinkResult
	if err := json.Unmarshal([]byte(p.stdout.String()), &res); err != nil {
		return res, fmt.Errorf("sink output: %w (%q)", err, tail(p.stdout.String(), 5))
	}
	return res, nil
}

// ---- manifests ----

func inMemoryChannel(name string) string {
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata:
  name: %s
  namespace: bench
---
`, name)
}

func kafkaChannel(name string) string {
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata:
  name: %s
  namespace: bench
spec:
  numPartitions: 3
  replicationFactor: 1
---
`, name)
}

func subscription(name, kind, channel, uri string) string {
	api := "messaging.knative.dev/v1"
	if kind == "KafkaChannel" {
		api = "messaging.knative.dev/v1beta1"
	}
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: %s
  namespace: bench
  annotations:
    eventgate.dev/initial-offset: earliest
spec:
  channel:
    apiVersion: %s
    kind: %s
    name: %s
  subscriber:
    uri: %s
---
`, name, api, kind, channel, uri)
}

func (r *runner) topic(channel string) string {
	t := "eventgate.bench." + channel
	r.topics = append(r.topics, t)
	return t
}

// deleteTopics removes the topics this run created, so repeated runs do not fill the broker.
func (r *runner) deleteTopics() {
	if !r.kafka || len(r.topics) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.s.brokers))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slices.Sort(r.topics)
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, slices.Compact(r.topics)...); err != nil {
		fmt.Fprintln(os.Stderr, "deleting bench topics:", err)
	}
}

// ---- paths ----

// pair runs eg and base alternately, runs times each (order flipped every run to spread drift), after
// one unmeasured warm-up of each.
func (r *runner) pair(ctx context.Context, eg, base func(context.Context) (float64, error)) ([]float64, []float64, error) {
	if _, err := eg(ctx); err != nil {
		return nil, nil, fmt.Errorf("eventgate warm-up: %w", err)
	}
	if base != nil {
		if _, err := base(ctx); err != nil {
			return nil, nil, fmt.Errorf("baseline warm-up: %w", err)
		}
	}
	var egs, bases []float64
	for i := range r.s.runs {
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, isEG := range order {
			switch {
			case isEG:
				v, err := eg(ctx)
				if err != nil {
					return egs, bases, fmt.Errorf("eventgate: %w", err)
				}
				egs = append(egs, v)
				fmt.Fprintf(os.Stderr, "   run %d eventgate %.1f\n", i+1, v)
			case base != nil:
				v, err := base(ctx)
				if err != nil {
					return egs, bases, fmt.Errorf("baseline: %w", err)
				}
				bases = append(bases, v)
				fmt.Fprintf(os.Stderr, "   run %d baseline  %.1f\n", i+1, v)
			}
		}
	}
	return egs, bases, nil
}

func (r *runner) addRatio(path, metric, unit, target string, min float64, egs, bases []float64, note string) {
	row := Row{Path: path, Metric: metric, Unit: unit, Eventgate: newSeries(egs), Baseline: newSeries(bases),
		Target: target, Note: note}
	if row.Eventgate != nil && row.Baseline != nil && row.Baseline.Median > 0 {
		ratio := row.Eventgate.Median / row.Baseline.Median
		row.Ratio = &ratio
		if min > 0 {
			pass := ratio >= min
			row.Pass = &pass
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

// fill stores n events on a Kafka channel through a gateway with no subscription, in batches.
func (r *runner) fill(ctx context.Context, ch string, n int64) error {
	gw, err := r.gateway(ctx, kafkaChannel(ch))
	if err != nil {
		return err
	}
	defer gw.stop()
	start := time.Now()
	res, err := r.load(ctx, gw.ingress+"/bench/"+ch, "--count", strconv.FormatInt(n, 10), "--mode", "batch",
		"--batch-size", "100", "--concurrency", "4", "--size", strconv.Itoa(r.s.size), "--timeout", "60s")
	if err != nil {
		return fmt.Errorf("filling %s: %w", ch, err)
	}
	fmt.Fprintf(os.Stderr, "   filled %s with %d events in %.1fs\n", ch, res.Events, time.Since(start).Seconds())
	return nil
}

func (r *runner) dispatch(ctx context.Context) error {
	ch := "drain-" + r.id
	topic := r.topic(ch)
	if err := r.fill(ctx, ch, r.s.drainN); err != nil {
		return err
	}
	n := strconv.FormatInt(r.s.drainN, 10)
	limit := 10 * time.Minute
	seq := 0
	// drainOnce starts a sink expecting the whole backlog, then what deliver starts towards the sink's
	// URL, and returns the sink's events/s once every event arrived; it stops both before returning.
	drainOnce := func(ctx context.Context, deliver func(url string) (stop func(), err error)) (float64, error) {
		seq++
		sink, url, err := r.sink(ctx, "--count", n)
		if err != nil {
			return 0, err
		}
		defer sink.stop()
		stop, err := deliver(url)
		if err != nil {
			return 0, err
		}
		defer stop()
		if err := sink.wait(ctx, limit); err != nil {
			return 0, err
		}
		res, err := sinkOutput(sink)
		return res.EventsPS, err
	}
	eg := func(ctx context.Context) (float64, error) {
		return drainOnce(ctx, func(url string) (func(), error) {
			gw, err := r.gateway(ctx, kafkaChannel(ch)+subscription(fmt.Sprintf("drain-%d", seq), "KafkaChannel", ch, url))
			if err != nil {
				return nil, err
			}
			return gw.stop, nil
		})
	}
	base := func(ctx context.Context) (float64, error) {
		return drainOnce(ctx, func(url string) (func(), error) {
			cons, _, err := start(ctx, "consume", nil, nil, r.bin("consume"), "--brokers", r.s.brokers, "--topic", topic,
				"--group", fmt.Sprintf("bench.baseline.%s.%d", r.id, seq), "--target", url,
				"--in-flight", strconv.Itoa(r.s.inFlight), "--count", n)
			if err != nil {
				return nil, err
			}
			return cons.stop, nil
		})
	}
	egs, bases, err := r.pair(ctx, eg, base)
	r.addRatio("dispatch of a Kafka backlog vs consume-and-POST", "throughput", "events/s", "≥ 0.8", 0.8, egs, bases,
		fmt.Sprintf("%d-event backlog, 3 partitions, no-op subscriber, baseline in-flight %d; first→last arrival at the sink", r.s.drainN, r.s.inFlight))
	return err
}

// latency measures end-to-end latency (event time → subscriber) at half the measured maximum rate.
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
		var p50s, p99s []float64
		for i := range runs {
			sink, url, err := r.sink(ctx, "--count", strconv.FormatInt(count, 10))
			if err != nil {
				return err
			}
			// A fresh channel per run: the subscription starts at the earliest offset and must see only
			// this run's events.
			ch := fmt.Sprintf("%s-%d-%d", t.channel, pi, i)
			chm := inMemoryChannel(ch)
			if t.kind == "KafkaChannel" {
				r.topic(ch)
				chm = kafkaChannel(ch)
			}
			// The in-memory channel gets room for the whole run: this path measures latency, and a full
			// channel would turn a dispatch slower than the offered rate into 429s instead of into the
			// queueing delay it really is.
			gw, err := r.gateway(ctx, chm+subscription(fmt.Sprintf("e2e-%d", i), t.kind, ch, url),
				"--set", "inmemory.bytesPerChannel="+strconv.FormatInt(2*count*int64(r.s.size+512), 10))
			if err != nil {
				sink.stop()
				return err
			}
			_, lerr := r.load(ctx, gw.ingress+"/bench/"+ch, "--rate", strconv.FormatFloat(rate, 'f', 0, 64),
				"--count", strconv.FormatInt(count, 10), "--size", strconv.Itoa(r.s.size))
			werr := sink.wait(ctx, 2*time.Minute)
			gw.stop()
			sink.stop()
			if lerr != nil {
				return lerr
			}
			if werr != nil {
				return werr
			}
			res, err := sinkOutput(sink)
			if err != nil {
				return err
			}
			p50s, p99s = append(p50s, res.Latency.P50), append(p99s, res.Latency.P99)
			fmt.Fprintf(os.Stderr, "   %s %.0f/s run %d: p50 %.2fms p99 %.2fms\n", t.name, rate, i+1, res.Latency.P50, res.Latency.P99)
		}
		pct := int(pt.fraction * 100)
		note := fmt.Sprintf("open loop at %.0f events/s (%d%% of the measured ingress maximum), %d B, POST → subscriber", rate, pct, r.s.size)
		name := fmt.Sprintf("end-to-end latency %s at %d%% load", t.name, pct)
		r.addRatio(name+", p50", "latency", "ms", "", 0, p50s, nil, note)
		r.addRatio(name+", p99", "latency", "ms", "", 0, p99s, nil, note)
	}
	return nil
}

// rss measures the gateway's peak RSS while a large Kafka backlog drains to a slow subscriber.
func (r *runner) rss(ctx context.Context) error {
	ch := "backlog-" + r.id
	r.topic(ch)
	if err := r.fill(ctx, ch, r.s.backlog); err != nil {
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
