package resources

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const (
	subHead = "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: s}\nspec:\n" +
		"  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}\n"
	srcHead = "apiVersion: sources.knative.dev/v1\nkind: ApiServerSource\nmetadata: {name: a}\nspec:\n" +
		"  resources:\n  - {apiVersion: v1, kind: Event}\n"
	ghHead = "apiVersion: sources.knative.dev/v1alpha1\nkind: GitHubSource\nmetadata: {name: gh}\nspec:\n" +
		"  sink: {uri: \"http://x.example\"}\n"
	csHead = "apiVersion: sources.knative.dev/v1\nkind: ContainerSource\nmetadata: {name: cs}\nspec:\n" +
		"  sink: {uri: \"http://x.example\"}\n"
)

// TestDecodeErrors pins every problem Decode reports, message for message.
func TestDecodeErrors(t *testing.T) {
	const S = "t.yaml: document 1 (Subscription default/s): "
	const A = "t.yaml: document 1 (ApiServerSource default/a): "
	const G = "t.yaml: document 1 (GitHubSource default/gh): "
	const C = "t.yaml: document 1 (ContainerSource default/cs): "
	tests := []struct {
		name string
		src  string
		kind error
		want []string
	}{
		{"not an object", "- a\n- b\n", ErrSyntax,
			[]string{"t.yaml: document 1: a document must be an object (a Kubernetes resource), not a list"}},
		{"no apiVersion or kind", "metadata: {name: x}\n", ErrSyntax,
			[]string{"t.yaml: document 1: apiVersion: missing", "t.yaml: document 1: kind: missing"}},
		{"unsupported version", "apiVersion: messaging.knative.dev/v2\nkind: Subscription\nmetadata: {name: s}\n", ErrInvalid,
			[]string{`t.yaml: document 1 (Subscription default/s): apiVersion: Subscription "messaging.knative.dev/v2" is not supported ` +
				`(supported: messaging.knative.dev/v1, messaging.knative.dev/v1beta1, messaging.knative.dev/v1alpha1) (line 1)`}},
		{"YAML syntax", "a: b\n---\nkind: [\n", ErrSyntax,
			[]string{ // the document before the broken one is still checked
				"t.yaml: document 1: apiVersion: missing", "t.yaml: document 1: kind: missing",
				"t.yaml: document 2: yaml: line 3: did not find expected node content",
			}},
		{"bad names", "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: Big_Name, namespace: -x}\n", ErrInvalid,
			[]string{
				`t.yaml: document 1 (InMemoryChannel -x/Big_Name): metadata.name: "Big_Name" is not a valid name (lower-case letters, digits and '-', at most 63) (line 3)`,
				`t.yaml: document 1 (InMemoryChannel -x/Big_Name): metadata.namespace: "-x" is not a valid namespace (lower-case letters, digits and '-', at most 63) (line 3)`,
			}},
		{"missing name, metadata of the wrong shape", "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: [x]\n", ErrInvalid,
			[]string{
				"t.yaml: document 1 (InMemoryChannel): metadata.name: missing (line 3)",
				"t.yaml: document 1 (InMemoryChannel): metadata: must be an object, not a list (line 3)",
			}},
		{"unknown v1alpha1 provisioner", "apiVersion: eventing.knative.dev/v1alpha1\nkind: Channel\nmetadata: {name: c}\nspec:\n  provisioner:\n    name: pigeon\n", ErrInvalid,
			[]string{`t.yaml: document 1 (Channel default/c): spec.provisioner.name: provisioner "pigeon" is not supported (in-memory-channel, kafka, natss or gcp-pubsub) (line 6)`}},
		{"channel template kinds", "apiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: c}\nspec:\n  channelTemplate: {kind: NatssChannel}\n" +
			"---\napiVersion: messaging.knative.dev/v1\nkind: Channel\nmetadata: {name: d}\nspec:\n  channelTemplate: {apiVersion: x}\n", ErrInvalid,
			[]string{
				`t.yaml: document 1 (Channel default/c): spec.channelTemplate.kind: "NatssChannel" is not supported (InMemoryChannel, KafkaChannel or NatsJetStreamChannel) (line 5)`,
				`t.yaml: document 2 (Channel default/d): spec.channelTemplate.kind: missing (InMemoryChannel, KafkaChannel or NatsJetStreamChannel) (line 11)`,
			}},
		{"kafka settings", "apiVersion: messaging.knative.dev/v1\nkind: KafkaChannel\nmetadata: {name: k}\nspec:\n" +
			"  numPartitions: 0\n  replicationFactor: 40000\n  retentionDuration: PT0S\n" +
			"---\napiVersion: messaging.knative.dev/v1\nkind: KafkaChannel\nmetadata: {name: l}\nspec:\n  numPartitions: many\n  retentionDuration: 7d\n", ErrInvalid,
			[]string{
				"t.yaml: document 1 (KafkaChannel default/k): spec.numPartitions: must be between 1 and 2147483647, not 0 (line 5)",
				"t.yaml: document 1 (KafkaChannel default/k): spec.replicationFactor: must be between 1 and 32767, not 40000 (line 6)",
				"t.yaml: document 1 (KafkaChannel default/k): spec.retentionDuration: must be longer than zero (line 7)",
				`t.yaml: document 2 (KafkaChannel default/l): spec.numPartitions: "many" is not an integer (line 13)`,
				`t.yaml: document 2 (KafkaChannel default/l): spec.retentionDuration: "7d" is not an ISO 8601 duration (like PT10S, PT0.5S, P1D): must start with "P" (line 14)`,
			}},
		{"subscription without channel or subscriber", "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: s}\n", ErrInvalid,
			[]string{S + "spec.channel: missing", S + "spec.subscriber: missing (a subscription needs a subscriber, a reply or both)"}},
		{"subscription channel not a channel", "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata: {name: s}\nspec:\n" +
			"  channel: {kind: Service}\n  subscriber: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{
				S + "spec.channel.apiVersion: missing (line 5)",
				S + "spec.channel.name: missing (line 5)",
				S + `spec.channel.kind: "Service" is not a channel kind (Channel, InMemoryChannel, KafkaChannel, NatsJetStreamChannel) (line 5)`,
			}},
		{"bad URIs", subHead + "  subscriber: {uri: \"::bad\"}\n  reply: {uri: /relative}\n" +
			"  delivery: {deadLetterSink: {uri: \"ftp://x.example\"}}\n", ErrInvalid,
			[]string{
				S + `spec.subscriber.uri: "::bad" is not a URL (line 6)`,
				S + `spec.reply.uri: "/relative" is not an absolute URL (line 7)`,
				S + `spec.delivery.deadLetterSink.uri: "ftp://x.example" is not an http or https URL (line 8)`,
			}},
		{"destination shapes", subHead + "  subscriber: {uri: \"http://x.example\", ref: {apiVersion: v1, kind: Service, name: x}}\n" +
			"  reply: {}\n  delivery: {deadLetterSink: \"http://dls.example\"}\n", ErrInvalid,
			[]string{
				S + `spec.subscriber.uri: "http://x.example": only a relative URL (a path) is allowed with ref; give either an absolute uri or a ref (line 6)`,
				S + "spec.reply: missing uri or ref (line 7)",
				S + `spec.delivery.deadLetterSink: must be an object, not "http://dls.example" (line 8)`,
			}},
		{"uri beside a ref", subHead + "  subscriber: {ref: {apiVersion: v1, kind: Service, name: x}, uri: \"//other.example/in\"}\n" +
			"  reply: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: c}, uri: /in}\n", ErrInvalid,
			[]string{
				S + `spec.subscriber.uri: "//other.example/in": only a relative URL (a path) is allowed with ref; give either an absolute uri or a ref (line 6)`,
				S + "spec.reply.uri: not allowed with ref kind InMemoryChannel: events go to it inside the gateway, not to a URL (line 7)",
			}},
		{"CACerts", subHead + "  subscriber: {uri: \"https://x.example\", CACerts: \"my CA\"}\n" +
			"  reply: {uri: \"https://y.example\", CACerts: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}\n" +
			"  delivery: {deadLetterSink: {uri: \"https://z.example\", CACerts: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"}}\n", ErrInvalid,
			[]string{
				S + "spec.subscriber.CACerts: no PEM certificate in it (want -----BEGIN CERTIFICATE----- blocks) (line 6)",
				S + `spec.reply.CACerts: PEM block 1 is a "PRIVATE KEY", not a CERTIFICATE (line 7)`,
				S + "spec.delivery.deadLetterSink.CACerts: PEM block 1: x509: malformed certificate (line 8)",
			}},
		{"inline ref missing fields", subHead + "  subscriber: {name: svc}\n", ErrInvalid,
			[]string{S + "spec.subscriber.apiVersion: missing (line 6)", S + "spec.subscriber.kind: missing (line 6)"}},
		{"delivery", subHead + "  subscriber: {uri: \"http://x.example\"}\n  delivery:\n    retry: -1\n    backoffPolicy: random\n" +
			"    timeout: PT0S\n    backoffDelay: PT10S\n    backoffMax: PT1S\n    retryAfterMax: P1M\n    format: XML\n", ErrInvalid,
			[]string{
				S + "spec.delivery.retry: must be between 0 and 2147483647, not -1 (line 8)",
				S + `spec.delivery.backoffPolicy: "random" is not linear or exponential (line 9)`,
				S + "spec.delivery.timeout: must be longer than zero (line 10)",
				S + "spec.delivery.backoffMax: 1s is less than backoffDelay 10s (line 12)",
				S + `spec.delivery.retryAfterMax: "P1M" is not an ISO 8601 duration (like PT10S, PT0.5S, P1D): years and months are not supported (no fixed length): use weeks or days (line 13)`,
				S + `spec.delivery.format: "XML" is not json (structured mode) or binary (line 14)`,
			}},
		{"annotations", "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: s\n  annotations:\n" +
			"    kafka.eventing.knative.dev/delivery.order: sorted\n    eventgate.dev/initial-offset: newest\n" +
			"    eventgate.dev/min-concurrency: \"0\"\n    eventgate.dev/max-concurrency: lots\n" +
			"spec:\n  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}\n  reply: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{
				S + `metadata.annotations["kafka.eventing.knative.dev/delivery.order"]: "sorted" is not ordered or unordered (line 6)`,
				S + `metadata.annotations["eventgate.dev/initial-offset"]: "newest" is not earliest or latest (line 7)`,
				S + `metadata.annotations["eventgate.dev/min-concurrency"]: "0" is not a positive integer (line 8)`,
				S + `metadata.annotations["eventgate.dev/max-concurrency"]: "lots" is not a positive integer (line 9)`,
			}},
		{"concurrency bounds", "apiVersion: messaging.knative.dev/v1\nkind: Subscription\nmetadata:\n  name: s\n  annotations:\n" +
			"    eventgate.dev/min-concurrency: \"9\"\n    eventgate.dev/max-concurrency: \"3\"\n" +
			"spec:\n  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}\n  reply: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{S + `metadata.annotations["eventgate.dev/min-concurrency"]: 9 is more than eventgate.dev/max-concurrency 3 (line 6)`}},
		{"source without sink, bad overrides", "apiVersion: sources.knative.dev/v1\nkind: ApiServerSource\nmetadata: {name: a}\nspec:\n" +
			"  resources: [{apiVersion: v1}]\n  mode: Everything\n  ceOverrides: {extensions: {Bad-Name: x, type: y}}\n", ErrInvalid,
			[]string{
				A + "spec.sink: missing uri or ref (line 4)",
				A + `spec.ceOverrides.extensions["Bad-Name"]: "Bad-Name" is not a CloudEvents extension name (1-20 lower-case letters and digits) (line 7)`,
				A + `spec.ceOverrides.extensions["type"]: "type" is a CloudEvents context attribute, not an extension (line 7)`,
				A + `spec.mode: "Everything" is not Reference or Resource (line 6)`,
				A + "spec.resources[0].kind: missing (line 5)",
			}},
		{"api server source without resources", "apiVersion: sources.knative.dev/v1\nkind: ApiServerSource\nmetadata: {name: a}\nspec:\n" +
			"  sink: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{A + "spec.resources: missing (at least one resource to watch, like {apiVersion: v1, kind: Event}) (line 4)"}},
		{"selectors", srcHead + "  - apiVersion: v1\n    kind: Pod\n    selector:\n      matchLabels: {\"bad key!\": x}\n" +
			"      matchExpressions:\n      - {key: a, operator: Near}\n      - {key: b, operator: In}\n      - {key: c, operator: In, values: [\"x y\"]}\n" +
			"  sink: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{
				A + `spec.resources[1].selector.matchLabels["bad key!"]: "bad key!" is not a label key (line 10)`,
				A + `spec.resources[1].selector.matchExpressions[0].operator: "Near" is not In, NotIn, Exists or DoesNotExist (line 12)`,
				A + "spec.resources[1].selector.matchExpressions[1].values: In needs at least one value (line 13)",
				A + `spec.resources[1].selector.matchExpressions[2].values: "x y" is not a label value (line 14)`,
			}},
		{"github", ghHead + "  ownerAndRepository: \"bad owner/repo\"\n  eventTypes: push\n  secretToken: {secretKeyRef: {name: ../etc, key: \"\"}}\n", ErrInvalid,
			[]string{
				G + `spec.ownerAndRepository: "bad owner/repo" is not OWNER/REPOSITORY (line 6)`,
				G + `spec.eventTypes: must be a list, not "push" (line 7)`,
				G + "spec.eventTypes: missing (GitHub event names, like push or pull_request) (line 7)",
				G + `spec.secretToken.secretKeyRef.name: invalid secret reference: name "../etc" must not contain '/', '\' or '..' (line 8)`,
				G + "spec.secretToken.secretKeyRef.key: invalid secret reference: key missing (line 8)",
			}},
		{"github unsigned", ghHead + "  eventTypes: [Push]\n", ErrInvalid,
			[]string{
				G + "spec.ownerAndRepository: missing (OWNER/REPOSITORY, or OWNER for an organisation) (line 4)",
				G + `spec.eventTypes[0]: "Push" is not a GitHub event name (line 6)`,
				G + `spec.secretToken: missing: webhooks must be signed (or annotate eventgate.dev/unauthenticated: "true" to accept unsigned ones) (line 4)`,
			}},
		{"github annotation", "apiVersion: sources.knative.dev/v1alpha1\nkind: GitHubSource\nmetadata:\n  name: gh\n  annotations: {eventgate.dev/unauthenticated: yes}\n" +
			"spec:\n  ownerAndRepository: o/r\n  eventTypes: [push]\n  sink: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{
				G + `metadata.annotations["eventgate.dev/unauthenticated"]: "yes" is not true or false (line 5)`,
				G + `spec.secretToken: missing: webhooks must be signed (or annotate eventgate.dev/unauthenticated: "true" to accept unsigned ones) (line 6)`,
			}},
		{"pubsub", "apiVersion: sources.eventing.knative.dev/v1alpha1\nkind: GcpPubSubSource\nmetadata: {name: p}\nspec:\n" +
			"  gcpCredsSecret: {name: g}\n  sink: {uri: \"http://x.example\"}\n" +
			"---\napiVersion: events.cloud.google.com/v1\nkind: CloudPubSubSource\nmetadata: {name: q}\nspec:\n  sink: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{
				"t.yaml: document 1 (GcpPubSubSource default/p): spec.topic: missing (line 4)",
				"t.yaml: document 1 (GcpPubSubSource default/p): spec.googleCloudProject: missing (line 4)",
				"t.yaml: document 1 (GcpPubSubSource default/p): spec.gcpCredsSecret.key: invalid secret reference: key missing (line 5)",
				"t.yaml: document 2 (CloudPubSubSource default/q): spec.topic: missing (line 11)",
			}},
		{"container", csHead + "  template:\n    spec:\n      containers:\n      - name: a\n        env:\n" +
			"        - {name: 1X, value: v}\n        - {name: K_SINK, value: v}\n        - {name: Y, value: v, valueFrom: {secretKeyRef: {name: s, key: k}}}\n" +
			"      - name: b\n", ErrInvalid,
			[]string{
				C + "spec.template.spec.containers: has 2 containers: eventgate runs exactly one program per source (line 8)",
				C + "spec.template.spec.containers[0]: needs an image or a command (line 9)",
				C + `spec.template.spec.containers[0].env[0].name: "1X" is not an environment variable name (line 11)`,
				C + "spec.template.spec.containers[0].env[1].name: K_SINK is set by eventgate (line 12)",
				C + "spec.template.spec.containers[0].env[2]: give either value or valueFrom, not both (line 13)",
			}},
		{"container v1alpha1 flat", "apiVersion: sources.eventing.knative.dev/v1alpha1\nkind: ContainerSource\nmetadata: {name: cs}\nspec:\n" +
			"  args: [x]\n  sink: {uri: \"http://x.example\"}\n", ErrInvalid,
			[]string{C + "spec: needs an image or a command (line 4)"}},
		{"all documents are checked", "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: A}\n---\n" +
			"apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: ok}\n---\n" +
			"apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\nmetadata: {name: B}\n", ErrInvalid,
			[]string{
				`t.yaml: document 1 (InMemoryChannel default/A): metadata.name: "A" is not a valid name (lower-case letters, digits and '-', at most 63) (line 3)`,
				`t.yaml: document 3 (InMemoryChannel default/B): metadata.name: "B" is not a valid name (lower-case letters, digits and '-', at most 63) (line 11)`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Decode("t.yaml", []byte(tt.src), Options{})
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", s)
			}
			if s != nil {
				t.Errorf("Decode returned a set with its error")
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error is not %v: %v", tt.kind, err)
			}
			var e *Error
			if !errors.As(err, &e) && tt.kind != ErrInvalid {
				t.Errorf("error is not an *Error")
			}
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if got := messages(err); !slices.Equal(got, want) {
				t.Errorf("messages:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
			}
		})
	}
}
