package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"
)

// natsManifests: the seed's Channel on provisioner natss ("demo") and a NatsJetStreamChannel
// ("replies"), with subscriptions that succeed, retry, dead-letter, reply and keep order per key;
// %[1]s is the recording subscriber's URL.
const natsManifests = `
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: demo, namespace: e2e}
spec:
  provisioner: {apiVersion: eventing.knative.dev/v1alpha1, kind: ClusterChannelProvisioner, name: natss}
---
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: replies, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: ok, namespace: e2e}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/ok"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: flaky, namespace: e2e}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/flaky"}
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.01S}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: rejects, namespace: e2e}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/reject"}
  delivery: {retry: 3, backoffDelay: PT0.01S, deadLetterSink: {uri: "%[1]s/dls"}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: replier, namespace: e2e}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/reply"}
  reply: {ref: {apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: replies}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: reply-reader, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: replies}
  subscriber: {uri: "%[1]s/replies"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: ordered
  namespace: e2e
  annotations: {kafka.eventing.knative.dev/delivery.order: ordered}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: demo}
  subscriber: {uri: "%[1]s/ordered"}
  delivery: {retry: 5, backoffDelay: PT0.02S}
`

func TestNATSEndToEnd(t *testing.T) {
	srv := natstest.Server(t, natstest.Options{})
	sub := newSubscriber(t)
	sub.on("/flaky", func(w http.ResponseWriter, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	sub.on("/reject", func(w http.ResponseWriter, _ int) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "no thanks")
	})
	// Each reply has an identity of its own: the stream keeps one event per source and id.
	var replies atomic.Int64
	sub.on("/reply", func(w http.ResponseWriter, _ int) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", "reply-"+strconv.FormatInt(replies.Add(1), 10))
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "dev.eventgate.reply")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "pong")
	})
	// The ordered subscriber fails the first attempt of every third event: a retry must hold back
	// the later events of its key.
	sub.on("/ordered", func(w http.ResponseWriter, n int) {
		w.WriteHeader(http.StatusAccepted)
	})

	dir := t.TempDir()
	writeFile(t, dir, "nats.yaml", fmt.Sprintf(natsManifests, sub.url))
	g := natsGateway(t, srv.ClientURL(), "-f", dir, "--set", "shutdown.grace=5s")
	demo := g.ingress + "/e2e/demo"

	t.Run("events are stored in binary mode on the stream, once per identity", func(t *testing.T) {
		h := binaryEvent("bin-1")
		h["Ce-Partitionkey"] = "customer-7"
		h["Ce-Myext"] = "caf%C3%A9"
		for range 2 { // the second publish of the same event is dropped by the stream
			if resp, body := post(t, demo, h, "hello binary"); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("binary: %d %s", resp.StatusCode, body)
			}
		}
		structured := `{"specversion":"1.0","id":"str-1","source":"/e2e","type":"dev.eventgate.test","datacontenttype":"application/json","data":{"n":1}}`
		if resp, body := post(t, demo, map[string]string{"Content-Type": "application/cloudevents+json"}, structured); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("structured: %d %s", resp.StatusCode, body)
		}
		msgs := streamMessages(t, srv.ClientURL(), "EVENTGATE_e2e_demo")
		if len(msgs) != 2 {
			t.Fatalf("%d messages on the stream, want 2 (one per event identity)", len(msgs))
		}
		m := msgs[0]
		for k, want := range map[string]string{"ce-id": "bin-1", "ce-specversion": "1.0", "ce-source": "/e2e",
			"ce-type": "dev.eventgate.test", "ce-partitionkey": "customer-7", "ce-myext": "caf%C3%A9",
			"content-type": "text/plain", "Nats-Msg-Id": "/e2e bin-1"} {
			if got := m.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		if string(m.Data) != "hello binary" || !strings.HasPrefix(m.Subject, "eventgate.e2e.demo.p") {
			t.Errorf("message on %s with data %q", m.Subject, m.Data)
		}
		if got := msgs[1].Header.Get("content-type"); got != "application/json" || string(msgs[1].Data) != `{"n":1}` {
			t.Errorf("structured event stored as content-type %q data %q", got, msgs[1].Data)
		}
		sub.waitAllDelivered(t, "/ok", []string{"bin-1", "str-1"}, 30*time.Second)
	})

	// Three more events, so that every subscription below has five.
	for i := 1; i <= 3; i++ {
		if resp, body := post(t, demo, binaryEvent("more-"+strconv.Itoa(i)), "x"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post: %d %s", resp.StatusCode, body)
		}
	}

	t.Run("retries until the subscriber recovers", func(t *testing.T) {
		ds := sub.waitFor(t, "/flaky", 15)
		attempts := map[string]int{}
		for _, d := range ds {
			attempts[d.header.Get("Ce-Id")]++
		}
		if len(attempts) != 5 {
			t.Fatalf("attempts for %d events, want 5: %v", len(attempts), attempts)
		}
		for id, n := range attempts {
			if n != 3 {
				t.Errorf("event %s: %d attempts, want 3", id, n)
			}
		}
	})

	t.Run("a rejected event goes to the dead letter with the error extensions", func(t *testing.T) {
		dls := sub.waitFor(t, "/dls", 5)
		for _, d := range dls {
			if got := d.header.Get("Ce-Knativeerrordest"); got != sub.url+"/reject" {
				t.Errorf("knativeerrordest %q", got)
			}
			if got := d.header.Get("Ce-Knativeerrorcode"); got != "400" {
				t.Errorf("knativeerrorcode %q", got)
			}
			data, err := base64.StdEncoding.DecodeString(d.header.Get("Ce-Knativeerrordata"))
			if err != nil || string(data) != "no thanks" {
				t.Errorf("knativeerrordata %q (%v)", d.header.Get("Ce-Knativeerrordata"), err)
			}
		}
		if n := len(sub.at("/reject")); n != len(dls) {
			t.Errorf("%d attempts for %d dead-lettered events: 400 must not be retried", n, len(dls))
		}
	})

	t.Run("replies go to the reply channel on NATS", func(t *testing.T) {
		rs := sub.waitFor(t, "/replies", 5)
		for _, d := range rs {
			if d.header.Get("Ce-Type") != "dev.eventgate.reply" || d.body != "pong" {
				t.Errorf("reply delivery: %v %q", d.header, d.body)
			}
		}
		if n := len(idsOnStream(t, srv.ClientURL(), "EVENTGATE_e2e_replies")); n == 0 {
			t.Error("no reply stored on the replies stream")
		}
	})

	t.Run("an ordered subscription keeps order per key through retries", func(t *testing.T) {
		sub.on("/ordered", func(w http.ResponseWriter, n int) {
			if d := sub.at("/ordered"); n == 1 && len(d)%3 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
		const keys, perKey = 6, 15
		var want []string
		for seq := 0; seq < perKey; seq++ {
			var batch []string
			for k := 0; k < keys; k++ {
				id := fmt.Sprintf("k%d-%03d", k, seq)
				want = append(want, id)
				batch = append(batch, fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/order","type":"t","partitionkey":"key-%d","data":"x"}`, id, k))
			}
			resp, body := post(t, demo, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "["+strings.Join(batch, ",")+"]")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("batch: %d %s", resp.StatusCode, body)
			}
		}
		sub.waitAllDelivered(t, "/ordered", want, 60*time.Second)
		last := map[string]string{} // key → highest id attempted so far
		retried := 0
		for _, d := range sub.at("/ordered") {
			id := d.header.Get("Ce-Id")
			if !strings.HasPrefix(id, "k") {
				continue
			}
			key := d.header.Get("Ce-Partitionkey")
			if prev := last[key]; id < prev {
				t.Errorf("key %s: %s attempted after %s", key, id, prev)
			} else if id == prev {
				retried++
			}
			last[key] = id
		}
		if retried == 0 {
			t.Error("no event was retried: the test did not exercise ordering under retries")
		}
		t.Logf("ordered: %d events over %d keys in order, %d retries", len(want), keys, retried)
	})

	t.Run("SIGTERM exits 0", func(t *testing.T) {
		if err := g.stop(15 * time.Second); err != nil {
			t.Fatalf("exit: %v", err)
		}
	})
}

// TestNATSKill9DuringDispatch: kill -9 of the gateway while a backlog is being delivered, then a
// restart, delivers every event at least once; duplicates are bounded by what was delivered before
// the kill and not yet acknowledged. A short AckWait, so that what the killed gateway held is
// delivered again soon.
func TestNATSKill9DuringDispatch(t *testing.T) {
	srv := natstest.Server(t, natstest.Options{})
	testKill9DuringDispatch(t, natsUnderTest(srv.ClientURL()), "kd", "--set", "dispatch.timeout=2s", "--set", "nats.ackWait=3s")
}

// TestNATSServerRestartUnderLoad stops the NATS server (file-backed stream) under ingress load and
// starts it again on the same port and store: ingress answers 503 meanwhile, /readyz fails and
// recovers, and every event answered 202 is on the stream and reaches the subscriber (0 lost).
func TestNATSServerRestartUnderLoad(t *testing.T) {
	store, port := t.TempDir(), freePort(t)
	srv := natstest.Server(t, natstest.Options{Dir: store, Port: port})
	url := srv.ClientURL()
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: restart, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  namespace: e2e
  annotations: {eventgate.dev/initial-offset: earliest}
spec:
  channel: {apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: restart}
  subscriber: {uri: "%s/s"}
`, sub.url))
	// Events the server had handed out when it stopped are delivered again after AckWait: keep it short.
	g := natsGateway(t, url, "-f", dir, "--set", "nats.publishTimeout=2s", "--set", "nats.requestTimeout=2s",
		"--set", "dispatch.timeout=2s", "--set", "nats.ackWait=5s")
	target := g.ingress + "/e2e/restart"
	stop := make(chan struct{})
	load := postLoad(4, "nr", func() string { return target }, stop)
	eventually(t, 60*time.Second, func() bool { return len(load.ids()) >= 200 }, "200 accepted before the server stops")

	began := time.Now()
	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, 60*time.Second, func() bool {
		load.mu.Lock()
		defer load.mu.Unlock()
		return load.codes[http.StatusServiceUnavailable] > 0
	}, "503 while the server is down")
	eventually(t, 30*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusServiceUnavailable }, "/readyz to fail")
	acceptedWhileDown := len(load.ids())

	t.Logf("server stopped; 503 and /readyz failing after %v", time.Since(began).Round(time.Millisecond))
	srv2 := natstest.Server(t, natstest.Options{Dir: store, Port: port})
	restarted := time.Now()
	eventually(t, 60*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusOK }, "/readyz to recover")
	t.Logf("/readyz 200 %v after the restart", time.Since(restarted).Round(time.Millisecond))
	eventually(t, 60*time.Second, func() bool { return len(load.ids()) >= acceptedWhileDown+200 }, "202 again after the server is back")
	t.Logf("200 more accepted %v after the restart", time.Since(restarted).Round(time.Millisecond))
	close(stop)
	load.wait()

	acked := load.ids()
	onStream := idsOnStream(t, srv2.ClientURL(), "EVENTGATE_e2e_restart")
	lost := missing(acked, onStream)
	seen := sub.waitAllDelivered(t, "/s", acked, 120*time.Second)
	t.Logf("every acked event delivered %v after the restart", time.Since(restarted).Round(time.Millisecond))
	dupes := len(sub.at("/s")) - len(seen)
	t.Logf("NATS server restart under load: %s; acked %d, found %d on the stream, lost %d, delivered %d distinct with %d duplicates",
		load.summary(), len(acked), len(onStream), len(lost), len(seen), dupes)
	if len(lost) > 0 {
		t.Fatalf("%d events answered 202 are not on the stream: %v", len(lost), lost[:min(5, len(lost))])
	}
	if n := duplicates(onStream); n > 0 {
		t.Errorf("%d events stored twice on the stream (the publish is deduplicated by identity)", n)
	}
}

// TestNATSServerDownAtStart: a gateway whose NATS server is not up yet starts anyway; its NATS channel
// answers 503 and /readyz names it, and once the server is up the channel becomes ready by itself and
// its events are delivered.
func TestNATSServerDownAtStart(t *testing.T) {
	store, port := t.TempDir(), freePort(t)
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: late, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: late}
  subscriber: {uri: "%s/s"}
`, sub.url))
	g := startGatewayEnv(t, []string{"EVENTGATE_NATS__SERVERS=nats://127.0.0.1:" + strconv.Itoa(port)}, "-f", dir)
	url := g.ingress + "/e2e/late"
	if resp, body := post(t, url, binaryEvent("early"), "x"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST while NATS is down: %d %s, want 503", resp.StatusCode, body)
	} else if !strings.Contains(body, "NATS is unavailable") {
		t.Errorf("503 body %q does not say NATS is unavailable", body)
	}
	if code := status(g.admin + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while NATS is down: %d", code)
	}

	natstest.Server(t, natstest.Options{Dir: store, Port: port})
	began := time.Now()
	eventually(t, 60*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusOK }, "/readyz once NATS is up")
	t.Logf("channel ready %v after the server started", time.Since(began).Round(time.Millisecond))
	if resp, body := post(t, url, binaryEvent("later"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST once NATS is up: %d %s", resp.StatusCode, body)
	}
	sub.waitAllDelivered(t, "/s", []string{"later"}, 30*time.Second)
}

