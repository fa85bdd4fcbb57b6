// Command runner is the engine of scripts/bench: it runs each eventgate path beside its baseline from
// bench/baseline, repeated and interleaved, and prints one table of medians, ratios and noise, and
// writes the same as JSON. It drives only built binaries (eventgate, noop, produce, consume) as child
// processes on loopback; see scripts/bench for how it is invoked and docs/performance.md for the
// figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type settings struct {
	bin            string // directory holding eventgate, noop, produce, consume
	out            string
	brokers        string
	nats           string
	quick          bool
	runs           int
	duration       time.Duration
	concurrency    int
	size           int
	batchConc      int
	drainN         int64
	drainKeys      int
	inFlight       int
	backlog        int64
	rssWindow      time.Duration
	slowDelay      time.Duration
	adaptiveSecs   time.Duration // how long each drain of the adaptive path lasts at the subscriber's capacity
	adaptiveRuns   int           // repetitions of each drain of the adaptive path
	adaptiveOnly   string        // the adaptive path's cells to run ("KNEExSERVICE,..."); empty: the whole grid
	adaptiveStalls float64       // stalls a second at the adaptive path's subscribers (bench sink --stalls); 0 none
	only           string
	profile        string        // directory for the gateways' profiles; "" none
	subs           int           // subscriptions on the gateway of the subs paths
	subsRate       int           // deliveries/s the subs paths spread over them
	idleSettle     time.Duration // how long the subs paths let a ready gateway settle before measuring it idle
	idleWindow     time.Duration // how long they measure its idle CPU
}

