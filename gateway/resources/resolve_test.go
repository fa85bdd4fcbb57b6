package resources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
)

func TestResolve(t *testing.T) {
	r := &Resolver{
		IngressURL: "http://127.0.0.1:8080/",
		AddressBook: map[string]string{
			"Service/default/svc": "http://127.0.0.1:9001/svc",
			"default/svc":         "http://127.0.0.1:9002/wrong",
			"ops/dls":             "https://dls.example/in",
			"ops/broken":          "not a url",
		},
	}
	ref := func(apiVersion, kind, ns, name string) *Reference { return &Reference{apiVersion, kind, name, ns} }
	tests := []struct {
		name string
		d    Destination
		want Target
	}{
		{"seed channel ref", Destination{Ref: ref("eventing.knative.dev/v1alpha1", "Channel", "default", "c")},
			Target{Channel: &channel.Ref{Namespace: "default", Name: "c"}}},
		{"KafkaChannel ref", Destination{Ref: ref("messaging.knative.dev/v1beta1", "KafkaChannel", "x", "k")},
			Target{Channel: &channel.Ref{Namespace: "x", Name: "k"}}},
		{"InMemoryChannel ref", Destination{Ref: ref("messaging.knative.dev/v1", "InMemoryChannel", "x", "m")},
			Target{Channel: &channel.Ref{Namespace: "x", Name: "m"}}},
		{"uri", Destination{URI: "https://example.com/hook?x=1"}, Target{URL: "https://example.com/hook?x=1"}},
		{"kind-qualified address book entry wins", Destination{Ref: ref("serving.knative.dev/v1", "Service", "default", "svc")},
			Target{URL: "http://127.0.0.1:9001/svc"}},
		{"namespace/name address book entry", Destination{Ref: ref("v1", "Service", "ops", "dls")},
			Target{URL: "https://dls.example/in"}},
		{"in-cluster fallback", Destination{Ref: ref("serving.knative.dev/v1alpha1", "Service", "default", "knative-eventing-demo")},
			Target{URL: "http://knative-eventing-demo.default.svc.cluster.local"}},
		// A relative uri beside a reference is resolved against the reference's address (RFC 3986).
		{"ref and an absolute path", Destination{Ref: ref("serving.knative.dev/v1", "Service", "default", "svc"), URI: "/events?x=1"},
			Target{URL: "http://127.0.0.1:9001/events?x=1"}},
		{"ref and a relative path", Destination{Ref: ref("v1", "Service", "ops", "dls"), URI: "dead"},
			Target{URL: "https://dls.example/dead"}},
		{"ref and a path, in-cluster", Destination{Ref: ref("serving.knative.dev/v1", "Service", "shop", "orders"), URI: "/api/events"},
			Target{URL: "http://orders.shop.svc.cluster.local/api/events"}},
		{"ref and a path, looked up", Destination{Ref: ref("v1", "Service", "default", "svc2"), URI: "v2/in"},
			Target{URL: "http://10.0.0.7:8080/hooks/v2/in"}},
	}
	r.Lookup = func(ref Reference) (Address, bool) {
		switch ref.Name {
		case "svc2":
			return Address{URL: "http://10.0.0.7:8080/hooks/"}, true
		case "badca":
			return Address{URL: "https://10.0.0.8", CACerts: "not PEM"}, true
		}
		return Address{}, false
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.d)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got.URL != tt.want.URL || (got.Channel == nil) != (tt.want.Channel == nil) ||
				(got.Channel != nil && *got.Channel != *tt.want.Channel) {
				t.Errorf("Resolve = %v, want %v", got, tt.want)
			}
		})
	}
	for _, d := range []Destination{
		{},
		{URI: "http://x.example", Ref: ref("v1", "Service", "a", "b")},
		{URI: "//other.example/x", Ref: ref("v1", "Service", "a", "b")},
		{URI: "/x", Ref: ref("messaging.knative.dev/v1", "InMemoryChannel", "a", "b")},
		{URI: "/x", Ref: ref("eventing.knative.dev/v1", "Broker", "a", "b")},
		{URI: "/x", Ref: ref("v1", "Service", "ops", "broken")},
		{Ref: ref("v1", "Service", "default", "badca")},
		{URI: "/relative"},
		{URI: "mailto:someone@example.com"},
		{Ref: ref("v1", "Service", "ops", "broken")},
		{Ref: ref("v1", "Service", "default", "")},
		{Ref: ref("v1", "Service", "default", "Not.A.Label")},
	} {
		if got, err := r.Resolve(d); !errors.Is(err, ErrUnresolvable) {
			t.Errorf("Resolve(%+v) = %v, %v; want ErrUnresolvable", d, got, err)
		}
	}
}

