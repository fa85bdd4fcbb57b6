package kube

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/eventgate/eventgate/gateway/resources"
)

func TestManaged(t *testing.T) {
	obj := func(kind string, annotations map[string]string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "eventing.knative.dev/v1", "kind": kind}}
		u.SetAnnotations(annotations)
		return u
	}
	cases := []struct {
		name        string
		managedOnly bool
		obj         *unstructured.Unstructured
		want        bool
	}{
		{"everything by default", false, obj("Broker", nil), true},
		{"annotated", true, obj("Channel", map[string]string{AnnotationManaged: "true"}), true},
		{"annotated false", true, obj("Channel", map[string]string{AnnotationManaged: "false"}), false},
		{"not annotated", true, obj("Subscription", nil), false},
		{"broker of class eventgate", true, obj("Broker", map[string]string{"eventing.knative.dev/broker.class": "eventgate"}), true},
		{"broker of Knative's class", true, obj("Broker", map[string]string{"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}), false},
		{"a trigger is not a broker", true, obj("Trigger", map[string]string{"eventing.knative.dev/broker.class": "eventgate"}), false},
	}
	for _, c := range cases {
		s := NewSource(Config{ManagedOnly: c.managedOnly}, nil, resources.Options{}, nil)
		if got := s.Managed(c.obj); got != c.want {
			t.Errorf("%s: Managed = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	bad := DefaultConfig()
	bad.Namespaces = []string{"ok", "Not_A_Namespace"}
	bad.LeaseName = "bad name"
	bad.LeaseDuration = 0
	err := bad.Validate()
	for _, want := range []string{"namespaces", "leaseName", "leaseDuration"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem naming %s", err, want)
		}
	}
}
