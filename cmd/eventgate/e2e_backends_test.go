package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// backendUnderTest is one channel backend as the fault tests that every backend runs see it: how
// to declare a channel on it and how to start a gateway that reaches it.
type backendUnderTest struct {
	name string // in the figures' log lines
	// channel is a manifest of a channel named %[1]s in namespace e2e; a subscription refers to it
	// with apiVersion and kind.
	channel          string
	apiVersion, kind string
	// earliest: subscriptions start at the channel's first event (the annotation), where the
	// backend keeps a log to start from.
	earliest bool
	start    func(t *testing.T, args ...string) *gateway
}

// manifests declares channel ch on b and subscription s on it, delivering to subURL.
func (b backendUnderTest) manifests(ch, subURL string) string {
	annotations := ""
	if b.earliest {
		annotations = "\n  annotations: {eventgate.dev/initial-offset: earliest}"
	}
	return fmt.Sprintf(b.channel, ch) + fmt.Sprintf(`
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  namespace: e2e%s
spec:
  channel: {apiVersion: %s, kind: %s, name: %s}
  subscriber: {uri: "%s"}
`, annotations, b.apiVersion, b.kind, ch, subURL)
}

// testKill9DuringDispatch: kill -9 of the gateway while a backlog of 1,000 events is being
// delivered, then a restart, delivers every event at least once; duplicates are bounded by the
// deliveries made before the kill (what was delivered but not yet committed or acknowledged), and
// no event comes more than twice. args are the gateways' extra flags.
func testKill9DuringDispatch(t *testing.T, b backendUnderTest, ch string, args ...string) {
	sub := newSubscriber(t)
	var slow atomic.Bool
	slow.Store(true)
	sub.on("/s", func(w http.ResponseWriter, _ int) {
		if slow.Load() {
			time.Sleep(2 * time.Millisecond) // a subscriber with some latency, so a backlog is in progress
		}
		w.WriteHeader(http.StatusAccepted)
	})
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", b.manifests(ch, sub.url+"/s"))
	args = append([]string{"-f", dir, "--set", "dispatch.maxInFlight=16"}, args...)
	g := b.start(t, args...)
	const n = 1000
	var want []string
	for i := 0; i < n; i += 100 {
		var batch []string
		for j := i; j < i+100; j++ {
			id := fmt.Sprintf("d-%d", j)
			want = append(want, id)
			// Keys spread the events over partitions and ordering keys, as real traffic would be.
			batch = append(batch, fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/e2e","type":"t","partitionkey":"key-%d","data":"x"}`, id, j%50))
		}
		resp, body := post(t, g.ingress+"/e2e/"+ch, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "["+strings.Join(batch, ",")+"]")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
	}
	eventually(t, 60*time.Second, func() bool { return len(sub.at("/s")) >= n/4 }, "a quarter delivered")
	before := len(sub.at("/s"))
	g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.exited
	atKill := len(sub.at("/s"))
	slow.Store(false)

	g2 := b.start(t, args...)
	seen := sub.waitAllDelivered(t, "/s", want, 120*time.Second)
	dupes := len(sub.at("/s")) - n
	t.Logf("%s kill -9 during dispatch: acked %d, found %d, lost %d, duplicates %d (%d delivered before the kill, %d when it died)",
		b.name, n, len(seen), len(missing(want, seen)), dupes, before, atKill)
	if dupes > atKill {
		t.Errorf("%d duplicates is more than the %d deliveries made before the kill", dupes, atKill)
	}
	for id, c := range seen {
		if c > 2 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
	if err := g2.stop(30 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// testTwoGatewaysAndRollingRestart: two gateways share subscription s, both deliver, and a rolling
// restart of both under ingress load (each in turn stopped, its load moved to the other, and
// started again) delivers every event answered 202.
func testTwoGatewaysAndRollingRestart(t *testing.T, b backendUnderTest, ch string) {
	sub := newSubscriber(t)
	sub.on("/s", func(w http.ResponseWriter, _ int) {
		time.Sleep(time.Millisecond) // some latency, so that both gateways have work in flight
		w.WriteHeader(http.StatusAccepted)
	})
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", b.manifests(ch, sub.url+"/s"))
	args := []string{"-f", dir, "--set", "shutdown.grace=10s"}
	a := b.start(t, args...)
	c := b.start(t, args...)

	var target atomic.Value
	target.Store(a.ingress + "/e2e/" + ch)
	stop := make(chan struct{})
	load := postLoad(4, "roll", func() string { return target.Load().(string) }, stop)
	eventually(t, 60*time.Second, func() bool { return len(load.ids()) >= 200 }, "200 accepted events")
	eventually(t, 60*time.Second, func() bool { return deliveredBy(t, a) > 0 && deliveredBy(t, c) > 0 }, "both gateways delivering")

	target.Store(c.ingress + "/e2e/" + ch)
	if err := a.stop(30 * time.Second); err != nil {
		t.Fatalf("first gateway's exit: %v", err)
	}
	a = b.start(t, args...)
	target.Store(a.ingress + "/e2e/" + ch)
	if err := c.stop(30 * time.Second); err != nil {
		t.Fatalf("second gateway's exit: %v", err)
	}
	b.start(t, args...)
	count := len(load.ids())
	eventually(t, 60*time.Second, func() bool { return len(load.ids()) >= count+100 }, "load after the restarts")
	close(stop)
	load.wait()

	acked := load.ids()
	seen := sub.waitAllDelivered(t, "/s", acked, 120*time.Second)
	t.Logf("%s two gateways, rolling restart: %s; acked %d, found %d, lost %d, duplicates %d",
		b.name, load.summary(), len(acked), len(seen), len(missing(acked, seen)), duplicates(seen))
	if n := load.codes[http.StatusServiceUnavailable]; n > 0 {
		t.Logf("note: %d answers were 503 during the restarts", n)
	}
}
