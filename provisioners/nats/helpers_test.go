package nats

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// runServer starts an embedded NATS server with JetStream storing in dir (a fresh temp dir when
// empty), on port (a free one when 0), and shuts it down with t.Cleanup.
func runServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if port == 0 {
		port = -1
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// testConfig is DefaultConfig on url.
func testConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.Servers = []string{url}
	return cfg
}

// newBackend returns a Backend on cfg, closed with t.Cleanup.
func newBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	var log *slog.Logger
	if os.Getenv("EVENTGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}
