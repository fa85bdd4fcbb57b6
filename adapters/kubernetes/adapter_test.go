package kubernetes

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
)

func TestKubernetesEventSourceSendsCreatedEvent(t *testing.T) {
	f := newFakeCluster()
	sink := newSink()
	m := metrics.New(metrics.Build{})
	begin := time.Now()
	start(t, eventSource(KindKubernetesEventSource, resources.ModeResource), adapters.Deps{Sink: sink, Metrics: m},
		settings{client: f.cs, start: begin})
	f.waitWatch(t)

	last := begin.Add(time.Second).Truncate(time.Second)
	f.create(t, k8sEventObj("web-1.17a", "uid-1", "100", 1, last))
	e := sink.Next(t)

	data := e.Data
	e.Data = nil
	want := &event.Event{
		ID:              "uid-1/100",
		Source:          "/apis/v1/namespaces/default/pods/web-1",
		SpecVersion:     "1.0",
		Type:            "dev.knative.k8s.event",
		Subject:         "web-1.17a",
		DataContentType: "application/json",
		Time:            last.UTC().Format(time.RFC3339Nano),
		Extensions:      map[string]string{"cluster": "dev"},
	}
	if !e.Equal(want) {
		t.Fatalf("event = %+v\nwant    %+v", e, want)
	}
	var got corev1.Event
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("data is not an Event: %v", err)
	}
	if got.Name != "web-1.17a" || got.Namespace != "default" || got.Reason != "Pulled" || got.InvolvedObject.Name != "web-1" {
		t.Errorf("data = %s", data)
	}
	// Counted once Send has returned, a moment after the sink got the event.
	waitFor(t, "the event counted as accepted", func() bool {
		return testutil.ToFloat64(m.SourceEvents.WithLabelValues("default", "k8sevents", KindKubernetesEventSource, adapters.OutcomeAccepted)) == 1
	})
}

func TestCountBumpIsNewEventButSameResourceVersionIsNot(t *testing.T) {
	f := newFakeCluster()
	sink := newSink()
	begin := time.Now()
	start(t, eventSource(KindKubernetesEventSource, ""), adapters.Deps{Sink: sink},
		settings{client: f.cs, start: begin})
	f.waitWatch(t)

	ev := k8sEventObj("web-1.17a", "uid-1", "100", 1, begin.Add(time.Second))
	f.create(t, ev)
	if e := sink.Next(t); e.ID != "uid-1/100" {
		t.Fatalf("first event %s", e.ID)
	}

	// The API server bumps count and lastTimestamp, with a new resourceVersion: a real repeat.
	bumped := k8sEventObj("web-1.17a", "uid-1", "101", 2, begin.Add(2*time.Second))
	f.update(t, bumped)
	e := sink.Next(t)
	if e.ID != "uid-1/101" {
		t.Fatalf("repeat event %s, want uid-1/101", e.ID)
	}
	var d corev1.Event
	if err := json.Unmarshal(e.Data, &d); err != nil || d.Count != 2 {
		t.Errorf("repeat data count = %d (%v), want 2", d.Count, err)
	}

	// An update that keeps the resourceVersion (a resync-like duplicate) is not sent again.
	same := bumped.DeepCopy()
	same.Message = "changed without a new resourceVersion"
	f.update(t, same)
	// A later event proves the duplicate was handled (the informer delivers in order).
	f.create(t, k8sEventObj("web-2.17b", "uid-2", "102", 1, begin.Add(3*time.Second)))
	if e := sink.Next(t); e.ID != "uid-2/102" {
		t.Fatalf("after the duplicate got %s, want uid-2/102", e.ID)
	}
	if ids := sink.IDs(); !slices.Equal(ids, []string{"uid-1/100", "uid-1/101", "uid-2/102"}) {
		t.Errorf("sent %v", ids)
	}
}

