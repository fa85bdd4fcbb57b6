package main

import (
	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/adapters/container"
	"github.com/eventgate/eventgate/adapters/github"
)

// sourceFactories maps each source Kind to the adapter that runs it.
func sourceFactories() map[string]adapters.Factory {
	return map[string]adapters.Factory{
		"GitHubSource":    github.New,
		"ContainerSource": container.New,
	}
}
