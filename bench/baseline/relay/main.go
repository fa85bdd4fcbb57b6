// Command relay is the in-memory pipeline baseline: the least a gateway can do to take an event in over
// HTTP and hand it on over HTTP. A net/http handler copies each request (its headers and body) into a
// buffered Go channel and answers 202; a fixed number of workers take from the channel and POST each
// copy, headers unchanged, to one URL. No retries, no persistence, no metrics: it is what eventgate's
// in-memory channel with one subscription costs at the least, so that scripts/bench can put the
// gateway's end-to-end latency beside it. It imports nothing from eventgate but the baselines' start/stop
// code (bench/baseline/internal/harness).
//
//	relay --addr 127.0.0.1:0 --target http://127.0.0.1:8081 --in-flight 64
//
// It prints "listening on HOST:PORT" on standard error once it serves, and exits 0 on SIGTERM/SIGINT,
// printing how many events it relayed and how many POSTs failed.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/bench/baseline/internal/harness"
)

type item struct {
	header http.Header
	body   []byte
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "address to listen on (port 0: any free port)")
	target := flag.String("target", "http://127.0.0.1:8081", "URL to POST every event to")
	inFlight := flag.Int("in-flight", 64, "POSTs in flight")
	queue := flag.Int("queue", 1<<20, "events held between the handler and the workers; a full queue answers 429")
	flag.Parse()
	harness.Main("relay", func(ctx context.Context) error {
		q := make(chan item, *queue)
		relayed, failed := forward(q, *target, *inFlight)
		err := harness.Serve(ctx, *addr, handler(q))
		close(q)
		fmt.Printf("relayed %d failed %d\n", relayed(), failed())
		return err
	})
}

// handler queues a copy of each request and answers 202, or 429 when the queue is full.
func handler(q chan<- item) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case q <- item{header: r.Header.Clone(), body: body}:
			w.WriteHeader(http.StatusAccepted)
		default:
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
}

// forward starts n workers that POST what q holds to target until q is closed; the functions it returns
// report how many were relayed (any 2xx) and how many failed, once the workers are done.
func forward(q <-chan item, target string, n int) (relayed, failed func() int64) {
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for it := range q {
				if post(client, target, it) {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	done := sync.OnceFunc(func() { wg.Wait(); tr.CloseIdleConnections() })
	return func() int64 { done(); return ok.Load() }, func() int64 { done(); return bad.Load() }
}

func post(client *http.Client, url string, it item) bool {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(it.body))
	if err != nil {
		return false
	}
	for k, v := range it.header {
		switch k {
		case "Content-Length", "Connection", "Accept-Encoding", "User-Agent":
			continue
		}
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode/100 == 2
}
