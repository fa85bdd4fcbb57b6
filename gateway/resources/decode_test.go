package resources

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
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

func TestDecodeChannels(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opt  Options
		want Channel // Meta: Kind, Namespace, Name only
	}{
		{"seed v1alpha1 in-memory-channel", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: c}
spec:
  provisioner: {apiVersion: eventing.knative.dev/v1alpha1, kind: ClusterChannelProvisioner, name: in-memory-channel}
`, Options{DefaultProvisioner: ProvisionerKafka},
			Channel{Meta: Meta{Kind: "Channel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerInMemory}},
		{"v1alpha1 kafka with arguments", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: c, namespace: ns}
spec:
  provisioner: {name: kafka}
  arguments: {numPartitions: 4, replicationFactor: 2}
`, Options{},
			Channel{Meta: Meta{Kind: "Channel", Namespace: "ns", Name: "c"}, Provisioner: ProvisionerKafka,
				Partitions: 4, ReplicationFactor: 2}},
		{"v1alpha1 without provisioner takes the default", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: c}
`, Options{DefaultProvisioner: ProvisionerKafka},
			Channel{Meta: Meta{Kind: "Channel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerKafka}},
		{"default provisioner is inmemory", `
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c}
`, Options{},
			Channel{Meta: Meta{Kind: "Channel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerInMemory}},
		{"v1 template InMemoryChannel", `
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c}
spec:
  channelTemplate: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel}
`, Options{DefaultProvisioner: ProvisionerKafka},
			Channel{Meta: Meta{Kind: "Channel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerInMemory}},
		{"v1 template KafkaChannel with spec and delivery", `
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c}
spec:
  channelTemplate:
    apiVersion: messaging.knative.dev/v1beta1
    kind: KafkaChannel
    spec: {numPartitions: 3, replicationFactor: 1, retentionDuration: PT1H}
  delivery: {retry: 2}
`, Options{},
			Channel{Meta: Meta{Kind: "Channel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerKafka,
				Partitions: 3, ReplicationFactor: 1, Retention: time.Hour, Delivery: &Delivery{Retry: int32p(2)}}},
		{"InMemoryChannel v1beta1", `
apiVersion: messaging.knative.dev/v1beta1
kind: InMemoryChannel
metadata: {name: c, namespace: team-a}
`, Options{DefaultProvisioner: ProvisionerKafka},
			Channel{Meta: Meta{Kind: "InMemoryChannel", Namespace: "team-a", Name: "c"}, Provisioner: ProvisionerInMemory}},
		{"KafkaChannel v1 defaults", `
