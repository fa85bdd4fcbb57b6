package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/redrive"
	"github.com/eventgate/eventgate/internal/app"
)

// redriveManifests: channel orders and its dead-letter channel dlq (kind/apiVersion), and
// subscription s on orders, delivering to subURL/s without retries, dead letters into dlq.
func redriveManifests(apiVersion, kind, subURL string) string {
	return fmt.Sprintf(`
apiVersion: %[1]s
kind: %[2]s
metadata: {name: orders, namespace: e2e}
---
apiVersion: %[1]s
kind: %[2]s
metadata: {name: dlq, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  namespace: e2e
  annotations: {eventgate.dev/initial-offset: earliest}
spec:
  channel: {apiVersion: %[1]s, kind: %[2]s, name: orders}
  subscriber: {uri: "%[3]s/s"}
  delivery:
    retry: 0
    deadLetterSink: {ref: {apiVersion: %[1]s, kind: %[2]s, name: dlq, namespace: e2e}}
`, apiVersion, kind, subURL)
}

// redriveCLI runs `eventgate redrive ARGS... -o json` against g and returns the jobs it printed
// (one per line) and its error.
func redriveCLI(t *testing.T, g *gateway, args ...string) ([]redrive.Status, error) {
	t.Helper()
	args = append(append([]string{"redrive"}, args...), "--admin", g.admin, "-o", "json")
	cmd := exec.Command(binPath, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var sts []redrive.Status
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		var st redrive.Status
		if jerr := json.Unmarshal([]byte(l), &st); jerr != nil {
			t.Fatalf("eventgate %s printed %q: %v", strings.Join(args, " "), l, jerr)
		}
		sts = append(sts, st)
	}
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return sts, err
}

// lastJob is the last status a redrive command printed.
func lastJob(t *testing.T, sts []redrive.Status, err error) redrive.Status {
	t.Helper()
	if len(sts) == 0 {
		t.Fatalf("eventgate redrive printed no job: %v", err)
	}
	return sts[len(sts)-1]
}

// redrivenIDs are the ids of the deliveries in ds, checking each is a redriven event: it counts one
// redrive and carries no knativeerror* extension.
func redrivenIDs(t *testing.T, ds []delivery) []string {
	t.Helper()
	var ids []string
	for _, d := range ds {
		if d.header.Get("Ce-Eventgateredrives") != "1" || d.header.Get("Ce-Knativeerrordest") != "" ||
			d.header.Get("Ce-Knativeerrorcode") != "" || d.header.Get("Ce-Knativeerrordata") != "" {
			t.Errorf("redriven delivery's headers: %v", d.header)
		}
		ids = append(ids, d.header.Get("Ce-Id"))
	}
	slices.Sort(ids)
	return ids
}

// Issue 14 item 2 through the binary: a failing subscriber's events are dead-lettered into one of
// our channels with the knativeerror* extensions; once it is fixed, a filtered redrive sends exactly
// the matching ones back, once; a dry run sends nothing; a cancelled job stops; and (Kafka) a
// restart mid-job neither loses nor repeats what the job had finished, while in memory it is
// reported interrupted.
func TestRedriveThroughTheGateway(t *testing.T) {
	t.Run("inmemory", func(t *testing.T) {
		sub := newSubscriber(t)
		dir, state := t.TempDir(), t.TempDir()
		writeFile(t, dir, "m.yaml", redriveManifests("messaging.knative.dev/v1", "InMemoryChannel", sub.url))
		args := []string{"-f", dir, "--set", "redrive.stateDir=" + state}
		g := startGateway(t, args...)
		testRedrive(t, g, sub, func() *gateway { return startGateway(t, args...) }, false)
	})
	t.Run("kafka", func(t *testing.T) {
		broker := kafkaBroker(t)
		sub := newSubscriber(t)
		dir, state := t.TempDir(), t.TempDir()
		// Channel names are unique per run: topics from an earlier run must not be read.
		m := redriveManifests("messaging.knative.dev/v1beta1", "KafkaChannel", sub.url)
		suffix := uniqueName("")
		m = strings.ReplaceAll(m, "name: orders", "name: orders"+suffix)
		m = strings.ReplaceAll(m, "name: dlq", "name: dlq"+suffix)
		writeFile(t, dir, "m.yaml", m)
		args := []string{"-f", dir, "--set", "redrive.stateDir=" + state}
		g := kafkaGateway(t, broker, args...)
		testRedriveOn(t, g, sub, "e2e/orders"+suffix, "e2e/dlq"+suffix, func() *gateway { return kafkaGateway(t, broker, args...) }, true)
	})
}

