package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The console tests drive the web console (GET / on the admin port) in a real headless Chromium
// (Debian's chromium package; scripts/chromium installs it). EVENTGATE_CHROMIUM names the binary,
// else `chromium` on PATH; without one they are skipped, and under EVENTGATE_REQUIRE_CHROMIUM=1
// (scripts/test) they fail. Screenshots of each view go to EVENTGATE_ARTIFACTS (else a temporary
// directory, logged); `EVENTGATE_ARTIFACTS=$PWD/docs/img go test -run Console ./cmd/eventgate`
// refreshes the README's.

// chromiumPath returns the Chromium to drive, skipping (or failing, when required) without one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("EVENTGATE_CHROMIUM")
	if path == "" {
		path, _ = exec.LookPath("chromium")
	}
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	if os.Getenv("EVENTGATE_REQUIRE_CHROMIUM") != "" {
		t.Fatalf("no Chromium (EVENTGATE_CHROMIUM=%q, none on PATH) and EVENTGATE_REQUIRE_CHROMIUM is set: run scripts/chromium", os.Getenv("EVENTGATE_CHROMIUM"))
	}
	t.Skip("no Chromium: set EVENTGATE_CHROMIUM or install it with scripts/chromium")
	return ""
}

// page is one browser tab with the errors it reported: uncaught exceptions, console.error calls and
// error log entries (a failed load, a blocked script), except those allowed.
type page struct {
	t   *testing.T
	ctx context.Context

	mu   sync.Mutex
	errs []string
}

// openPage starts a headless Chromium (stopped at cleanup) with one tab of width×height.
func openPage(t *testing.T, width, height int) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("headless", "new"), chromedp.Flag("hide-scrollbars", true), chromedp.Flag("mute-audio", true),
		chromedp.NoSandbox, // root in a container: Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	p := &page{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				msg = "console.error: " + strings.Join(parts, " ")
			}
		case *cdplog.EventEntryAdded:
			e := ev.Entry
			// The console asks for the admin token when /tail answers 401: that answer is expected.
			if e.Level == cdplog.EntryLevelError && !(e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.URL, "/tail/") && strings.Contains(e.Text, "401")) {
				msg = fmt.Sprintf("log %s: %s %s", e.Source, e.Text, e.URL)
			}
		}
		if msg != "" {
			p.mu.Lock()
			p.errs = append(p.errs, msg)
			p.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The first action starts the browser: with no timeout, which would stop it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return p
}

// do runs steps within a minute.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v (page errors: %q)", what, err, p.errors())
	}
}

// eval evaluates a JavaScript expression into T.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until a JavaScript condition holds, polled in the page, for at most within.
func (p *page) waitJS(within time.Duration, cond, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, within+10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(within),
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		p.t.Fatalf("waiting %v for %s: %v (page errors: %q)", within, what, err, p.errors())
	}
}

