package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

// downBackend stands in for Kafka: an in-memory backend whose Ensure and Ready fail with
// ErrUnavailable while the broker is down, as kafka.Backend's do when no broker answers. With block
// set, Ensure instead waits for its context to end (a broker that does not answer at all).
type downBackend struct {
	*inmemory.Backend
	mu       sync.Mutex
	down     bool
	block    bool
	ensures  int           // Ensure calls so far
	entered  chan struct{} // receives once per blocking Ensure, when it starts waiting
	unblocks int           // blocking Ensure calls that returned because their context ended
}

var _ channel.Provisioner = (*downBackend)(nil)

func newDownBackend(t *testing.T) *downBackend {
	b := &downBackend{Backend: inmemory.New(inmemory.DefaultConfig(), nil), down: true, entered: make(chan struct{}, 16)}
	t.Cleanup(func() { b.Backend.Close() })
	return b
}

func (b *downBackend) Ensure(ctx context.Context, spec channel.Spec) error {
	b.mu.Lock()
	b.ensures++
	down, block := b.down, b.block
	b.mu.Unlock()
	if block {
		b.entered <- struct{}{}
		<-ctx.Done()
		b.mu.Lock()
		b.unblocks++
		b.mu.Unlock()
		return fmt.Errorf("create topic: %w: %w", channel.ErrUnavailable, ctx.Err())
	}
	if down {
		return fmt.Errorf("create topic: %w: dial tcp 127.0.0.1:1: connect: connection refused", channel.ErrUnavailable)
	}
	return b.Backend.Ensure(ctx, spec)
}

func (b *downBackend) Ready(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return fmt.Errorf("no broker answers: %w", channel.ErrUnavailable)
	}
	return nil
}

func (b *downBackend) set(down, block bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down, b.block = down, block
}

func (b *downBackend) calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ensures
}

// lockedBuffer collects the App's JSON logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many log lines have msg.
func (l *lockedBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), `"msg":"`+msg+`"`)
}

// brokerDownApp is an App whose Kafka backend is kafka (a stand-in), retrying every few
// milliseconds, and its logs.
func brokerDownApp(t *testing.T, kafka channel.Provisioner) (*App, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	a, err := New(Options{Config: config.Default(), Log: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.backends[resources.ProvisionerKafka] = kafka
	a.router = newRouter(a.inmem, kafka)
	a.retryBackoff = retryBackoff{first: time.Millisecond, max: 20 * time.Millisecond}
	t.Cleanup(func() {
		a.stopping.Store(true)
		a.stopRetrying()
		a.shutdownDispatchers(context.Background())
		a.closeBackends()
	})
	return a, logs
}

// manifests is an in-memory channel and a Kafka channel, each with a subscription to sub, plus extra.
func manifests(t *testing.T, sub, extra string) *resources.Set {
	t.Helper()
	dir := t.TempDir()
	m := fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: mem, namespace: default}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: mem-sub, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: mem}
  subscriber: {uri: "%[1]s/mem"}
---
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: orders, namespace: default}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: orders-sub, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: orders}
  subscriber: {uri: "%[1]s/orders"}
