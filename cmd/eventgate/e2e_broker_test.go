package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// brokerManifests is a broker, three filtering triggers (exact, prefix, CESQL), a trigger whose
// subscriber replies (its replies go back into the broker) with a trigger that picks the replies up,
// and a trigger whose subscriber always fails (it dead-letters). %[1]s is the namespace, %[2]s the
// broker, %[3]s the recording subscriber's URL, %[4]s the broker's class.
const brokerManifests = `
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: %[2]s
  namespace: %[1]s
  annotations: {eventing.knative.dev/broker.class: %[4]s}
spec:
  delivery: {retry: 1, backoffDelay: PT0.01S}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: exact, namespace: %[1]s}
spec:
  broker: %[2]s
  filters:
    - exact: {type: dev.eventgate.order.created}
  subscriber: {uri: "%[3]s/exact"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: prefix, namespace: %[1]s}
spec:
  broker: %[2]s
  filters:
    - prefix: {source: /shop/eu}
  subscriber: {uri: "%[3]s/prefix"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: cesql, namespace: %[1]s}
spec:
  broker: %[2]s
  filters:
    - cesql: "region = 'eu' AND type LIKE 'dev.eventgate.order.%%'"
  subscriber: {uri: "%[3]s/cesql"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: replier, namespace: %[1]s}
spec:
  broker: %[2]s
  filter:
    attributes: {type: dev.eventgate.ping}
  subscriber: {uri: "%[3]s/reply"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: pongs, namespace: %[1]s}
spec:
  broker: %[2]s
  filter:
    attributes: {type: dev.eventgate.pong, source: ""}
  subscriber: {uri: "%[3]s/pongs"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: failing, namespace: %[1]s}
spec:
  broker: %[2]s
  filters:
    - suffix: {type: .created}
  subscriber: {uri: "%[3]s/fail"}
  delivery:
    retry: 1
    backoffDelay: PT0.01S
    deadLetterSink: {uri: "%[3]s/dls"}
`

// brokerEvent is one event of the test: its id and the attributes the filters read.
type brokerEvent struct {
	id, typ, source, region string
}

// brokerEvents is the test's set of events.
func brokerEvents() []brokerEvent {
	var out []brokerEvent
	types := []string{"dev.eventgate.order.created", "dev.eventgate.order.shipped", "dev.eventgate.ping", "com.example.other"}
	sources := []string{"/shop/eu/1", "/shop/us/2", "/shop/eu-west"}
	regions := []string{"eu", "us", ""}
	n := 0
	for _, typ := range types {
		for _, src := range sources {
			for _, reg := range regions {
				n++
				out = append(out, brokerEvent{id: fmt.Sprintf("ev-%02d", n), typ: typ, source: src, region: reg})
			}
		}
	}
	return out
}

