package app

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/resources"
)

// Brokers and triggers run on the same steps as channels and subscriptions: a broker is the channel
// that backs it (resources.Set.BrokerChannel, named channel.BrokerRef), a trigger is the subscription
// it runs as (resources.Trigger.Subscription, named "trigger.NAME", its consumer group) with its
// filter in front of delivery. runnable adds both to the set Apply works through, so creating,
// updating, waiting for a backend, retrying and removing them is the channels' and subscriptions'
// code; only their condition keys (channelKey, subscriptionKey) and the filter differ.

// runnable returns set with every broker's channel added to its channels and every trigger's
// subscription added to its subscriptions (set itself is not modified). Brokers and Triggers are
// kept: the broker a trigger's subscription names is found through them (Set.Channel).
func runnable(set *resources.Set) *resources.Set {
	if set == nil || len(set.Brokers)+len(set.Triggers) == 0 {
		return set
	}
	run := *set
	run.Channels = slices.Clip(set.Channels)
	for _, b := range set.Brokers {
		run.Channels = append(run.Channels, set.BrokerChannel(b))
	}
	run.Subscriptions = slices.Clip(set.Subscriptions)
	for _, t := range set.Triggers {
		run.Subscriptions = append(run.Subscriptions, t.Subscription())
	}
	return &run
}

// triggerOf returns the trigger that subscription s of set runs, or nil when s is a subscription.
func triggerOf(set *resources.Set, s *resources.Subscription) *resources.Trigger {
	if s.Kind != "Trigger" {
		return nil
	}
	name, ok := strings.CutPrefix(s.Name, resources.TriggerGroupPrefix)
	if !ok {
		return nil
	}
	for _, t := range set.Triggers {
		if t.Namespace == s.Namespace && t.Name == name {
			return t
		}
	}
	return nil
}

// triggerDispatch compiles t's filter into what its dispatcher runs. The trigger passed validation,
// so its filter compiles; an error here is reported like any other that keeps the set from applying.
func triggerDispatch(t *resources.Trigger) (*dispatch.Trigger, error) {
	f, err := t.Filter()
	if err != nil {
		return nil, fmt.Errorf("%s: Trigger %s: %w", t.File, t.NamespacedName(), err)
	}
	return &dispatch.Trigger{Name: t.Name, Filter: f, Source: fmt.Sprintf("%v %v", t.Attributes, t.Filters)}, nil
}

// displayName names a subscription or a trigger for messages: "Subscription NS/NAME", "Trigger NS/NAME".
func displayName(s *resources.Subscription) string {
	if s.Kind == "Trigger" {
		return "Trigger " + s.Namespace + "/" + strings.TrimPrefix(s.Name, resources.TriggerGroupPrefix)
	}
	return "Subscription " + s.NamespacedName()
}

// brokerKey is the condition key of the broker whose channel is ref.
func brokerKey(ref channel.Ref) ResourceKey {
	return ResourceKey{Category: CategoryBroker, Name: ref.Public().String()}
}

// triggerKey returns the condition key of the trigger a dispatcher key ("NAMESPACE/trigger.NAME")
// names, and whether it names one.
func triggerKey(key string) (ResourceKey, bool) {
	ns, name, _ := strings.Cut(key, "/")
	trigger, ok := strings.CutPrefix(name, resources.TriggerGroupPrefix)
	if !ok {
		return ResourceKey{}, false
	}
	return ResourceKey{Category: CategoryTrigger, Name: ns + "/" + trigger}, true
}