%[2]s`, sub, extra)
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := resources.Load([]string{dir}, resources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	return set
}

// receiver records the ids of the events POSTed to it, by path.
type receiver struct {
	mu  sync.Mutex
	ids map[string][]string
}

func newReceiver(t *testing.T) (*receiver, string) {
	r := &receiver{ids: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.ids[req.URL.Path] = append(r.ids[req.URL.Path], req.Header.Get("Ce-Id"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *receiver) got(path, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.ids[path] {
		if x == id {
			return true
		}
	}
	return false
}

// post sends one binary-mode event to the App's ingress and returns the answer.
func post(a *App, path, id string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader("x"))
	for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/t", "Ce-Type": "t"} {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.ingress.ServeHTTP(w, req)
	return w
}

// poll waits until cond holds, failing the test after within.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func condOf(a *App, category, name string) Condition {
	c, _ := a.conds.get(ResourceKey{Category: category, Name: name})
	return c
}

// allReady reports whether no resource is not ready.
func allReady(a *App) bool { return len(a.conds.notReady()) == 0 }

// Started while the broker is down: Apply succeeds, the in-memory channel serves, the Kafka channel
// answers 503 with the reason, it and its subscription are not ready; the background retry tries
// again (logging the wait once) and, once Ensure succeeds, both come up and events flow.
func TestBrokerDownChannelWaitsThenComesUp(t *testing.T) {
	kafka := newDownBackend(t)
	a, logs := brokerDownApp(t, kafka)
	rcv, url := newReceiver(t)
	if err := a.Apply(context.Background(), manifests(t, url, "")); err != nil {
		t.Fatalf("Apply with the broker down: %v (want the Kafka channel to wait, not an error)", err)
	}

	if w := post(a, "/default/mem", "m-1"); w.Code != http.StatusAccepted {
		t.Fatalf("in-memory channel: %d %s", w.Code, w.Body)
	}
	poll(t, 10*time.Second, "the in-memory event delivered", func() bool { return rcv.got("/mem", "m-1") })
	w := post(a, "/default/orders", "k-0")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "channel default/orders: Kafka is unavailable") {
		t.Fatalf("Kafka channel while the broker is down: %d %q, want 503 naming the channel and why", w.Code, w.Body)
	}
	if c := condOf(a, CategoryChannel, "default/orders"); c.Ready || c.Reason != ReasonBackendUnavailable {
		t.Errorf("channel condition %+v, want not ready, BackendUnavailable", c)
	}
	if c := condOf(a, CategorySubscription, "default/orders-sub"); c.Ready || c.Reason != ReasonChannelNotReady {
		t.Errorf("subscription condition %+v, want not ready, ChannelNotReady", c)
	}
	if c := condOf(a, CategorySubscription, "default/mem-sub"); !c.Ready {
		t.Errorf("in-memory subscription condition %+v, want ready", c)
	}

	const attempts = 5
	poll(t, 10*time.Second, fmt.Sprintf("%d Ensure attempts", attempts), func() bool { return kafka.calls() >= attempts })
	if n := logs.count("channel waits for its backend; retrying in the background"); n != 1 {
		t.Errorf("%d log lines for the waiting channel after %d attempts, want 1 (one per state change)", n, kafka.calls())
	}

	kafka.set(false, false)
	poll(t, 10*time.Second, "every resource ready once the broker is up", func() bool { return allReady(a) })
	if w := post(a, "/default/orders", "k-1"); w.Code != http.StatusAccepted {
		t.Fatalf("Kafka channel after the broker came up: %d %s", w.Code, w.Body)
	}
	poll(t, 10*time.Second, "the Kafka channel's event delivered", func() bool { return rcv.got("/orders", "k-1") })
	a.retryMu.Lock()
	retrying := a.retry != nil
	a.retryMu.Unlock()
	if retrying {
		t.Error("the background retry still runs with nothing waiting")
	}
	if n := logs.count("channel ready"); n != 2 {
		t.Errorf("%d \"channel ready\" lines, want 2 (one per channel)", n)
	}
}

// A reload while the channel waits: the retry of the earlier set is stopped, the new set applied
// (a subscription added, one removed), and what waits still comes up by itself.
func TestBrokerDownReloadWhileWaiting(t *testing.T) {
	kafka := newDownBackend(t)
	a, _ := brokerDownApp(t, kafka)
	rcv, url := newReceiver(t)
	if err := a.Apply(context.Background(), manifests(t, url, "")); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "a background attempt", func() bool { return kafka.calls() >= 2 })
	extra := fmt.Sprintf(`---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: audit, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: orders}
  subscriber: {uri: "%s/audit"}
`, url)
	set := manifests(t, url, extra)
	set.Subscriptions = set.Subscriptions[1:] // mem-sub goes
	if err := a.Apply(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.conds.get(ResourceKey{Category: CategorySubscription, Name: "default/mem-sub"}); ok {
		t.Error("the removed subscription still has a condition")
	}
	if c := condOf(a, CategorySubscription, "default/audit"); c.Reason != ReasonChannelNotReady {
		t.Errorf("added subscription condition %+v, want ChannelNotReady", c)
	}

	kafka.set(false, false)
	poll(t, 10*time.Second, "every resource ready once the broker is up", func() bool { return allReady(a) })
	if w := post(a, "/default/orders", "k-1"); w.Code != http.StatusAccepted {
		t.Fatalf("Kafka channel after the broker came up: %d %s", w.Code, w.Body)
	}
	poll(t, 10*time.Second, "the event delivered to both subscriptions", func() bool {
		return rcv.got("/orders", "k-1") && rcv.got("/audit", "k-1")
	})
}

// Stopping the retry (the next Apply, shutdown) cancels an attempt in progress and waits for it.
func TestBrokerDownStopRetryingJoinsAnAttempt(t *testing.T) {
	kafka := newDownBackend(t)
	a, _ := brokerDownApp(t, kafka)
	_, url := newReceiver(t)
	if err := a.Apply(context.Background(), manifests(t, url, "")); err != nil {
		t.Fatal(err)
	}
	kafka.set(true, true) // the next attempt hangs until cancelled
	select {
	case <-kafka.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no background attempt")
	}
	stopped := make(chan struct{})
	go func() { a.stopRetrying(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stopRetrying did not return while an attempt hung")
	}
	kafka.mu.Lock()
	unblocked := kafka.unblocks
	kafka.mu.Unlock()
	if unblocked != 1 {
		t.Errorf("%d hung attempts returned by the time stopRetrying did, want 1", unblocked)
	}
	if c := condOf(a, CategoryChannel, "default/orders"); c.Reason != ReasonBackendUnavailable {
		t.Errorf("after a cancelled attempt the channel condition is %+v, want it unchanged (BackendUnavailable)", c)
	}
}