// runBrokerTest posts the events to the broker and checks what each trigger's subscriber got. post
// posts one event; it uses every address form the ingress has for a broker.
func runBrokerTest(t *testing.T, g *gateway, sub *subscriber, ns, broker string) {
	var pongs atomic.Int64 // each reply gets an id of its own
	sub.on("/reply", func(w http.ResponseWriter, _ int) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", fmt.Sprintf("pong-%d", pongs.Add(1)))
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "dev.eventgate.pong")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "pong")
	})
	sub.on("/fail", func(w http.ResponseWriter, _ int) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "always failing")
	})

	events := brokerEvents()
	forms := []struct{ url, host string }{
		{g.ingress + "/" + ns + "/" + broker, ""},
		{g.ingress + "/" + ns + "/" + broker, "broker-ingress.knative-eventing.svc.cluster.local"},
		{g.ingress + "/" + ns + "/" + broker, "kafka-broker-ingress.knative-eventing.svc.cluster.local"},
	}
	for i, e := range events {
		h := binaryEvent(e.id)
		h["Ce-Type"], h["Ce-Source"] = e.typ, e.source
		if e.region != "" {
			h["Ce-Region"] = e.region
		}
		f := forms[i%len(forms)]
		req, err := http.NewRequest(http.MethodPost, f.url, strings.NewReader("data of "+e.id))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if f.host != "" {
			req.Host = f.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %s (host %q): %d %s", e.id, f.host, resp.StatusCode, body)
		}
	}

	// What each trigger must pass, computed from the events.
	want := map[string][]string{}
	pings := 0
	for _, e := range events {
		if e.typ == "dev.eventgate.order.created" {
			want["/exact"] = append(want["/exact"], e.id)
			want["/dls"] = append(want["/dls"], e.id)
		}
		if strings.HasPrefix(e.source, "/shop/eu") {
			want["/prefix"] = append(want["/prefix"], e.id)
		}
		if e.region == "eu" && strings.HasPrefix(e.typ, "dev.eventgate.order.") {
			want["/cesql"] = append(want["/cesql"], e.id)
		}
		if e.typ == "dev.eventgate.ping" {
			pings++
			want["/reply"] = append(want["/reply"], e.id)
		}
	}
	// Every trigger sees every event and every pong (the replies went back into the broker): wait
	// until each has dealt with all of them, so that nothing more is on its way.
	total := float64(len(events) + pings)
	triggers := []string{"exact", "prefix", "cesql", "replier", "pongs", "failing"}
	eventually(t, 60*time.Second, func() bool {
		m := scrape(t, g)
		for _, tr := range triggers {
			key := func(outcome string) string {
				return fmt.Sprintf(`eventgate_trigger_events_total{namespace=%q,outcome=%q,trigger=%q}`, ns, outcome, tr)
			}
			if m[key("filtered")]+m[key("delivered")]+m[key("dead_lettered")] < total {
				return false
			}
		}
		return true
	}, "every trigger to deal with %v events", total)

	for path, ids := range want {
		got := sub.deliveredIDs(path)
		slices.Sort(got)
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Errorf("%s received %v\nwant exactly %v", path, got, ids)
		}
	}
	// The replies reached the broker, and the trigger on their type picked each up once.
	var gotPongs []string
	for _, d := range sub.at("/pongs") {
		if d.header.Get("Ce-Type") != "dev.eventgate.pong" {
			t.Errorf("/pongs got an event of type %q", d.header.Get("Ce-Type"))
		}
		gotPongs = append(gotPongs, d.header.Get("Ce-Id"))
	}
	slices.Sort(gotPongs)
	if len(slices.Compact(gotPongs)) != pings || len(sub.at("/pongs")) != pings {
		t.Errorf("/pongs got %v, want %d distinct replies once each", gotPongs, pings)
	}
	// The failing trigger: two attempts per event, then the dead-letter sink with Knative's extensions.
	if got, w := len(sub.at("/fail")), 2*len(want["/dls"]); got != w {
		t.Errorf("/fail got %d attempts, want %d", got, w)
	}
	for _, d := range sub.at("/dls") {
		if d.header.Get("Ce-Knativeerrorcode") != "500" || !strings.HasSuffix(d.header.Get("Ce-Knativeerrordest"), "/fail") {
			t.Errorf("dead letter %s lacks the error extensions: %v", d.header.Get("Ce-Id"), d.header)
		}
	}
	m := scrape(t, g)
	count := func(tr, outcome string) float64 {
		return m[fmt.Sprintf(`eventgate_trigger_events_total{namespace=%q,outcome=%q,trigger=%q}`, ns, outcome, tr)]
	}
	if got := count("failing", "dead_lettered"); got != float64(len(want["/dls"])) {
		t.Errorf("failing dead_lettered = %v, want %d", got, len(want["/dls"]))
	}
	if got := count("exact", "delivered"); got != float64(len(want["/exact"])) {
		t.Errorf("exact delivered = %v, want %d", got, len(want["/exact"]))
	}
	if got := count("exact", "filtered"); got != total-float64(len(want["/exact"])) {
		t.Errorf("exact filtered = %v, want %v", got, total-float64(len(want["/exact"])))
	}

	resp, body := get(t, g.admin+"/status")
	var st struct {
		Brokers []struct {
			Namespace, Name, Kind string
			Ready                 bool
		}
		Triggers []struct {
			Namespace, Name, Channel string
			Ready                    bool
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/status: %d %v\n%s", resp.StatusCode, err, body)
	}
	if len(st.Brokers) != 1 || st.Brokers[0].Name != broker || st.Brokers[0].Kind != "Broker" || !st.Brokers[0].Ready {
		t.Errorf("/status brokers: %+v", st.Brokers)
	}
	if len(st.Triggers) != len(triggers) {
		t.Errorf("/status triggers: %+v, want %d", st.Triggers, len(triggers))
	}
	for _, tr := range st.Triggers {
		if !tr.Ready || tr.Channel != ns+"/"+broker || !slices.Contains(triggers, tr.Name) {
			t.Errorf("/status trigger %+v", tr)
		}
	}
	if resp, body := get(t, g.admin+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}
}

