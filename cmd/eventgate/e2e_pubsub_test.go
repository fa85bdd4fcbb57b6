package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// pubsubEmulator runs `eventgate pubsub-emulator` on a free loopback port for the test and returns its
// address. It outlives the gateways the test starts and stops, as a real Pub/Sub would.
func pubsubEmulator(t *testing.T) string {
	t.Helper()
	return pubsubEmulatorAt(t, "127.0.0.1:0")
}

// pubsubEmulatorAt is pubsubEmulator on addr.
func pubsubEmulatorAt(t *testing.T, addr string) string {
	t.Helper()
	cmd := exec.Command(binPath, "pubsub-emulator", "--address", addr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("pubsub-emulator exit: %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("pubsub-emulator did not exit within 10s of SIGTERM")
		}
	})
	line := regexp.MustCompile(`listening on (\S+) `)
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := line.FindStringSubmatch(sc.Text()); m != nil {
				listening <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-listening:
		return a
	case err := <-exited:
		t.Fatalf("pubsub-emulator exited before serving: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("pubsub-emulator did not start within 30s\n%s", stderr.String())
	}
	return ""
}

// pubsubGateway starts a gateway whose Pub/Sub provisioner talks to the emulator at emu.
func pubsubGateway(t *testing.T, emu string, args ...string) *gateway {
	t.Helper()
	return startGatewayEnv(t, []string{"EVENTGATE_PUBSUB__PROJECT=e2e-project", "EVENTGATE_PUBSUB__EMULATORHOST=" + emu},
		append([]string{"--set", "pubsub.ackDeadline=10s"}, args...)...)
}

// pubsubManifests: knative-gcp's Channel and the seed's gcp-pubsub Channel, with subscriptions for
// every delivery outcome; %[1]s is the recording subscriber's URL.
const pubsubManifests = `
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: demo, namespace: e2e}
spec: {project: ignored-the-gateway-config-names-the-project}
---
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: replies, namespace: e2e}
spec:
  provisioner: {apiVersion: eventing.knative.dev/v1alpha1, kind: ClusterChannelProvisioner, name: gcp-pubsub}
---
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: dead, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: ok, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/ok"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: flaky, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/flaky"}
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.01S}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: rejects, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/reject"}
  delivery:
    retry: 3
    backoffDelay: PT0.01S
    deadLetterSink: {ref: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: dead}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: dead-reader, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: dead}
  subscriber: {uri: "%[1]s/dead"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: replier, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/reply"}
  reply: {ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: replies}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: reply-reader, namespace: e2e}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: replies}
  subscriber: {uri: "%[1]s/replies"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: ordered
  namespace: e2e
  annotations: {kafka.eventing.knative.dev/delivery.order: ordered}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/ordered"}
  delivery: {retry: 5, backoffPolicy: linear, backoffDelay: PT0.01S}
`

