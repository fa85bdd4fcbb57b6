package resources

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeOK decodes src as file t.yaml and fails the test on any problem.
func decodeOK(t *testing.T, src string, opt Options) *Set {
	t.Helper()
	s, err := Decode("t.yaml", []byte(src), opt)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return s
}

// messages splits a joined error into its messages, sorted.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	m := strings.Split(err.Error(), "\n")
	slices.Sort(m)
	return m
}

func durp(d time.Duration) *time.Duration { return &d }
func int32p(n int32) *int32               { return &n }

func TestDecodeUnmanaged(t *testing.T) {
	s := decodeOK(t, `
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: svc}
---
apiVersion: example.com/v1
kind: Channel
metadata: {name: someone-elses, namespace: x}
spec: {provisioner: 42}
---
apiVersion: v1
kind: ConfigMap
metadata: [not, an, object]
---
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: Not_A_DNS_Name}
`, Options{})
	var got []string
	for _, u := range s.Unmanaged {
		got = append(got, u.Kind+" "+u.Namespace+"/"+u.Name+" "+u.APIVersion)
	}
	want := []string{
		"Service default/svc serving.knative.dev/v1",
		"Channel x/someone-elses example.com/v1",
		"ConfigMap default/ v1",
		"Role default/Not_A_DNS_Name rbac.authorization.k8s.io/v1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("unmanaged = %q, want %q", got, want)
	}
	if len(s.Channels) != 0 {
		t.Errorf("a Channel of another API group was taken as a channel")
	}
	if s.Unmanaged[3].Doc != 5 {
		t.Errorf("the Role is document %d, want 5 (empty documents count)", s.Unmanaged[3].Doc)
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "---\n---\n", "null\n"} {
		s := decodeOK(t, src, Options{})
		if len(s.Channels)+len(s.Subscriptions)+len(s.Sources)+len(s.Unmanaged) != 0 {
			t.Errorf("Decode(%q) = %+v, want an empty set", src, s)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	s := decodeOK(t, `{"apiVersion": "messaging.knative.dev/v1", "kind": "KafkaChannel",
	  "metadata": {"name": "j"}, "spec": {"numPartitions": 2}}`, Options{})
	if len(s.Channels) != 1 || s.Channels[0].Partitions != 2 {
		t.Fatalf("got %+v", s.Channels)
	}
}

func TestDecodeAnnotationsAndAliases(t *testing.T) {
	s := decodeOK(t, `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata:
  name: c
  annotations: {a: "1", b: true}
anchors:
  base: &base {numPartitions: 3}
`, Options{})
	if want := map[string]string{"a": "1", "b": "true"}; !reflect.DeepEqual(s.Channels[0].Annotations, want) {
		t.Errorf("Annotations = %v, want %v", s.Channels[0].Annotations, want)
	}
	s = decodeOK(t, `
x: &settings {numPartitions: 5}
apiVersion: messaging.knative.dev/v1
kind: KafkaChannel
metadata: {name: c}
spec: *settings
`, Options{})
	if s.Channels[0].Partitions != 5 {
		t.Errorf("alias not followed: %+v", s.Channels[0])
	}
}

func TestDecodeOptions(t *testing.T) {
	_, err := Decode("t.yaml", nil, Options{DefaultProvisioner: "pigeon"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `default provisioner "pigeon"`) {
		t.Errorf("Decode with a bad default provisioner: %v", err)
	}
	_, err = Load(nil, Options{DefaultProvisioner: "pigeon"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Load with a bad default provisioner: %v", err)
	}
}
