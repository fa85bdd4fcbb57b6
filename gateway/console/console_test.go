package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/metrics"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The console's page and files come from the binary; the page loads only its own files (its
// Content-Security-Policy says so, and it names no other host); the figures are JSON.
func TestHandler(t *testing.T) {
	m := metrics.New(metrics.Build{})
	m.Delivered.WithLabelValues("default", "demo-display").Add(3)
	s := NewSampler(m.Registry, SamplerOptions{})
	h := New(s)

	resp, body := get(t, h, "GET", "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<script src="/console/static/console.js">`) {
		t.Fatalf("GET / = %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	for _, file := range []string{"index.html", "console.js", "console.css"} {
		b, err := static.ReadFile("static/" + file)
		if err != nil {
			t.Fatal(err)
		}
		for _, remote := range []string{"http://", "https://", "//cdn"} {
			if i := strings.Index(string(b), remote); i >= 0 && !strings.Contains(string(b[i:min(len(b), i+40)]), "www.w3.org/2000/svg") {
				t.Errorf("%s refers to another host: %q", file, b[i:min(len(b), i+60)])
			}
		}
	}
	for path, ctype := range map[string]string{
		"/console/static/console.js":  "text/javascript",
		"/console/static/console.css": "text/css",
	} {
		if resp, body := get(t, h, "GET", path); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(body) < 100 {
			t.Errorf("GET %s = %d %s (%d bytes)", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
	}
	for _, path := range []string{"/console/static/", "/console/static/nope.js", "/console/nope", "/other"} {
		if resp, _ := get(t, h, "GET", path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := get(t, h, "POST", "/console/api/metrics"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}

	s.Sample()
	s.now = func() time.Time { return time.Now().Add(5 * time.Second) }
	s.Sample()
	resp, body = get(t, h, "GET", "/console/api/metrics")
	var f Figures
	if err := json.Unmarshal([]byte(body), &f); err != nil || resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /console/api/metrics = %d %v\n%s", resp.StatusCode, err, body)
	}
	if sf, ok := f.Subscriptions["default/demo-display"]; !ok || sf.DeliveredPerSec == nil || *sf.DeliveredPerSec != 0 {
		t.Errorf("figures = %s, want default/demo-display at 0 events/s", body)
	}
	if !strings.Contains(body, `"lag":null`) {
		t.Errorf("an unknown figure is not null: %s", body)
	}
	if !s.inUse() {
		t.Error("a figures request did not mark the sampler in use")
	}
	for q, want := range map[string]int{"subscription=default/demo-display": 200, "trigger=shop/audit": 200,
		"channel=default/demo": 200, "broker=shop/default": 200, "": 400} {
		resp, body := get(t, h, "GET", "/console/api/series?"+q)
		var series Series
		if resp.StatusCode != want || (want == 200 && (json.Unmarshal([]byte(body), &series) != nil || len(series.Times) != 2)) {
			t.Errorf("series?%s = %d %s", q, resp.StatusCode, body)
		}
	}
}
