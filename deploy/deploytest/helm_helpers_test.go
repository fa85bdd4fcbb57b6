package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// helmBinary returns the Helm named by EVENTGATE_HELM, skipping the test when none is configured.
func helmBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("EVENTGATE_HELM")
	if p == "" {
		t.Skip("EVENTGATE_HELM is not set: run scripts/chart-test (it builds Helm from the Go module proxy and sets it), or point EVENTGATE_HELM at a helm v3 binary")
	}
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("EVENTGATE_HELM=%s is not an executable: %v", p, err)
	}
	return p
}

func kubeVersion() string {
	if v := os.Getenv("EVENTGATE_KUBE_VERSION"); v != "" {
		return v
	}
	return "1.33.0"
}

// CRDs the optional templates look for, as GitOps tools report them to `helm template --api-versions`:
// group/version, without the kind.
var withCRDs = []string{"--api-versions", "monitoring.coreos.com/v1", "--api-versions", "keda.sh/v1alpha1"}

const releaseNamespace = "events"

// helmTemplate runs `helm template` on the chart with extra arguments and returns stdout, or the
// error with Helm's stderr.
func helmTemplate(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	helm := helmBinary(t)
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"template", "eg", filepath.Join(root, "charts", "eventgate"),
		"--namespace", releaseNamespace, "--kube-version", kubeVersion()}, args...)
	cmd := exec.CommandContext(ctx, helm, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(full, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// ciValues is the path of a chart ci values file.
func ciValues(t testing.TB, name string) string {
	return filepath.Join(repoRoot(t), "charts", "eventgate", "ci", name)
}

// Minimal typed shapes for the two custom resources the chart renders. They list every field the
// chart writes, so strict decoding still catches a misspelt one.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount int32 `json:"minReplicaCount"`
		MaxReplicaCount int32 `json:"maxReplicaCount"`
		PollingInterval int32 `json:"pollingInterval"`
		CooldownPeriod  int32 `json:"cooldownPeriod"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Name     string            `json:"name"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// newTyped returns an empty typed object for an apiVersion and kind the chart may render.
func newTyped(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}, true
	case "keda.sh/v1alpha1 ScaledObject":
		return &scaledObject{}, true
	}
	return nil, false
}

// rendered is one chart render, decoded.
type rendered struct {
	objects []any
}

// decodeStream splits a multi-document YAML stream and decodes every object into its typed struct,
// failing on an unknown kind, an unknown field or trailing data. Empty documents are skipped.
func decodeStream(data []byte) (*rendered, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	out := &rendered{}
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
			continue
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		obj, ok := newTyped(tm.APIVersion, tm.Kind)
		if !ok {
			return nil, fmt.Errorf("document %d: unexpected object %s %s", i, tm.APIVersion, tm.Kind)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			return nil, fmt.Errorf("document %d (%s %s): %w", i, tm.APIVersion, tm.Kind, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("document %d: trailing data", i)
		}
		out.objects = append(out.objects, obj)
	}
}

// render runs helm template and decodes the result strictly, failing the test on any error.
func render(t testing.TB, args ...string) *rendered {
	t.Helper()
	out, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeStream(out)
	if err != nil {
		t.Fatalf("decoding helm output: %v", err)
	}
	return r
}

// all returns the rendered objects of type T.
func all[T any](r *rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// named returns the rendered object of type T with the given name, or nil.
func named[T interface{ GetName() string }](r *rendered, name string) T {
	var zero T
	for _, v := range all[T](r) {
		if v.GetName() == name {
			return v
		}
	}
	return zero
}
