package kube

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

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

// sourceWith is a Source whose informers (never run) hold objs, for Snapshot's tests.
func sourceWith(t *testing.T, cfg Config, objs ...string) *Source {
	t.Helper()
	s := NewSource(cfg, nil, resources.Options{}, nil)
	stores := map[string]cache.SharedIndexInformer{}
	for _, doc := range objs {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON([]byte(doc)); err != nil {
			t.Fatalf("%v: %s", err, doc)
		}
		gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
		gvr := gv.WithResource(Plural(u.GetKind()))
		inf, ok := stores[gvr.String()]
		if !ok {
			inf = cache.NewSharedIndexInformer(&cache.ListWatch{}, &unstructured.Unstructured{}, 0, cache.Indexers{})
			stores[gvr.String()] = inf
			s.watched = append(s.watched, watched{gvr: gvr, inf: inf})
		}
		if err := inf.GetStore().Add(u); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestSnapshotLeavesOutWhatIsRefused: a bad spec, a duplicate, a reference to a channel that is not
// declared (also once its channel was refused) and what the caller's check refuses are left out with
// their problem; the rest is the set. A reference to a channel of base (the files) is fine.
func TestSnapshotLeavesOutWhatIsRefused(t *testing.T) {
	ch := func(kind, name string) string {
		return `{"apiVersion":"messaging.knative.dev/v1","kind":"` + kind + `","metadata":{"name":"` + name + `","namespace":"ns","generation":1}}`
	}
	sub := func(name, channel, uri string) string {
		return `{"apiVersion":"messaging.knative.dev/v1","kind":"Subscription","metadata":{"name":"` + name + `","namespace":"ns"},` +
			`"spec":{"channel":{"apiVersion":"messaging.knative.dev/v1","kind":"InMemoryChannel","name":"` + channel + `"},"subscriber":{"uri":"` + uri + `"}}}`
	}
	s := sourceWith(t, Config{},
		ch("InMemoryChannel", "good"),
		ch("KafkaChannel", "good"), // the same name as an InMemoryChannel: one of the two is a duplicate
		ch("InMemoryChannel", "refused"),
		sub("ok", "good", "http://sub/ok"),
		sub("bad-uri", "good", "::bad"),
		sub("nowhere", "missing", "http://sub/x"),
		sub("on-refused", "refused", "http://sub/y"),
		sub("on-file", "from-file", "http://sub/z"),
	)
	base := &resources.Set{Channels: []*resources.Channel{{Meta: resources.Meta{File: "f.yaml", Kind: "InMemoryChannel",
		Namespace: "ns", Name: "from-file"}, Provisioner: resources.ProvisionerInMemory}}}
	check := func(all *resources.Set) error {
		for _, c := range all.Channels {
			if c.Name == "refused" {
				return &testProblem{kind: c.Kind, ns: c.Namespace, name: c.Name}
			}
		}
		return nil
	}
	snap := s.Snapshot(base, check)

	var names []string
	for _, c := range snap.Set.Channels {
		names = append(names, c.Kind+"/"+c.Name)
	}
	for _, x := range snap.Set.Subscriptions {
		names = append(names, "Subscription/"+x.Name)
	}
	slices.Sort(names)
	// The InMemoryChannel and the KafkaChannel named good: the one met second is the duplicate.
	if want := []string{"InMemoryChannel/good", "Subscription/ok", "Subscription/on-file"}; !slices.Equal(names, want) {
		t.Errorf("set %v, want %v", names, want)
	}
	problems := map[string]string{}
	for k, o := range snap.Objects {
		problems[k.Kind+"/"+k.Name] = o.Problem
	}
	for obj, want := range map[string]string{
		"Subscription/bad-uri":    `spec.subscriber.uri: "::bad" is not a URL`,
		"Subscription/nowhere":    "InMemoryChannel ns/missing is not defined",
		"Subscription/on-refused": "InMemoryChannel ns/refused is not defined",
		"InMemoryChannel/refused": "cannot run here",
		"KafkaChannel/good":       "already defined",
		"Subscription/ok":         "",
	} {
		got := problems[obj]
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%s: problem %q, want %q", obj, got, want)
		}
	}
	if s.Last() == nil || s.Last().Set != snap.Set {
		t.Error("Last is not the snapshot just taken")
	}
}

type testProblem struct{ kind, ns, name string }

func (p *testProblem) Error() string {
	return "kubernetes: " + p.kind + " " + p.ns + "/" + p.name + ": cannot run here"
}
func (p *testProblem) Resource() (file, kind, namespace, name string) {
	return File, p.kind, p.ns, p.name
}

// TestSnapshotKeepsTheLastGoodVersion: an update that does not decode leaves the last good version
// in the set, with a problem that says so; a new object that does not decode is not run.
func TestSnapshotKeepsTheLastGoodVersion(t *testing.T) {
	sub := func(gen int, uri string) string {
		return fmt.Sprintf(`{"apiVersion":"messaging.knative.dev/v1","kind":"Subscription","metadata":{"name":"s","namespace":"ns","uid":"u1","generation":%d},`+
			`"spec":{"channel":{"apiVersion":"messaging.knative.dev/v1","kind":"InMemoryChannel","name":"c"},"subscriber":{"uri":%q}}}`, gen, uri)
	}
	channel := `{"apiVersion":"messaging.knative.dev/v1","kind":"InMemoryChannel","metadata":{"name":"c","namespace":"ns"}}`
	s := sourceWith(t, Config{}, channel, sub(1, "http://sub/v1"))
	if got := s.Snapshot(nil, nil).Set.Subscriptions; len(got) != 1 || got[0].Subscriber.URI != "http://sub/v1" {
		t.Fatalf("first snapshot: %+v", got)
	}
	update := func(doc string) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON([]byte(doc)); err != nil {
			t.Fatal(err)
		}
		for _, w := range s.watched {
			if w.gvr.Resource == "subscriptions" {
				if err := w.inf.GetStore().Update(u); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	update(sub(2, "::bad"))
	snap := s.Snapshot(nil, nil)
	if got := snap.Set.Subscriptions; len(got) != 1 || got[0].Subscriber.URI != "http://sub/v1" {
		t.Errorf("after a bad update the set has %+v, want the last good version", got)
	}
	for k, o := range snap.Objects {
		if k.Kind == "Subscription" && (!strings.Contains(o.Problem, `"::bad" is not a URL`) || !strings.Contains(o.Problem, "generation 1 keeps running")) {
			t.Errorf("problem %q", o.Problem)
		}
	}
	update(sub(3, "http://sub/v3"))
	if got := s.Snapshot(nil, nil).Set.Subscriptions; len(got) != 1 || got[0].Subscriber.URI != "http://sub/v3" {
		t.Errorf("after a good update: %+v", got)
	}
}