func (p *page) errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// noErrors fails the test when the page reported an error.
func (p *page) noErrors() {
	p.t.Helper()
	if errs := p.errors(); len(errs) > 0 {
		p.t.Errorf("the console reported %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

// screenshot saves the viewport as NAME.png in the artifacts directory.
func (p *page) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := artifactsDir(p.t)
	file := filepath.Join(dir, name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", file)
}

var (
	artifactsOnce sync.Once
	artifacts     string
)

// artifactsDir is EVENTGATE_ARTIFACTS (created), else a temporary directory of the test.
func artifactsDir(t *testing.T) string {
	if dir := os.Getenv("EVENTGATE_ARTIFACTS"); dir != "" {
		artifactsOnce.Do(func() { os.MkdirAll(dir, 0o755); artifacts = dir })
		return artifacts
	}
	return t.TempDir()
}

// Issue 15 item 2 in a real browser: the console loads with no error, its graph shows the
// quickstart's channel and subscription, an event POSTed to the channel appears in the tail pane
// (after the console asked once for the admin token), a dead letter shows its knativeerror*
// extensions and the redrive button starts a job after a confirmation; on a phone-sized screen the
// page does not overflow sideways. A screenshot of each view is written.
func TestConsoleInChromium(t *testing.T) {
	p := openPage(t, 1280, 800)
	secrets := t.TempDir()
	if err := os.Mkdir(filepath.Join(secrets, "admin"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(secrets, "admin"), "token", "console-token\n")
	dir := t.TempDir()
	// Beside the quickstart: a subscription whose subscriber refuses every connection, so its events
	// land in a dead-letter channel at once.
	writeFile(t, dir, "dead.yaml", `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders, namespace: shop}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders-dead, namespace: shop}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: billing, namespace: shop}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "http://127.0.0.1:1/billing"}
  delivery:
    retry: 0
    deadLetterSink:
      ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders-dead}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: shop}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: audit, namespace: shop}
spec:
  broker: default
  filter: {attributes: {type: com.example.order}}
  subscriber: {uri: "http://127.0.0.1:1/audit"}
---
# Not run (serve has no --run-container-sources): drawn as not ready.
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: heartbeats, namespace: shop}
spec:
  template: {spec: {containers: [{image: example.com/heartbeats, command: [/bin/heartbeats]}]}}
  sink: {ref: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}}
`)
	g := startGateway(t, "-f", filepath.Join("..", "..", "examples", "quickstart"), "-f", dir,
		"--set", "secretsDir="+secrets, "--set", "admin.auth.secret=admin")

	// An event the quickstart's subscriber (not running here) cannot take: the subscription's
	// figures show its failed attempts.
	if resp, body := post(t, g.ingress+"/default/demo", binaryEvent("greeting-0"), "hello"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}

	// The graph, without a token: /status and the figures are read-only.
	p.do("load the console", chromedp.Navigate(g.admin+"/"),
		chromedp.WaitVisible(`.node[data-kind="channel"][data-key="default/demo"]`),
		chromedp.WaitVisible(`.node[data-kind="subscription"][data-key="default/demo-display"]`),
		chromedp.WaitVisible(`.node[data-kind="subscription"][data-key="shop/billing"]`),
		chromedp.WaitVisible(`.node[data-kind="broker"][data-key="shop/default"]`),
		chromedp.WaitVisible(`.node[data-kind="trigger"][data-key="shop/audit"]`),
		chromedp.WaitVisible(`.node.notready[data-kind="source"][data-key="shop/heartbeats"]`))
	if n := eval[int](p, `document.querySelectorAll('path.edge').length`); n != 8 {
		t.Errorf("%d edges drawn, want 8 (3 channel or broker → subscription or trigger → subscriber, the dead letters, the source)", n)
	}
	p.do("select the subscription", chromedp.Click(`.node[data-key="default/demo-display"]`),
		chromedp.WaitVisible(`#sparks .spark`))
	if got := eval[string](p, `document.querySelector('#details').innerText`); !strings.Contains(got, "http://127.0.0.1:8081") ||
		!strings.Contains(got, "concurrency limit") || !strings.Contains(got, "p50 / p99") {
		t.Errorf("details of default/demo-display:\n%s\nwant its subscriber, concurrency limit and latency", got)
	}
	// Rates need two samples of the gateway's metrics (5 s apart); the details refresh by themselves.
	p.waitJS(30*time.Second, `document.querySelector('#details').innerText.includes('events/s')`, "the subscription's rates")
	p.waitJS(20*time.Second, `document.querySelector('#details').innerText.includes('connection refused')`, "the subscription's last error")
	p.screenshot("console-graph")

	// The tail: the console asks for the admin token once, then streams.
	p.do("select the channel and tail it", chromedp.Click(`.node[data-key="default/demo"]`),
		chromedp.WaitVisible(`#details-tail`), chromedp.Click(`#details-tail`),
		chromedp.WaitVisible(`#token-dialog`), chromedp.SendKeys(`#token-input`, "console-token"),
		chromedp.Click(`#token-ok`))
	p.waitJS(10*time.Second, `document.querySelector('#tail-state').textContent.includes('waiting for events')`, "the tail to start")
	h := binaryEvent("console-1")
	h["Content-Type"] = "application/json"
	h["Ce-Type"] = "com.example.greeting"
	h["Ce-Region"] = "eu"
	if resp, body := post(t, g.ingress+"/default/demo", h, `{"greeting": "Hello from the console test"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	p.waitJS(5*time.Second, `document.querySelector('#tail-events li[data-id="console-1"]')`, "the event in the tail pane")
	if got := eval[string](p, `document.querySelector('#tail-events li[data-id="console-1"]').innerText`); !strings.Contains(got, "Hello from the console test") ||
		!strings.Contains(got, "region") {
		t.Errorf("tail pane shows:\n%s\nwant the data and the extension", got)
	}
	if stored := eval[string](p, `sessionStorage.getItem('eventgate.adminToken')`); stored != "console-token" {
		t.Errorf("sessionStorage token = %q", stored)
	}
	p.screenshot("console-tail")

	// Dead letters: an event the subscriber cannot take lands in shop/orders-dead with the
	// knativeerror* extensions; the redrive button asks, then starts a job.
	if resp, body := post(t, g.ingress+"/shop/orders", binaryEvent("order-1"), "an order"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d %s", resp.StatusCode, body)
	}
	p.do("open the dead letters", chromedp.Click(`#tab-dlq`))
	p.waitJS(10*time.Second, `[...document.querySelectorAll('#dlq-target option')].some(o => o.value === 'shop/orders-dead')`, "the dead-letter channel in the list")
	p.do("show the dead letters", chromedp.SetValue(`#dlq-target`, "shop/orders-dead"), chromedp.Click(`#dlq-load`))
	p.waitJS(15*time.Second, `document.querySelector('#dlq-events li[data-id="order-1"]')`, "the dead letter")
	if got := eval[string](p, `document.querySelector('#dlq-events li[data-id="order-1"]').innerText`); !strings.Contains(got, "knativeerrordest") ||
		!strings.Contains(got, "http://127.0.0.1:1/billing") {
		t.Errorf("dead letter shows:\n%s\nwant knativeerrordest and the URL that failed", got)
	}
	p.do("ask for a redrive", chromedp.WaitEnabled(`#dlq-redrive`), chromedp.Click(`#dlq-redrive`), chromedp.WaitVisible(`#redrive-dialog`))
	p.screenshot("console-redrive-confirm")
	p.do("confirm the redrive", chromedp.Click(`#redrive-confirm`))
	p.waitJS(10*time.Second, `document.querySelector('#redrive-jobs').textContent.includes('shop/orders-dead')`, "the redrive job listed")
	_, body := adminGet(t, g.admin+"/redrives")
	var jobs struct {
		Jobs []struct{ Request struct{ From string } }
	}
	if err := json.Unmarshal([]byte(body), &jobs); err != nil || len(jobs.Jobs) != 1 || jobs.Jobs[0].Request.From != "shop/orders-dead" {
		t.Errorf("GET /redrives = %s (%v), want one job from shop/orders-dead", body, err)
	}
	p.screenshot("console-dead-letters")
	p.noErrors()

	// A phone: one column, nothing wider than the screen.
	p.do("phone-sized", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch),
		chromedp.Navigate(g.admin+"/"), chromedp.WaitVisible(`.node[data-key="default/demo"]`),
		chromedp.Click(`.node[data-key="default/demo-display"]`), chromedp.WaitVisible(`#sparks .spark`))
	p.do("scroll the graph back", chromedp.Evaluate[chromedp.Void](`document.querySelector('#graph').scrollLeft = 0`))
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("on a 390 px screen the page is %d px wide", w)
	}
	p.screenshot("console-phone")
	p.noErrors()
}

// Issue 15: the console at 1,000 resources (500 channels and 500 subscriptions in 10 namespaces)
// opens without freezing: namespaces start collapsed, the search finds one subscription with its
// channel and subscriber, and expanding all draws every node. The time to draw them all is logged
// (a figure, not a bound).
func TestConsoleAtAThousandResources(t *testing.T) {
	p := openPage(t, 1280, 800)
	dir := t.TempDir()
	var b strings.Builder
	for ns := range 10 {
		for i := range 50 {
			fmt.Fprintf(&b, `---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: ch-%03d, namespace: ns-%02d}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: sub-%03d, namespace: ns-%02d}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch-%03d}
  subscriber: {uri: "http://127.0.0.1:9/ns-%02d"}
`, i, ns, i, ns, i, ns)
		}
	}
	writeFile(t, dir, "many.yaml", b.String())
	g := startGateway(t, "-f", dir)
	p.do("load the console", chromedp.Navigate(g.admin+"/"), chromedp.WaitVisible(`.ns-head`))
	p.waitJS(30*time.Second, `document.querySelectorAll('.ns-head').length === 10`, "ten namespaces")
	if got := eval[string](p, `document.querySelector('#counts').textContent`); !strings.HasPrefix(got, "1000 resources, 10 subscribers in 10 namespaces") {
		t.Errorf("counts = %q, want 1000 resources and 10 subscribers in 10 namespaces", got)
	}
	if n := eval[int](p, `document.querySelectorAll('.node').length`); n != 0 {
		t.Errorf("%d nodes drawn at first, want every namespace collapsed", n)
	}
	p.do("search", chromedp.SendKeys(`#search`, "ns-07/sub-042"))
	p.waitJS(10*time.Second, `document.querySelectorAll('.node').length === 3`, "the subscription, its channel and its subscriber")
	if got := eval[string](p, `[...document.querySelectorAll('.node')].map(n => n.dataset.key).sort().join(' ')`); got != "ns-07/ch-042 ns-07/http://127.0.0.1:9/ns-07 ns-07/sub-042" {
		t.Errorf("search shows %q", got)
	}
	p.do("clear the search", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelector('#search'); s.value = ''; s.dispatchEvent(new Event('input')); })()`))
	p.waitJS(10*time.Second, `document.querySelectorAll('.node').length === 0`, "the collapsed graph again")
	ms := eval[float64](p, `(() => { const t = performance.now(); document.querySelector('#expand-all').click(); return performance.now() - t; })()`)
	if n := eval[int](p, `document.querySelectorAll('.node').length`); n != 1010 {
		t.Errorf("%d nodes after expanding all, want 1010", n)
	}
	t.Logf("1,010 nodes and their edges drawn in %.0f ms", ms)
	p.screenshot("console-1000")
	p.noErrors()
}