// TestNATSTwoGatewaysAndRollingRestart: two gateways share an unordered subscription on a NATS
// channel (they compete for each partition's events), both deliver, and a rolling restart of both
// under load delivers every acknowledged event.
func TestNATSTwoGatewaysAndRollingRestart(t *testing.T) {
	srv := natstest.Server(t, natstest.Options{})
	testTwoGatewaysAndRollingRestart(t, natsUnderTest(srv.ClientURL()), "shared")
}

// natsUnderTest: NatsJetStreamChannels on the server at url, read from their beginning.
func natsUnderTest(url string) backendUnderTest {
	return backendUnderTest{name: "NATS", apiVersion: "messaging.knative.dev/v1alpha1", kind: "NatsJetStreamChannel", earliest: true,
		channel: `
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: %s, namespace: e2e}`,
		start: func(t *testing.T, args ...string) *gateway { return natsGateway(t, url, args...) }}
}

// TestNATSTwoGatewaysOrdered: two gateways share an ordered subscription on a NATS channel. They
// split its partitions (one owner each, through leases), and every key's events reach the
// subscriber in order. Then one gateway is killed with kill -9 while it delivers: the other takes
// its partitions once its leases expire, starting from what it had not acknowledged, and every
// event arrives, still in order per key (an event delivered again may repeat, never overtake).
func TestNATSTwoGatewaysOrdered(t *testing.T) {
	srv := natstest.Server(t, natstest.Options{})
	sub := newSubscriber(t)
	sub.on("/o", func(w http.ResponseWriter, _ int) {
		time.Sleep(time.Millisecond) // some latency, so that both gateways have work in flight
		w.WriteHeader(http.StatusAccepted)
	})
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata: {name: ord, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  namespace: e2e
  annotations: {kafka.eventing.knative.dev/delivery.order: ordered, eventgate.dev/initial-offset: earliest}
spec:
  channel: {apiVersion: messaging.knative.dev/v1alpha1, kind: NatsJetStreamChannel, name: ord}
  subscriber: {uri: "%s/o"}
`, sub.url))
	const leaseTTL = 3 * time.Second
	args := []string{"-f", dir, "--set", "nats.defaultPartitions=4", "--set", "nats.leaseTTL=" + leaseTTL.String()}
	a := natsGateway(t, srv.ClientURL(), args...)
	b := natsGateway(t, srv.ClientURL(), args...)
	a.waitLog("nats partition lease taken", 30*time.Second)
	b.waitLog("nats partition lease taken", 30*time.Second) // after a handed it over, if a had them all

	const keys, perKey = 16, 40
	var want []string
	postSeqs := func(g *gateway, from, to int) {
		for seq := from; seq < to; seq++ {
			var batch []string
			for k := 0; k < keys; k++ {
				id := fmt.Sprintf("k%02d-%03d", k, seq)
				want = append(want, id)
				batch = append(batch, fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/order","type":"t","partitionkey":"key-%d","data":"x"}`, id, k))
			}
			resp, body := post(t, g.ingress+"/e2e/ord", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "["+strings.Join(batch, ",")+"]")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("batch: %d %s", resp.StatusCode, body)
			}
		}
	}
	postSeqs(a, 0, perKey/2)
	eventually(t, 60*time.Second, func() bool { return deliveredBy(t, a) > 0 && deliveredBy(t, b) > 0 }, "both gateways delivering")
	postSeqs(b, perKey/2, perKey)
	eventually(t, 60*time.Second, func() bool { return len(sub.at("/o")) >= len(want)*3/4 }, "three quarters delivered")

	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
	killed := time.Now()
	seen := sub.waitAllDelivered(t, "/o", want, 120*time.Second)
	t.Logf("every event delivered %v after the kill (nats.leaseTTL %v)", time.Since(killed).Round(time.Millisecond), leaseTTL)

	first := map[string]int{} // key → distinct events delivered so far
	delivered := map[string]bool{}
	for _, d := range sub.at("/o") {
		id := d.header.Get("Ce-Id")
		key := d.header.Get("Ce-Partitionkey")
		if delivered[id] {
			continue
		}
		delivered[id] = true
		if want := fmt.Sprintf("%s-%03d", id[:3], first[key]); id != want {
			t.Errorf("key %s: %s delivered for the first time while %s was due", key, id, want)
		}
		first[key]++
	}
	t.Logf("NATS, two gateways, ordered, kill -9 of one: acked %d, found %d, lost 0, duplicates %d",
		len(want), len(seen), duplicates(seen))
	if err := b.stop(30 * time.Second); err != nil {
		t.Fatalf("b exit: %v", err)
	}
}
