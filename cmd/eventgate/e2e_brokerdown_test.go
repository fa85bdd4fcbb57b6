package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 11 item 3: a gateway started while no Kafka broker answers keeps running. In-memory channels
// serve, the Kafka channel answers 503 saying why, /readyz names what waits, and when a broker comes
// up on the configured address everything comes up by itself: /readyz 200, events to the Kafka
// channel accepted and delivered, none of those answered 202 lost.
//
// It starts a broker of its own with scripts/kafka (Java, the Kafka download), so it runs only when
// asked: EVENTGATE_TEST_BROKER_DOWN=1 (scripts/test does, in the job of the broker restart test).
// The broker's ports are free ones the kernel picks, or EVENTGATE_TEST_BROKER_DOWN_PORT and the
// three after it (controller, SASL, TLS); its state goes to a temporary directory.
func TestKafkaBrokerDownAtStart(t *testing.T) {
	if os.Getenv("EVENTGATE_TEST_BROKER_DOWN") != "1" {
		t.Skip("starts a Kafka broker of its own with scripts/kafka: set EVENTGATE_TEST_BROKER_DOWN=1 (scripts/test does)")
	}
	script, err := filepath.Abs("../../scripts/kafka")
	if err != nil {
		t.Fatal(err)
	}
	ports := brokerPorts(t)
	broker := fmt.Sprintf("127.0.0.1:%d", ports[0])
	env := append(os.Environ(),
		"EVENTGATE_KAFKA_PORT="+strconv.Itoa(ports[0]),
		"EVENTGATE_KAFKA_CONTROLLER_PORT="+strconv.Itoa(ports[1]),
		"EVENTGATE_KAFKA_SASL_PORT="+strconv.Itoa(ports[2]),
		"EVENTGATE_KAFKA_TLS_PORT="+strconv.Itoa(ports[3]),
		"EVENTGATE_KAFKA_DIR="+t.TempDir())
	kafkaUp := func() error {
		cmd := exec.Command(script, "up")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("scripts/kafka up: %v\n%s", err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		cmd := exec.Command(script, "down")
		cmd.Env = env
		cmd.Run()
	})

	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: mem, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: mem-sub, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: mem}
  subscriber: {uri: "%[1]s/mem"}
---
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: orders, namespace: e2e}
spec: {numPartitions: 2, replicationFactor: 1}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: orders-sub, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: orders}
  subscriber: {uri: "%[1]s/orders"}
`, sub.url))
	g := startGateway(t, "-f", dir, "--set", "kafka.brokers="+broker, "--set", "kafka.produceTimeout=2s")

	// Broker down: the in-memory channel serves and delivers.
	for i := range 10 {
		if resp, body := post(t, g.ingress+"/e2e/mem", binaryEvent(fmt.Sprintf("m-%d", i)), "x"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("in-memory channel with the broker down: %d %s", resp.StatusCode, body)
		}
	}
	sub.waitFor(t, "/mem", 10)
	// The Kafka channel answers 503 and says why; /readyz names it and its subscription.
	resp, body := post(t, g.ingress+"/e2e/orders", binaryEvent("k-early"), "x")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "channel e2e/orders: Kafka is unavailable") {
		t.Fatalf("Kafka channel with the broker down: %d %q, want 503 naming the channel and why", resp.StatusCode, body)
	}
	code, ready := getBody(t, g.admin+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(ready, "e2e/orders") || !strings.Contains(ready, "e2e/orders-sub") {
		t.Fatalf("/readyz with the broker down: %d %q, want 503 naming the channel and its subscription", code, ready)
	}

	// Load on the Kafka channel from now on, through the broker's start.
	stop := make(chan struct{})
	load := postLoad(2, "bd", func() string { return g.ingress + "/e2e/orders" }, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		load.wait()
	}()
	eventually(t, 30*time.Second, func() bool {
		load.mu.Lock()
		defer load.mu.Unlock()
		return load.codes[http.StatusServiceUnavailable] >= 20
	}, "503s from the Kafka channel while the broker is down")

	// The broker starts; the gateway is ready within the retry's longest delay (30s) of its port
	// opening, whatever the broker's own start takes.
	started := time.Now()
	upErr := make(chan error, 1)
	go func() { upErr <- kafkaUp() }()
	eventually(t, 120*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", broker, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "the broker's port to open")
	opened := time.Now()
	eventually(t, 120*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusOK }, "/readyz 200 once the broker is up")
	readyAfter := time.Since(opened)
	if err := <-upErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("broker on %s: port open %v after the start, scripts/kafka up done after %v; /readyz 200 %v after the port opened",
		broker, opened.Sub(started).Round(100*time.Millisecond), time.Since(started).Round(100*time.Millisecond),
		readyAfter.Round(100*time.Millisecond))
	eventually(t, 60*time.Second, func() bool { return len(load.ids()) >= 100 }, "100 events accepted by the Kafka channel")
	close(stop)
	load.wait()

	// One more, posted after ready: 202 and delivered, like every event accepted before it.
	if resp, body := post(t, g.ingress+"/e2e/orders", binaryEvent("k-last"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Kafka channel once ready: %d %s", resp.StatusCode, body)
	}
	acked := append(load.ids(), "k-last")
	seen := sub.waitAllDelivered(t, "/orders", acked, 60*time.Second)
	load.mu.Lock()
	unavailable := load.codes[http.StatusServiceUnavailable]
	load.mu.Unlock()
	lost := missing(acked, seen)
	t.Logf("broker down at start: ready %v after the broker's port opened; %d answered 503 meanwhile; acked %d, found %d, lost %d, duplicates %d (%s)",
		readyAfter.Round(100*time.Millisecond), unavailable, len(acked), len(acked)-len(lost), len(lost), duplicates(seen), load.summary())
	if len(lost) > 0 {
		t.Fatalf("%d events answered 202 were not delivered: %v", len(lost), lost[:min(5, len(lost))])
	}
	if err := g.stop(30 * time.Second); err != nil {
		t.Fatalf("eventgate exited with %v after SIGTERM", err)
	}
}

// brokerPorts returns the client, controller, SASL and TLS ports for the test's broker: from
// EVENTGATE_TEST_BROKER_DOWN_PORT (that port and the three after it), else free ones the kernel
// picks. Nothing listens on any of them when it returns.
func brokerPorts(t *testing.T) [4]int {
	t.Helper()
	var out [4]int
	if p := os.Getenv("EVENTGATE_TEST_BROKER_DOWN_PORT"); p != "" {
		base, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("EVENTGATE_TEST_BROKER_DOWN_PORT=%q: %v", p, err)
		}
		for i := range out {
			out[i] = base + i
		}
		return out
	}
	var lns []net.Listener
	for i := range out {
		ln, err := netListen()
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// getBody returns the status and body of a GET.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
