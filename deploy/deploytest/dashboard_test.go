package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/internal/app"
)

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource json.RawMessage `json:"datasource"`
	Panels     []panel         `json:"panels"`
	Targets    []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "eventgate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return d
}

var labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// dashboardQueries returns every PromQL expression of the dashboard, by where it is.
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q target %d has no expr", p.Title, i)
				}
				out[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
			}
			if p.Type != "row" && !strings.Contains(string(p.Datasource), "${datasource}") {
				t.Errorf("panel %q must use the ${datasource} variable, has %s", p.Title, p.Datasource)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := ""
		switch qq := v.Query.(type) {
		case string:
			q = qq
		case map[string]any:
			q, _ = qq["query"].(string)
		}
		m := labelValuesRe.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(METRIC, LABEL)", v.Name, q)
			continue
		}
		out["variable "+v.Name] = m[1]
	}
	return out
}

// backendCase is one channel backend the live gateway runs: a channel of its kind with a subscription.
type backendCase struct {
	backend      string // the provisioner
	kind         string // the channel manifest's apiVersion and kind
	channel, sub string
	// noLag says why the backend reports no eventgate_consumer_lag (empty: it does).
	noLag string
}

var backendCases = []backendCase{
	{backend: "inmemory", kind: "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel", channel: "demo", sub: "demo-display"},
	{backend: "kafka", kind: "apiVersion: messaging.knative.dev/v1beta1\nkind: KafkaChannel", channel: "kafka-demo", sub: "kafka-display"},
	{backend: "nats", kind: "apiVersion: messaging.knative.dev/v1alpha1\nkind: NatsJetStreamChannel", channel: "nats-demo", sub: "nats-display"},
	{backend: "pubsub", kind: "apiVersion: messaging.cloud.google.com/v1beta1\nkind: Channel", channel: "pubsub-demo", sub: "pubsub-display",
		noLag: "Pub/Sub's backlog is only in Cloud Monitoring (see provisioners/pubsub)"},
}

// perSubscription and perChannel are the dashboard's metrics that every backend's subscriptions and
// channels must have series of, so that their panels show every backend.
var (
	perSubscription = []string{"eventgate_dispatch_attempts_total", "eventgate_dispatch_duration_seconds_bucket",
		"eventgate_events_delivered_total", "eventgate_dispatch_in_flight", "eventgate_dispatch_concurrency_limit",
		"eventgate_consumer_lag"}
	perChannel = []string{"eventgate_ingress_requests_total", "eventgate_ingress_events_total"}
)

