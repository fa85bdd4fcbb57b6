package github

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
)

const testSecret = "It's a Secret to Everybody"

// recordingSink records the events it accepts. While fail is set it refuses every event instead.
type recordingSink struct {
	mu     sync.Mutex
	events []*event.Event
	fail   error
}

func (s *recordingSink) Send(ctx context.Context, e *event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.events = append(s.events, e.Clone())
	return nil
}

func (s *recordingSink) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *recordingSink) got() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.events...)
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a GitHubSource webhook with a recording sink, metrics and a fake clock.
type harness struct {
	t     *testing.T
	w     *Webhook
	sink  *recordingSink
	m     *metrics.Metrics
	src   *resources.Source
	clock *fakeClock
}

// testSource returns the GitHubSource shop/repo-events for example/shop, signed with secret
// github/secretToken, asking for push, pull_request, release and issues.
func testSource() *resources.Source {
	return &resources.Source{
		Meta: resources.Meta{APIVersion: "sources.knative.dev/v1alpha1", Kind: "GitHubSource", Name: "repo-events", Namespace: "shop"},
		Sink: resources.Destination{Ref: &resources.Reference{Kind: "InMemoryChannel", Name: "orders", Namespace: "shop"}},
		GitHub: &resources.GitHubSpec{
			Owner: "example", Repository: "shop",
			EventTypes:  []string{"push", "pull_request", "release", "issues"},
			SecretToken: &resources.SecretKeyRef{Name: "github", Key: "secretToken"},
		},
	}
}

// writeSecret stores value as dir/github/secretToken and returns dir.
func writeSecret(t testing.TB, value string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "github"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "github", "secretToken"), []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newHarness builds the webhook for src with set (its clock is the harness's fake clock).
func newHarness(t *testing.T, src *resources.Source, set settings) *harness {
	t.Helper()
	h := &harness{t: t, sink: &recordingSink{}, m: metrics.New(metrics.Build{}), src: src,
		clock: &fakeClock{t: time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)}}
	set.now = h.clock.now
	w, err := newWebhook(src, adapters.Deps{Sink: h.sink, Metrics: h.m, SecretsDir: writeSecret(t, testSecret)}, set)
	if err != nil {
		t.Fatalf("newWebhook: %v", err)
	}
	h.w = w
	return h
}

// webhookCall describes one webhook request.
type webhookCall struct {
	kind, id    string
	contentType string // default application/json
	body        []byte
	signature   string // default: the correct one; "-" for none
}

func signature(secret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(sign([]byte(secret), body))
}

func (d webhookCall) request() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/sources/shop/repo-events", strings.NewReader(string(d.body)))
	ct := d.contentType
	if ct == "" {
		ct = contentJSON
	}
	r.Header.Set("Content-Type", ct)
	if d.kind != "" {
		r.Header.Set(HeaderEvent, d.kind)
	}
	if d.id != "" {
		r.Header.Set(HeaderDelivery, d.id)
	}
	switch d.signature {
	case "":
		r.Header.Set(HeaderSignature, signature(testSecret, d.body))
	case "-":
	default:
		r.Header.Set(HeaderSignature, d.signature)
	}
	return r
}

// serve sends d to the webhook and returns the answer's status.
func (h *harness) serve(d webhookCall) int {
	h.t.Helper()
	return h.serveRequest(d.request())
}

func (h *harness) serveRequest(r *http.Request) int {
	h.t.Helper()
	rec := httptest.NewRecorder()
	h.w.ServeHTTP(rec, r)
	return rec.Code
}

// count returns eventgate_source_events_total for this source and outcome.
func (h *harness) count(outcome string) float64 {
	return testutil.ToFloat64(h.m.SourceEvents.WithLabelValues(h.src.Namespace, h.src.Name, h.src.Kind, outcome))
}

// formBody returns payload as GitHub's application/x-www-form-urlencoded body.
func formBody(payload []byte) []byte {
	return []byte("payload=" + url.QueryEscape(string(payload)))
}

func readPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var errSinkDown = errors.New("sink down")

// eventually polls cond until it holds, failing the test after 5 seconds.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatal("condition not met within 5s")
		}
	}
}
