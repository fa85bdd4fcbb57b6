package resources

import "testing"

// TestDecodePubSubChannels: the seed's Channel with provisioner gcp-pubsub and knative-gcp's Channel
// are Pub/Sub channels; knative-gcp's spec fields (project, secret, …) are the provisioner's business.
func TestDecodePubSubChannels(t *testing.T) {
	tests := []struct{ name, src string }{
		{"seed v1alpha1 gcp-pubsub", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: c, namespace: ns}
spec:
  provisioner: {apiVersion: eventing.knative.dev/v1alpha1, kind: ClusterChannelProvisioner, name: gcp-pubsub}
`},
		{"knative-gcp v1beta1", `
apiVersion: messaging.cloud.google.com/v1beta1
kind: Channel
metadata: {name: c, namespace: ns}
spec:
  project: my-project
  secret: {name: google-cloud-key, key: key.json}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := decodeOK(t, tt.src, Options{DefaultProvisioner: ProvisionerKafka})
			if len(s.Channels) != 1 {
				t.Fatalf("got %d channels, want 1", len(s.Channels))
			}
			if c := s.Channels[0]; c.Provisioner != ProvisionerPubSub || c.Namespace != "ns" || c.Name != "c" {
				t.Errorf("got %+v, want the Pub/Sub channel ns/c", *c)
			}
		})
	}
	// A messaging Channel cannot template on "Channel", whichever group's.
	src := `
apiVersion: messaging.knative.dev/v1
kind: Channel
metadata: {name: c}
spec:
  channelTemplate: {apiVersion: messaging.cloud.google.com/v1beta1, kind: Channel}
`
	if _, err := decodeFile("t.yaml", []byte(src), Options{}); err == nil {
		t.Error("a channelTemplate of kind Channel was accepted")
	}
}