apiVersion: messaging.knative.dev/v1
kind: KafkaChannel
metadata: {name: c}
`, Options{},
			Channel{Meta: Meta{Kind: "KafkaChannel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerKafka}},
		{"KafkaChannel retention in days", `
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: c}
spec: {numPartitions: 12, replicationFactor: 3, retentionDuration: P7D}
`, Options{},
			Channel{Meta: Meta{Kind: "KafkaChannel", Namespace: "default", Name: "c"}, Provisioner: ProvisionerKafka,
				Partitions: 12, ReplicationFactor: 3, Retention: 7 * 24 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := decodeOK(t, tt.src, tt.opt)
			if len(s.Channels) != 1 {
				t.Fatalf("got %d channels, want 1", len(s.Channels))
			}
			c := s.Channels[0]
			if c.Kind != tt.want.Kind {
				t.Errorf("Kind = %q, want %q", c.Kind, tt.want.Kind)
			}
			if c.File != "t.yaml" || c.Doc != 1 {
				t.Errorf("from %s document %d, want t.yaml document 1", c.File, c.Doc)
			}
			if !c.Equal(&tt.want) {
				t.Errorf("got %+v, want %+v", *c, tt.want)
			}
			if spec := c.Spec(); spec.Ref != (channel.Ref{Namespace: tt.want.Namespace, Name: tt.want.Name}) ||
				spec.Partitions != tt.want.Partitions || spec.Retention != tt.want.Retention {
				t.Errorf("Spec() = %+v", spec)
			}
		})
	}
}

func TestDecodeSubscriptions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Subscription
	}{
		{"seed v1alpha1", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1alpha1, kind: Service, name: svc}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
			Channel:       Reference{"eventing.knative.dev/v1alpha1", "Channel", "ch", "default"},
			Subscriber:    &Destination{Ref: &Reference{"serving.knative.dev/v1alpha1", "Service", "svc", "default"}},
			Order:         Unordered,
			InitialOffset: channel.Latest}},
		{"v1alpha1 reply channel, dnsName subscriber, referrer namespace", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Subscription
metadata: {name: s, namespace: team}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
  subscriber: {dnsName: "http://svc.team.example"}
  reply:
    channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: out, namespace: other}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "team", Name: "s"},
			Channel:    Reference{"eventing.knative.dev/v1alpha1", "Channel", "ch", "team"},
			Subscriber: &Destination{URI: "http://svc.team.example"},
			Reply:      &Destination{Ref: &Reference{"eventing.knative.dev/v1alpha1", "Channel", "out", "other"}},
			Order:      Unordered}},
		{"v1 with everything", `
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
    eventgate.dev/initial-offset: earliest
    eventgate.dev/min-concurrency: "2"
    eventgate.dev/max-concurrency: 8
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: KafkaChannel, name: ch}
  subscriber: {uri: "https://example.com/hook"}
  reply:
    ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: out}
  delivery:
    retry: 4
    backoffPolicy: linear
    backoffDelay: PT0.2S
    backoffMax: PT5S
    timeout: PT30S
    retryAfterMax: PT1M
    deadLetterSink:
      ref: {apiVersion: v1, kind: Service, name: dls, namespace: ops}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
			Channel:    Reference{"messaging.knative.dev/v1", "KafkaChannel", "ch", "default"},
			Subscriber: &Destination{URI: "https://example.com/hook"},
			Reply:      &Destination{Ref: &Reference{"messaging.knative.dev/v1", "InMemoryChannel", "out", "default"}},
			Delivery: &Delivery{Retry: int32p(4), BackoffPolicy: BackoffLinear, BackoffDelay: durp(200 * time.Millisecond),
				BackoffMax: durp(5 * time.Second), Timeout: durp(30 * time.Second), RetryAfterMax: durp(time.Minute),
				DeadLetterSink: &Destination{Ref: &Reference{"v1", "Service", "dls", "ops"}}},
			Order: Ordered, InitialOffset: channel.Earliest, MinConcurrency: 2, MaxConcurrency: 8}},
		{"reply only, explicit unordered and latest", `
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  annotations:
    kafka.eventing.knative.dev/delivery.order: unordered
    eventgate.dev/initial-offset: latest
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}
  reply: {uri: "http://r.example"}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
			Channel: Reference{"messaging.knative.dev/v1", "Channel", "ch", "default"},
			Reply:   &Destination{URI: "http://r.example"}, Order: Unordered, InitialOffset: channel.Latest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := decodeOK(t, tt.src, Options{})
			if len(s.Subscriptions) != 1 {
				t.Fatalf("got %d subscriptions, want 1", len(s.Subscriptions))
			}
			got := s.Subscriptions[0]
			if !got.Equal(&tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
			if got.ChannelRef() != (channel.Ref{Namespace: tt.want.Channel.Namespace, Name: tt.want.Channel.Name}) {
				t.Errorf("ChannelRef() = %v", got.ChannelRef())
			}
		})
	}
}

func TestDecodeSources(t *testing.T) {
	chSink := Destination{Ref: &Reference{"eventing.knative.dev/v1alpha1", "Channel", "ch", "default"}}
	tests := []struct {
		name string
		src  string
		want Source
	}{
		{"seed KubernetesEventSource", `
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: KubernetesEventSource
metadata: {name: k8sevents}
spec:
  namespace: default
  serviceAccountName: events-sa
  sink: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "KubernetesEventSource", Namespace: "default", Name: "k8sevents"}, Sink: chSink,
			Kubernetes: &KubernetesSpec{Namespace: "default", ServiceAccountName: "events-sa",
				Resources: []APIResource{{APIVersion: "v1", Kind: "Event"}}, Mode: ModeResource}}},
		{"KubernetesEventSource namespace defaults to its own", `
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: KubernetesEventSource
metadata: {name: k, namespace: team}
spec:
  sink: {uri: "http://x.example"}
`, Source{Meta: Meta{Kind: "KubernetesEventSource", Namespace: "team", Name: "k"}, Sink: Destination{URI: "http://x.example"},
			Kubernetes: &KubernetesSpec{Namespace: "team",
				Resources: []APIResource{{APIVersion: "v1", Kind: "Event"}}, Mode: ModeResource}}},
		{"ApiServerSource v1 with selectors", `
apiVersion: sources.knative.dev/v1
kind: ApiServerSource
metadata: {name: a}
spec:
  serviceAccountName: sa
  resources:
    - {apiVersion: v1, kind: Event}
    - apiVersion: apps/v1
      kind: Deployment
      selector:
        matchLabels: {tier: web, app: shop}
        matchExpressions:
          - {key: env, operator: NotIn, values: [dev, test]}
          - {key: example.com/owner, operator: Exists}
          - {key: legacy, operator: DoesNotExist}
  ceOverrides:
    extensions: {cluster: prod}
  sink:
    ref: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "ApiServerSource", Namespace: "default", Name: "a"}, Sink: chSink,
			CEOverrides: map[string]string{"cluster": "prod"},
			Kubernetes: &KubernetesSpec{Namespace: "default", ServiceAccountName: "sa", Mode: ModeReference,
				Resources: []APIResource{{APIVersion: "v1", Kind: "Event"}, {APIVersion: "apps/v1", Kind: "Deployment",
					Selector: "app=shop,tier=web,env notin (dev,test),example.com/owner,!legacy"}}}}},
		{"ApiServerSource v1alpha1 Ref mode", `
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: ApiServerSource
metadata: {name: a}
spec:
  mode: Ref
  resources: [{apiVersion: v1, kind: Event}]
  sink: {uri: "http://x.example"}
`, Source{Meta: Meta{Kind: "ApiServerSource", Namespace: "default", Name: "a"}, Sink: Destination{URI: "http://x.example"},
			Kubernetes: &KubernetesSpec{Namespace: "default", Mode: ModeReference,
				Resources: []APIResource{{APIVersion: "v1", Kind: "Event"}}}}},
		{"GitHubSource with secrets", `
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: gh}
spec:
  ownerAndRepository: octo/hello-world
  eventTypes: [push, pull_request]
  accessToken: {secretKeyRef: {name: gh, key: access}}
  secretToken: {secretKeyRef: {name: gh, key: secret}}
  sink: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "GitHubSource", Namespace: "default", Name: "gh"}, Sink: chSink,
			GitHub: &GitHubSpec{Owner: "octo", Repository: "hello-world", EventTypes: []string{"push", "pull_request"},
				AccessToken: &SecretKeyRef{"gh", "access"}, SecretToken: &SecretKeyRef{"gh", "secret"}}}},
		{"GitHubSource unauthenticated organisation", `
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: GitHubSource
metadata:
  name: gh
  annotations: {eventgate.dev/unauthenticated: "true"}
spec:
  ownerAndRepository: octo
  eventTypes: [release]
  sink: {uri: "http://x.example"}
`, Source{Meta: Meta{Kind: "GitHubSource", Namespace: "default", Name: "gh"}, Sink: Destination{URI: "http://x.example"},
			GitHub: &GitHubSpec{Owner: "octo", EventTypes: []string{"release"}, Unauthenticated: true}}},
		{"CloudPubSubSource", `
apiVersion: events.cloud.google.com/v1
kind: CloudPubSubSource
metadata: {name: ps}
spec:
  project: p
  topic: t
  subscriptionID: sub
  secret: {name: google, key: key.json}
  sink: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "CloudPubSubSource", Namespace: "default", Name: "ps"}, Sink: chSink,
			PubSub: &PubSubSpec{Project: "p", Topic: "t", SubscriptionID: "sub", Credentials: &SecretKeyRef{"google", "key.json"}}}},
		{"GcpPubSubSource", `
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: GcpPubSubSource
metadata: {name: ps}
spec:
  googleCloudProject: p
  topic: t
  sink: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "GcpPubSubSource", Namespace: "default", Name: "ps"}, Sink: chSink,
			PubSub: &PubSubSpec{Project: "p", Topic: "t"}}},
		{"ContainerSource v1", `
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {name: cs}
spec:
  template:
    spec:
      containers:
        - name: main
          image: img
          command: [/bin/gen]
          args: [--n, "3"]
          env:
            - {name: A, value: "1"}
            - name: B
              valueFrom: {secretKeyRef: {name: s, key: k}}
  ceOverrides: {extensions: {team: blue}}
  sink: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "ContainerSource", Namespace: "default", Name: "cs"}, Sink: chSink,
			CEOverrides: map[string]string{"team": "blue"},
			Container: &ContainerSpec{Name: "main", Image: "img", Command: []string{"/bin/gen"}, Args: []string{"--n", "3"},
				Env: []EnvVar{{Name: "A", Value: "1"}, {Name: "B", SecretKeyRef: &SecretKeyRef{"s", "k"}}}}}},
		{"ContainerSource v1alpha1 flat", `
apiVersion: sources.eventing.knative.dev/v1alpha1
kind: ContainerSource
metadata: {name: cs}
spec:
  image: img
  args: [--x]
  sink: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
`, Source{Meta: Meta{Kind: "ContainerSource", Namespace: "default", Name: "cs"}, Sink: chSink,
			Container: &ContainerSpec{Image: "img", Args: []string{"--x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := decodeOK(t, tt.src, Options{})
			if len(set.Sources) != 1 {
				t.Fatalf("got %d sources, want 1", len(set.Sources))
			}
			if got := set.Sources[0]; !got.Equal(&tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

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
	_, err := Decode("t.yaml", nil, Options{DefaultProvisioner: "nats"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `default provisioner "nats"`) {
		t.Errorf("Decode with a bad default provisioner: %v", err)
	}
	_, err = Load(nil, Options{DefaultProvisioner: "nats"})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Load with a bad default provisioner: %v", err)
	}
}
