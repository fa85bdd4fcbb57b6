package resources

import (
	"testing"
)

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