// TestDashboardQueriesNameLiveMetrics starts the real gateway in process with one channel and
// subscription on each backend (in-memory; Kafka on kfake; NATS on an embedded JetStream server;
// Pub/Sub on pstest), a broker and a source, sends an event through each, scrapes /metrics and checks
// that every metric the dashboard queries is one the gateway exports, that every label a query
// selects or groups by is on that metric's series, and that each backend's subscription and channel
// have series of every per-subscription and per-channel metric the panels show.
func TestDashboardQueriesNameLiveMetrics(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatalf("dashboard needs a uid and a title: %q %q", d.UID, d.Title)
	}
	queries := dashboardQueries(t, d)

	exported, series := liveMetrics(t)

	used := map[string]bool{}
	for where, expr := range queries {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("%s queries %s, which the gateway does not export", where, n)
			}
		}
		for _, l := range queryLabels(expr) {
			if targetLabels[l] {
				continue
			}
			for _, n := range names {
				if exported[n] && !hasLabel(series, n, l) {
					t.Errorf("%s uses label %q, which no series of %s has", where, l, n)
				}
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{
		"eventgate_ingress_requests_total", "eventgate_ingress_request_duration_seconds_bucket",
		"eventgate_dispatch_attempts_total", "eventgate_dispatch_duration_seconds_bucket",
		"eventgate_events_delivered_total", "eventgate_events_dead_lettered_total", "eventgate_consumer_lag",
		"eventgate_dispatch_in_flight", "eventgate_dispatch_concurrency_limit",
		"process_resident_memory_bytes", "process_cpu_seconds_total", "eventgate_trigger_events_total",
	} {
		if !used[want] {
			t.Errorf("the dashboard shows nothing from %s", want)
		}
	}
	// Every backend on every panel that shows subscriptions or channels.
	for _, bc := range backendCases {
		for _, m := range perSubscription {
			if !used[m] {
				t.Errorf("%s is no longer on the dashboard: update perSubscription", m)
			}
			if m == "eventgate_consumer_lag" && bc.noLag != "" {
				if hasSeries(series, m, "subscription", bc.sub) {
					t.Errorf("%s reports %s, but the README says it does not: %s", bc.backend, m, bc.noLag)
				}
				continue
			}
			if !hasSeries(series, m, "subscription", bc.sub) {
				t.Errorf("%s: no %s series for subscription %s", bc.backend, m, bc.sub)
			}
		}
		for _, m := range perChannel {
			if !hasSeries(series, m, "channel", bc.channel) {
				t.Errorf("%s: no %s series for channel %s", bc.backend, m, bc.channel)
			}
		}
	}
}

// targetLabels are the labels Prometheus adds to every series it scrapes: no /metrics has them.
var targetLabels = map[string]bool{"instance": true, "job": true}

var (
	byClauseRe = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	selectorRe = regexp.MustCompile(`\{([^}]*)\}`)
)

// queryLabels returns the label names a PromQL expression groups by or matches on.
func queryLabels(expr string) []string {
	var out []string
	for _, m := range byClauseRe.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	for _, sel := range selectorRe.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcherRe.FindAllStringSubmatch(sel[1], -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// series is one sample line of a scrape: its metric name and labels.
type series struct {
	name   string
	labels map[string]string
}

func hasLabel(ss []series, name, label string) bool {
	for _, s := range ss {
		if s.name == name {
			if _, ok := s.labels[label]; ok {
				return true
			}
		}
	}
	return false
}

func hasSeries(ss []series, name, label, value string) bool {
	for _, s := range ss {
		if s.name == name && s.labels[label] == value {
			return true
		}
	}
	return false
}

// parseSeries reads the sample lines of a Prometheus text exposition (name{l="v",...} value).
func parseSeries(body []byte) []series {
	var out []series
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 {
			continue
		}
		s := series{name: line[:i], labels: map[string]string{}}
		if line[i] == '{' {
			rest := line[i+1:]
			for {
				rest = strings.TrimLeft(rest, ", ")
				if rest == "" || rest[0] == '}' {
					break
				}
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					break
				}
				key := rest[:eq]
				var val strings.Builder
				j := eq + 2
				for ; j < len(rest) && rest[j] != '"'; j++ {
					if rest[j] == '\\' && j+1 < len(rest) {
						j++
					}
					val.WriteByte(rest[j])
				}
				s.labels[key] = val.String()
				if j >= len(rest) {
					break
				}
				rest = rest[j+1:]
			}
		}
		out = append(out, s)
	}
	return out
}

// liveMetrics runs the gateway with a channel and a subscription on every backend, drives one event
// through each, and returns the metric names of a /metrics scrape (sample names, histograms'
// _bucket/_sum/_count included, and family names) and its series.
func liveMetrics(t *testing.T) (map[string]bool, []series) {
	t.Helper()
	var got atomic.Int64
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(sub.Close)

	cfg := config.Default()
	cfg.Ingress.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Shutdown.Grace = 5 * time.Second
	cfg.NATS.Servers = []string{natstest.Server(t, natstest.Options{}).ClientURL()}
	cfg.NATS.DefaultPartitions = 2
	ps := pstest.NewServerWithAddress("127.0.0.1:0")
	t.Cleanup(func() { _ = ps.Close() })
	cfg.PubSub.Project, cfg.PubSub.EmulatorHost = "eventgate-deploytest", ps.Addr
	kf, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(kf.Close)
	cfg.Kafka.Brokers = kf.ListenAddrs()
	cfg.Kafka.DefaultReplicationFactor = 1

	var manifests strings.Builder
	for _, bc := range backendCases {
		fmt.Fprintf(&manifests, `%s
metadata: {name: %s, namespace: default}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: %s, namespace: default}
spec:
  channel: {%s, name: %s}
  subscriber: {uri: "%s"}
---
`, bc.kind, bc.channel, bc.sub, channelRef(bc.kind), bc.channel, sub.URL)
	}
	manifests.WriteString(`apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata:
  name: repo
  namespace: default
  annotations: {eventgate.dev/unauthenticated: "true"}
spec:
  ownerAndRepository: eventgate/eventgate
  eventTypes: [push]
  sink: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: events, namespace: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: greetings, namespace: default}
spec:
  broker: events
  filters: [{exact: {type: com.example.greeting}}]
  subscriber: {uri: "` + sub.URL + `"}
`)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo.yaml"), []byte(manifests.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	type addrs struct{ ingress, admin string }
	ready := make(chan addrs, 1)
	a, err := app.New(app.Options{
		Config: cfg, Paths: []string{dir},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Build: metrics.Build{Version: "deploytest", Commit: "none", GoVersion: "go"},
		Ready: func(in, admin string) { ready <- addrs{in, admin} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})

	var ad addrs
	select {
	case ad = <-ready:
	case err := <-done:
		t.Fatalf("gateway stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not listen within 30s")
	}
	// Every channel and subscription ready (the Kafka, NATS and Pub/Sub ones are created at start).
	deadline := time.Now().Add(60 * time.Second)
	for status(ctx, "http://"+ad.admin+"/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 60s")
		}
		time.Sleep(50 * time.Millisecond) // poll interval; the deadline bounds the wait
	}

	for i, bc := range backendCases {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ad.ingress+"/default/"+bc.channel, strings.NewReader(`{"hello":"dashboard"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Type", "dev.eventgate.deploytest")
		req.Header.Set("Ce-Source", "/deploytest")
		req.Header.Set("Ce-Id", strconv.Itoa(i+1))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST event to %s: %s", bc.channel, resp.Status)
		}
	}

	hook, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ad.ingress+"/sources/default/repo", strings.NewReader(`{"ref":"refs/heads/main"}`))
	if err != nil {
		t.Fatal(err)
	}
	hook.Header.Set("X-GitHub-Event", "push")
	hook.Header.Set("X-GitHub-Delivery", "d-1")
	hook.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hook)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST webhook: %s", resp.Status)
	}

	// Poll until every delivery is counted, and every backend that reports lag has, then use that
	// scrape.
	deadline = time.Now().Add(60 * time.Second)
	for {
		names, body, err := scrape(ctx, "http://"+ad.admin+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		ss := parseSeries(body)
		complete := bytes.Contains(body, []byte(`eventgate_events_delivered_total{namespace="default",subscription="demo-display"} 2`))
		for _, bc := range backendCases {
			complete = complete && hasSeries(ss, "eventgate_events_delivered_total", "subscription", bc.sub) &&
				(bc.noLag != "" || hasSeries(ss, "eventgate_consumer_lag", "subscription", bc.sub))
		}
		if complete {
			return names, ss
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every delivery and lag counted within 60s (subscriber got %d):\n%s", got.Load(), grepLines(body, "eventgate_events_delivered_total", "eventgate_consumer_lag"))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// channelRef is a subscription's channel reference (without the name) for a channel manifest's
// "apiVersion: …\nkind: …".
func channelRef(kind string) string { return strings.Replace(kind, "\n", ", ", 1) }

// grepLines returns the lines of body that start with one of prefixes.
func grepLines(body []byte, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// status GETs url and returns its status code (0 when it cannot).
func status(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// scrape GETs a Prometheus text exposition and returns its metric names and the raw body.
func scrape(ctx context.Context, url string) (map[string]bool, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				names[f[0]] = true
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if len(names) == 0 {
		return nil, nil, errors.New("empty scrape")
	}
	return names, body, sc.Err()
}

// TestDashboardLagCountsEachPartitionOnce: every gateway replica reports the lag of the groups it
// runs (Kafka and NATS ask the server for the whole group's), so a panel that summed the raw series
// would count each partition once per replica. Each lag query takes one value per partition first.
func TestDashboardLagCountsEachPartitionOnce(t *testing.T) {
	for where, expr := range dashboardQueries(t, loadDashboard(t)) {
		if strings.Contains(expr, "eventgate_consumer_lag") && !strings.Contains(expr, "max by (namespace, subscription, topic, partition) (eventgate_consumer_lag") {
			t.Errorf("%s sums eventgate_consumer_lag over replicas: %s", where, expr)
		}
	}
}
