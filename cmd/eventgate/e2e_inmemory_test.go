package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// manifests for the in-memory end-to-end test; %[1]s is the recording subscriber's URL.
const e2eManifests = `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: demo}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: replies}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: ok}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%[1]s/ok"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: flaky}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%[1]s/flaky"}
  delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.01S}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: rejects}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%[1]s/reject"}
  delivery:
    retry: 3
    backoffDelay: PT0.01S
    deadLetterSink: {uri: "%[1]s/dls"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: replier}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%[1]s/reply"}
  reply: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: replies}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: reply-reader}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: replies}
  subscriber: {uri: "%[1]s/replies"}
`

func TestEndToEndInMemory(t *testing.T) {
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
	sub.on("/reply", func(w http.ResponseWriter, n int) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", "reply-"+strconv.Itoa(n))
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "dev.eventgate.reply")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "pong")
	})

	dir := t.TempDir()
	writeFile(t, dir, "demo.yaml", fmt.Sprintf(e2eManifests, sub.url))
	g := startGateway(t, "-f", dir, "--set", "ingress.maxBodyBytes=4096", "--set", "shutdown.grace=5s")
	demo := g.ingress + "/default/demo"

	t.Run("three modes reach the subscriber", func(t *testing.T) {
		h := binaryEvent("bin-1")
		h["Ce-Myext"] = "caf%C3%A9%20au%20lait"
		if resp, body := post(t, demo, h, "hello binary"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("binary: %d %s", resp.StatusCode, body)
		}
		structured := `{"specversion":"1.0","id":"str-1","source":"/e2e","type":"dev.eventgate.test","datacontenttype":"application/json","data":{"n":1}}`
		if resp, body := post(t, demo, map[string]string{"Content-Type": "application/cloudevents+json"}, structured); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("structured: %d %s", resp.StatusCode, body)
		}
		batch := `[{"specversion":"1.0","id":"batch-1","source":"/e2e","type":"dev.eventgate.test","data":"one"},` +
			`{"specversion":"1.0","id":"batch-2","source":"/e2e","type":"dev.eventgate.test","data_base64":"AAEC"}]`
		if resp, body := post(t, demo, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, batch); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("batch: %d %s", resp.StatusCode, body)
		}
		// Knative host addressing.
		req, _ := http.NewRequest(http.MethodPost, g.ingress+"/", strings.NewReader("by host"))
		for k, v := range binaryEvent("host-1") {
			req.Header.Set(k, v)
		}
		req.Host = "demo-kn-channel.default.svc.cluster.local"
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("host addressing: %v %v", resp, err)
		}
		resp.Body.Close()

		got := map[string]delivery{}
		for _, d := range sub.waitFor(t, "/ok", 5) {
			got[d.header.Get("Ce-Id")] = d
		}
		checks := []struct{ id, body, contentType string }{
			{"bin-1", "hello binary", "text/plain"},
			{"str-1", `{"n":1}`, "application/json"},
			{"batch-1", `"one"`, ""},
			{"batch-2", "\x00\x01\x02", ""},
			{"host-1", "by host", "text/plain"},
		}
		for _, c := range checks {
			d, ok := got[c.id]
			if !ok {
				t.Errorf("event %s not delivered", c.id)
				continue
			}
			if d.body != c.body {
				t.Errorf("%s body %q, want %q", c.id, d.body, c.body)
			}
			if c.contentType != "" && d.header.Get("Content-Type") != c.contentType {
				t.Errorf("%s content-type %q", c.id, d.header.Get("Content-Type"))
			}
			if d.header.Get("Ce-Specversion") != "1.0" || d.header.Get("Ce-Source") != "/e2e" || d.header.Get("Ce-Type") != "dev.eventgate.test" {
				t.Errorf("%s attributes: %v", c.id, d.header)
			}
			if d.header.Get("Prefer") != "reply" {
				t.Errorf("%s: no Prefer: reply header", c.id)
			}
		}
		if v := got["bin-1"].header.Get("Ce-Myext"); v != "caf%C3%A9%20au%20lait" {
			t.Errorf("extension header on the wire %q, want it percent-encoded as sent", v)
		}
	})

	t.Run("retries until the subscriber recovers", func(t *testing.T) {
		// Every event fails twice with 503, then succeeds on its third attempt.
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
		if n := len(sub.at("/reject")); n < 5 {
			t.Fatalf("/reject attempts %d", n)
		}
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
		// 400 is not retried: exactly one attempt per event.
		if n := len(sub.at("/reject")); n != len(dls) {
			t.Errorf("%d attempts for %d dead-lettered events: 400 must not be retried", n, len(dls))
		}
	})

	t.Run("replies go to the reply channel", func(t *testing.T) {
		rs := sub.waitFor(t, "/replies", 5)
		for _, d := range rs {
			if d.header.Get("Ce-Type") != "dev.eventgate.reply" || d.body != "pong" {
				t.Errorf("reply delivery: %v %q", d.header, d.body)
			}
		}
	})

	t.Run("status codes", func(t *testing.T) {
		tests := []struct {
			name   string
			method string
			url    string
			header map[string]string
			body   string
			code   int
		}{
			{"missing id", http.MethodPost, demo, map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "/s", "Ce-Type": "t"}, "", 400},
			{"unknown channel", http.MethodPost, g.ingress + "/default/nope", binaryEvent("x"), "", 404},
			{"GET", http.MethodGet, demo, nil, "", 405},
			{"too large", http.MethodPost, demo, binaryEvent("big"), strings.Repeat("x", 5000), 413},
			{"unsupported format", http.MethodPost, demo, map[string]string{"Content-Type": "application/cloudevents+avro"}, "x", 415},
		}
		for _, tt := range tests {
			req, _ := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Errorf("%s: %d, want %d (%s)", tt.name, resp.StatusCode, tt.code, body)
			}
			if len(body) == 0 {
				t.Errorf("%s: empty error body", tt.name)
			}
		}
	})

	t.Run("hot reload adds, removes, and refuses a broken file", func(t *testing.T) {
		extra := fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: late}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%s/late"}
`, sub.url)
		writeFile(t, dir, "late.yaml", extra)
		g.waitLog(`"subscription started","subscription":"default/late"`, 10*time.Second)
		post(t, demo, binaryEvent("after-add"), "x")
		sub.waitFor(t, "/late", 1)

		writeFile(t, dir, "broken.yaml", "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: bad}\nspec:\n  subscriber: {uri: \"::bad\"}\n")
		g.waitLog("keeping the last good set", 10*time.Second)
		if resp, _ := post(t, demo, binaryEvent("during-broken"), "x"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("ingress after a broken file: %d", resp.StatusCode)
		}
		eventually(t, 10*time.Second, func() bool {
			for _, d := range sub.at("/late") {
				if d.header.Get("Ce-Id") == "during-broken" {
					return true
				}
			}
			return false
		}, "delivery while a broken file is present")
		if !strings.Contains(g.stderr.String(), "broken.yaml") {
			t.Errorf("the rejection does not name the file")
		}

		os.Remove(filepath.Join(dir, "broken.yaml"))
		os.Remove(filepath.Join(dir, "late.yaml"))
		g.waitLog(`"subscription stopped","subscription":"default/late"`, 10*time.Second)
		before := len(sub.at("/late"))
		post(t, demo, binaryEvent("after-remove"), "x")
		eventually(t, 10*time.Second, func() bool {
			for _, d := range sub.at("/ok") {
				if d.header.Get("Ce-Id") == "after-remove" {
					return true
				}
			}
			return false
		}, "after-remove at /ok")
		if after := len(sub.at("/late")); after != before {
			t.Errorf("removed subscription still received events (%d → %d)", before, after)
		}
	})

	t.Run("SIGTERM exits 0", func(t *testing.T) {
		if err := g.stop(10 * time.Second); err != nil {
			t.Fatalf("exit: %v", err)
		}
		if !strings.Contains(g.stderr.String(), "eventgate stopped") {
			t.Errorf("no clean stop logged")
		}
	})
}

func TestInMemoryFullAnswers429(t *testing.T) {
	sub := newSubscriber(t)
	sub.on("/hang", func(w http.ResponseWriter, _ int) {
		<-sub.release // never answers while the test runs
	})
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: small}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: slow}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: small}
  subscriber: {uri: "%s/hang"}
`, sub.url))
	g := startGateway(t, "-f", dir, "--set", "inmemory.bytesPerChannel=20000", "--set", "inmemory.retryAfter=2s",
		"--set", "shutdown.grace=2s", "--set", "dispatch.timeout=1h")
	accepted := 0
	var full *http.Response
	for i := 0; i < 200 && full == nil; i++ {
		resp, _ := post(t, g.ingress+"/default/small", binaryEvent(fmt.Sprintf("e-%d", i)), strings.Repeat("x", 500))
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			full = resp
		default:
			t.Fatalf("event %d: %d", i, resp.StatusCode)
		}
	}
	if full == nil {
		t.Fatalf("200 events of 500 bytes never filled a 20000-byte channel")
	}
	if full.Header.Get("Retry-After") != "2" {
		t.Errorf("Retry-After %q, want 2", full.Header.Get("Retry-After"))
	}
	if accepted == 0 {
		t.Fatalf("nothing accepted before the channel filled")
	}
	t.Logf("accepted %d events before 429", accepted)
}

