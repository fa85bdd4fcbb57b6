package kafka

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// realBrokers returns the brokers named by EVENTGATE_TEST_KAFKA (comma-separated), or nil.
func realBrokers() []string {
	v := strings.TrimSpace(os.Getenv("EVENTGATE_TEST_KAFKA"))
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// testBrokers returns a real broker when EVENTGATE_TEST_KAFKA names one, else a fresh in-process
// kfake cluster closed at cleanup.
func testBrokers(t testing.TB) []string {
	t.Helper()
	if b := realBrokers(); b != nil {
		return b
	}
	return fakeCluster(t).ListenAddrs()
}

func fakeCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// testLogger logs to t at warn and above until the test finishes (client goroutines may outlive a
// subtest by a moment; their late lines are dropped rather than panicking t.Log).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)

// newBackend creates a Backend on brokers, with cfg's other fields, closed at cleanup. Topics are
// deleted on Remove so that a real broker does not fill up with test topics.
func newBackend(t testing.TB, brokers []string, mutate func(*Config)) *Backend {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers, cfg.DeleteTopicsOnRemove = brokers, true
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// adminClient returns an independent franz-go admin client on brokers.
func adminClient(t testing.TB, brokers []string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// testCtx returns a context bounded by d, cancelled at cleanup.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 20ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}
