package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/resources"
)

// TestRealAPIServer runs a KubernetesEventSource against a real kube-apiserver (scripts/kube up;
// EVENTGATE_TEST_KUBECONFIG names its kubeconfig; a failure without it when EVENTGATE_REQUIRE_KUBE=1,
// a skip otherwise): Events created through the API reach the sink, each once, through the adapter's
// own client configuration (KUBECONFIG).
func TestRealAPIServer(t *testing.T) {
	path := os.Getenv("EVENTGATE_TEST_KUBECONFIG")
	if path == "" {
		if os.Getenv("EVENTGATE_REQUIRE_KUBE") == "1" {
			t.Fatal("EVENTGATE_REQUIRE_KUBE=1 but EVENTGATE_TEST_KUBECONFIG is not set (scripts/kube up prints it)")
		}
		t.Skip("no API server: set EVENTGATE_TEST_KUBECONFIG (scripts/kube up prints it)")
	}
	t.Setenv("KUBECONFIG", path)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := clientset.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := "eg-events-" + hex.EncodeToString(b[:])
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	src := &resources.Source{
		Meta: resources.Meta{Kind: KindKubernetesEventSource, Name: "k8sevents", Namespace: ns},
		Kubernetes: &resources.KubernetesSpec{Namespace: ns,
			Resources: []resources.APIResource{{APIVersion: "v1", Kind: "Event"}}},
	}
	sink := newSink()
	a, err := New(src, adapters.Deps{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	create := func(name string) *corev1.Event {
		now := metav1.NewTime(time.Now().Add(2 * time.Second)) // after the adapter's start, whatever the clock's second
		e, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns},
			InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: "web-1"},
			Reason:         "Pulled", Message: "pulled", Type: corev1.EventTypeNormal, Count: 1,
			FirstTimestamp: now, LastTimestamp: now,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	const n = 5
	for i := range n {
		create(fmt.Sprintf("web-1.%d", i))
	}
	waitFor(t, fmt.Sprintf("%d events at the sink", n), func() bool { return len(sink.IDs()) >= n })
	// A marker created after the others arrived: once it is in, any repeat of the first ones would be too.
	create("web-1.marker")
	waitFor(t, "the marker at the sink", func() bool { return len(sink.IDs()) >= n+1 })
	ids := sink.IDs()
	slices.Sort(ids)
	if len(slices.Compact(slices.Clone(ids))) != len(ids) || len(ids) != n+1 {
		t.Errorf("sink got %d events (%v), want %d, each once", len(ids), ids, n+1)
	}
}