func TestAddresses(t *testing.T) {
	c := &Channel{Meta: Meta{Namespace: "default", Name: "demo"}}
	gh := &Source{Meta: Meta{Kind: "GitHubSource", Namespace: "default", Name: "gh"}, GitHub: &GitHubSpec{}}
	cs := &Source{Meta: Meta{Kind: "ContainerSource", Namespace: "default", Name: "cs"}, Container: &ContainerSpec{}}
	r := &Resolver{IngressURL: "http://127.0.0.1:8080/"}
	if got, want := r.ChannelAddress(c), "http://127.0.0.1:8080/default/demo"; got != want {
		t.Errorf("ChannelAddress = %q, want %q", got, want)
	}
	if got, want := r.WebhookAddress(gh), "http://127.0.0.1:8080/sources/default/gh"; got != want {
		t.Errorf("WebhookAddress = %q, want %q", got, want)
	}
	if got := r.WebhookAddress(cs); got != "" {
		t.Errorf("WebhookAddress(ContainerSource) = %q, want none", got)
	}
	inCluster := &Resolver{}
	if got, want := inCluster.ChannelAddress(c), "http://demo-kn-channel.default.svc.cluster.local"; got != want {
		t.Errorf("in-cluster ChannelAddress = %q, want %q", got, want)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "github", "secretToken"), "s3cret\n")
	outside := filepath.Join(filepath.Dir(dir), "outside-"+filepath.Base(dir))
	writeFile(t, filepath.Join(outside, "key"), "leak")
	t.Cleanup(func() { os.RemoveAll(outside) })

	got, err := ReadSecret(dir, SecretKeyRef{Name: "github", Key: "secretToken"})
	if err != nil || string(got) != "s3cret\n" {
		t.Errorf("ReadSecret = %q, %v; want the bytes as stored", got, err)
	}
	if _, err := ReadSecret(dir, SecretKeyRef{Name: "github", Key: "missing"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: %v, want fs.ErrNotExist", err)
	}
	for _, ref := range []SecretKeyRef{
		{Name: "", Key: "k"}, {Name: "n", Key: ""},
		{Name: "..", Key: "key"}, {Name: "../" + filepath.Base(outside), Key: "key"},
		{Name: "github", Key: "../github/secretToken"}, {Name: "a/b", Key: "k"}, {Name: `a\b`, Key: "k"},
		{Name: ".", Key: "k"}, {Name: "n", Key: "x..y"},
	} {
		if b, err := ReadSecret(dir, ref); !errors.Is(err, ErrSecretRef) || b != nil {
			t.Errorf("ReadSecret(%+v) = %q, %v; want ErrSecretRef", ref, b, err)
		}
	}
}

