package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/eventgate/eventgate/gateway/kube"
)

// kubeCluster is a real API server for the Kubernetes-native tests: EVENTGATE_TEST_KUBECONFIG names
// its kubeconfig (scripts/kube up prints one). Without it the tests skip, unless
// EVENTGATE_REQUIRE_KUBE=1 (scripts/test), where a missing server is a failure.
type kubeCluster struct {
	kubeconfig string
	c          *kube.Client
	ns         string // this test's namespace, removed at cleanup
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// needKube connects to the test API server, installs the chart's CRDs (once they are there, again
// is a no-op) and makes a namespace of the test's own.
func needKube(t *testing.T) *kubeCluster {
	t.Helper()
	path := os.Getenv("EVENTGATE_TEST_KUBECONFIG")
	if path == "" {
		if os.Getenv("EVENTGATE_REQUIRE_KUBE") == "1" {
			t.Fatal("EVENTGATE_REQUIRE_KUBE=1 but EVENTGATE_TEST_KUBECONFIG is not set (scripts/kube up prints it)")
		}
		t.Skip("no API server: set EVENTGATE_TEST_KUBECONFIG (scripts/kube up prints it)")
	}
	c, err := kube.NewClient(path)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeCluster{kubeconfig: path, c: c}
	k.installCRDs(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	k.ns = "eg-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(k.ns) > 50 {
		k.ns = k.ns[:50]
	}
	k.ns = strings.Trim(k.ns, "-") + "-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", k.ns, err)
	}
	t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), k.ns, metav1.DeleteOptions{}) })
	return k
}

// installCRDs creates the chart's CRDs that are missing and waits until each is established.
func (k *kubeCluster) installCRDs(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile("../../charts/eventgate/crds/eventgate-crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, doc := range strings.Split(string(data), "\n---\n")[1:] {
		u := k.decode(t, doc)
		names = append(names, u.GetName())
		_, err := k.c.Dynamic.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("CRD %s: %v", u.GetName(), err)
		}
	}
	for _, name := range names {
		eventually(t, 30*time.Second, func() bool {
			u, err := k.c.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			return err == nil && conditionStatus(u, "Established") == "True"
		}, "CRD %s established", name)
	}
}

// decode reads one YAML document into an object.
func (k *kubeCluster) decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return &unstructured.Unstructured{Object: m}
}

// gvr is the resource of u's kind, from the CRDs the chart installs.
func gvrOf(t *testing.T, u *unstructured.Unstructured) schema.GroupVersionResource {
	t.Helper()
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		t.Fatal(err)
	}
	return schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: kube.Plural(u.GetKind())}
}

// apply creates each document of manifest in the test's namespace, or updates it (a merge patch of
// its spec and metadata) when it exists: `kubectl apply -n NS`, for the kinds of the chart's CRDs.
func (k *kubeCluster) apply(t *testing.T, manifest string) {
	t.Helper()
	ctx := context.Background()
	for _, doc := range strings.Split(manifest, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := k.decode(t, doc)
		u.SetNamespace(k.ns)
		r := k.c.Dynamic.Resource(gvrOf(t, u)).Namespace(k.ns)
		_, err := r.Create(ctx, u, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			patch, _ := (&unstructured.Unstructured{Object: map[string]any{"spec": u.Object["spec"], "metadata": map[string]any{
				"annotations": u.GetAnnotations()}}}).MarshalJSON()
			_, err = r.Patch(ctx, u.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
		}
		if err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
}

// remove deletes one object of the test's namespace.
func (k *kubeCluster) remove(t *testing.T, apiVersion, kind, name string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	if err := k.c.Dynamic.Resource(gvrOf(t, u)).Namespace(k.ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete %s %s: %v", kind, name, err)
	}
}

// get returns one object of the test's namespace; nil when it is not there.
func (k *kubeCluster) get(t *testing.T, apiVersion, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	got, err := k.c.Dynamic.Resource(gvrOf(t, u)).Namespace(k.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return got
}

// waitReady polls until the object's Ready condition has status want ("True", "False") and its
// observedGeneration is its generation, and returns the object.
func (k *kubeCluster) waitReady(t *testing.T, apiVersion, kind, name, want string) *unstructured.Unstructured {
	t.Helper()
	var got *unstructured.Unstructured
	eventually(t, 30*time.Second, func() bool {
		got = k.get(t, apiVersion, kind, name)
		if got == nil {
			return false
		}
		og, _, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration")
		return conditionStatus(got, "Ready") == want && og == got.GetGeneration()
	}, "%s %s/%s Ready=%s (last: %v)", kind, k.ns, name, want, func() any {
		if got == nil {
			return nil
		}
		return got.Object["status"]
	}())
	return got
}

// conditionStatus is the status of u's condition of type typ ("" when it has none).
func conditionStatus(u *unstructured.Unstructured, typ string) string {
	c := condition(u, typ)
	s, _ := c["status"].(string)
	return s
}

// condition is u's condition of type typ; nil when it has none.
func condition(u *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// startKubeGateway runs `eventgate serve --kubernetes` on the test's namespace (and its Lease there).
func (k *kubeCluster) startKubeGateway(t *testing.T, args ...string) *gateway {
	t.Helper()
	full := append([]string{"--kubernetes", "--set", "kubernetes.namespaces=" + k.ns,
		"--set", "kubernetes.leaseNamespace=" + k.ns, "--set", "kubernetes.leaseDuration=3s"}, args...)
	return startGatewayEnv(t, []string{"KUBECONFIG=" + k.kubeconfig, "KUBERNETES_SERVICE_HOST="}, full...)
}

func addressURL(u *unstructured.Unstructured) string {
	s, _, _ := unstructured.NestedString(u.Object, "status", "address", "url")
	return s
}
