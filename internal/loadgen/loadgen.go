// Package loadgen is the logic behind `eventgate bench`: a load generator for any CloudEvents HTTP
// endpoint (open loop at a fixed rate, or closed loop at a fixed concurrency) and a sink that
// receives events and measures their end-to-end latency from the `time` attribute.
//
// Latency is kept in fixed-size log-linear histograms (see Histogram), so memory does not grow with
// the length of a run. The package only depends on the CloudEvents codec; it can load any receiver.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/gateway/event"
)

// Mode is how events are carried in a request (the CloudEvents HTTP binding's content modes).
type Mode string

// The content modes.
const (
	Binary     Mode = "binary"     // ce-* headers, data as the body
	Structured Mode = "structured" // application/cloudevents+json, one event
	Batch      Mode = "batch"      // application/cloudevents-batch+json, BatchSize events
)

// ErrConfig is wrapped by every configuration error Run returns.
var ErrConfig = errors.New("loadgen: invalid configuration")

// Config describes one run. Exactly one of Rate and Concurrency is set; at least one of Duration
// and Count bounds the run (both: whichever comes first).
type Config struct {
	URL string
	// Rate is the open-loop request rate in requests per second; requests start on schedule whether
	// or not earlier ones have finished (up to MaxInFlight), and latency counts from the scheduled
	// start, so a stalled server shows in the figures (no coordinated omission).
	Rate float64
	// Concurrency is the closed-loop worker count: each sends its next request when the previous one
	// is answered.
	Concurrency int
	// Duration bounds the run in time. A closed loop stops when it passes; an open loop schedules
	// Rate × Duration requests and sends every one of them, late when the machine cannot keep up.
	Duration time.Duration
	// Count bounds the run in events (in batch mode: rounded up to whole requests).
	Count int64
	// Size is the byte length of each event's data (a JSON object padded to that size). Default 0:
	// no data.
	Size int
	// Mode is the content mode; default Binary.
	Mode Mode
	// BatchSize is the events per request in Batch mode; default 100.
	BatchSize int
	// Timeout bounds each request; default 10s.
	Timeout time.Duration
	// MaxInFlight bounds open-loop requests in progress; default 1024. Requests that cannot start on
	// time start late, and their latency includes the wait.
	MaxInFlight int
	// Type and Source are the events' attributes; defaults "dev.eventgate.bench" and "/eventgate/bench".
	Type, Source string
	// Types, when above 1, spreads the events over that many types, TYPE.0 … TYPE.(Types-1), in turn
	// (for trigger filters: each type is 1/Types of the events).
	Types int
	// Keys, when above 0, gives the events a partitionkey extension of Keys values, k0 … k(Keys-1),
	// in turn (records keyed so, for ordered delivery per key).
	Keys int
	// Targets, when above 1, spreads the requests over that many URLs, in turn: URL with every
	// TargetPlaceholder replaced by 0 … Targets-1 (one channel each, to load many channels at once).
	Targets int
	// Client sends the requests; default: a client with keep-alive connections sized to the load.
	Client *http.Client
}

// TargetPlaceholder is what Targets replaces in URL with each target's number.
const TargetPlaceholder = "{n}"

// Defaults applied by Run to zero fields.
const (
	DefaultBatchSize   = 100
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 1024
	DefaultType        = "dev.eventgate.bench"
	DefaultSource      = "/eventgate/bench"
)

