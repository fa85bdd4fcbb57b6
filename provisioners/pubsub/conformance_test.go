package pubsub

import (
	"os"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// notBeforeSubscribe is why the cases that publish before a group's first Subscribe cannot hold: a
// Pub/Sub subscription receives only what is published after it was created. Pub/Sub reaches back
// only over a topic's message retention (Seek), which the suite's channels do not have and the fake
// does not implement (its Seek drops the message bodies), so an Earliest group starts where a Latest
// one does.
const notBeforeSubscribe = "it publishes before the group's first Subscribe; a Pub/Sub subscription " +
	"gets only messages published after it exists (reaching back needs topic retention and Seek, which pstest lacks)"

// cannotHold are the conformance cases Pub/Sub cannot hold, with why; TestPubSub* cover what each
// checks in Pub/Sub's terms (subscribe first, then publish).
var cannotHold = map[string]string{
	"PublishThenSubscribeEarliest": notBeforeSubscribe + "; see TestPubSubEveryEventOnce",
	"OrderPerPartitionAndKey":      notBeforeSubscribe + "; see TestPubSubOrderPerKey",
	"ResubscribeResumes":           notBeforeSubscribe + "; see TestPubSubResubscribeResumes",
	"MarkDoneCommitsContiguousPrefix": notBeforeSubscribe + "; also, Pub/Sub acks each done message, so those done " +
		"after a gap do not come again (fewer duplicates than the prefix rule), and with one ordering key it may hold " +
		"later messages of the key until the earlier one is acked (pstest does); see TestPubSubAcksEachDoneMessage",
}

func TestConformance(t *testing.T) {
	srv := fakeServer(t)
	conformance.RunWith(t, func(t *testing.T) channel.Provisioner {
		return newTestBackend(t, testConfig(srv.Addr))
	}, conformance.Options{CannotHold: cannotHold})
}

// TestConformanceRealPubSub runs the suite against the Pub/Sub named by the environment: a project in
// EVENTGATE_TEST_PUBSUB_PROJECT (Application Default Credentials), and PUBSUB_EMULATOR_HOST for an
// emulator (gcloud's, say). Without a project it is skipped: the fake above always runs.
func TestConformanceRealPubSub(t *testing.T) {
	project := os.Getenv("EVENTGATE_TEST_PUBSUB_PROJECT")
	if project == "" {
		t.Skip("no real Pub/Sub: set EVENTGATE_TEST_PUBSUB_PROJECT (and PUBSUB_EMULATOR_HOST for an emulator)")
	}
	cfg := DefaultConfig().WithEnvironment(os.Getenv)
	cfg.Project = project
	cfg.AckDeadline = minAckDeadline
	conformance.RunWith(t, func(t *testing.T) channel.Provisioner {
		cfg := cfg
		cfg.DeleteTopicsOnRemove = true // a real project keeps what the suite leaves otherwise
		return newTestBackend(t, cfg)
	}, conformance.Options{CannotHold: cannotHold})
}
