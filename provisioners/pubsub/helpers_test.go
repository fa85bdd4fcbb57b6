package pubsub

import (
	"log/slog"
	"os"
	"testing"

	"cloud.google.com/go/pubsub/v2/pstest"
)

const testProject = "eventgate-test"

// fakeServer starts the Pub/Sub fake (pstest) on a free loopback port for the test.
func fakeServer(t testing.TB) *pstest.Server {
	t.Helper()
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// testConfig is DefaultConfig on the fake at addr, with the shortest ack deadline: a message the fake
// pushed to a member's stream just as the member closed comes again once it expires, well within
// conformance.Timeout.
func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Project = testProject
	cfg.EmulatorHost = addr
	cfg.AckDeadline = minAckDeadline
	return cfg
}

// newTestBackend returns a Backend on cfg, closed when the test ends.
func newTestBackend(t testing.TB, cfg Config) *Backend {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}
