package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/internal/loadgen"
)

type benchFlags struct {
	rate        float64
	concurrency int
	duration    time.Duration
	count       int64
	size        int
	types       int
	keys        int
	targets     int
	mode        string
	batchSize   int
	timeout     time.Duration
	maxInFlight int
	jsonOut     bool
	progress    bool
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench URL",
		Short: "Load a CloudEvents endpoint and report throughput, latency and answers",
		Long: `bench sends CloudEvents to URL (an eventgate channel or any CloudEvents receiver) and prints
events/s, request latency (p50/p90/p99/max) and the answers by HTTP status.

--concurrency N runs a closed loop (N senders, each waits for its answer); --rate N runs an open loop
(N requests per second on schedule, latency counted from the scheduled start). The run ends after
--duration or --count events, whichever comes first. --mode binary|structured|batch picks the
CloudEvents HTTP content mode (batch: --batch-size events per request). A progress line is printed on
standard error once a second on a terminal (or always with --progress); --json prints the summary
as JSON. It exits 1 when no event was answered 2xx.

"bench sink" runs the receiving side: it answers 202 and measures end-to-end latency from each
event's time attribute.`,
		Example: `  eventgate bench http://127.0.0.1:8080/default/demo --concurrency 32 --duration 10s
  eventgate bench http://127.0.0.1:8080/default/demo --rate 2000/s --count 100000 --size 1024 --json
  eventgate bench http://127.0.0.1:8080/default/demo --mode batch --batch-size 100 --concurrency 8 --duration 30s
  eventgate bench sink --port 8081 --count 100000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(args[0], cmd.Flags().Changed("concurrency"))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ctx, stop := signal.NotifyContext(contextOf(cmd), syscall.SIGTERM, os.Interrupt)
			defer stop()
			errOut := cmd.ErrOrStderr()
			var progress func(loadgen.Progress)
			if f.progress || isTerminal(errOut) {
				progress = progressPrinter(errOut, isTerminal(errOut))
			}
			res, err := loadgen.Run(ctx, cfg, progress)
			if progress != nil && isTerminal(errOut) {
				fmt.Fprintln(errOut)
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if f.jsonOut {
				if err := writeJSON(cmd.OutOrStdout(), benchJSON{Target: cfg.URL, Result: res}); err != nil {
					return err
				}
			} else {
				printBenchSummary(cmd.OutOrStdout(), cfg.URL, res)
			}
			if res.Events == 0 {
				return &exitError{code: 1, err: errors.New("bench: no event was answered 2xx")}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Var((*rateValue)(&f.rate), "rate", "open loop: requests per second, e.g. 500 or 500/s")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 16, "closed loop: concurrent senders (the default loop)")
	fl.DurationVarP(&f.duration, "duration", "d", 0, "run this long (default 10s when --count is not set)")
	fl.Int64VarP(&f.count, "count", "n", 0, "stop after this many events")
	fl.IntVar(&f.size, "size", 512, "bytes of data per event")
	fl.IntVar(&f.types, "types", 0, "spread events over this many types, dev.eventgate.bench.0 … .N-1, in turn (to load trigger filters)")
	fl.IntVar(&f.keys, "keys", 0, "give the events a partitionkey of this many values, k0 … kN-1, in turn (for ordered delivery per key)")
	fl.IntVar(&f.targets, "targets", 0, "spread requests over this many URLs, in turn: URL with {n} replaced by 0 … N-1 (to load many channels)")
	fl.StringVar(&f.mode, "mode", "binary", "content mode: binary, structured or batch")
	fl.IntVar(&f.batchSize, "batch-size", loadgen.DefaultBatchSize, "events per request in batch mode")
	fl.DurationVar(&f.timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout")
	fl.IntVar(&f.maxInFlight, "max-in-flight", loadgen.DefaultMaxInFlight, "open loop: most requests in progress")
	fl.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fl.BoolVar(&f.progress, "progress", false, "print the progress line even when standard error is not a terminal")
	cmd.AddCommand(newBenchSinkCmd())
	return cmd
}

// config turns the flags into a loadgen.Config; --rate wins over the default concurrency, and both
// given explicitly is an error.
func (f *benchFlags) config(url string, concurrencySet bool) (loadgen.Config, error) {
	cfg := loadgen.Config{URL: url, Duration: f.duration, Count: f.count, Size: f.size, Types: f.types, Keys: f.keys, Targets: f.targets,
		Mode: loadgen.Mode(f.mode), BatchSize: f.batchSize, Timeout: f.timeout, MaxInFlight: f.maxInFlight}
	switch {
	case f.rate > 0 && concurrencySet:
		return cfg, errors.New("--rate and --concurrency: give one, not both")
	case f.rate > 0:
		cfg.Rate = f.rate
	default:
		cfg.Concurrency = f.concurrency
	}
	if cfg.Duration == 0 && cfg.Count == 0 {
		cfg.Duration = 10 * time.Second
	}
	return cfg, nil
}

// rateValue is a pflag.Value taking "N" or "N/s".
type rateValue float64

func (r *rateValue) String() string {
	if *r == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(*r), 'f', -1, 64) + "/s"
}

func (r *rateValue) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "/s"), 64)
	if err != nil || v <= 0 || v != v {
		return fmt.Errorf("want a positive rate such as 500 or 500/s, got %q", s)
	}
	*r = rateValue(v)
	return nil
}

func (r *rateValue) Type() string { return "rate" }

type benchJSON struct {
	Target string `json:"target"`
	loadgen.Result
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressPrinter prints one line per report: rewritten in place on a terminal, appended otherwise.
func progressPrinter(w io.Writer, inPlace bool) func(loadgen.Progress) {
	var lastEvents int64
	var lastAt time.Duration
	return func(p loadgen.Progress) {
		rate := 0.0
		if d := (p.Elapsed - lastAt).Seconds(); d > 0 {
			rate = float64(p.Events-lastEvents) / d
		}
		lastEvents, lastAt = p.Events, p.Elapsed
		end := "\n"
		if inPlace {
			end = "\x1b[K\r"
		}
		fmt.Fprintf(w, "%6.1fs  %d requests  %d events ok  %d failed  %.0f events/s%s",
			p.Elapsed.Seconds(), p.Requests, p.Events, p.Failed, rate, end)
	}
}

func printBenchSummary(w io.Writer, url string, r loadgen.Result) {
	load := fmt.Sprintf("closed loop, %d concurrent", r.Concurrency)
	if r.Loop == "open" {
		load = fmt.Sprintf("open loop, %g requests/s", r.Rate)
	}
	mode := string(r.Mode)
	if r.Mode == loadgen.Batch {
		mode = fmt.Sprintf("batch of %d", r.BatchSize)
	}
	fmt.Fprintf(w, "target     %s\n", url)
	fmt.Fprintf(w, "load       %s, %s, %d-byte events\n", load, mode, r.Size)
	fmt.Fprintf(w, "elapsed    %.2fs\n", r.Elapsed)
	fmt.Fprintf(w, "requests   %d (%.1f/s)\n", r.Requests, r.RequestsPS)
	fmt.Fprintf(w, "events     %d answered 2xx of %d sent (%.1f/s)\n", r.Events, r.Attempted, r.EventsPerS)
	printLatency(w, "latency", r.Latency)
	fmt.Fprintf(w, "answers    %s\n", formatCodes(r.Codes))
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "error      %s\n", e)
	}
}

func printLatency(w io.Writer, label string, s loadgen.Summary) {
	fmt.Fprintf(w, "%-10s p50 %s  p90 %s  p99 %s  max %s  (%d samples)\n", label,
		ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), s.Count)
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) + "ms" }

func formatCodes(codes map[string]int64) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, codes[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

type sinkFlags struct {
	address  string
	port     int
	count    int64
	delay    time.Duration
	knee     int
	service  time.Duration
	stalls   float64
	tlsCert  string
	tlsKey   string
	jsonOut  bool
	progress bool
}

func newBenchSinkCmd() *cobra.Command {
	var f sinkFlags
	cmd := &cobra.Command{
		Use:   "sink",
		Short: "Receive CloudEvents, answer 202 and measure end-to-end latency",
		Long: `sink listens on --address:--port (port 0 picks a free one; the address is printed on standard
error as "listening on HOST:PORT"), answers every CloudEvent 202 and measures end-to-end latency from
each event's time attribute to its arrival. It prints the summary (events, events/s from first to last
arrival, latency p50/p90/p99/max) on SIGTERM or SIGINT, or once --count events have arrived.
It also reports the response time, from each request's arrival to its answer.
--delay makes it a slow subscriber. --knee K --service S make one with a knee: it serves up to K
requests at once, each for S, and requests beyond K wait their turn, so latency rises with each
request in flight past K and throughput is capped at K/S (a subscriber whose queue builds up, to
measure a sender's concurrency limit against). --stalls N pauses it about N times a second, 5–25 ms
each, at random but the same in every run, as a busy machine's stalls do: nothing is answered
during a pause.
--tls-cert FILE --tls-key FILE (PEM, given together) serve HTTPS instead of plain HTTP, HTTP/1.1 only:
HTTP/2 is not offered (a client asking for it over ALPN gets HTTP/1.1), as the gateway delivers over
HTTP/1.1. Without them it serves plain HTTP.`,
		Example: `  eventgate bench sink --port 8081
  eventgate bench sink --port 0 --count 100000 --json
  eventgate bench sink --port 8081 --delay 50ms
  eventgate bench sink --port 8081 --knee 8 --service 10ms
  eventgate bench sink --port 8081 --knee 8 --service 10ms --stalls 10
  eventgate bench sink --port 8443 --tls-cert tls.crt --tls-key tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(contextOf(cmd), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runSink(ctx, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.address, "address", "127.0.0.1", "address to listen on")
	fl.IntVarP(&f.port, "port", "p", 8081, "port to listen on (0: any free port)")
	fl.Int64VarP(&f.count, "count", "n", 0, "exit after this many events (0: run until SIGTERM)")
	fl.DurationVar(&f.delay, "delay", 0, "hold each answer this long (a slow subscriber)")
	fl.IntVar(&f.knee, "knee", 0, "serve at most this many requests at once (with --service); the rest wait in arrival order")
	fl.DurationVar(&f.service, "service", 0, "with --knee: how long each request is served")
	fl.Float64Var(&f.stalls, "stalls", 0, "pause every answer about this many times a second, 5–25 ms each (a busy machine's stalls)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS (HTTP/1.1 only) with this PEM certificate file (with --tls-key; default plain HTTP)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the PEM private key file of --tls-cert")
	fl.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fl.BoolVar(&f.progress, "progress", false, "print a progress line even when standard error is not a terminal")
	return cmd
}

// runSink serves a loadgen.Sink until ctx ends or f.count events have arrived, then prints the summary.
// It serves HTTPS, HTTP/1.1 only, when f has a certificate and key (see sinkTLSConfig). It blocks,
// and it waits for the server to stop before returning.
func runSink(ctx context.Context, f sinkFlags, out, errOut io.Writer) error {
	sink, err := loadgen.NewSink(loadgen.SinkOptions{Expect: f.count, Delay: f.delay, Knee: f.knee, Service: f.service,
		Stalls: f.stalls})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench sink: %w (--delay, --knee, --service, --stalls)", err)}
	}
	tlsConfig, err := sinkTLSConfig(f.tlsCert, f.tlsKey)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench sink: %w", err)}
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(f.address, strconv.Itoa(f.port)))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench sink: %w", err)}
	}
	srv := &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	served := make(chan error, 1)
	if tlsConfig != nil {
		srv.TLSConfig = tlsConfig
		// A non-nil TLSNextProto without "h2" turns HTTP/2 off: ALPN offers http/1.1 only.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		go func() { served <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}
	fmt.Fprintf(errOut, "listening on %s\n", ln.Addr())

	var ticker <-chan time.Time
	inPlace := isTerminal(errOut)
	if f.progress || inPlace {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		ticker = t.C
	}
	start := time.Now()
	var last int64
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-sink.Done():
			break wait
		case err := <-served:
			return fmt.Errorf("bench sink: %w", err)
		case <-ticker:
			r := sink.Result()
			end := "\n"
			if inPlace {
				end = "\x1b[K\r"
			}
			fmt.Fprintf(errOut, "%6.1fs  %d events  %.0f events/s  p99 %s%s", time.Since(start).Seconds(),
				r.Events, float64(r.Events-last), ms(r.Latency.P99), end)
			last = r.Events
		}
	}
	// Answer what is in progress, then stop; the summary covers everything that arrived.
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute) // a queue past a knee drains
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	<-served
	if inPlace {
		fmt.Fprintln(errOut)
	}
	r := sink.Result()
	if f.jsonOut {
		return writeJSON(out, r)
	}
	fmt.Fprintf(out, "events     %d in %d requests (%d invalid, %d without time)\n", r.Events, r.Requests, r.Invalid, r.Untimed)
	fmt.Fprintf(out, "elapsed    %.2fs first to last arrival (%.1f events/s; %.1f/s to the last answer)\n", r.Elapsed, r.EventsPerS, r.AnsweredPerS)
	printLatency(out, "end-to-end", r.Latency)
	printLatency(out, "response", r.Response)
	return nil
}

// sinkTLSConfig is the sink's TLS configuration from --tls-cert and --tls-key: nil when neither is
// given (plain HTTP), an error when only one is or the pair does not load.
func sinkTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