func TestDescribe(t *testing.T) {
	s, err := Load([]string{filepath.Join(testdata, "knative-eventing-demo"), filepath.Join(testdata, "manifests", "valid")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &Resolver{IngressURL: "http://127.0.0.1:8080", AddressBook: map[string]string{"shop/fulfilment": "http://127.0.0.1:9000/"}}
	got := Describe(s, r)
	for _, want := range []string{
		"Channel default/knative-eventing-demo-channel → ingress http://127.0.0.1:8080/default/knative-eventing-demo-channel (inmemory)",
		"KafkaChannel shop/payments → ingress http://127.0.0.1:8080/shop/payments (kafka, 6 partitions, replication factor 3, retention 168h0m0s)",
		"Subscription default/knative-eventing-demo-subscription → subscriber http://knative-eventing-demo.default.svc.cluster.local (channel default/knative-eventing-demo-channel)",
		"Subscription shop/fulfil → subscriber http://127.0.0.1:9000/ (channel shop/orders, reply channel shop/replies, dead letter http://dead-letters.shop.svc.cluster.local/orders, ordered)",
		"Subscription shop/ledger → subscriber https://ledger.example.com/events (channel shop/payments, dead letter channel shop/audit)",
		"KubernetesEventSource default/k8sevents → sink channel default/knative-eventing-demo-channel",
		"GitHubSource shop/repo-events → webhook http://127.0.0.1:8080/sources/shop/repo-events, sink channel shop/orders",
		"CloudPubSubSource shop/gcp-orders → sink http://orders-bridge.shop.svc.cluster.local",
		"Service default/knative-eventing-demo: not managed",
		"RoleBinding default/k8s-ra-event-watcher: not managed",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("Describe lacks %q", want)
		}
	}
	if n := len(s.Channels) + len(s.Subscriptions) + len(s.Sources) + len(s.Unmanaged); len(got) != n {
		t.Errorf("Describe gave %d lines for %d resources", len(got), n)
	}
	// A subscription inherits its channel's dead letter sink.
	inherit := &Set{
		Channels: []*Channel{{Meta: Meta{Kind: "InMemoryChannel", Namespace: "d", Name: "c"}, Provisioner: ProvisionerInMemory,
			Delivery: &Delivery{DeadLetterSink: &Destination{URI: "http://dls.example"}}}},
		Subscriptions: []*Subscription{{Meta: Meta{Kind: "Subscription", Namespace: "d", Name: "s"},
			Channel: Reference{Kind: "Channel", Namespace: "d", Name: "c"}, Subscriber: &Destination{URI: "mailto:x"}}},
	}
	want := "Subscription d/s → subscriber unresolved (unresolvable destination: \"mailto:x\" is not an absolute URL) (channel d/c, dead letter http://dls.example)"
	if got := Describe(inherit, r); got[1] != want {
		t.Errorf("Describe = %q, want %q", got[1], want)
	}
}

func TestKeyAndEqual(t *testing.T) {
	load := func(src string) *Set { return decodeOK(t, src, Options{}) }
	base := `apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  namespace: n
  annotations: {note: one}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: c}
  subscriber: {uri: "http://x.example"}
  delivery: {retry: 3}
`
	a := load(base).Subscriptions[0]
	if a.Key() != "n/s" {
		t.Errorf("Key = %q", a.Key())
	}
	// Another file position, apiVersion and unrelated annotation: the same subscription.
	same := load("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" + strings.NewReplacer("dev/v1\nkind", "dev/v1beta1\nkind", "note: one", "note: two").Replace(base))
	if same.Subscriptions[0].Doc != 2 || same.Subscriptions[0].APIVersion != "messaging.knative.dev/v1beta1" {
		t.Fatalf("test input not as intended: %+v", same.Subscriptions[0].Meta)
	}
	if !a.Equal(same.Subscriptions[0]) {
		t.Errorf("an unchanged subscription is not Equal")
	}
	changed := load(strings.Replace(base, "retry: 3", "retry: 4", 1)).Subscriptions[0]
	if a.Equal(changed) {
		t.Errorf("a different retry count is Equal")
	}
	ordered := load(strings.Replace(base, "note: one", "kafka.eventing.knative.dev/delivery.order: ordered", 1)).Subscriptions[0]
	if ordered.Order != Ordered || a.Equal(ordered) {
		t.Errorf("changing the delivery order annotation is not a change (order %q)", ordered.Order)
	}

	c1 := load("apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: c}\n").Channels[0]
	c2 := load("apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: c}\n").Channels[0]
	c3 := load("apiVersion: messaging.knative.dev/v1\nkind: KafkaChannel\nmetadata: {name: c}\n").Channels[0]
	if c1.Key() != "default/c" || c1.Key() != c3.Key() {
		t.Errorf("channel keys %q, %q", c1.Key(), c3.Key())
	}
	if !c1.Equal(c2) {
		t.Errorf("an InMemoryChannel and a Channel on the in-memory provisioner differ")
	}
	if c1.Equal(c3) {
		t.Errorf("changing the provisioner is not a change")
	}

	src := `apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: gh, annotations: {eventgate.dev/unauthenticated: "%s"}}
spec: {ownerAndRepository: o/r, eventTypes: [push], sink: {uri: "http://x.example"}, secretToken: {secretKeyRef: {name: a, key: b}}}
`
	g1 := load(fmt.Sprintf(src, "false")).Sources[0]
	g2 := load(fmt.Sprintf(src, "true")).Sources[0]
	if g1.Key() != "GitHubSource/default/gh" || g1.Equal(g2) || !g1.Equal(load(fmt.Sprintf(src, "false")).Sources[0]) {
		t.Errorf("source identity or equality wrong: %q", g1.Key())
	}
}