// Knative's destination and delivery forms through the binary: a reference with a relative uri,
// resolved against the reference's address (here from the address book), and delivery.format json
// (structured mode).
func TestKnativeDeliveryForms(t *testing.T) {
	sub := newSubscriber(t)
	sub.on("/base/reject", func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusBadRequest) })
	dir := t.TempDir()
	writeFile(t, dir, "ref-path.yaml", `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: by-path}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: svc}
    uri: /events?source=eventgate
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: relative}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: svc}
    uri: reject
  delivery:
    deadLetterSink:
      ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: svc}
      uri: dead
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: structured}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "`+sub.url+`/structured"}
  delivery: {format: json}
`)
	g := startGateway(t, "-f", dir, "--set", "addressBook.default/svc="+sub.url+"/base/")
	if resp, body := post(t, g.ingress+"/default/orders", binaryEvent("ref-path-1"), "hi"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/events", "/base/reject", "/base/dead"} {
		if d := sub.waitFor(t, path, 1); d[0].header.Get("Ce-Id") != "ref-path-1" {
			t.Errorf("%s got event %q, want ref-path-1", path, d[0].header.Get("Ce-Id"))
		}
	}
	d := sub.waitFor(t, "/structured", 1)[0]
	if ct := d.header.Get("Content-Type"); ct != "application/cloudevents+json" || d.header.Get("Ce-Id") != "" ||
		!strings.Contains(d.body, `"id":"ref-path-1"`) || !strings.Contains(d.body, `"data_base64":"aGk="`) {
		t.Errorf("structured delivery: Content-Type %q, Ce-Id %q, body %s", ct, d.header.Get("Ce-Id"), d.body)
	}
}
