package nats

import (
	"context"
	"os"
	"testing"

	"github.com/eventgate/eventgate/internal/natstest"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// TestConformance runs the provisioner suite against an embedded JetStream server, and against the
// server EVENTGATE_TEST_NATS names (a URL) when it is set; with EVENTGATE_REQUIRE_NATS=1 (scripts/test
// sets it) a missing server is a failure.
func TestConformance(t *testing.T) {
	t.Run("Embedded", func(t *testing.T) {
		s := natstest.Server(t, natstest.Options{})
		conformance.Run(t, func(t *testing.T) channel.Provisioner { return newBackend(t, testConfig(s.ClientURL())) })
	})
	// Ordered groups take another path to their claims (leases, lease.go): the suite holds there too.
	t.Run("EmbeddedOrdered", func(t *testing.T) {
		s := natstest.Server(t, natstest.Options{})
		conformance.Run(t, func(t *testing.T) channel.Provisioner { return orderedGroups{newBackend(t, testConfig(s.ClientURL()))} })
	})
	url := os.Getenv("EVENTGATE_TEST_NATS")
	if url == "" && os.Getenv("EVENTGATE_REQUIRE_NATS") == "1" {
		t.Fatal("EVENTGATE_REQUIRE_NATS=1 but EVENTGATE_TEST_NATS names no server (run scripts/nats up)")
	}
	if url != "" {
		t.Run("Server", func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) channel.Provisioner { return newBackend(t, testConfig(url)) })
		})
	}
}

// orderedGroups is a Backend whose every subscription is an ordered group.
type orderedGroups struct{ *Backend }

func (o orderedGroups) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	g.Ordered = true
	return o.Backend.Subscribe(ctx, g, h)
}