// scrape reads the gateway's metrics: series (name and labels as printed) → value.
func scrape(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	_, body := get(t, g.admin+"/metrics")
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		fmt.Sscanf(line[i+1:], "%g", &v)
		out[line[:i]] = v
	}
	return out
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestBrokerInMemory(t *testing.T) {
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "broker.yaml", fmt.Sprintf(brokerManifests, "shop", "events", sub.url, "MTChannelBasedBroker"))
	g := startGateway(t, "-f", dir)
	runBrokerTest(t, g, sub, "shop", "events")
}

func TestBrokerKafka(t *testing.T) {
	broker := kafkaBroker(t)
	sub := newSubscriber(t)
	dir := t.TempDir()
	ns, name := "e2e", uniqueName("broker")
	writeFile(t, dir, "broker.yaml", fmt.Sprintf(brokerManifests, ns, name, sub.url, "Kafka"))
	g := startGateway(t, "--set", "kafka.brokers="+broker, "-f", dir)
	runBrokerTest(t, g, sub, ns, name)
	// Each trigger is a consumer group of its own, named like a subscription's with "trigger.".
	for _, tr := range []string{"exact", "prefix", "cesql"} {
		if group := fmt.Sprintf(`"group":"eventgate.%s.trigger.%s"`, ns, tr); !strings.Contains(g.stderr.String(), group) {
			t.Errorf("the gateway log names no consumer group %s", group)
		}
	}
	topic := "eventgate." + ns + ".broker." + name
	if recs := topicRecords(t, broker, topic); len(recs) < len(brokerEvents()) {
		t.Errorf("topic %s holds %d records, want at least %d", topic, len(recs), len(brokerEvents()))
	}
}

// TestBrokerExample runs examples/broker as the README says (its subscriber, `eventgate display`,
// replaced by a recording one at the same paths) and checks each trigger gets what its filter passes.
func TestBrokerExample(t *testing.T) {
	sub := newSubscriber(t)
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "broker", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples/broker: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, filepath.Base(f), strings.ReplaceAll(string(b), "http://127.0.0.1:8081", sub.url))
	}
	g := startGateway(t, "-f", dir)
	send := func(id, typ, source, amount string) {
		h := binaryEvent(id)
		h["Ce-Type"], h["Ce-Source"] = typ, source
		if amount != "" {
			h["Ce-Amount"] = amount
		}
		if resp, body := post(t, g.ingress+"/default/default", h, "{}"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", id, resp.StatusCode, body)
		}
	}
	send("hello", "com.example.greeting", "/cli", "")
	send("small-eu", "com.example.order.created", "/shop/eu", "10")
	send("large-us", "com.example.order.created", "/shop/us", "5000")
	send("large-eu", "com.example.order.created", "/shop/eu", "1200")
	send("other", "com.example.other", "/shop/eu", "")
	want := map[string][]string{
		"/greetings":    {"hello"},
		"/eu-orders":    {"large-eu", "small-eu"},
		"/large-orders": {"large-eu", "large-us"},
	}
	eventually(t, 20*time.Second, func() bool {
		m := scrape(t, g)
		for _, tr := range []string{"greetings", "eu-orders", "large-orders"} {
			n := 0.0
			for _, o := range []string{"filtered", "delivered", "dead_lettered"} {
				n += m[fmt.Sprintf(`eventgate_trigger_events_total{namespace="default",outcome=%q,trigger=%q}`, o, tr)]
			}
			if n < 5 {
				return false
			}
		}
		return true
	}, "every trigger to deal with the 5 events")
	for path, ids := range want {
		got := sub.deliveredIDs(path)
		slices.Sort(got)
		if !slices.Equal(got, ids) {
			t.Errorf("%s got %v, want %v", path, got, ids)
		}
	}
}

// brokerRefManifests point a subscription's subscriber, another's dead-letter sink and reply, and a
// webhook source's sink at a broker; its triggers tell what arrived. %[1]s is the subscriber's URL.
const brokerRefManifests = `
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: hub}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: inbox}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: into-broker}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: inbox}
  subscriber: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: hub}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: failing}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: inbox}
  subscriber: {uri: "%[1]s/fail"}
  delivery:
    retry: 0
    deadLetterSink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: hub}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: replying}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: inbox}
  subscriber: {uri: "%[1]s/reply"}
  reply: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: hub}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata:
  name: repo
  annotations: {eventgate.dev/unauthenticated: "true"}
spec:
  ownerAndRepository: eventgate/eventgate
  eventTypes: [push]
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: hub}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: originals}
spec:
  broker: hub
  filters: [{exact: {type: dev.eventgate.test}}, {not: {exact: {knativeerrorcode: "500"}}}]
  subscriber: {uri: "%[1]s/originals"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: dead}
spec:
  broker: hub
  filters: [{exact: {knativeerrorcode: "500"}}]
  subscriber: {uri: "%[1]s/dead"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: replies}
spec:
  broker: hub
  filter: {attributes: {type: dev.eventgate.reply}}
  subscriber: {uri: "%[1]s/replies"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: github}
spec:
  broker: hub
  filters: [{prefix: {type: dev.knative.source.github.}}]
  subscriber: {uri: "%[1]s/github"}
`

