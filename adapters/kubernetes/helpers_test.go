package kubernetes

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/internal/adapterstest"
)

func newSink() *adapterstest.Sink { return adapterstest.NewSink() }

var errRefused = errors.New("sink refused")

func eventSource(kind, mode string) *resources.Source {
	return &resources.Source{
		Meta:        resources.Meta{Kind: kind, Name: "k8sevents", Namespace: "default"},
		CEOverrides: map[string]string{"cluster": "dev"},
		Kubernetes: &resources.KubernetesSpec{Namespace: "default", Mode: mode,
			Resources: []resources.APIResource{{APIVersion: "v1", Kind: "Event"}}},
	}
}

// k8sEventObj is a core/v1 Event about pod NAME, last seen at last.
func k8sEventObj(name, uid, rv string, count int32, last time.Time) *corev1.Event {
	return &corev1.Event{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(uid), ResourceVersion: rv,
			CreationTimestamp: metav1.NewTime(last.Add(-time.Duration(count) * time.Minute))},
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: "default", Name: "web-1"},
		Reason:         "Pulled",
		Message:        "Container image pulled",
		Count:          count,
		FirstTimestamp: metav1.NewTime(last.Add(-time.Duration(count) * time.Minute)),
		LastTimestamp:  metav1.NewTime(last),
		Type:           corev1.EventTypeNormal,
	}
}

// fakeCluster is a fake clientset whose Event watches are signalled on watching.
type fakeCluster struct {
	cs       *fake.Clientset
	watching chan struct{}
}

func newFakeCluster(objs ...runtime.Object) *fakeCluster {
	f := &fakeCluster{cs: fake.NewClientset(objs...), watching: make(chan struct{}, 16)}
	f.cs.PrependWatchReactor("events", func(k8stesting.Action) (bool, watch.Interface, error) {
		select {
		case f.watching <- struct{}{}:
		default:
		}
		return false, nil, nil // let the tracker open the watch
	})
	return f
}

// waitWatch waits until the adapter's informer opened its watch.
func (f *fakeCluster) waitWatch(t *testing.T) {
	t.Helper()
	select {
	case <-f.watching:
	case <-time.After(20 * time.Second):
		t.Fatal("the informer never started watching")
	}
}

func (f *fakeCluster) create(t *testing.T, ev *corev1.Event) {
	t.Helper()
	if _, err := f.cs.CoreV1().Events(ev.Namespace).Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeCluster) update(t *testing.T, ev *corev1.Event) {
	t.Helper()
	if _, err := f.cs.CoreV1().Events(ev.Namespace).Update(context.Background(), ev, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// start builds the adapter with set and runs it; Run is stopped and must have returned nil at cleanup.
func start(t *testing.T, src *resources.Source, d adapters.Deps, set settings) *Adapter {
	t.Helper()
	if d.Metrics == nil {
		d.Metrics = metrics.New(metrics.Build{})
	}
	a, err := newAdapter(src, d, set)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return a
}

// waitFor polls cond every few milliseconds until it holds, failing the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
