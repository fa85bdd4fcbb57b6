package app

import (
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/resources"
)

// A NATS channel is refused when a delivery may outlast nats.ackWait (the server would deliver the
// event again meanwhile); without one the two settings do not meet.
func TestCheckSetNATSAckWaitAgainstDeliveryTimeout(t *testing.T) {
	a := readyApp(t)
	a.cfg.Dispatch.Timeout = time.Hour
	set := &resources.Set{Channels: []*resources.Channel{testChannel("shop", "orders", "NatsJetStreamChannel", resources.ProvisionerNATS, 0)}}
	set.Channels[0].File = "m.yaml"
	if _, err := a.checkSet(set); err == nil || !strings.Contains(err.Error(), "nats.ackWait (1m0s) must be longer than dispatch.timeout (1h0m0s)") {
		t.Errorf("checkSet = %v, want the NATS channel refused naming both settings", err)
	}
	set.Channels[0].Provisioner = resources.ProvisionerInMemory
	if _, err := a.checkSet(set); err != nil {
		t.Errorf("checkSet of an in-memory channel with a long delivery timeout = %v", err)
	}
}
