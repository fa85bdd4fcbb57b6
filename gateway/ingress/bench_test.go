package ingress

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

// benchData is the 512-byte JSON payload both benchmarks send, the size scripts/bench uses.
var benchData = append(append([]byte(`{"p":"`), bytes.Repeat([]byte("x"), 504)...), `"}`...)

// benchHeader is a binary-mode CloudEvent's headers; the id changes per request.
func benchHeader(i int) http.Header {
	h := http.Header{}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", "bench-"+strconv.Itoa(i))
	h.Set("Ce-Source", "/eventgate/bench")
	h.Set("Ce-Type", "dev.eventgate.bench")
	h.Set("Ce-Time", "2026-01-02T03:04:05.123456789Z")
	h.Set("Content-Type", "application/json")
	return h
}

// discardWriter is a ResponseWriter that keeps only the status, so both benchmarks pay the same
// (near zero) response cost.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// runHandler serves b.N binary-mode requests to h in-process (no network) and checks each answer.
func runHandler(b *testing.B, h http.Handler, want int) {
	b.Helper()
	ctx := context.Background()
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	i := 0
	w := &discardWriter{h: http.Header{}}
	for b.Loop() {
		i++
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://gw/default/bench", bytes.NewReader(benchData))
		if err != nil {
			b.Fatal(err)
		}
		req.Header = benchHeader(i)
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != want {
			b.Fatalf("answered %d, want %d", w.code, want)
		}
	}
}

// runLoopback serves b.N requests to h over a loopback HTTP server from GOMAXPROCS parallel clients.
func runLoopback(b *testing.B, h http.Handler, want int) {
	b.Helper()
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + "/default/bench"
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchData))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header = benchHeader(i)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != want {
				b.Errorf("answered %d, want %d", resp.StatusCode, want)
				return
			}
		}
	})
}

// benchIngress is the real ingress handler, with metrics, in front of the real in-memory provisioner
// (with no subscription, the channel drops its oldest events when full, so the log stays bounded).
func benchIngress(b *testing.B) http.Handler {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	backend := inmemory.New(inmemory.DefaultConfig(), log)
	ref := channel.Ref{Namespace: "default", Name: "bench"}
	if err := backend.Ensure(context.Background(), channel.Spec{Ref: ref}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = backend.Close() })
	h := New(DefaultConfig(), Deps{Log: log, Metrics: metrics.New(metrics.Build{Version: "bench"})})
	h.SetChannels(Table{ref: backend})
	return h
}

// noopHandler is the thinnest possible receiver: read the body, answer 202.
func noopHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
}

// BenchmarkIngressInMemory is one binary-mode event through the real ingress handler (parse, validate,
// publish, metrics) into the in-memory channel. Compare with BenchmarkBaselineNoopHandler: the target
// (issue 6.7) is at least half its throughput over loopback.
func BenchmarkIngressInMemory(b *testing.B) {
	b.Run("handler", func(b *testing.B) { runHandler(b, benchIngress(b), http.StatusAccepted) })
	b.Run("loopback", func(b *testing.B) { runLoopback(b, benchIngress(b), http.StatusAccepted) })
}

// BenchmarkBaselineNoopHandler is the same requests to a handler that only reads the body and answers 202.
func BenchmarkBaselineNoopHandler(b *testing.B) {
	b.Run("handler", func(b *testing.B) { runHandler(b, noopHandler(), http.StatusAccepted) })
	b.Run("loopback", func(b *testing.B) { runLoopback(b, noopHandler(), http.StatusAccepted) })
}