func testRedrive(t *testing.T, g *gateway, sub *subscriber, restart func() *gateway, durable bool) {
	testRedriveOn(t, g, sub, "e2e/orders", "e2e/dlq", restart, durable)
}

func testRedriveOn(t *testing.T, g *gateway, sub *subscriber, orders, dlq string, restart func() *gateway, durable bool) {
	eventually(t, 60*time.Second, func() bool { code, _ := adminGet(t, g.admin+"/readyz"); return code == http.StatusOK },
		"/readyz to answer 200")
	sub.on("/s", func(w http.ResponseWriter, _ int) { http.Error(w, "boom", http.StatusInternalServerError) })
	const n = 6
	for i := range n {
		h := binaryEvent(fmt.Sprintf("rd-%d", i))
		h["Ce-Type"] = []string{"dev.eventgate.a", "dev.eventgate.b"}[i%2]
		if resp, body := post(t, g.ingress+"/"+orders, h, "payload"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
	}
	// The dead-letter channel keeps each event with the dispatcher's extensions.
	for _, l := range tailLines(t, n, dlq, "--admin", g.admin, "--from", "earliest", "--output", "json") {
		var te app.TailEvent
		if err := json.Unmarshal([]byte(l), &te); err != nil {
			t.Fatal(err)
		}
		if te.Extensions["knativeerrordest"] != sub.url+"/s" || te.Extensions["knativeerrorcode"] != "500" ||
			te.Extensions["knativeerrordata"] == "" {
			t.Errorf("dead letter %s: extensions %v", te.Attributes["id"], te.Extensions)
		}
	}
	failed := len(sub.at("/s"))

	// A dry run counts and sends nothing.
	st := mustJob(t, g, "--from", dlq, "--type", "dev.eventgate.a", "--dry-run", "--wait")
	if st.State != redrive.Done || st.Matched != n/2 || st.Sent != 0 || st.Remaining != 0 {
		t.Errorf("dry run: %+v", st)
	}
	if got := len(sub.at("/s")); got != failed {
		t.Errorf("the dry run sent %d events", got-failed)
	}

	// The subscriber is fixed: a filtered redrive sends exactly the matching ones back, once.
	sub.on("/s", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusAccepted) })
	st = mustJob(t, g, "--from", dlq, "--filter", "type = 'dev.eventgate.a'", "--wait")
	if st.State != redrive.Done || st.Matched != n/2 || st.Sent != n/2 || st.Failed != 0 {
		t.Errorf("redrive: %+v", st)
	}
	if got, want := redrivenIDs(t, sub.at("/s")[failed:]), []string{"rd-0", "rd-2", "rd-4"}; !slices.Equal(got, want) {
		t.Errorf("redriven: %v, want %v once each", got, want)
	}
	base := len(sub.at("/s"))

	// A cancelled job stops: the first event is held by the subscriber while the job is cancelled.
	hold, held := make(chan struct{}), make(chan struct{}, n)
	sub.on("/s", func(w http.ResponseWriter, _ int) {
		held <- struct{}{}
		<-hold
		w.WriteHeader(http.StatusAccepted)
	})
	st, err := lastJob2(redriveCLI(t, g, "--from", dlq, "--type", "dev.eventgate.b"))
	if err != nil {
		t.Fatal(err)
	}
	<-held
	cancelled := make(chan redrive.Status, 1)
	go func() { s, _ := redriveCLI(t, g, "cancel", st.ID); cancelled <- lastJob(t, s, nil) }()
	g.waitLog("redrive cancelling", 30*time.Second) // Cancel waits for the held event
	close(hold)
	got := <-cancelled
	if got.State != redrive.Cancelled || got.Sent != 1 || got.Remaining == 0 {
		t.Errorf("cancelled job: %+v", got)
	}
	if got := len(sub.at("/s")) - base; got != 1 {
		t.Errorf("the cancelled job sent %d events, want 1", got)
	}
	base = len(sub.at("/s"))

	// --to: every event goes to the subscription's subscriber, as the subscription delivers.
	sub.on("/s", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusAccepted) })
	st = mustJob(t, g, "--from", dlq, "--to", "e2e/s", "--type", "dev.eventgate.b", "--wait")
	if st.State != redrive.Done || st.Matched != n/2 || st.Sent != n/2 {
		t.Errorf("redrive --to: %+v", st)
	}
	if got, want := redrivenIDs(t, sub.at("/s")[base:]), []string{"rd-1", "rd-3", "rd-5"}; !slices.Equal(got, want) {
		t.Errorf("redriven --to: %v, want %v once each", got, want)
	}
	if _, err := redriveCLI(t, g, "--from", dlq, "--to", "e2e/nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("redrive --to an unknown subscription: %v", err)
	}
	base = len(sub.at("/s"))

	// A restart mid-job: two events go through, the third is held while the gateway stops.
	gate := make(chan struct{}, n)
	arrived := make(chan struct{}, n)
	sub.on("/s", func(w http.ResponseWriter, _ int) {
		arrived <- struct{}{}
		<-gate
		w.WriteHeader(http.StatusAccepted)
	})
	st, err = lastJob2(redriveCLI(t, g, "--from", dlq))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-arrived
		gate <- struct{}{}
	}
	<-arrived
	stopped := make(chan error, 1)
	go func() { stopped <- g.stop(60 * time.Second) }()
	g.waitLog("redrive jobs stopping", 30*time.Second)
	gate <- struct{}{} // the held one finishes: it is part of what the job finished
	if err := <-stopped; err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	sentBefore := len(sub.at("/s")) - base
	if sentBefore != 3 {
		t.Fatalf("before the restart the job sent %d events, want 3", sentBefore)
	}
	sub.on("/s", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusAccepted) })
	g2 := restart()
	if !durable {
		if s := mustJob(t, g2, "status", st.ID); s.State != redrive.Interrupted || s.Error == "" {
			t.Errorf("in memory, after a restart: %+v", s)
		}
		return
	}
	got2 := mustJob(t, g2, "status", st.ID, "--wait")
	if got2.State != redrive.Done || got2.Sent != n || got2.Matched != n || got2.Remaining != 0 {
		t.Errorf("resumed job: %+v", got2)
	}
	want := []string{"rd-0", "rd-1", "rd-2", "rd-3", "rd-4", "rd-5"}
	ids := redrivenIDs(t, sub.at("/s")[base:])
	if !slices.Equal(ids, want) {
		t.Errorf("the job across the restart sent %v, want %v once each", ids, want)
	}
	unique := len(slices.Compact(slices.Clone(ids)))
	t.Logf("acked %d / found %d / lost %d / duplicates %d", n, unique, n-unique, len(ids)-unique)
}

