package resources_test

import (
	"fmt"

	"github.com/eventgate/eventgate/gateway/resources"
)

// Decode a seed-era channel and subscription, validate them together and print what they resolve to.
func ExampleDescribe() {
	manifest := `
apiVersion: eventing.knative.dev/v1alpha1
kind: Channel
metadata: {name: demo}
spec:
  provisioner: {apiVersion: eventing.knative.dev/v1alpha1, kind: ClusterChannelProvisioner, name: in-memory-channel}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: sub}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: demo}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: echo}}
  delivery: {retry: 3, backoffDelay: PT0.5S, deadLetterSink: {uri: "http://127.0.0.1:9999/dead"}}
`
	set, err := resources.Decode("demo.yaml", []byte(manifest), resources.Options{})
	if err == nil {
		err = set.Validate()
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	r := &resources.Resolver{IngressURL: "http://127.0.0.1:8080"}
	for _, line := range resources.Describe(set, r) {
		fmt.Println(line)
	}
	d := set.Subscriptions[0].Delivery
	fmt.Println(*d.Retry, *d.BackoffDelay)
	// Output:
	// Channel default/demo → ingress http://127.0.0.1:8080/default/demo (inmemory)
	// Subscription default/sub → subscriber http://echo.default.svc.cluster.local (channel default/demo, dead letter http://127.0.0.1:9999/dead)
	// 3 500ms
}

// Problems name the file, document, resource, field and line.
func ExampleDecode_errors() {
	_, err := resources.Decode("demo.yaml", []byte(`
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: sub}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: demo}
  subscriber: {uri: "::bad"}
`), resources.Options{})
	fmt.Println(err)
	// Output:
	// demo.yaml: document 1 (Subscription default/sub): spec.subscriber.uri: "::bad" is not a URL (line 7)
}