func TestPubSubEndToEnd(t *testing.T) {
	emu := pubsubEmulator(t)
	sub := newSubscriber(t)
	sub.on("/flaky", func(w http.ResponseWriter, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	// The rejection's body is long enough that knativeerrordata (the base64 of its first 1024 bytes)
	// is over Pub/Sub's 1024 bytes per attribute: the dead-lettered event is stored in structured mode.
	rejection := strings.Repeat("no thanks ", 120)
	sub.on("/reject", func(w http.ResponseWriter, _ int) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, rejection)
	})
	sub.on("/reply", func(w http.ResponseWriter, n int) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", "reply-"+strconv.Itoa(n))
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "dev.eventgate.reply")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "pong")
	})
	// Ordered: the first attempt of every event fails, so order must hold across retries.
	sub.on("/ordered", func(w http.ResponseWriter, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})

	dir := t.TempDir()
	writeFile(t, dir, "pubsub.yaml", fmt.Sprintf(pubsubManifests, sub.url))
	g := pubsubGateway(t, emu, "-f", dir)
	demo := g.ingress + "/e2e/demo"

	t.Run("binary and structured events reach the subscriber", func(t *testing.T) {
		h := binaryEvent("bin-1")
		h["Ce-Myext"] = "caf%C3%A9"
		if resp, body := post(t, demo, h, "hello binary"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("binary: %d %s", resp.StatusCode, body)
		}
		structured := `{"specversion":"1.0","id":"str-1","source":"/e2e","type":"dev.eventgate.test","datacontenttype":"application/json","data":{"n":1}}`
		if resp, body := post(t, demo, map[string]string{"Content-Type": "application/cloudevents+json"}, structured); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("structured: %d %s", resp.StatusCode, body)
		}
		got := map[string]delivery{}
		for _, d := range sub.waitFor(t, "/ok", 2) {
			got[d.header.Get("Ce-Id")] = d
		}
		if d := got["bin-1"]; d.body != "hello binary" || d.header.Get("Content-Type") != "text/plain" ||
			d.header.Get("Ce-Myext") != "caf%C3%A9" || d.header.Get("Ce-Source") != "/e2e" {
			t.Errorf("bin-1 delivered as %v %q", d.header, d.body)
		}
		if d := got["str-1"]; d.body != `{"n":1}` || d.header.Get("Content-Type") != "application/json" {
			t.Errorf("str-1 delivered as %v %q", d.header, d.body)
		}
		if resp, _ := post(t, g.ingress+"/e2e/nope", binaryEvent("x"), ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown channel: %d, want 404", resp.StatusCode)
		}
	})

	t.Run("retries until the subscriber recovers", func(t *testing.T) {
		attempts := map[string]int{}
		for _, d := range sub.waitFor(t, "/flaky", 6) {
			attempts[d.header.Get("Ce-Id")]++
		}
		for _, id := range []string{"bin-1", "str-1"} {
			if attempts[id] != 3 {
				t.Errorf("event %s: %d attempts, want 3 (%v)", id, attempts[id], attempts)
			}
		}
	})

	t.Run("a rejected event is dead-lettered into a Pub/Sub channel", func(t *testing.T) {
		dead := sub.waitFor(t, "/dead", 2)
		for _, d := range dead {
			if got := d.header.Get("Ce-Knativeerrordest"); got != sub.url+"/reject" {
				t.Errorf("knativeerrordest %q", got)
			}
			if got := d.header.Get("Ce-Knativeerrorcode"); got != "400" {
				t.Errorf("knativeerrorcode %q", got)
			}
			data, err := base64.StdEncoding.DecodeString(d.header.Get("Ce-Knativeerrordata"))
			if err != nil || string(data) != rejection[:1024] {
				t.Errorf("knativeerrordata decodes to %d bytes (%v), want the rejection's first 1024", len(data), err)
			}
		}
		if n := len(sub.at("/reject")); n != len(dead) {
			t.Errorf("%d attempts for %d dead-lettered events: 400 must not be retried", n, len(dead))
		}
	})

	t.Run("replies go to the reply channel", func(t *testing.T) {
		for _, d := range sub.waitFor(t, "/replies", 2) {
			if d.header.Get("Ce-Type") != "dev.eventgate.reply" || d.body != "pong" {
				t.Errorf("reply delivery: %v %q", d.header, d.body)
			}
		}
	})

	t.Run("ordered per key, across retries", func(t *testing.T) {
		const keys, perKey = 3, 20
		var want []string
		var wg sync.WaitGroup
		var bad atomic.Int32
		for k := 0; k < keys; k++ {
			wg.Add(1)
			go func() { // one sender per key, each event after the previous one's 202
				defer wg.Done()
				for i := 0; i < perKey; i++ {
					h := binaryEvent(fmt.Sprintf("o-k%d-%03d", k, i))
					h["Ce-Partitionkey"] = fmt.Sprintf("k%d", k)
					req, _ := http.NewRequest(http.MethodPost, demo, strings.NewReader("x"))
					for hk, v := range h {
						req.Header.Set(hk, v)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil || resp.StatusCode != http.StatusAccepted {
						bad.Add(1)
						if resp != nil {
							resp.Body.Close()
						}
						return
					}
					resp.Body.Close()
				}
			}()
			for i := 0; i < perKey; i++ {
				want = append(want, fmt.Sprintf("o-k%d-%03d", k, i))
			}
		}
		wg.Wait()
		if bad.Load() > 0 {
			t.Fatalf("%d posts were not accepted", bad.Load())
		}
		sub.waitAllDelivered(t, "/ordered", want, 60*time.Second)
		last := map[string]string{}
		for _, d := range sub.at("/ordered") {
			id, key := d.header.Get("Ce-Id"), d.header.Get("Ce-Partitionkey")
			if !strings.HasPrefix(id, "o-") {
				continue
			}
			// Attempts of one key go a, a, b, b, c, …: an id never comes after a later one.
			if prev := last[key]; id < prev {
				t.Errorf("key %s: %s delivered after %s", key, id, prev)
			}
			last[key] = id
		}
	})

	t.Run("SIGTERM exits 0", func(t *testing.T) {
		if err := g.stop(20 * time.Second); err != nil {
			t.Fatalf("exit: %v", err)
		}
	})
}

