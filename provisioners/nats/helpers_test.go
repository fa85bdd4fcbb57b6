package nats

import (
	"log/slog"
	"os"
	"testing"
)

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
