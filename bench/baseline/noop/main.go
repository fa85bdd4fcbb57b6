// Command noop is the thinnest CloudEvents receiver: a net/http handler that reads the body and answers
// 202. It is the baseline for eventgate's in-memory ingress in scripts/bench, and imports nothing from
// eventgate but the baselines' shared start/stop code (bench/baseline/internal/harness).
//
//	noop --addr 127.0.0.1:0
//
// It prints "listening on HOST:PORT" on standard error once it serves, and exits 0 on SIGTERM/SIGINT.
package main

import (
	"context"
	"flag"
	"io"
	"net/http"

	"github.com/eventgate/eventgate/bench/baseline/internal/harness"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on (port 0: any free port)")
	flag.Parse()
	harness.Main("noop", func(ctx context.Context) error { return harness.Serve(ctx, *addr, handler()) })
}

func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
}