// Fault: kill -9 of the gateway during dispatch on a Pub/Sub channel, then a restart, delivers every
// event at least once. What the killed gateway held unacked comes again once its ack deadline (10s
// here) passes; duplicates are bounded by the deliveries made before the kill.
func TestPubSubKill9DuringDispatch(t *testing.T) {
	testKill9DuringDispatch(t, pubsubUnderTest(pubsubEmulator(t)), "work")
}

// TestPubSubAckDeadlineExtendedWhileRetrying: an event whose delivery keeps retrying for longer than
// the subscription's ack deadline (10s here) is not delivered a second time meanwhile: the gateway
// keeps extending the deadline until the delivery succeeded, then acks it.
func TestPubSubAckDeadlineExtendedWhileRetrying(t *testing.T) {
	emu := pubsubEmulator(t)
	sub := newSubscriber(t)
	sub.on("/slow", func(w http.ResponseWriter, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	dir := t.TempDir()
	// Two failures with linear backoff of 7s: the third attempt comes about 21s after the first.
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: long, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: slow, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: long}
  subscriber: {uri: "%s/slow"}
  delivery: {retry: 5, backoffPolicy: linear, backoffDelay: PT7S}
`, sub.url))
	g := pubsubGateway(t, emu, "-f", dir)
	if resp, body := post(t, g.ingress+"/e2e/long", binaryEvent("patient-1"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	start := time.Now()
	eventually(t, 60*time.Second, func() bool {
		for _, d := range sub.at("/slow") {
			if d.header.Get("Ce-Id") == "patient-1" && len(sub.at("/slow")) >= 3 {
				return true
			}
		}
		return false
	}, "the third attempt")
	took := time.Since(start)
	// A marker published afterwards is delivered after anything the emulator would redeliver now.
	if resp, body := post(t, g.ingress+"/e2e/long", binaryEvent("marker"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	eventually(t, 60*time.Second, func() bool { return countIDs(sub.deliveredIDs("/slow"))["marker"] > 0 }, "the marker")
	n := countIDs(sub.deliveredIDs("/slow"))["patient-1"]
	t.Logf("pubsub ack deadline 10s: delivery succeeded after %v in %d attempts", took.Round(time.Second), n)
	if n != 3 {
		t.Errorf("patient-1 had %d attempts, want 3: it was delivered again while it was retrying", n)
	}
}

// TestPubSubDownAtStart: a gateway started while Pub/Sub cannot be reached keeps running; the Pub/Sub
// channel answers 503 saying why and /readyz is not 200; once Pub/Sub answers on the configured
// address, the channel comes up by itself and events are accepted and delivered.
func TestPubSubDownAtStart(t *testing.T) {
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here until the emulator starts on it
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: later, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s, namespace: e2e}
spec:
  channel: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel, name: later}
  subscriber: {uri: "%s/s"}
`, sub.url))
	g := pubsubGateway(t, addr, "-f", dir, "--set", "pubsub.adminTimeout=1s")
	url := g.ingress + "/e2e/later"
	resp, body := post(t, url, binaryEvent("too-early"), "x")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Pub/Sub is unavailable") {
		t.Errorf("while Pub/Sub is down: %d %q, want 503 naming Pub/Sub", resp.StatusCode, body)
	}
	if code := status(g.admin + "/readyz"); code == http.StatusOK {
		t.Errorf("/readyz is 200 while the Pub/Sub channel waits")
	}

	pubsubEmulatorAt(t, addr)
	eventually(t, 60*time.Second, func() bool {
		resp, _ := post(t, url, binaryEvent("in-time"), "x")
		return resp.StatusCode == http.StatusAccepted
	}, "the Pub/Sub channel to accept events")
	sub.waitAllDelivered(t, "/s", []string{"in-time"}, 30*time.Second)
	eventually(t, 30*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusOK }, "/readyz 200")
}

