package kubernetes

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlural(t *testing.T) {
	for kind, want := range map[string]string{
		"Pod": "pods", "Event": "events", "Ingress": "ingresses", "NetworkPolicy": "networkpolicies",
		"Gateway": "gateways", "Box": "boxes", "Batch": "batches", "Mesh": "meshes", "Endpoints": "endpoints",
		"": "", "Y": "ys",
	} {
		if got := plural(kind); got != want {
			t.Errorf("plural(%q) = %q, want %q", kind, got, want)
		}
	}
}

func TestObjectPath(t *testing.T) {
	tests := []struct{ apiVersion, kind, ns, name, want string }{
		{"v1", "Pod", "default", "x", "/apis/v1/namespaces/default/pods/x"},
		{"", "Pod", "default", "x", "/apis/v1/namespaces/default/pods/x"},
		{"apps/v1", "Deployment", "prod", "web", "/apis/apps/v1/namespaces/prod/deployments/web"},
		{"v1", "Node", "", "node-1", "/apis/v1/nodes/node-1"},
	}
	for _, tt := range tests {
		if got := objectPath(tt.apiVersion, tt.kind, tt.ns, tt.name); got != tt.want {
			t.Errorf("objectPath(%q, %q, %q, %q) = %q, want %q", tt.apiVersion, tt.kind, tt.ns, tt.name, got, tt.want)
		}
	}
}

func TestEventTimeIsTheLatestTimestamp(t *testing.T) {
	base := time.Date(2024, 1, 4, 22, 46, 44, 0, time.UTC)
	tests := []struct {
		name string
		ev   corev1.Event
		want time.Time
	}{
		{"none", corev1.Event{}, time.Time{}},
		{"creation only", corev1.Event{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(base)}}, base},
		{"last after first", corev1.Event{FirstTimestamp: metav1.NewTime(base), LastTimestamp: metav1.NewTime(base.Add(time.Minute))},
			base.Add(time.Minute)},
		{"events.k8s.io style", corev1.Event{EventTime: metav1.NewMicroTime(base.Add(time.Second)),
			Series: &corev1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(base.Add(time.Hour))}}, base.Add(time.Hour)},
	}
	for _, tt := range tests {
		if got := eventTime(&tt.ev); !got.Equal(tt.want) {
			t.Errorf("%s: eventTime = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSentSetForgetsOldestFirst(t *testing.T) {
	s := newSentSet(3)
	for i := range 5 {
		s.add(fmt.Sprint(i))
		s.add(fmt.Sprint(i)) // adding twice does not take a second slot
	}
	if s.len() != 3 {
		t.Fatalf("len = %d, want 3", s.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if got := s.has(fmt.Sprint(i)); got != want {
			t.Errorf("has(%d) = %v, want %v", i, got, want)
		}
	}
	z := newSentSet(0) // capacity is at least 1
	z.add("a")
	z.add("b")
	if z.has("a") || !z.has("b") || z.len() != 1 {
		t.Errorf("zero-capacity set: has(a)=%v has(b)=%v len=%d", z.has("a"), z.has("b"), z.len())
	}
}