// TestBrokerReferences: a subscriber, a dead-letter sink, a reply and a source's sink that name a
// Broker deliver into it inside the gateway, where its triggers pick the events up.
func TestBrokerReferences(t *testing.T) {
	sub := newSubscriber(t)
	sub.on("/fail", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	sub.on("/reply", func(w http.ResponseWriter, _ int) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", "reply-1")
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "dev.eventgate.reply")
		w.WriteHeader(http.StatusOK)
	})
	dir := t.TempDir()
	writeFile(t, dir, "refs.yaml", fmt.Sprintf(brokerRefManifests, sub.url))
	g := startGateway(t, "-f", dir)
	if resp, body := post(t, g.ingress+"/default/inbox", binaryEvent("in-1"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	payload, err := os.ReadFile("../../testdata/github/push.json")
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "gh-1", "Content-Type": "application/json"}
	if resp, body := post(t, g.ingress+"/sources/default/repo", hdr, string(payload)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", resp.StatusCode, body)
	}
	if d := sub.waitFor(t, "/originals", 1)[0]; d.header.Get("Ce-Id") != "in-1" {
		t.Errorf("originals got %s, want in-1 (through the subscription whose subscriber is the broker)", d.header.Get("Ce-Id"))
	}
	if d := sub.waitFor(t, "/dead", 1)[0]; d.header.Get("Ce-Id") != "in-1" || d.header.Get("Ce-Knativeerrordest") != sub.url+"/fail" {
		t.Errorf("dead got %v, want in-1 dead-lettered from /fail", d.header)
	}
	if d := sub.waitFor(t, "/replies", 1)[0]; d.header.Get("Ce-Id") != "reply-1" {
		t.Errorf("replies got %s, want reply-1", d.header.Get("Ce-Id"))
	}
	if d := sub.waitFor(t, "/github", 1)[0]; d.header.Get("Ce-Id") != "gh-1" {
		t.Errorf("github got %s, want gh-1", d.header.Get("Ce-Id"))
	}
}

// TestTriggerFilterReload changes a trigger's filter while the gateway runs: the trigger restarts on
// its consumer group with the new filter, and an event posted afterwards is judged by it.
func TestTriggerFilterReload(t *testing.T) {
	sub := newSubscriber(t)
	dir := t.TempDir()
	manifest := func(typ string) string {
		return fmt.Sprintf(`
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: hub}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: hub
  filters: [{exact: {type: %s}}]
  subscriber: {uri: "%s/t"}
`, typ, sub.url)
	}
	writeFile(t, dir, "m.yaml", manifest("dev.a"))
	g := startGateway(t, "-f", dir)
	posted := 0
	send := func(id, typ string) {
		h := binaryEvent(id)
		h["Ce-Type"] = typ
		if resp, body := post(t, g.ingress+"/default/hub", h, "x"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", id, resp.StatusCode, body)
		}
		posted++
	}
	send("a-1", "dev.a")
	sub.waitFor(t, "/t", 1)

	writeFile(t, dir, "m.yaml", manifest("dev.b"))
	n := 0
	eventually(t, 30*time.Second, func() bool {
		n++
		send(fmt.Sprintf("b-%d", n), "dev.b")
		for _, id := range sub.deliveredIDs("/t") {
			if strings.HasPrefix(id, "b-") {
				return true
			}
		}
		return false
	}, "the new filter to deliver a dev.b event")
	send("a-late", "dev.a")
	send("b-final", "dev.b")
	eventually(t, 20*time.Second, func() bool {
		m := scrape(t, g)
		seen := 0.0
		for _, o := range []string{"filtered", "delivered"} {
			seen += m[fmt.Sprintf(`eventgate_trigger_events_total{namespace="default",outcome=%q,trigger="t"}`, o)]
		}
		return seen >= float64(posted)
	}, "the trigger to deal with all %d events", posted)
	got := sub.deliveredIDs("/t")
	if slices.Contains(got, "a-late") || !slices.Contains(got, "b-final") || !slices.Contains(got, "a-1") {
		t.Fatalf("/t got %v: want a-1 (old filter), b-final and not a-late (new filter)", got)
	}
}