func TestEventsBeforeStartAreNotReplayed(t *testing.T) {
	begin := time.Now()
	// One old Event already in the cluster (initial list) and one old Event created later.
	f := newFakeCluster(k8sEventObj("old-1", "uid-old-1", "5", 3, begin.Add(-time.Hour)))
	sink := newSink()
	m := metrics.New(metrics.Build{})
	start(t, eventSource(KindKubernetesEventSource, ""), adapters.Deps{Sink: sink, Metrics: m},
		settings{client: f.cs, start: begin})
	f.waitWatch(t)
	f.create(t, k8sEventObj("old-2", "uid-old-2", "6", 1, begin.Add(-10*time.Minute)))
	f.create(t, k8sEventObj("new", "uid-new", "7", 1, begin.Add(time.Second)))
	if e := sink.Next(t); e.ID != "uid-new/7" {
		t.Fatalf("got %s, want only the new event", e.ID)
	}
	if ids := sink.IDs(); len(ids) != 1 {
		t.Errorf("sent %v", ids)
	}
	if c := testutil.ToFloat64(m.SourceEvents.WithLabelValues("default", "k8sevents", KindKubernetesEventSource, adapters.OutcomeSkipped)); c != 2 {
		t.Errorf("skipped count = %v, want 2", c)
	}
}

func TestReplayAnnotationSendsOldEvents(t *testing.T) {
	begin := time.Now()
	f := newFakeCluster(k8sEventObj("old-1", "uid-old-1", "5", 3, begin.Add(-time.Hour)))
	sink := newSink()
	src := eventSource(KindKubernetesEventSource, "")
	src.Annotations = map[string]string{AnnotationReplayEvents: "true"}
	start(t, src, adapters.Deps{Sink: sink}, settings{client: f.cs, start: begin})
	if e := sink.Next(t); e.ID != "uid-old-1/5" {
		t.Fatalf("got %s, want the old event replayed", e.ID)
	}
}

func TestFailedSendIsRetriedAndRememberedOnlyAfterSuccess(t *testing.T) {
	f := newFakeCluster()
	sink := newSink()
	var mu sync.Mutex
	refusals := 0
	sink.Fail = func(*event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if refusals < 3 {
			refusals++
			return errRefused
		}
		return nil
	}
	m := metrics.New(metrics.Build{})
	begin := time.Now()
	a := start(t, eventSource(KindKubernetesEventSource, ""), adapters.Deps{Sink: sink, Metrics: m},
		settings{client: f.cs, start: begin, retryBase: time.Millisecond, retryMax: 5 * time.Millisecond, maxAttempts: 10})
	f.waitWatch(t)
	f.create(t, k8sEventObj("e", "uid-1", "10", 1, begin.Add(time.Second)))
	if e := sink.Next(t); e.ID != "uid-1/10" {
		t.Fatalf("got %s", e.ID)
	}
	if c := testutil.ToFloat64(m.SourceEvents.WithLabelValues("default", "k8sevents", KindKubernetesEventSource, adapters.OutcomeFailed)); c != 3 {
		t.Errorf("failed count = %v, want 3", c)
	}
	// The adapter records the success once Send has returned, a moment after the sink got the event.
	waitFor(t, "the event remembered as sent and nothing pending", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.sent.has("uid-1/10") && len(a.pending) == 0
	})
}

func TestEventDroppedAfterLastAttempt(t *testing.T) {
	f := newFakeCluster()
	sink := newSink()
	sink.Fail = func(e *event.Event) error {
		if e.ID == "uid-bad/10" {
			return errRefused
		}
		return nil
	}
	m := metrics.New(metrics.Build{})
	begin := time.Now()
	a := start(t, eventSource(KindKubernetesEventSource, ""), adapters.Deps{Sink: sink, Metrics: m},
		settings{client: f.cs, start: begin, retryBase: time.Millisecond, retryMax: 2 * time.Millisecond, maxAttempts: 3})
	f.waitWatch(t)
	f.create(t, k8sEventObj("bad", "uid-bad", "10", 1, begin.Add(time.Second)))
	f.create(t, k8sEventObj("good", "uid-good", "11", 1, begin.Add(time.Second)))
	if e := sink.Next(t); e.ID != "uid-good/11" {
		t.Fatalf("got %s", e.ID)
	}
	waitFor(t, "the failing event to be dropped", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.pending) == 0
	})
	a.mu.Lock()
	remembered := a.sent.has("uid-bad/10")
	a.mu.Unlock()
	if remembered {
		t.Error("a dropped event was remembered as sent")
	}
	if c := testutil.ToFloat64(m.SourceEvents.WithLabelValues("default", "k8sevents", KindKubernetesEventSource, adapters.OutcomeFailed)); c != 3 {
		t.Errorf("failed count = %v, want 3 (one per attempt)", c)
	}
}

