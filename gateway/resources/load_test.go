package resources

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
)

const testdata = "../../testdata"

// TestLoadSeed loads the seed's manifests exactly as the book prints them.
func TestLoadSeed(t *testing.T) {
	s, err := Load([]string{filepath.Join(testdata, "knative-eventing-demo")}, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if len(s.Channels) != 1 || len(s.Subscriptions) != 1 || len(s.Sources) != 1 || len(s.Unmanaged) != 4 {
		t.Fatalf("got %d channels, %d subscriptions, %d sources, %d unmanaged; want 1, 1, 1, 4",
			len(s.Channels), len(s.Subscriptions), len(s.Sources), len(s.Unmanaged))
	}
	c := s.Channels[0]
	if c.Ref() != (channel.Ref{Namespace: "default", Name: "knative-eventing-demo-channel"}) || c.Provisioner != ProvisionerInMemory {
		t.Errorf("channel = %+v", c)
	}
	if want := filepath.Join(testdata, "knative-eventing-demo", "channel.yaml"); c.File != want || c.Doc != 1 {
		t.Errorf("channel read from %s document %d, want %s document 1", c.File, c.Doc, want)
	}
	sub := s.Subscriptions[0]
	if sub.ChannelRef() != c.Ref() || sub.Subscriber == nil || sub.Subscriber.Ref == nil ||
		*sub.Subscriber.Ref != (Reference{"serving.knative.dev/v1alpha1", "Service", "knative-eventing-demo", "default"}) {
		t.Errorf("subscription = %+v", sub)
	}
	src := s.Sources[0]
	if src.Kind != "KubernetesEventSource" || src.Kubernetes == nil || src.Kubernetes.ServiceAccountName != "events-sa" ||
		src.Sink.Ref == nil || !src.Sink.Ref.IsChannel() || src.Sink.Ref.ChannelRef() != c.Ref() {
		t.Errorf("source = %+v", src)
	}
	var kinds []string
	for _, u := range s.Unmanaged {
		kinds = append(kinds, u.Kind)
	}
	// Files are read in lexical order: service.yaml, serviceaccount.yaml.
	if want := []string{"Service", "ServiceAccount", "Role", "RoleBinding"}; !slices.Equal(kinds, want) {
		t.Errorf("unmanaged kinds = %v, want %v", kinds, want)
	}
}

func TestLoadValidExamples(t *testing.T) {
	s, err := Load([]string{filepath.Join(testdata, "manifests", "valid")}, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	kinds := map[string]bool{}
	for _, c := range s.Channels {
		kinds[c.APIVersion+" "+c.Kind] = true
	}
	for _, x := range s.Subscriptions {
		kinds[x.APIVersion+" "+x.Kind] = true
	}
	for _, x := range s.Sources {
		kinds[x.APIVersion+" "+x.Kind] = true
	}
	for _, k := range []string{
		"messaging.knative.dev/v1 InMemoryChannel", "messaging.knative.dev/v1beta1 KafkaChannel",
		"messaging.knative.dev/v1 Channel", "eventing.knative.dev/v1alpha1 Channel", "messaging.knative.dev/v1 Subscription",
		"sources.knative.dev/v1 ApiServerSource", "sources.knative.dev/v1alpha1 GitHubSource",
		"events.cloud.google.com/v1 CloudPubSubSource", "sources.eventing.knative.dev/v1alpha1 GcpPubSubSource",
		"sources.knative.dev/v1 ContainerSource", "sources.eventing.knative.dev/v1alpha1 KubernetesEventSource",
	} {
		if !kinds[k] {
			t.Errorf("testdata/manifests/valid has no %s", k)
		}
	}
}

func TestLoadInvalidFiles(t *testing.T) {
	dir := filepath.Join(testdata, "manifests", "invalid")
	tests := []struct {
		file string
		kind error
		want []string // substrings, one per expected message
	}{
		{"bad-subscription.yaml", ErrInvalid, []string{
			`spec.subscriber.uri: "::bad" is not a URL`,
			`spec.delivery.retry: "many" is not an integer`,
			`spec.delivery.backoffPolicy: "sometimes" is not linear or exponential`,
			`spec.delivery.timeout: "10s" is not an ISO 8601 duration`,
			"spec.channel: InMemoryChannel default/nowhere is not defined",
		}},
		{"syntax.yaml", ErrSyntax, []string{"document 2: yaml: line 8"}},
		{"unsigned-github.yaml", ErrInvalid, []string{"(GitHubSource default/unsigned): spec.secretToken: missing"}},
		{"duplicate.yaml", ErrDuplicate, []string{
			"document 2 (KafkaChannel default/twice): metadata.name: InMemoryChannel default/twice is already defined at " +
				filepath.Join(dir, "duplicate.yaml") + " document 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			s, err := Load([]string{path}, Options{})
			if err == nil || s != nil {
				t.Fatalf("Load = %v, %v; want an error and no set", s, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error is not %v: %v", tt.kind, err)
			}
			got := messages(err)
			if len(got) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(got, func(m string) bool {
					return strings.HasPrefix(m, path+": ") && strings.Contains(m, w)
				}) {
					t.Errorf("no problem of %s says %q:\n%s", path, w, err)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func channelYAML(name string) string {
	return "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: " + name + "}\n"
}

// TestLoadDirectory covers the walk: recursion, extensions, hidden names, symbolic links as a
// Kubernetes ConfigMap mount makes them, and paths given twice.
func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), channelYAML("a"))
	writeFile(t, filepath.Join(dir, "sub", "deeper", "b.yml"), channelYAML("b"))
	writeFile(t, filepath.Join(dir, "c.JSON"), `{"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "metadata": {"name": "c"}}`)
	writeFile(t, filepath.Join(dir, "notes.txt"), "not: [yaml")
	writeFile(t, filepath.Join(dir, ".hidden.yaml"), channelYAML("hidden"))
	// A ConfigMap mount: real files under ..2024_01_01/, reached through ..data and top-level links.
	writeFile(t, filepath.Join(dir, "mount", "..2024_01_01", "d.yaml"), channelYAML("d"))
	if err := os.Symlink("..2024_01_01", filepath.Join(dir, "mount", "..data")); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	if err := os.Symlink(filepath.Join("..data", "d.yaml"), filepath.Join(dir, "mount", "d.yaml")); err != nil {
		t.Fatal(err)
	}
	// A link to a directory is not followed (it could loop).
	if err := os.Symlink(dir, filepath.Join(dir, "sub", "loop.yaml")); err != nil {
		t.Fatal(err)
	}

	s, err := Load([]string{dir, filepath.Join(dir, "a.yaml"), filepath.Join(dir, "notes.txt")}, Options{})
	if err == nil {
		t.Fatalf("notes.txt, named directly, should have been read and rejected")
	}
	if !strings.Contains(err.Error(), "notes.txt: document 1: yaml:") {
		t.Errorf("error does not blame notes.txt: %v", err)
	}

	s, err = Load([]string{dir, filepath.Join(dir, "a.yaml")}, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var names []string
	for _, c := range s.Channels {
		names = append(names, c.Name)
	}
	if want := []string{"a", "c", "d", "b"}; !slices.Equal(names, want) {
		t.Errorf("channels = %v, want %v (lexical walk order, each file once)", names, want)
	}

	// A directory named through a symbolic link is walked.
	s, err = Load([]string{filepath.Join(dir, "mount", "..data")}, Options{})
	if err != nil || len(s.Channels) != 1 || s.Channels[0].Name != "d" {
		t.Errorf("Load(linked directory) = %+v, %v; want channel d", s, err)
	}
}

func TestLoadMissingPath(t *testing.T) {
	_, err := Load([]string{filepath.Join(t.TempDir(), "nope")}, Options{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing path: %v, want fs.ErrNotExist", err)
	}
}

func TestLoadEmptyDirectory(t *testing.T) {
	s, err := Load([]string{t.TempDir()}, Options{})
	if err != nil || s == nil || len(s.Channels)+len(s.Unmanaged) != 0 {
		t.Errorf("Load(empty dir) = %+v, %v; want an empty set", s, err)
	}
}

// TestCrossFileRules checks the set-wide rules across files: duplicates and undefined channels.
func TestCrossFileRules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "1.yaml"), channelYAML("ch")+`---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}
  subscriber: {uri: "http://x.example"}
  reply: {ref: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: no-reply}}
  delivery: {deadLetterSink: {ref: {apiVersion: messaging.knative.dev/v1, kind: KafkaChannel, name: no-dls}}}
`)
	writeFile(t, filepath.Join(dir, "2.yaml"), `apiVersion: messaging.knative.dev/v1
kind: KafkaChannel
metadata: {name: ch}
spec:
  delivery: {deadLetterSink: {ref: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch, namespace: other}}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}
  subscriber: {ref: {apiVersion: v1, kind: Service, name: svc}}
---
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: src}
spec:
  template: {spec: {containers: [{image: x}]}}
  sink: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: gone}}
---
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: src}
spec:
  template: {spec: {containers: [{image: x}]}}
  sink: {uri: "http://x.example"}
---
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: src}
spec:
  resources: [{apiVersion: v1, kind: Event}]
  sink: {uri: "http://x.example"}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
`)
	f1, f2 := filepath.Join(dir, "1.yaml"), filepath.Join(dir, "2.yaml")
	_, err := Load([]string{dir}, Options{})
	want := []string{
		f1 + ": document 2 (Subscription default/s): spec.reply.ref: Channel default/no-reply is not defined (line 11)",
		f1 + ": document 2 (Subscription default/s): spec.delivery.deadLetterSink.ref: KafkaChannel default/no-dls is not defined (line 12)",
		f2 + ": document 1 (KafkaChannel default/ch): metadata.name: InMemoryChannel default/ch is already defined at " + f1 + " document 1 (line 3)",
		f2 + ": document 1 (KafkaChannel default/ch): spec.delivery.deadLetterSink.ref: Channel other/ch is not defined (line 5)",
		f2 + ": document 2 (Subscription default/s): metadata.name: Subscription default/s is already defined at " + f1 + " document 2 (line 9)",
		f2 + ": document 3 (ContainerSource default/src): spec.sink.ref: InMemoryChannel default/gone is not defined (line 19)",
		f2 + ": document 4 (ContainerSource default/src): metadata.name: ContainerSource default/src is already defined at " + f2 + " document 3 (line 23)",
	}
	slices.Sort(want)
	if got := messages(err); !slices.Equal(got, want) {
		t.Errorf("messages:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	if !errors.Is(err, ErrDuplicate) || !errors.Is(err, ErrUndefined) {
		t.Errorf("error kinds missing: %v", err)
	}
}

// TestValidateBuiltInCode checks Validate on a set built without Decode: the same rules, no file.
func TestValidateBuiltInCode(t *testing.T) {
	ch := &Channel{Meta: Meta{Kind: "InMemoryChannel", Namespace: "default", Name: "ch"}, Provisioner: ProvisionerInMemory}
	good := &Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
		Channel:    Reference{"messaging.knative.dev/v1", "Channel", "ch", "default"},
		Subscriber: &Destination{URI: "http://x.example"}, Order: Unordered}
	s := &Set{Channels: []*Channel{ch}, Subscriptions: []*Subscription{good}}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	bad := *good
	bad.Name = "t"
	bad.Order = "sideways"
	bad.MaxConcurrency = -1
	bad.Delivery = &Delivery{Retry: int32p(-2), BackoffDelay: durp(-1)}
	kafkaless := &Channel{Meta: Meta{Kind: "Channel", Namespace: "default", Name: "k"}, Provisioner: "pigeon", Partitions: 3}
	s = &Set{Channels: []*Channel{ch, kafkaless}, Subscriptions: []*Subscription{good, &bad}}
	want := []string{
		`Channel default/k: spec: provisioner "pigeon" is not "inmemory", "kafka", "pubsub" or "nats"`,
		"Channel default/k: spec: partitions, replication factor and retention apply to kafka channels only",
		`Subscription default/t: metadata.annotations["kafka.eventing.knative.dev/delivery.order"]: "sideways" is not ordered or unordered`,
		`Subscription default/t: metadata.annotations["eventgate.dev/max-concurrency"]: must not be negative`,
		"Subscription default/t: spec.delivery.retry: must not be negative",
		"Subscription default/t: spec.delivery.backoffDelay: must not be negative",
	}
	slices.Sort(want)
	if got := messages(s.Validate()); !slices.Equal(got, want) {
		t.Errorf("messages:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}
