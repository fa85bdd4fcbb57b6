// Package all links every source adapter into a build: importing it (for its side effects) registers
// each adapter package with package adapters under the name the kinds table gives it
// (resources.Kinds). The composition root imports it; a new source adapter adds its line here.
package all

import (
	_ "github.com/eventgate/eventgate/adapters/container"  // ContainerSource
	_ "github.com/eventgate/eventgate/adapters/github"     // GitHubSource
	_ "github.com/eventgate/eventgate/adapters/kubernetes" // KubernetesEventSource, ApiServerSource
	_ "github.com/eventgate/eventgate/adapters/pubsub"     // CloudPubSubSource, GcpPubSubSource
)
