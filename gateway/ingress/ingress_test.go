package ingress

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
)

// recorder is a channel.Publisher that keeps what it stores, or fails with err.
type recorder struct {
	mu     sync.Mutex
	stored []*event.Event
	err    error
}

func (r *recorder) Publish(_ context.Context, _ channel.Ref, es []*event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.stored = append(r.stored, es...)
	return nil
}

func newHandler(t *testing.T, pub channel.Publisher) (*Handler, *metrics.Metrics) {
	t.Helper()
	m := metrics.New(metrics.Build{Version: "test"})
	cfg := DefaultConfig()
	cfg.MaxBodyBytes = 1024
	h := New(cfg, Deps{Metrics: m})
	h.SetChannels(Table{{Namespace: "default", Name: "demo"}: pub})
	return h, m
}

func do(h http.Handler, method, target, host string, header map[string]string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var binary = map[string]string{
	"Ce-Specversion": "1.0", "Ce-Id": "A234-1234-1234", "Ce-Source": "/mycontext",
	"Ce-Type": "com.example.someevent", "Content-Type": "text/plain", "Ce-Comexampleextension1": "value%20with%20space",
}

func TestModesAndAddressing(t *testing.T) {
	structured := `{"specversion":"1.0","id":"s1","source":"/src","type":"t","datacontenttype":"application/json","data":{"a":1}}`
	tests := []struct {
		name   string
		host   string
		target string
		header map[string]string
		body   string
		ids    []string
	}{
		{"binary by path", "", "/default/demo", binary, "hello", []string{"A234-1234-1234"}},
		{"structured by path", "", "/default/demo", map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}, structured, []string{"s1"}},
		{"batch by path", "", "/default/demo", map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			"[" + structured + "," + strings.Replace(structured, `"s1"`, `"s2"`, 1) + "]", []string{"s1", "s2"}},
		{"binary by knative host", "demo-kn-channel.default.svc.cluster.local", "/", binary, "x", []string{"A234-1234-1234"}},
		{"knative host with port", "demo-kn-channel.default.svc.cluster.local:80", "/anything", binary, "x", []string{"A234-1234-1234"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{}
			h, _ := newHandler(t, pub)
			w := do(h, http.MethodPost, tt.target, tt.host, tt.header, tt.body)
			if w.Code != http.StatusAccepted {
				t.Fatalf("code %d: %s", w.Code, w.Body)
			}
			if len(pub.stored) != len(tt.ids) {
				t.Fatalf("stored %d events, want %d", len(pub.stored), len(tt.ids))
			}
			for i, id := range tt.ids {
				if pub.stored[i].ID != id {
					t.Errorf("event %d id %q, want %q", i, pub.stored[i].ID, id)
				}
			}
		})
	}
	t.Run("binary header values are percent-decoded", func(t *testing.T) {
		pub := &recorder{}
		h, _ := newHandler(t, pub)
		do(h, http.MethodPost, "/default/demo", "", binary, "hello")
		if got := pub.stored[0].Extension("comexampleextension1"); got != "value with space" {
			t.Fatalf("extension = %q", got)
		}
		if string(pub.stored[0].Data) != "hello" || pub.stored[0].DataContentType != "text/plain" {
			t.Fatalf("data %q type %q", pub.stored[0].Data, pub.stored[0].DataContentType)
		}
	})
}

