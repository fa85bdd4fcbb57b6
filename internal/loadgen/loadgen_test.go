package loadgen

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/event"
)

func TestHistogramQuantilesMatchSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	samples := make([]time.Duration, 20000)
	for i := range samples {
		// Log-uniform from 1µs to 10s: every bucket range gets exercised.
		d := time.Duration(float64(time.Microsecond) * math.Pow(10, r.Float64()*7))
		samples[i] = d
		h.Record(d)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		want := samples[int(q*float64(len(samples))+0.999999)-1]
		got := h.Quantile(q)
		if rel := float64(got-want) / float64(want); rel < 0 || rel > 1.0/subCount {
			t.Errorf("q%.3f = %v, want %v within +%.2f%% (got %+.3f%%)", q, got, want, 100.0/subCount, rel*100)
		}
	}
	if h.Max() != samples[len(samples)-1] || h.Min() != samples[0] {
		t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), samples[0], samples[len(samples)-1])
	}
	if h.Count() != uint64(len(samples)) {
		t.Errorf("count = %d", h.Count())
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.Record(-5) // clock skew counts as zero
	h.Record(3)
	h.Record(time.Duration(1<<62 + 12345))
	if h.Min() != 0 || h.Max() != time.Duration(1<<62+12345) {
		t.Errorf("min/max = %v/%v", h.Min(), h.Max())
	}
	if got := h.Quantile(0.5); got != 3 {
		t.Errorf("median = %v, want 3ns (exact below %d)", got, subCount)
	}
	if got := h.Quantile(1.5); got != h.Max() {
		t.Errorf("q>1 = %v, want max", got)
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&Histogram{})
	if m.Count() != 3 || m.Max() != h.Max() || m.Quantile(0.5) != 3 {
		t.Errorf("merged: count %d max %v median %v", m.Count(), m.Max(), m.Quantile(0.5))
	}
	if bucketOf(math.MaxInt64) != maxBuckets-1 {
		t.Fatalf("top bucket %d, want %d", bucketOf(math.MaxInt64), maxBuckets-1)
	}
	for i := range maxBuckets {
		if i > 0 && bucketHigh(i) <= bucketHigh(i-1) {
			t.Fatalf("bucket %d high %d not above bucket %d's %d", i, bucketHigh(i), i-1, bucketHigh(i-1))
		}
		if b := bucketOf(bucketHigh(i)); b != i && bucketHigh(i) != int64(^uint64(0)>>1) {
			t.Fatalf("bucketOf(bucketHigh(%d)) = %d", i, b)
		}
	}
}

func TestRunClosedLoopAgainstSink(t *testing.T) {
	for _, mode := range []Mode{Binary, Structured, Batch} {
		t.Run(string(mode), func(t *testing.T) {
			sink := mustSink(t, SinkOptions{Expect: 250})
			srv := httptest.NewServer(sink)
			t.Cleanup(srv.Close)
			res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 4, Count: 250, Size: 64, Mode: mode, BatchSize: 10}, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantReqs := int64(250)
			if mode == Batch {
				wantReqs = 25
			}
			if res.Requests != wantReqs || res.Events != 250 || res.Codes["202"] != wantReqs || len(res.Codes) != 1 {
				t.Fatalf("requests %d events %d codes %v; want %d requests, 250 events, all 202", res.Requests, res.Events, res.Codes, wantReqs)
			}
			if res.Latency.Count != uint64(wantReqs) || res.Latency.Max < res.Latency.P50 || res.Latency.P50 <= 0 {
				t.Errorf("latency %+v", res.Latency)
			}
			select {
			case <-sink.Done():
			default:
				t.Fatal("sink not done after 250 events")
			}
			sr := sink.Result()
			if sr.Events != 250 || sr.Untimed != 0 || sr.Invalid != 0 || sr.Latency.Count != 250 {
				t.Fatalf("sink %+v", sr)
			}
		})
	}
}

func TestRunCountsFailuresByCode(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := event.ParseHTTP(r.Header, nil); err != nil && r.Header.Get("Ce-Id") == "" {
			t.Errorf("request is not a binary CloudEvent: %v", err)
		}
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 1, Count: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Codes["202"] != 50 || res.Codes["429"] != 50 || res.Events != 50 || res.Attempted != 100 {
		t.Fatalf("codes %v events %d attempted %d", res.Codes, res.Events, res.Attempted)
	}
}

