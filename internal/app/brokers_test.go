package app

import (
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/resources"
)

const brokerSet = `
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: events, namespace: shop}
spec: {delivery: {retry: 7}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: orders, namespace: shop}
spec:
  broker: events
  filters: [{prefix: {type: com.example.order.}}]
  subscriber: {uri: http://orders.example.com}
`

func decodeSet(t *testing.T, src string) *resources.Set {
	t.Helper()
	s, err := resources.Decode("set.yaml", []byte(src), resources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunnableAddsBrokersAndTriggers(t *testing.T) {
	set := decodeSet(t, brokerSet)
	run := runnable(set)
	if len(set.Channels) != 0 || len(set.Subscriptions) != 0 {
		t.Fatal("runnable modified the set it was given")
	}
	if len(run.Channels) != 1 || run.Channels[0].Ref() != channel.BrokerRef("shop", "events") {
		t.Fatalf("channels %+v, want the broker's", run.Channels)
	}
	if len(run.Subscriptions) != 1 {
		t.Fatalf("subscriptions %+v, want the trigger's", run.Subscriptions)
	}
	s := run.Subscriptions[0]
	if s.Name != "trigger.orders" || s.ChannelRef() != channel.BrokerRef("shop", "events") || triggerOf(run, s) != set.Triggers[0] {
		t.Fatalf("trigger runs as %+v", s)
	}
	if d := run.DeliveryFor(s); d == nil || *d.Retry != 7 {
		t.Fatalf("trigger delivery %+v, want the broker's", d)
	}
	if k := channelKey(run.Channels[0].Ref()); k != (ResourceKey{Category: CategoryBroker, Name: "shop/events"}) {
		t.Errorf("broker condition key %+v", k)
	}
	if k := subscriptionKey(s.NamespacedName()); k != (ResourceKey{Category: CategoryTrigger, Name: "shop/orders"}) {
		t.Errorf("trigger condition key %+v", k)
	}
	if k := subscriptionKey("shop/orders"); k != (ResourceKey{Category: CategorySubscription, Name: "shop/orders"}) {
		t.Errorf("subscription condition key %+v", k)
	}
}

// A reload that leaves a trigger as it was does not restart it; one that changes its filter does.
func TestSameSubscriptionComparesTriggerFilters(t *testing.T) {
	mk := func(src string) dispatch.Subscription {
		set := decodeSet(t, src)
		tr, err := triggerDispatch(set.Triggers[0])
		if err != nil {
			t.Fatal(err)
		}
		return dispatch.Subscription{Namespace: "shop", Name: "trigger.orders", Trigger: tr}
	}
	a, b := mk(brokerSet), mk(brokerSet)
	if !sameSubscription(a, b) {
		t.Error("the same trigger compiled twice compares different")
	}
	changed := mk(strings.Replace(brokerSet, "com.example.order.", "com.example.invoice.", 1))
	if sameSubscription(a, changed) {
		t.Error("a changed filter compares the same")
	}
	if sameSubscription(a, dispatch.Subscription{Namespace: "shop", Name: "trigger.orders"}) {
		t.Error("a trigger compares the same as a subscription")
	}
}
