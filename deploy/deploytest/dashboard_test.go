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
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestDashboardQueriesNameLiveMetrics starts the real gateway in process with the in-memory channel,
// sends an event through a subscription, scrapes /metrics and checks that every metric the dashboard
// queries is one the gateway really exports.
func TestDashboardQueriesNameLiveMetrics(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatalf("dashboard needs a uid and a title: %q %q", d.UID, d.Title)
	}
	queries := dashboardQueries(t, d)

	exported := liveMetricNames(t)

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
}

// liveMetricNames runs the gateway, drives one event through it and returns every metric name in a
// /metrics scrape: sample names (histograms' _bucket/_sum/_count included) and family names.
func liveMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	var got atomic.Int64
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(sub.Close)

	dir := t.TempDir()
	manifests := `apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: demo, namespace: default}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: demo-display, namespace: default}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "` + sub.URL + `"}
---
apiVersion: sources.knative.dev/v1alpha1
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
`
	if err := os.WriteFile(filepath.Join(dir, "demo.yaml"), []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Ingress.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Shutdown.Grace = 5 * time.Second

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

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ad.ingress+"/default/demo", strings.NewReader(`{"hello":"dashboard"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Type", "dev.eventgate.deploytest")
	req.Header.Set("Ce-Source", "/deploytest")
	req.Header.Set("Ce-Id", "1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST event: %s", resp.Status)
	}

	hook, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ad.ingress+"/sources/default/repo", strings.NewReader(`{"ref":"refs/heads/main"}`))
	if err != nil {
		t.Fatal(err)
	}
	hook.Header.Set("X-GitHub-Event", "push")
	hook.Header.Set("X-GitHub-Delivery", "d-1")
	hook.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(hook)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST webhook: %s", resp.Status)
	}

	// Poll until both deliveries are counted, then use that scrape.
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, body, err := scrape(ctx, "http://"+ad.admin+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if got.Load() > 1 && bytes.Contains(body, []byte(`eventgate_events_delivered_total{namespace="default",subscription="demo-display"} 2`)) {
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery counted within 30s (subscriber got %d)", got.Load())
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
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