func TestStatusCodes(t *testing.T) {
	missingID := map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "/s", "Ce-Type": "t"}
	tests := []struct {
		name     string
		method   string
		target   string
		header   map[string]string
		body     string
		pubErr   error
		code     int
		bodyHas  string
		wantHdrs map[string]string
	}{
		{"missing id", http.MethodPost, "/default/demo", missingID, "", nil, 400, "id", nil},
		{"not a cloudevent", http.MethodPost, "/default/demo", map[string]string{"Content-Type": "text/plain"}, "hi", nil, 400, "", nil},
		{"unknown channel", http.MethodPost, "/default/nope", binary, "", nil, 404, "default/nope", nil},
		{"no channel in path", http.MethodPost, "/", binary, "", nil, 404, "", nil},
		{"GET", http.MethodGet, "/default/demo", nil, "", nil, 405, "GET", map[string]string{"Allow": "POST, OPTIONS"}},
		{"OPTIONS", http.MethodOptions, "/default/demo", map[string]string{"WebHook-Request-Origin": "eventemitter.example.com"}, "", nil, 200, "",
			map[string]string{"Allow": "POST, OPTIONS", "WebHook-Allowed-Origin": "eventemitter.example.com"}},
		{"too large", http.MethodPost, "/default/demo", binary, strings.Repeat("x", 2000), nil, 413, "limit", nil},
		{"avro", http.MethodPost, "/default/demo", map[string]string{"Content-Type": "application/cloudevents+avro"}, "x", nil, 415, "", nil},
		{"full", http.MethodPost, "/default/demo", binary, "x", &channel.FullError{RetryAfter: 1500 * time.Millisecond}, 429, "full", map[string]string{"Retry-After": "2"}},
		{"unavailable", http.MethodPost, "/default/demo", binary, "x", fmt.Errorf("broker: %w", channel.ErrUnavailable), 503, "retry", nil},
		{"channel waiting for its backend", http.MethodPost, "/default/demo", binary, "x",
			&channel.WaitingError{Channel: channel.Ref{Namespace: "default", Name: "demo"}, Reason: "Kafka is unavailable: connection refused"},
			503, "channel default/demo: Kafka is unavailable: connection refused", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{err: tt.pubErr}
			h, _ := newHandler(t, pub)
			w := do(h, tt.method, tt.target, "", tt.header, tt.body)
			if w.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if !strings.Contains(w.Body.String(), tt.bodyHas) {
				t.Errorf("body %q does not mention %q", w.Body, tt.bodyHas)
			}
			for k, v := range tt.wantHdrs {
				if got := w.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.code != 202 && len(pub.stored) != 0 {
				t.Errorf("stored %d events on a %d", len(pub.stored), tt.code)
			}
		})
	}
}

func TestTooLargeWithoutContentLength(t *testing.T) {
	h, _ := newHandler(t, &recorder{})
	req := httptest.NewRequest(http.MethodPost, "/default/demo", strings.NewReader(strings.Repeat("x", 5000)))
	req.ContentLength = -1
	for k, v := range binary {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("code %d", w.Code)
	}
}

func TestMetricsCountRequests(t *testing.T) {
	h, m := newHandler(t, &recorder{})
	do(h, http.MethodPost, "/default/demo", "", binary, "x")
	do(h, http.MethodPost, "/default/demo", "", binary, "x")
	do(h, http.MethodPost, "/other/unknown", "", binary, "x")
	if got := testutil.ToFloat64(m.IngressRequests.WithLabelValues("default", "demo", "202")); got != 2 {
		t.Errorf("202 count = %v", got)
	}
	if got := testutil.ToFloat64(m.IngressRequests.WithLabelValues("", "", "404")); got != 1 {
		t.Errorf("404 count = %v (unknown channels must not create label values)", got)
	}
	if got := testutil.ToFloat64(m.IngressEvents.WithLabelValues("default", "demo")); got != 2 {
		t.Errorf("events = %v", got)
	}
}

func TestSourceRoutes(t *testing.T) {
	h, _ := newHandler(t, &recorder{})
	h.SetSources(map[string]http.Handler{"default/gh": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})})
	if w := do(h, http.MethodPost, "/sources/default/gh", "", nil, "{}"); w.Code != http.StatusNoContent {
		t.Fatalf("source route code %d", w.Code)
	}
}

func TestConfigValidateNamesEveryKey(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	c := DefaultConfig()
	c.Address, c.MaxBodyBytes, c.MaxHeaderBytes, c.MaxConcurrentRequests = "nope", 0, 0, -1
	c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout = 0, 0, 0, 0
	c.TLS.KeyFile = "key.pem"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"address", "maxBodyBytes", "maxHeaderBytes", "maxConcurrentRequests",
		"readHeaderTimeout", "readTimeout", "writeTimeout", "idleTimeout", "tls.certFile"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}