// TestPubSubTwoGatewaysAndRollingRestart: two gateways share a Pub/Sub subscription (Pub/Sub balances
// its messages between them), and a rolling restart of both under load delivers every event answered
// 202.
func TestPubSubTwoGatewaysAndRollingRestart(t *testing.T) {
	testTwoGatewaysAndRollingRestart(t, pubsubUnderTest(pubsubEmulator(t)), "shared")
}

// pubsubUnderTest: knative-gcp Channels on the emulator at emu.
func pubsubUnderTest(emu string) backendUnderTest {
	return backendUnderTest{name: "pubsub", apiVersion: "messaging.cloud.google.com/v1beta1", kind: "Channel",
		channel: `
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: %s, namespace: e2e}`,
		start: func(t *testing.T, args ...string) *gateway { return pubsubGateway(t, emu, args...) }}
}

// TestPubSubKill9UnderIngressLoad: kill -9 of the gateway under concurrent ingress load; every event
// answered 202 is on the topic (read through a witness subscription made before the load).
func TestPubSubKill9UnderIngressLoad(t *testing.T) {
	emu := pubsubEmulator(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", `
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: load, namespace: e2e}
`)
	g := pubsubGateway(t, emu, "-f", dir)
	url := g.ingress + "/e2e/load"
	eventually(t, 30*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusOK }, "/readyz 200")

	ctx := context.Background()
	client, err := ps.NewClient(ctx, "e2e-project", option.WithEndpoint(emu), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	witness := "projects/e2e-project/subscriptions/witness"
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: witness, Topic: "projects/e2e-project/topics/eventgate.e2e.load"}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	load := postLoad(8, "k9", func() string { return url }, stop)
	eventually(t, 60*time.Second, func() bool { return len(load.ids()) >= 400 }, "400 accepted events")
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.exited
	close(stop)
	load.wait()
	acked := load.ids()

	var mu sync.Mutex
	onTopic := map[string]int{}
	rctx, cancel := context.WithCancel(ctx)
	received := make(chan error, 1)
	go func() {
		received <- client.Subscriber(witness).Receive(rctx, func(_ context.Context, m *ps.Message) {
			mu.Lock()
			onTopic[m.Attributes["ce-id"]]++
			mu.Unlock()
			m.Ack()
		})
	}()
	eventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(missing(acked, onTopic)) == 0
	}, "every accepted event on the topic")
	cancel()
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("pubsub kill -9 under load: %s; acked %d, found %d distinct on the topic, lost %d, duplicates %d",
		load.summary(), len(acked), len(onTopic), len(missing(acked, onTopic)), duplicates(onTopic))
}