// TestValidateBrokers runs `eventgate validate` on brokers and triggers: what each resolves to, and
// the problems (a CESQL expression that does not parse, a broker named like a channel) with their file,
// document and field.
func TestValidateBrokers(t *testing.T) {
	out, err := exec.Command(binPath, "validate", "-f", filepath.Join("..", "..", "examples", "broker")).CombinedOutput()
	if err != nil {
		t.Fatalf("validate examples/broker: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Broker default/default → ingress http://127.0.0.1:8080/default/default (MTChannelBasedBroker, inmemory)",
		"Trigger default/large-orders → subscriber http://127.0.0.1:8081/large-orders (broker default/default, filter filters: 1)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}

	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: events}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: events}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: t}
spec:
  broker: events
  filters:
    - cesql: "type = 'a' AND AND"
  subscriber: {uri: http://x.example.com}
`)
	out, err = exec.Command(binPath, "validate", "-f", bad).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("validate of bad manifests: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		bad + `: document 3 (Trigger default/t): spec.filters[0].cesql: "type = 'a' AND AND" is not a CESQL expression: `,
		bad + `: document 2 (Broker default/events): metadata.name: InMemoryChannel default/events is already defined at ` + bad + ` document 1`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}

// runTriggerStartTest adds two triggers to a running broker that already holds events: the one
// annotated eventgate.dev/initial-offset: earliest gets them, the other (latest, the default) gets only
// what is posted once it is ready. class is the broker's class.
func runTriggerStartTest(t *testing.T, class string, args ...string) {
	sub := newSubscriber(t)
	dir := t.TempDir()
	name := uniqueName("start")
	brokerDoc := fmt.Sprintf(`
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: %s
  annotations: {eventing.knative.dev/broker.class: %s}
`, name, class)
	writeFile(t, dir, "broker.yaml", brokerDoc)
	g := startGateway(t, append([]string{"-f", dir}, args...)...)
	send := func(id string) {
		if resp, body := post(t, g.ingress+"/default/"+name, binaryEvent(id), "x"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", id, resp.StatusCode, body)
		}
	}
	send("old-1")
	send("old-2")
	writeFile(t, dir, "triggers.yaml", fmt.Sprintf(`
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: early
  annotations: {eventgate.dev/initial-offset: earliest}
spec:
  broker: %[1]s
  subscriber: {uri: "%[2]s/early"}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: late}
spec:
  broker: %[1]s
  subscriber: {uri: "%[2]s/late"}
`, name, sub.url))
	// Both triggers are ready once /status says so: their start offsets are fixed by then.
	eventually(t, 30*time.Second, func() bool {
		_, body := get(t, g.admin+"/status")
		var st struct{ Triggers []struct{ Ready bool } }
		if json.Unmarshal([]byte(body), &st) != nil || len(st.Triggers) != 2 {
			return false
		}
		return st.Triggers[0].Ready && st.Triggers[1].Ready
	}, "both triggers to be ready")
	send("new-1")
	sub.waitFor(t, "/early", 3)
	sub.waitFor(t, "/late", 1)
	eventually(t, 20*time.Second, func() bool {
		m := scrape(t, g)
		return m[`eventgate_trigger_events_total{namespace="default",outcome="delivered",trigger="late"}`] >= 1 &&
			m[`eventgate_trigger_events_total{namespace="default",outcome="delivered",trigger="early"}`] >= 3
	}, "the deliveries to be counted")
	early, late := sub.deliveredIDs("/early"), sub.deliveredIDs("/late")
	slices.Sort(early)
	if !slices.Equal(early, []string{"new-1", "old-1", "old-2"}) {
		t.Errorf("earliest trigger got %v, want old-1, old-2 and new-1", early)
	}
	if !slices.Equal(late, []string{"new-1"}) {
		t.Errorf("latest trigger got %v, want only new-1", late)
	}
}

func TestTriggerStartInMemory(t *testing.T) { runTriggerStartTest(t, "MTChannelBasedBroker") }

func TestTriggerStartKafka(t *testing.T) {
	runTriggerStartTest(t, "Kafka", "--set", "kafka.brokers="+kafkaBroker(t))
}