func main() {
	var s settings
	flag.StringVar(&s.bin, "bin", "", "directory with the eventgate, noop, relay, produce, consume, jspublish and jsconsume binaries (required)")
	flag.StringVar(&s.out, "out", "bench/results/latest.json", "where to write the JSON results")
	flag.StringVar(&s.brokers, "brokers", "127.0.0.1:9092", "Kafka broker; Kafka paths are skipped when it does not answer")
	flag.StringVar(&s.nats, "nats", "nats://127.0.0.1:4222", "NATS server with JetStream; NATS paths are skipped when it does not answer")
	flag.BoolVar(&s.quick, "quick", false, "a ~2 minute smoke run: fewer, shorter runs and smaller backlogs")
	flag.IntVar(&s.runs, "runs", 0, "repetitions of each path (default 5, quick 3)")
	flag.DurationVar(&s.duration, "duration", 0, "length of each throughput run (default 10s, quick 3s)")
	flag.IntVar(&s.concurrency, "concurrency", 32, "closed-loop concurrency of the single-event ingress runs")
	flag.IntVar(&s.size, "size", 512, "bytes of data per event")
	flag.IntVar(&s.batchConc, "batch-concurrency", 8, "closed-loop concurrency of the batched ingress runs")
	flag.IntVar(&s.drainKeys, "drain-keys", 1000, "partition keys of the dispatch-keyed path's backlog")
	flag.Int64Var(&s.drainN, "drain", 0, "backlog size of each dispatch drain run (default 100000, quick 20000)")
	flag.IntVar(&s.inFlight, "in-flight", 64, "in-flight deliveries of the (unordered) consume-and-POST baseline (eventgate's dispatch.maxInFlight default)")
	flag.DurationVar(&s.rssWindow, "rss-window", 0, "how long the RSS run watches the backlog drain (default 30s, quick 5s)")
	flag.DurationVar(&s.slowDelay, "slow-delay", 50*time.Millisecond, "the slow subscriber's answer delay in the RSS run")
	flag.DurationVar(&s.adaptiveSecs, "adaptive-duration", 0, "the adaptive path's drains hold this long's worth of events at the subscriber's capacity (default 2s, quick 1s)")
	flag.IntVar(&s.adaptiveRuns, "adaptive-runs", 1, "repetitions of each drain of the adaptive path (12 cells × 5 limits: one repetition is ~7 minutes)")
	flag.StringVar(&s.only, "only", "", "comma-separated subset of paths: ingress-memory,ingress-kafka,batch-kafka,dispatch,dispatch-https,dispatch-ordered,dispatch-keyed,dispatch-ordered-trigger,dispatch-memory,ingress-nats,batch-nats,dispatch-nats,latency,rss,triggers,tracing-ingress,tracing-dispatch,subs-kafka,subs-memory,adaptive")
	flag.Float64Var(&s.adaptiveStalls, "adaptive-stalls", 0, "the adaptive path's subscribers pause about this many times a second, 5–25 ms each, as a busy machine stalls (bench sink --stalls); default none")
	flag.StringVar(&s.adaptiveOnly, "adaptive-cells", "", "the adaptive path's cells to run, as KNEExSERVICE separated by commas (e.g. 2x50ms,32x10ms); default the whole grid (--quick: its corners)")
	flag.IntVar(&s.subs, "subs", 0, "subscriptions on the gateway of the subs-kafka and subs-memory paths (default 1000, quick 100)")
	flag.IntVar(&s.subsRate, "subs-rate", 1000, "deliveries/s the subs paths spread over the subscriptions")
	flag.StringVar(&s.profile, "profile", "", "directory to save each gateway's CPU profile (its first --duration) and heap profile in, as PATH-N-cpu.pprof and PATH-N-heap.pprof")
	flag.Parse()
	s.defaults()
	if s.bin == "" {
		fmt.Fprintln(os.Stderr, "runner: --bin is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	r := &runner{s: s, id: strconv.FormatInt(time.Now().Unix(), 36)}
	if s.profile != "" {
		if err := os.MkdirAll(s.profile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "runner: --profile:", err)
			os.Exit(2)
		}
		r.prof = newProfiler(s.profile, s.duration)
	}
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
	s.adaptiveRuns = max(1, s.adaptiveRuns)
	if s.duration == 0 {
		s.duration = map[bool]time.Duration{false: 10 * time.Second, true: 3 * time.Second}[s.quick]
	}
	if s.drainN == 0 {
		s.drainN = map[bool]int64{false: 100000, true: 20000}[s.quick]
	}
	if s.adaptiveSecs == 0 {
		s.adaptiveSecs = map[bool]time.Duration{false: 2 * time.Second, true: time.Second}[s.quick]
	}
	if s.rssWindow == 0 {
		s.rssWindow = map[bool]time.Duration{false: 30 * time.Second, true: 5 * time.Second}[s.quick]
	}
	def(&s.subs, 1000, 100)
	s.idleSettle = map[bool]time.Duration{false: 10 * time.Second, true: 5 * time.Second}[s.quick]
	s.idleWindow = map[bool]time.Duration{false: 20 * time.Second, true: 10 * time.Second}[s.quick]
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
	nats  bool
	// measured maxima that later paths derive their rate from
	memMax, kafkaMax, natsMax float64
	memSeq                    int // numbers memoryDrain's channels
	topics                    []string
	streams                   []string
	prof                      *profiler // nil without --profile
	tmp                       string    // a directory for the run's files, removed at its end
}

func (r *runner) bin(name string) string { return filepath.Join(r.s.bin, name) }

func (r *runner) run(ctx context.Context) (*Report, error) {
	r.rep = &Report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Settings: map[string]any{
		"quick": r.s.quick, "runs": r.s.runs, "duration_s": r.s.duration.Seconds(), "concurrency": r.s.concurrency,
		"size": r.s.size, "batch_concurrency": r.s.batchConc, "batch_size": 100, "drain_events": r.s.drainN, "drain_keys": r.s.drainKeys,
		"in_flight": r.s.inFlight, "backlog_events": r.s.backlog, "rss_window_s": r.s.rssWindow.Seconds(),
		"slow_delay_ms": r.s.slowDelay.Milliseconds(), "subs": r.s.subs, "subs_rate": r.s.subsRate,
		"idle_settle_s": r.s.idleSettle.Seconds(), "idle_window_s": r.s.idleWindow.Seconds(),
		"adaptive_duration_s": r.s.adaptiveSecs.Seconds(), "adaptive_runs": r.s.adaptiveRuns,
		"adaptive_stalls_per_s": r.s.adaptiveStalls,
	}}
	tmp, err := os.MkdirTemp("", "eventgate-bench-")
	if err != nil {
		return r.rep, err
	}
	r.tmp = tmp
	defer os.RemoveAll(tmp)
	r.kafka = reachable(r.s.brokers)
	if !r.kafka && r.wantsKafka() {
		r.rep.Errors = append(r.rep.Errors, "Kafka at "+r.s.brokers+" does not answer: Kafka paths skipped (scripts/kafka up)")
	}
	r.nats = reachable(natsHostPort(r.s.nats))
	if !r.nats && r.wantsNATS() {
		r.rep.Errors = append(r.rep.Errors, "NATS at "+r.s.nats+" does not answer: NATS paths skipped (scripts/nats up)")
	}
	defer r.deleteTopics()
	defer r.deleteStreams()
	const kafka, nats = "kafka", "nats"
	steps := []struct {
		path  string
		needs string // the server the path needs: kafka, nats or none
		fn    func(context.Context) error
	}{
		{"ingress-memory", "", r.ingressMemory},
		{"ingress-kafka", kafka, r.ingressKafka},
		{"batch-kafka", kafka, r.batchKafka},
		{"dispatch", kafka, r.dispatch},
		{"dispatch-https", kafka, r.dispatchHTTPS},
		{"dispatch-ordered", kafka, r.dispatchOrdered},
		{"dispatch-keyed", kafka, r.dispatchKeyed},
		{"dispatch-ordered-trigger", kafka, r.dispatchOrderedTrigger},
		{"dispatch-memory", "", r.dispatchMemory},
		{"ingress-nats", nats, r.ingressNATS},
		{"batch-nats", nats, r.batchNATS},
		{"dispatch-nats", nats, r.dispatchNATS},
		{"latency", "", r.latency},
		{"rss", kafka, r.rss},
		{"triggers", kafka, r.triggers},
		{"tracing-ingress", "", r.tracingIngress},
		{"tracing-dispatch", kafka, r.tracingDispatch},
		{"subs-memory", "", r.subsMemory},
		{"subs-kafka", kafka, r.subsKafka},
		{"adaptive", "", r.adaptive},
	}
	for _, st := range steps {
		if !r.s.want(st.path) || (st.needs == kafka && !r.kafka) || (st.needs == nats && !r.nats) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", st.path)
		if r.prof != nil {
			r.prof.setPath(st.path)
		}
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

// wantsKafka and wantsNATS say whether the selected paths include any on that server.
func (r *runner) wantsKafka() bool {
	return slices.ContainsFunc([]string{"ingress-kafka", "batch-kafka", "dispatch", "dispatch-https", "dispatch-ordered", "dispatch-keyed", "dispatch-ordered-trigger", "rss", "triggers", "tracing-dispatch", "subs-kafka"}, r.s.want)
}

func (r *runner) wantsNATS() bool {
	return slices.ContainsFunc([]string{"ingress-nats", "batch-nats", "dispatch-nats"}, r.s.want)
}

// natsHostPort is the host:port of a nats:// URL (the URL as it is when it does not parse).
func natsHostPort(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
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