// mustJob runs `eventgate redrive ARGS...` and returns the last job it printed.
func mustJob(t *testing.T, g *gateway, args ...string) redrive.Status {
	t.Helper()
	sts, err := redriveCLI(t, g, args...)
	return lastJob(t, sts, err)
}

// lastJob2 is lastJob for a command that must succeed.
func lastJob2(sts []redrive.Status, err error) (redrive.Status, error) {
	if err != nil {
		return redrive.Status{}, err
	}
	if len(sts) == 0 {
		return redrive.Status{}, fmt.Errorf("no job printed")
	}
	return sts[len(sts)-1], nil
}

// A broker as the dead-letter sink keeps the dead letters with their extensions too; tail and
// redrive name it as users do, NAMESPACE/BROKER.
func TestRedriveFromABroker(t *testing.T) {
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: dead, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders, namespace: e2e}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "%s/s"}
  delivery:
    retry: 0
    deadLetterSink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: dead, namespace: e2e}}
`, sub.url))
	g := startGateway(t, "-f", dir)
	eventually(t, 60*time.Second, func() bool { code, _ := adminGet(t, g.admin+"/readyz"); return code == http.StatusOK },
		"/readyz to answer 200")
	sub.on("/s", func(w http.ResponseWriter, _ int) { http.Error(w, "boom", http.StatusBadGateway) })
	if resp, body := post(t, g.ingress+"/e2e/orders", binaryEvent("via-broker"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	var te app.TailEvent
	if err := json.Unmarshal([]byte(tailLines(t, 1, "e2e/dead", "--admin", g.admin, "--from", "earliest", "--output", "json")[0]), &te); err != nil {
		t.Fatal(err)
	}
	if te.Attributes["id"] != "via-broker" || te.Extensions["knativeerrordest"] != sub.url+"/s" || te.Extensions["knativeerrorcode"] != "502" {
		t.Errorf("the broker's dead letter: %+v", te)
	}
	failed := len(sub.at("/s"))
	sub.on("/s", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusAccepted) })
	if st := mustJob(t, g, "--from", "e2e/dead", "--wait"); st.State != redrive.Done || st.Sent != 1 {
		t.Errorf("redrive from the broker: %+v", st)
	}
	if ids := redrivenIDs(t, sub.at("/s")[failed:]); !slices.Equal(ids, []string{"via-broker"}) {
		t.Errorf("redriven: %v", ids)
	}
}
