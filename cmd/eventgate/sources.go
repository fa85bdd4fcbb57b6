package main

import (
	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/adapters/container"
	"github.com/eventgate/eventgate/adapters/github"
	"github.com/eventgate/eventgate/adapters/kubernetes"
	"github.com/eventgate/eventgate/adapters/pubsub"
)

// sourceFactories maps each source Kind to the adapter that runs it.
func sourceFactories() map[string]adapters.Factory {
	return map[string]adapters.Factory{
		"KubernetesEventSource": kubernetes.New,
		"ApiServerSource":       kubernetes.New,
		"GitHubSource":          github.New,
		"GcpPubSubSource":       pubsub.New,
		"CloudPubSubSource":     pubsub.New,
		"ContainerSource":       container.New,
	}
}