func TestRunOpenLoopHoldsRateAndReportsProgress(t *testing.T) {
	sink := mustSink(t, SinkOptions{})
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	var ticks atomic.Int64
	res, err := Run(t.Context(), Config{URL: srv.URL, Rate: 200, Duration: 1500 * time.Millisecond},
		func(Progress) { ticks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 1.5s schedules 300 requests (the first at t=0): all of them are sent, late if the
	// machine is busy, and none more.
	if res.Requests != 300 || res.Loop != "open" {
		t.Fatalf("requests %d loop %s, want ~300 open", res.Requests, res.Loop)
	}
	if ticks.Load() < 1 {
		t.Error("no progress reported in 1.5s")
	}
	if sink.Result().Events != res.Events {
		t.Errorf("sink saw %d, generator says %d answered", sink.Result().Events, res.Events)
	}
}

func TestRunTransportErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	res, err := Run(t.Context(), Config{URL: url, Concurrency: 2, Count: 10, Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Codes["error"] != 10 || res.Events != 0 || len(res.FirstErrors) == 0 {
		t.Fatalf("codes %v events %d errors %v", res.Codes, res.Events, res.FirstErrors)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for name, c := range map[string]Config{
		"no url":        {Concurrency: 1, Count: 1},
		"both loops":    {URL: "http://x", Rate: 1, Concurrency: 1, Count: 1},
		"no loop":       {URL: "http://x", Count: 1},
		"unbounded":     {URL: "http://x", Concurrency: 1},
		"bad mode":      {URL: "http://x", Concurrency: 1, Count: 1, Mode: "avro"},
		"negative size": {URL: "http://x", Concurrency: 1, Count: 1, Size: -1},
		"bad url":       {URL: "http://[::1", Concurrency: 1, Count: 1},
	} {
		if _, err := Run(context.Background(), c, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

func TestSinkLatencyFromTimeAttribute(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sink := mustSink(t, SinkOptions{Expect: 2, Now: func() time.Time { return now }})
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	post := func(h map[string]string, body string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(body))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	binary := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "t",
		"Ce-Time": now.Add(-30 * time.Millisecond).Format(time.RFC3339Nano)}
	if c := post(binary, "hi"); c != http.StatusAccepted {
		t.Fatalf("binary: %d", c)
	}
	structured := `{"specversion":"1.0","id":"2","source":"/s","type":"t","time":"` + now.Add(-10*time.Millisecond).Format(time.RFC3339Nano) + `"}`
	if c := post(map[string]string{"Content-Type": event.MediaTypeStructuredJSON}, structured); c != http.StatusAccepted {
		t.Fatalf("structured: %d", c)
	}
	if c := post(map[string]string{"Content-Type": "text/plain"}, "not an event"); c != http.StatusBadRequest {
		t.Fatalf("not an event: %d, want 400", c)
	}
	<-sink.Done()
	r := sink.Result()
	if r.Events != 2 || r.Invalid != 1 || r.Requests != 3 || r.Latency.Max != 30 || r.Latency.Min != 10 {
		t.Fatalf("result %+v", r)
	}
}

func TestSinkDelayAnswersLate(t *testing.T) {
	sink := mustSink(t, SinkOptions{Delay: 50 * time.Millisecond})
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 1, Count: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Latency.Min < 50 || res.Events != 3 {
		t.Fatalf("latency %+v events %d: want every answer ≥ 50ms", res.Latency, res.Events)
	}
}

func TestTargetsSpreadRequestsOverURLs(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths[r.URL.Path]++
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL + "/ns/ch-{n}", Concurrency: 2, Count: 30, Targets: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 30 {
		t.Fatalf("events %d, want 30", res.Events)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"/ns/ch-0": 10, "/ns/ch-1": 10, "/ns/ch-2": 10}
	if len(paths) != 3 || paths["/ns/ch-0"] != 10 || paths["/ns/ch-1"] != 10 || paths["/ns/ch-2"] != 10 {
		t.Errorf("requests per path %v, want %v", paths, want)
	}
	if _, err := Run(context.Background(), Config{URL: srv.URL + "/ns/ch", Concurrency: 1, Count: 1, Targets: 3}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("targets without %s in the url: err %v, want ErrConfig", TargetPlaceholder, err)
	}
}

func TestTypesCycle(t *testing.T) {
	g, err := newGenerator(Config{URL: "http://127.0.0.1:1/x", Type: "t", Types: 3})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 30 {
		counts[g.event().Type]++
	}
	if len(counts) != 3 || counts["t.0"] != 10 || counts["t.1"] != 10 || counts["t.2"] != 10 {
		t.Errorf("types over 30 events: %v, want t.0, t.1, t.2 ten times each", counts)
	}
	g, _ = newGenerator(Config{URL: "http://127.0.0.1:1/x", Type: "t", Types: 1})
	if typ := g.event().Type; typ != "t" {
		t.Errorf("one type: %q, want t", typ)
	}
}

func TestKeysCycle(t *testing.T) {
	g, err := newGenerator(Config{URL: "http://127.0.0.1:1/x", Keys: 4})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range 40 {
		counts[g.event().Extension(event.PartitionKeyExtension)]++
	}
	if len(counts) != 4 || counts["k0"] != 10 || counts["k1"] != 10 || counts["k2"] != 10 || counts["k3"] != 10 {
		t.Errorf("partition keys over 40 events: %v, want k0 … k3 ten times each", counts)
	}
	g, _ = newGenerator(Config{URL: "http://127.0.0.1:1/x"})
	if e := g.event(); len(e.Extensions) != 0 {
		t.Errorf("no keys: extensions %v, want none", e.Extensions)
	}
	if _, err := Run(context.Background(), Config{URL: "http://127.0.0.1:1/x", Concurrency: 1, Count: 1, Keys: -1}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("keys -1: err %v, want ErrConfig", err)
	}
}

// mustSink is NewSink for options known to be valid.
func mustSink(t testing.TB, o SinkOptions) *Sink {
	t.Helper()
	s, err := NewSink(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSinkOptionsValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		o    SinkOptions
		want string // "" valid
	}{
		"none":              {SinkOptions{}, ""},
		"delay":             {SinkOptions{Delay: time.Millisecond}, ""},
		"knee":              {SinkOptions{Knee: 4, Service: time.Millisecond}, ""},
		"knee without time": {SinkOptions{Knee: 4}, "knee and service go together"},
		"time without knee": {SinkOptions{Service: time.Millisecond}, "knee and service go together"},
		"knee and delay":    {SinkOptions{Knee: 4, Service: time.Millisecond, Delay: time.Millisecond}, "exclude each other"},
		"negative knee":     {SinkOptions{Knee: -1, Service: time.Millisecond}, "knee must not be negative"},
		"negative delay":    {SinkOptions{Delay: -time.Second}, "delay must not be negative"},
		"negative service":  {SinkOptions{Knee: 1, Service: -time.Second}, "service must not be negative"},
		"stalls":            {SinkOptions{Knee: 4, Service: time.Millisecond, Stalls: 10}, ""},
		"negative stalls":   {SinkOptions{Stalls: -1}, "stalls must be a rate"},
		"stalls not a rate": {SinkOptions{Stalls: math.NaN()}, "stalls must be a rate"},
	} {
		err := tc.o.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
		if _, nerr := NewSink(tc.o); (nerr == nil) != (err == nil) {
			t.Errorf("%s: NewSink error %v, Validate %v", name, nerr, err)
		}
	}
}

// waitOccupancy polls the sink until serving and waiting are as wanted.
func waitOccupancy(t *testing.T, s *Sink, serving, waiting int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sv, wt := s.occupancy()
		if sv == serving && wt == waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink serving %d, waiting %d; want %d, %d", sv, wt, serving, waiting)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
}

// A sink with a knee serves at most Knee requests at once; the rest wait, in arrival order, and a
// waiting request whose sender gives up is answered 503 without taking a server.
func TestSinkKneeQueuesPastTheKnee(t *testing.T) {
	const knee = 2
	sink := mustSink(t, SinkOptions{Knee: knee, Service: time.Hour}) // nobody finishes on their own
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	type answer struct {
		n      int
		status int
	}
	answers := make(chan answer, 8)
	cancels := make([]context.CancelFunc, 5)
	for i := range cancels {
		ctx, cancel := context.WithCancel(t.Context())
		cancels[i] = cancel
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("x"))
			req.Header.Set("Ce-Specversion", "1.0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{i, 0}
				return
			}
			resp.Body.Close()
			answers <- answer{i, resp.StatusCode}
		}()
		// One at a time, so the arrival order is known.
		waitOccupancy(t, sink, min(i+1, knee), max(0, i+1-knee))
	}
	// Request 3 waits behind 0 and 1; when it gives up, 2 and 4 still wait, and nothing was served.
	cancels[3]()
	if a := <-answers; a.n != 3 {
		t.Fatalf("request %d ended first, want 3", a.n)
	}
	waitOccupancy(t, sink, knee, 2)
	if got := sink.Result().Response.Count; got != 0 {
		t.Fatalf("%d responses counted, want 0 (none was served)", got)
	}
	for _, c := range []int{0, 1, 2, 4} {
		cancels[c]()
	}
	for range 4 {
		<-answers
	}
	waitOccupancy(t, sink, 0, 0)
}

// Past the knee, throughput is capped at Knee/Service and the response time grows with the queue.
func TestSinkKneeCapsThroughput(t *testing.T) {
	const knee, service, n = 2, 20 * time.Millisecond, 30
	sink := mustSink(t, SinkOptions{Knee: knee, Service: service, Expect: n})
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 3 * knee, Count: n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-sink.Done()
	r := sink.Result()
	if res.Events != n || r.Events != n || r.Response.Count != n {
		t.Fatalf("%d sent, %d arrived, %d responses; want %d", res.Events, r.Events, r.Response.Count, n)
	}
	ms := float64(service) / float64(time.Millisecond)
	// Lower bounds only, which a slow machine cannot break: every answer took at least the service
	// time, and the last request is sent only after n − 3×knee answers, which knee servers give no
	// faster than knee per service time.
	if r.Response.Min < ms {
		t.Errorf("fastest response %.1fms, want ≥ the %.0fms service time", r.Response.Min, ms)
	}
	if floor := float64(n-3*knee) / knee * ms / 1000; r.Elapsed < floor {
		t.Errorf("%d requests in %.3fs, faster than %d servers of %v allow (%.3fs)", n, r.Elapsed, knee, service, floor)
	}
	// Answers come no faster than knee per service time: the answered rate is at most knee/service.
	if ceiling := knee / service.Seconds(); r.AnsweredPerS > ceiling || r.AnsweredPerS <= 0 {
		t.Errorf("answered %.1f/s, want in (0, %.0f/s]", r.AnsweredPerS, ceiling)
	}
	t.Logf("response p50 %.1fms p99 %.1fms with %d in flight on %d servers of %v; %.0f/s", r.Response.P50,
		r.Response.P99, 3*knee, knee, service, r.EventsPerS)
}

// A sink's stalls: a time within a pause is answered at its end, any other at once; the pauses
// last 5–25 ms, come about Stalls times a second, and are the same in two sinks.
func TestSinkStallsPauseAnswers(t *testing.T) {
	const rate = 10
	a, err := NewSink(SinkOptions{Stalls: rate})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSink(SinkOptions{Stalls: rate})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_700_000_000, 0)
	var paused, pauses time.Duration
	count := 0
	prevEnd := start
	const span = 1000 * time.Second
	for now := start; now.Before(start.Add(span)); now = now.Add(time.Millisecond) {
		end := a.stalls.until(now)
		if other := b.stalls.until(now); !other.Equal(end) {
			t.Fatalf("at %v: one sink pauses until %v, another until %v; want the same pauses", now.Sub(start), end.Sub(start), other.Sub(start))
		}
		switch {
		case end.Before(now):
			t.Fatalf("at %v: answered at %v, before it was due", now.Sub(start), end.Sub(start))
		case end.Equal(now):
		default:
			paused += time.Millisecond
			if !end.Equal(prevEnd) { // a new pause: its length is its end less the first millisecond in it
				count++
				if d := end.Sub(now); d > 25*time.Millisecond || d <= 4*time.Millisecond {
					t.Fatalf("a pause from about %v lasts %v, want 5–25ms", now.Sub(start), d)
				}
				pauses += end.Sub(now)
				prevEnd = end
			}
		}
	}
	perS := float64(count) / span.Seconds()
	t.Logf("%d pauses in %v (%.2f a second), %v paused in all (%.1f%%), mean %v", count, span, perS, paused,
		100*paused.Seconds()/span.Seconds(), pauses/time.Duration(count))
	if perS < 0.95*rate || perS > 1.05*rate {
		t.Errorf("%.2f pauses a second, want about %d", perS, rate)
	}
	if frac := paused.Seconds() / span.Seconds(); frac < 0.12 || frac > 0.18 {
		t.Errorf("paused %.1f%% of the time, want about 15%% (10 a second, 15ms on average)", 100*frac)
	}
}
