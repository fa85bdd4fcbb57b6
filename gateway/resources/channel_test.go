package resources

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

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
