package dispatch

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
)

// benchServer answers every request 200 with no body after reading the request's.
func benchServer(b *testing.B) *httptest.Server { return benchServerOver(b, false) }

// benchServerOver is benchServer, over TLS (HTTP/1.1) when https.
func benchServerOver(b *testing.B, https bool) *httptest.Server {
	b.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	if https {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	b.Cleanup(srv.Close)
	return srv
}

func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// BenchmarkDeliver is one delivery through the dispatcher's delivery path (headers, attempt, answer,
// metrics, outcome) to a no-op server. Compare with BenchmarkBaselineHTTPPost.
func BenchmarkDeliver(b *testing.B) {
	srv := benchServer(b)
	d := New(Subscription{Namespace: "ns", Name: "bench", Channel: testChannel,
		Subscriber: Destination{URL: srv.URL}, MaxInFlight: DefaultConfig().MaxInFlight},
		Deps{Channels: newFakeProvisioner(1), Client: benchClient(b), Metrics: metrics.New(metrics.Build{}),
			Log: slog.New(slog.DiscardHandler)})
	ev := testEvent("bench-1")
	ev.Data = bytes.Repeat([]byte("x"), 512)
	rec := channel.Record{Offset: 1, Event: ev}
	ctx := context.Background()
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if out := d.process(ctx, rec, d.log); out.Result != Delivered {
			b.Fatalf("result %v", out.Result)
		}
	}
}

// BenchmarkDeliverStarted is BenchmarkDeliver as a started dispatcher runs it with the default
// configuration: the subscriber's URL parsed at Start, a 30 s per-attempt timeout (from the
// attemptScope a delivery worker makes its attempts in, on the scope's own connection), and an
// event with the attributes scripts/bench sends (a time among them). Compare with
// BenchmarkBaselineHTTPPost, and with BenchmarkDeliverStartedTransport.
func BenchmarkDeliverStarted(b *testing.B) { benchmarkDeliverStarted(b, true, false, "") }

// BenchmarkDeliverStartedTransport is BenchmarkDeliverStarted through the client's transport, as
// deliveries to proxied subscribers go.
func BenchmarkDeliverStartedTransport(b *testing.B) { benchmarkDeliverStarted(b, false, false, "") }

// BenchmarkDeliverStartedStructured is BenchmarkDeliverStarted with delivery.format json: the event
// encoded whole as the body (structured mode).
func BenchmarkDeliverStartedStructured(b *testing.B) {
	benchmarkDeliverStarted(b, true, false, resources.FormatJSON)
}

// BenchmarkDeliverStartedTLS and BenchmarkDeliverStartedTLSTransport are the two to an https://
// subscriber (HTTP/1.1 over TLS 1.3).
func BenchmarkDeliverStartedTLS(b *testing.B)          { benchmarkDeliverStarted(b, true, true, "") }
func BenchmarkDeliverStartedTLSTransport(b *testing.B) { benchmarkDeliverStarted(b, false, true, "") }

func benchmarkDeliverStarted(b *testing.B, own, https bool, format resources.DeliveryFormat) {
	srv, client := benchServerOver(b, https), benchClient(b)
	if https {
		client.Transport.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	}
	s := Subscription{Namespace: "ns", Name: "bench", Channel: testChannel,
		Subscriber: Destination{URL: srv.URL}, MaxInFlight: DefaultConfig().MaxInFlight,
		Policy: Policy{Retry: 3, Timeout: DefaultConfig().Timeout, Format: format}}
	d := New(s, Deps{Channels: newFakeProvisioner(1), Client: client, Metrics: metrics.New(metrics.Build{}),
		Log: slog.New(slog.DiscardHandler)})
	if !own {
		d.own = nil
	}
	d.urls = d.parseURLs(&d.sub.Subscriber)
	if (d.urls[srv.URL].head != nil) != own {
		b.Fatalf("own connection %v; want %v", d.urls[srv.URL].head != nil, own)
	}
	ev := testEvent("bench-1")
	ev.Time = "2026-11-28T12:00:00.123456789Z"
	ev.Data = bytes.Repeat([]byte("x"), 512)
	rec := channel.Record{Offset: 1, Event: ev}
	scope := newAttemptScope(context.Background()) // as a delivery worker makes its attempts
	defer scope.end()
	ctx := context.Context(scope)
	b.SetBytes(int64(len(ev.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if out := d.process(ctx, rec, d.log); out.Result != Delivered {
			b.Fatalf("result %v", out.Result)
		}
	}
}

// BenchmarkBaselineHTTPPost is a bare http.Client POST of the same bytes to the same kind of server.
func BenchmarkBaselineHTTPPost(b *testing.B) {
	srv := benchServer(b)
	client := benchClient(b)
	data := bytes.Repeat([]byte("x"), 512)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// benchLimiterContended is Acquire and Release from 4 goroutines at once on a limit of 2: the
// dispatcher's pattern, with a claim intake per partition waiting for a slot its deliveries free.
func benchLimiterContended(b *testing.B, l Limiter) {
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(2) // 2×GOMAXPROCS goroutines; at least 4 on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Acquire(ctx); err != nil {
				b.Error(err)
				return
			}
			l.Release(Outcome{})
		}
	})
}

// BenchmarkLimiterContended is the adaptive limiter, held at a fixed limit, under contention;
// BenchmarkSemaphoreContended is the fixed limit's channel semaphore beside it.
func BenchmarkLimiterContended(b *testing.B) {
	benchLimiterContended(b, NewAdaptive(AdaptiveConfig{Min: 2, Max: 2}))
}

func BenchmarkSemaphoreContended(b *testing.B) { benchLimiterContended(b, NewSemaphore(2)) }
