package nats

import (
	"os"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// TestConformance runs the provisioner suite against an embedded JetStream server, and against the
// server EVENTGATE_TEST_NATS names (a URL) when it is set.
func TestConformance(t *testing.T) {
	t.Run("Embedded", func(t *testing.T) {
		s := runServer(t, "", 0)
		conformance.Run(t, func(t *testing.T) channel.Provisioner { return newBackend(t, testConfig(s.ClientURL())) })
	})
	if url := os.Getenv("EVENTGATE_TEST_NATS"); url != "" {
		t.Run("Server", func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) channel.Provisioner { return newBackend(t, testConfig(url)) })
		})
	}
}
