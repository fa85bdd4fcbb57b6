// Package harness is the start and stop code the baselines share. It is written with the standard
// library only, so that a baseline stays what it claims to be, net/http and franz-go with no eventgate
// code; the path a baseline measures (its handler, its consume loop) stays in its own main.go.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownGrace is how long Serve waits for requests in flight once its context is done.
const shutdownGrace = 5 * time.Second

// Main runs run with a context that is cancelled on SIGTERM or SIGINT. When run fails, Main prints
// "NAME: ERROR" on standard error and exits 1; otherwise it returns.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Serve listens on addr (port 0: any free port), prints "listening on HOST:PORT" on standard error once
// it serves (the line bench/runner waits for) and serves h until ctx is done. It then shuts the server
// down, waiting up to 5s for requests in flight, and returns nil when that went cleanly. It blocks
// until the server has stopped. The server's own error log is discarded.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "listening on %s\n", ln.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(shut)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
