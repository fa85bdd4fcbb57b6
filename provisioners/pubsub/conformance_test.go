package pubsub

import (
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// notBeforeSubscribe is why the cases that publish before a group's first Subscribe cannot hold: a
// Pub/Sub subscription receives only what is published after it was created. Pub/Sub reaches back
// only over a topic's message retention (Seek), which the fake does not implement (its Seek drops the
// message bodies), so on the fake an Earliest group starts where a Latest one does.
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