func (c Config) withDefaults() (Config, error) {
	if c.Mode == "" {
		c.Mode = Binary
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Mode != Batch {
		c.BatchSize = 1
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Type == "" {
		c.Type = DefaultType
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: required"))
	}
	switch c.Mode {
	case Binary, Structured, Batch:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not binary, structured or batch", c.Mode))
	}
	switch {
	case c.Rate > 0 && c.Concurrency > 0:
		errs = append(errs, errors.New("rate and concurrency: set one, not both"))
	case c.Rate <= 0 && c.Concurrency <= 0:
		errs = append(errs, errors.New("rate or concurrency: one must be positive"))
	}
	if c.Duration <= 0 && c.Count <= 0 {
		errs = append(errs, errors.New("duration or count: one must be positive"))
	}
	if c.Size < 0 {
		errs = append(errs, errors.New("size: must not be negative"))
	}
	if c.Keys < 0 {
		errs = append(errs, errors.New("keys: must not be negative"))
	}
	if c.Targets > 1 && !strings.Contains(c.URL, TargetPlaceholder) {
		errs = append(errs, fmt.Errorf("targets: %d targets need %s in the url", c.Targets, TargetPlaceholder))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	if c.Client == nil {
		conns := c.Concurrency
		if conns == 0 {
			conns = min(c.MaxInFlight, 256)
		}
		c.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
			DisableCompression: true,
		}}
	}
	return c, nil
}

// Result is the outcome of a run. Latencies are per request (a batch is one request).
type Result struct {
	Mode        Mode             `json:"mode"`
	Loop        string           `json:"loop"` // "open" or "closed"
	Rate        float64          `json:"rate,omitempty"`
	Concurrency int              `json:"concurrency,omitempty"`
	Size        int              `json:"size"`
	BatchSize   int              `json:"batch_size"`
	Elapsed     float64          `json:"elapsed_s"`
	Requests    int64            `json:"requests"`
	Events      int64            `json:"events"`    // events in requests that were answered 2xx
	Attempted   int64            `json:"attempted"` // events in every request sent
	EventsPerS  float64          `json:"events_per_s"`
	RequestsPS  float64          `json:"requests_per_s"`
	Codes       map[string]int64 `json:"codes"` // HTTP status, or "error" for no answer
	Latency     Summary          `json:"latency"`
	FirstErrors []string         `json:"first_errors,omitempty"` // up to 5 distinct transport errors
}

// Progress is a live view of a run in progress. It is a copy: safe to keep.
type Progress struct {
	Elapsed  time.Duration
	Requests int64
	Events   int64 // answered 2xx
	Failed   int64 // requests not answered 2xx
}

// counters are shared by the workers of one run.
type counters struct {
	requests, events, failed atomic.Int64
}

// worker is one sender's private state; merged at the end.
type worker struct {
	hist   Histogram
	codes  map[string]int64
	errs   []string
	events int64
	reqs   int64
}

// Run sends load as cfg says and returns the result when the run ends: after Duration, after Count
// events, or when ctx is cancelled (the result then covers what was sent; the error is nil). It blocks
// until every request it started has finished. progress, when non-nil, is called about once a second
// from one goroutine. Errors wrap ErrConfig.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	gen, err := newGenerator(cfg)
	if err != nil {
		return Result{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A closed loop runs for the duration; an open loop ends with its schedule (below), so that a
	// machine too busy to keep up sends every scheduled request late rather than fewer of them.
	if cfg.Duration > 0 && cfg.Concurrency > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeout(runCtx, cfg.Duration)
		defer cancelT()
	}
	maxReqs := int64(-1)
	if cfg.Count > 0 {
		maxReqs = (cfg.Count + int64(cfg.BatchSize) - 1) / int64(cfg.BatchSize)
	}
	var (
		c       counters
		issued  atomic.Int64 // request slots claimed
		start   = time.Now()
		workers []*worker
		wg      sync.WaitGroup
	)
	// claim reserves the next request; false when the count is reached.
	claim := func() bool {
		n := issued.Add(1)
		return maxReqs < 0 || n <= maxReqs
	}
	send := func(w *worker, scheduled time.Time) {
		code, err := gen.send(ctx, cfg)
		w.hist.Record(time.Since(scheduled))
		w.reqs++
		c.requests.Add(1)
		key := "error"
		if err == nil {
			key = strconv.Itoa(code)
		} else if len(w.errs) < 5 {
			w.errs = append(w.errs, err.Error())
		}
		w.codes[key]++
		if err == nil && code/100 == 2 {
			w.events += int64(cfg.BatchSize)
			c.events.Add(int64(cfg.BatchSize))
		} else {
			c.failed.Add(1)
		}
		if maxReqs > 0 && c.requests.Load() >= maxReqs {
			cancel()
		}
	}
	newWorker := func() *worker {
		w := &worker{codes: map[string]int64{}}
		workers = append(workers, w)
		return w
	}
	// The progress reporter.
	progDone := make(chan struct{})
	progStop := make(chan struct{})
	go func() {
		defer close(progDone)
		if progress == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-progStop:
				return
			case <-t.C:
				progress(Progress{Elapsed: time.Since(start), Requests: c.requests.Load(),
					Events: c.events.Load(), Failed: c.failed.Load()})
			}
		}
	}()
	if cfg.Concurrency > 0 {
		for range cfg.Concurrency {
			w := newWorker()
			wg.Go(func() {
				for runCtx.Err() == nil && claim() {
					send(w, time.Now())
				}
			})
		}
	} else {
		// Open loop: a scheduler hands start times to a pool of MaxInFlight senders.
		sched := make(chan time.Time, cfg.MaxInFlight)
		for range cfg.MaxInFlight {
			w := newWorker()
			wg.Go(func() {
				for at := range sched {
					send(w, at)
				}
			})
		}
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		timer := time.NewTimer(0)
	schedule:
		for i := int64(0); ; i++ {
			at := start.Add(time.Duration(i) * interval)
			// The schedule is rate × duration requests, the first at start.
			if cfg.Duration > 0 && at.Sub(start) >= cfg.Duration {
				break
			}
			timer.Reset(time.Until(at))
			select {
			case <-runCtx.Done():
				break schedule
			case <-timer.C:
			}
			if !claim() {
				break
			}
			select {
			case sched <- at:
			case <-runCtx.Done():
				break schedule
			}
		}
		timer.Stop()
		close(sched)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(progStop)
	<-progDone

	res := Result{Mode: cfg.Mode, Size: cfg.Size, BatchSize: cfg.BatchSize, Elapsed: elapsed.Seconds(),
		Codes: map[string]int64{}}
	if cfg.Concurrency > 0 {
		res.Loop, res.Concurrency = "closed", cfg.Concurrency
	} else {
		res.Loop, res.Rate = "open", cfg.Rate
	}
	var hist Histogram
	seenErr := map[string]bool{}
	for _, w := range workers {
		hist.Merge(&w.hist)
		res.Requests += w.reqs
		res.Events += w.events
		res.Attempted += w.reqs * int64(cfg.BatchSize)
		for k, v := range w.codes {
			res.Codes[k] += v
		}
		for _, e := range w.errs {
			if !seenErr[e] && len(res.FirstErrors) < 5 {
				seenErr[e] = true
				res.FirstErrors = append(res.FirstErrors, e)
			}
		}
	}
	res.Latency = hist.Summarize()
	if s := elapsed.Seconds(); s > 0 {
		res.EventsPerS = float64(res.Events) / s
		res.RequestsPS = float64(res.Requests) / s
	}
	return res, nil
}