func TestApiServerSourceReferenceMode(t *testing.T) {
	f := newFakeCluster()
	sink := newSink()
	begin := time.Now()
	start(t, eventSource(KindApiServerSource, resources.ModeReference), adapters.Deps{Sink: sink},
		settings{client: f.cs, host: "https://10.0.0.1:6443", start: begin})
	f.waitWatch(t)

	ev := k8sEventObj("web-1.17a", "uid-1", "100", 1, begin.Add(time.Second))
	f.create(t, ev)
	add := sink.Next(t)
	f.update(t, k8sEventObj("web-1.17a", "uid-1", "101", 2, begin.Add(2*time.Second)))
	upd := sink.Next(t)
	if err := f.cs.CoreV1().Events("default").Delete(t.Context(), "web-1.17a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	del := sink.Next(t)

	for _, c := range []struct {
		e        *event.Event
		typ, id  string
		wantData string
	}{
		{add, TypeAPIServerAdd, "uid-1/100", `{"apiVersion":"v1","kind":"Event","name":"web-1.17a","namespace":"default"}`},
		{upd, TypeAPIServerUpdate, "uid-1/101", `{"apiVersion":"v1","kind":"Event","name":"web-1.17a","namespace":"default"}`},
		{del, TypeAPIServerDelete, "uid-1/101/delete", `{"apiVersion":"v1","kind":"Event","name":"web-1.17a","namespace":"default"}`},
	} {
		if c.e.Type != c.typ || c.e.ID != c.id || string(c.e.Data) != c.wantData {
			t.Errorf("event %s %s data %s, want %s %s %s", c.e.Type, c.e.ID, c.e.Data, c.typ, c.id, c.wantData)
		}
		if c.e.Source != "https://10.0.0.1:6443" || c.e.Subject != "/apis/v1/namespaces/default/events/web-1.17a" ||
			c.e.Extension("cluster") != "dev" {
			t.Errorf("event source %q subject %q", c.e.Source, c.e.Subject)
		}
	}
}

func TestApiServerSourceResourceModeSendsObject(t *testing.T) {
	f := newFakeCluster()
	sink := newSink()
	begin := time.Now()
	start(t, eventSource(KindApiServerSource, resources.ModeResource), adapters.Deps{Sink: sink},
		settings{client: f.cs, start: begin})
	f.waitWatch(t)
	f.create(t, k8sEventObj("web-1.17a", "uid-1", "100", 1, begin.Add(time.Second)))
	e := sink.Next(t)
	var obj map[string]any
	if err := json.Unmarshal(e.Data, &obj); err != nil {
		t.Fatal(err)
	}
	md, _ := obj["metadata"].(map[string]any)
	if obj["apiVersion"] != "v1" || obj["kind"] != "Event" || obj["reason"] != "Pulled" || md["name"] != "web-1.17a" {
		t.Errorf("data = %s", e.Data)
	}
	if e.Type != TypeAPIServerAdd || e.Source != DefaultHost {
		t.Errorf("type %s source %s", e.Type, e.Source)
	}
}

func TestNewRejects(t *testing.T) {
	f := newFakeCluster()
	d := adapters.Deps{Sink: newSink()}
	other := eventSource(KindApiServerSource, resources.ModeReference)
	other.Kubernetes.Resources = []resources.APIResource{{APIVersion: "apps/v1", Kind: "Deployment"}}
	if _, err := newAdapter(other, d, settings{client: f.cs}); !errors.Is(err, adapters.ErrNotRun) {
		t.Errorf("other kind: err = %v, want ErrNotRun", err)
	}
	badSel := eventSource(KindApiServerSource, resources.ModeReference)
	badSel.Kubernetes.Resources[0].Selector = "a in (("
	if _, err := newAdapter(badSel, d, settings{client: f.cs}); err == nil {
		t.Error("bad selector accepted")
	}
	wrongKind := eventSource("GitHubSource", "")
	if _, err := newAdapter(wrongKind, d, settings{client: f.cs}); err == nil {
		t.Error("wrong kind accepted")
	}
	if _, err := newAdapter(eventSource(KindKubernetesEventSource, ""), adapters.Deps{}, settings{client: f.cs}); err == nil {
		t.Error("no sink accepted")
	}

	// Neither in-cluster config nor a kubeconfig: not run here.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	t.Setenv("HOME", t.TempDir())
	if _, err := New(eventSource(KindKubernetesEventSource, ""), d); !errors.Is(err, adapters.ErrNotRun) {
		t.Errorf("no cluster: err = %v, want ErrNotRun", err)
	}
}
