package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startBenchSink runs `bench sink --port 0 --count N --json` in-process and returns its URL and a
// channel that yields its stdout once it has exited.
func startBenchSink(t *testing.T, count int64) (string, <-chan string) {
	t.Helper()
	var out bytes.Buffer
	errOut := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		err := runSink(ctx, sinkFlags{address: "127.0.0.1", port: 0, count: count, jsonOut: true}, &out, errOut)
		if err != nil {
			t.Errorf("sink: %v", err)
		}
		done <- out.String()
	}()
	t.Cleanup(func() { cancel(); <-exited })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if addr, ok := strings.CutPrefix(strings.TrimSpace(errOut.String()), "listening on "); ok {
			return "http://" + addr + "/default/bench", done
		}
		select {
		case <-exited:
			t.Fatalf("sink exited early: %s", errOut.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatal("sink did not say where it listens")
	return "", nil
}

func runBenchCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"bench"}, args...))
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

func TestBenchAgainstSinkReportsCountsAndCodes(t *testing.T) {
	for _, tc := range []struct {
		mode      string
		requests  int64
		extraArgs []string
	}{
		{"binary", 300, nil},
		{"structured", 300, nil},
		{"batch", 6, []string{"--batch-size", "50"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			url, sinkOut := startBenchSink(t, 300)
			args := append([]string{url, "--count", "300", "--concurrency", "4", "--size", "128", "--mode", tc.mode, "--json"}, tc.extraArgs...)
			out, err := runBenchCmd(t, args...)
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, out)
			}
			var got struct {
				Target   string           `json:"target"`
				Mode     string           `json:"mode"`
				Loop     string           `json:"loop"`
				Requests int64            `json:"requests"`
				Events   int64            `json:"events"`
				Codes    map[string]int64 `json:"codes"`
				EventsPS float64          `json:"events_per_s"`
				Latency  map[string]any   `json:"latency"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("summary is not JSON: %v\n%s", err, out)
			}
			if got.Target != url || got.Mode != tc.mode || got.Loop != "closed" || got.Requests != tc.requests ||
				got.Events != 300 || got.Codes["202"] != tc.requests || len(got.Codes) != 1 || got.EventsPS <= 0 {
				t.Fatalf("summary %+v", got)
			}
			for _, k := range []string{"p50_ms", "p90_ms", "p99_ms", "max_ms", "count"} {
				if _, ok := got.Latency[k]; !ok {
					t.Errorf("latency has no %s: %v", k, got.Latency)
				}
			}
			var sink struct {
				Events   int64          `json:"events"`
				Requests int64          `json:"requests"`
				Untimed  int64          `json:"untimed"`
				Latency  map[string]any `json:"latency"`
			}
			select {
			case s := <-sinkOut:
				if err := json.Unmarshal([]byte(s), &sink); err != nil {
					t.Fatalf("sink summary is not JSON: %v\n%s", err, s)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("sink did not exit after --count events")
			}
			if sink.Events != 300 || sink.Requests != tc.requests || sink.Untimed != 0 || sink.Latency["count"] != 300.0 {
				t.Fatalf("sink summary %+v", sink)
			}
		})
	}
}

func TestBenchTextSummaryAndFailureExit(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 20 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	out, err := runBenchCmd(t, srv.URL, "-n", "200", "-c", "1")
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	for _, want := range []string{"events     180 answered 2xx of 200 sent", "answers    202: 180, 503: 20", "p99 "} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	srv.Close()
	_, err = runBenchCmd(t, srv.URL, "-n", "3", "--timeout", "1s")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("no 2xx at all: err %v, want exit code 1", err)
	}
	_, err = runBenchCmd(t, srv.URL, "-n", "3", "--rate", "10", "--concurrency", "2")
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("--rate with --concurrency: err %v, want exit code 2", err)
	}
	_, err = runBenchCmd(t, srv.URL, "--rate", "fast")
	if err == nil {
		t.Fatal("--rate fast accepted")
	}
}

// `bench sink --knee K --service S`: the flags reach the sink (its response times are at least S),
// and a knee without its service time, or a negative --stalls, is refused with exit code 2.
func TestBenchSinkKneeFlags(t *testing.T) {
	var out bytes.Buffer
	errOut := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	exited := make(chan error, 1)
	go func() {
		exited <- runSink(ctx, sinkFlags{address: "127.0.0.1", port: 0, count: 20, knee: 2, service: 5 * time.Millisecond,
			jsonOut: true}, &out, errOut)
	}()
	t.Cleanup(cancel)
	var url string
	deadline := time.Now().Add(10 * time.Second)
	for url == "" {
		if addr, ok := strings.CutPrefix(strings.TrimSpace(errOut.String()), "listening on "); ok {
			url = "http://" + addr
		} else if time.Now().After(deadline) {
			t.Fatal("sink did not say where it listens")
		} else {
			time.Sleep(5 * time.Millisecond) // polling with a deadline
		}
	}
	if o, err := runBenchCmd(t, url, "--count", "20", "--concurrency", "4", "--json"); err != nil {
		t.Fatalf("bench: %v\n%s", err, o)
	}
	if err := <-exited; err != nil {
		t.Fatalf("sink: %v", err)
	}
	var got struct {
		Events   int64 `json:"events"`
		Response struct {
			Count uint64  `json:"count"`
			Min   float64 `json:"min_ms"`
		} `json:"response"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("sink summary is not JSON: %v\n%s", err, out.String())
	}
	if got.Events != 20 || got.Response.Count != 20 || got.Response.Min < 5 {
		t.Fatalf("sink summary %+v: want 20 events, 20 responses, each ≥ 5ms", got)
	}

	err := runSink(t.Context(), sinkFlags{address: "127.0.0.1", port: 0, knee: 4}, &out, errOut)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "knee and service go together") {
		t.Fatalf("--knee without --service: %v, want exit code 2 naming the flags", err)
	}
	err = runSink(t.Context(), sinkFlags{address: "127.0.0.1", port: 0, stalls: -1}, &out, errOut)
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "stalls must be a rate") {
		t.Fatalf("--stalls -1: %v, want exit code 2 naming the flag", err)
	}
}