// generator builds requests. The data is built once; ids and times change per event.
type generator struct {
	url    string
	urls   []string // the URLs requests go to in turn (Targets); nil: url
	client *http.Client
	data   []byte
	ct     string
	prefix string
	seq    atomic.Int64
	next   atomic.Int64 // requests sent, to pick the next of urls
	typ    string
	types  []string // the types events take in turn; nil: typ
	keys   []string // the partition keys events take in turn; nil: none
	source string
}

func newGenerator(cfg Config) (*generator, error) {
	g := &generator{url: cfg.URL, client: cfg.Client, typ: cfg.Type, source: cfg.Source,
		prefix: "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"}
	if cfg.Size > 0 {
		g.data, g.ct = Payload(cfg.Size)
	}
	for i := range max(cfg.Types, 0) {
		if cfg.Types > 1 {
			g.types = append(g.types, cfg.Type+"."+strconv.Itoa(i))
		}
	}
	for i := range max(cfg.Keys, 0) {
		g.keys = append(g.keys, "k"+strconv.Itoa(i))
	}
	if cfg.Targets > 1 {
		for i := range cfg.Targets {
			g.urls = append(g.urls, strings.ReplaceAll(cfg.URL, TargetPlaceholder, strconv.Itoa(i)))
		}
	}
	if _, err := http.NewRequest(http.MethodPost, cfg.URL, nil); err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrConfig, err)
	}
	return g, nil
}

// Payload returns n bytes of data and its content type: a JSON object {"p":"xxx…"} when n is large
// enough to hold one (n ≥ 8), else n bytes of 'x' as text/plain.
func Payload(n int) ([]byte, string) {
	if n < 8 {
		return bytes.Repeat([]byte("x"), n), "text/plain"
	}
	b := make([]byte, 0, n)
	b = append(b, `{"p":"`...)
	b = append(b, bytes.Repeat([]byte("x"), n-8)...)
	b = append(b, `"}`...)
	return b, "application/json"
}

func (g *generator) event() *event.Event {
	seq := g.seq.Add(1)
	typ := g.typ
	if len(g.types) > 0 {
		typ = g.types[seq%int64(len(g.types))]
	}
	e := &event.Event{
		ID: g.prefix + strconv.FormatInt(seq, 10), Source: g.source, SpecVersion: event.SpecVersion,
		Type: typ, Time: time.Now().UTC().Format(time.RFC3339Nano), DataContentType: g.ct, Data: g.data,
	}
	if len(g.keys) > 0 {
		e.Extensions = map[string]string{event.PartitionKeyExtension: g.keys[seq%int64(len(g.keys))]}
	}
	return e
}

// send posts one request and returns its status code.
func (g *generator) send(ctx context.Context, cfg Config) (int, error) {
	var (
		body []byte
		ct   string
		ev   *event.Event
	)
	switch cfg.Mode {
	case Binary:
		ev = g.event()
		body = ev.Data
	case Structured:
		b, err := event.MarshalStructured(g.event())
		if err != nil {
			return 0, err
		}
		body, ct = b, event.MediaTypeStructuredJSON
	case Batch:
		es := make([]*event.Event, cfg.BatchSize)
		for i := range es {
			es[i] = g.event()
		}
		b, err := event.MarshalBatch(es)
		if err != nil {
			return 0, err
		}
		body, ct = b, event.MediaTypeBatchJSON
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	url := g.url
	if len(g.urls) > 0 {
		url = g.urls[g.next.Add(1)%int64(len(g.urls))]
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if ev != nil {
		event.WriteHTTPBinary(ev, req.Header)
	} else {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
