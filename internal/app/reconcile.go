package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/ingress"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/provisioners/kafka"
)

// Reasons the reconciler gives in a resource's Ready condition.
const (
	ReasonReady              = "Ready"
	ReasonBackendUnavailable = "BackendUnavailable" // channel: its backend cannot be reached
	ReasonSpecConflict       = "SpecConflict"       // channel: the backend cannot take the declared shape
	ReasonEnsureFailed       = "EnsureFailed"       // channel: any other provisioning error
	ReasonRestartRequired    = "RestartRequired"    // channel: its provisioner changed
	ReasonChannelNotReady    = "ChannelNotReady"    // subscription: its channel is not running
	ReasonStartFailed        = "StartFailed"        // subscription: its dispatcher did not start
	ReasonRunning            = "Running"            // source: its adapter runs
	ReasonNotRun             = "NotRun"             // source: accepted but not run (the message says why)
	ReasonFailed             = "Failed"             // source: it could not start, or stopped with an error
)

// Apply makes the running gateway match set, in steps: check the whole set, then channels,
// subscriptions, sources, and last the removal of channels no longer declared. On error nothing
// already running is torn down for it: the caller keeps the last good set. One Apply at a time.
func (a *App) Apply(ctx context.Context, set *resources.Set) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	subs, err := a.checkSet(set)
	if err != nil {
		return err
	}
	errs := a.applyChannels(ctx, set)
	errs = append(errs, a.applySubscriptions(ctx, subs)...)
	errs = append(errs, a.applySources(ctx, set)...)
	a.removeUndeclared(ctx, set)
	a.loaded.Store(true)
	return errors.Join(errs...)
}

// checkSet checks what can be checked before anything changes: every channel's provisioner is
// configured and every subscription resolves. It returns the subscriptions as the dispatcher runs
// them, by NAMESPACE/NAME.
func (a *App) checkSet(set *resources.Set) (map[string]dispatch.Subscription, error) {
	var errs []error
	for _, c := range set.Channels {
		if c.Provisioner == resources.ProvisionerKafka && a.kafka == nil {
			errs = append(errs, fmt.Errorf("%s: Channel %s uses Kafka but kafka.brokers is not configured", c.File, c.NamespacedName()))
		}
	}
	subs := map[string]dispatch.Subscription{}
	for _, s := range set.Subscriptions {
		ds, err := a.dispatchSubscription(set, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		subs[s.NamespacedName()] = ds
	}
	return subs, errors.Join(errs...)
}

// applyChannels creates or updates every declared channel, then routes the ingress to them.
func (a *App) applyChannels(ctx context.Context, set *resources.Set) []error {
	var errs []error
	for _, c := range set.Channels {
		if err := a.ensureChannel(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	a.routeIngress(set)
	return errs
}

// ensureChannel brings one channel to its declared spec and routes dispatch to it. An unchanged
// channel is left alone. When the backend fails, a channel already running keeps running (and is
// recorded with its new spec); a new one does not start.
func (a *App) ensureChannel(ctx context.Context, c *resources.Channel) error {
	key := channelKey(c.Ref())
	old := a.channels[c.Ref()]
	if old != nil && old.Provisioner == c.Provisioner && old.Spec() == c.Spec() {
		return nil
	}
	if old != nil && old.Provisioner != c.Provisioner {
		err := fmt.Errorf("channel %s: changing the provisioner from %s to %s needs a restart", c.Ref(), old.Provisioner, c.Provisioner)
		a.conds.set(key, false, ReasonRestartRequired, err.Error())
		return err
	}
	b := a.backendFor(c.Provisioner)
	err := b.Ensure(ctx, c.Spec())
	if err != nil {
		err = fmt.Errorf("channel %s: %w", c.Ref(), err)
		a.conds.set(key, false, ensureReason(err), err.Error())
		if old == nil {
			return err
		}
	} else {
		a.conds.set(key, true, ReasonReady, "")
	}
	a.router.set(c.Ref(), b)
	a.channels[c.Ref()] = c
	a.log.Info("channel ready", "channel", c.Ref().String(), "provisioner", c.Provisioner)
	return err
}

// ensureReason is the Ready reason for a failed Ensure.
func ensureReason(err error) string {
	switch {
	case errors.Is(err, kafka.ErrSpecConflict):
		return ReasonSpecConflict
	case errors.Is(err, channel.ErrUnavailable):
		return ReasonBackendUnavailable
	default:
		return ReasonEnsureFailed
	}
}

// routeIngress serves every declared channel that runs, and only those.
func (a *App) routeIngress(set *resources.Set) {
	table := ingress.Table{}
	for _, c := range set.Channels {
		if running, ok := a.channels[c.Ref()]; ok {
			table[c.Ref()] = a.backendFor(running.Provisioner)
		}
	}
	a.ingress.SetChannels(table)
}

// removeUndeclared removes the running channels set no longer declares (everything that used them
// has stopped by now) and forgets the conditions of every resource it no longer declares.
func (a *App) removeUndeclared(ctx context.Context, set *resources.Set) {
	for ref, c := range a.channels {
		if set.Channel(ref) != nil {
			continue
		}
		if err := a.backendFor(c.Provisioner).Remove(ctx, ref); err != nil {
			a.log.Warn("channel remove", "channel", ref.String(), "err", err)
		}
		a.router.drop(ref)
		delete(a.channels, ref)
		a.log.Info("channel removed", "channel", ref.String())
	}
	declared := conditionKeys(set)
	for k := range conditionKeys(a.applied) {
		if !declared[k] {
			a.conds.drop(k)
		}
	}
	a.applied = set
}

// conditionKeys lists the condition keys of everything set declares; none for a nil set.
func conditionKeys(set *resources.Set) map[ResourceKey]bool {
	keys := map[ResourceKey]bool{}
	if set == nil {
		return keys
	}
	for _, c := range set.Channels {
		keys[channelKey(c.Ref())] = true
	}
	for _, s := range set.Subscriptions {
		keys[subscriptionKey(s.NamespacedName())] = true
	}
	for _, s := range set.Sources {
		keys[sourceKey(s.Key())] = true
	}
	return keys
}

func (a *App) backendFor(provisioner string) channel.Provisioner {
	if provisioner == resources.ProvisionerKafka && a.kafka != nil {
		return a.kafka
	}
	return a.inmem
}

func channelKey(ref channel.Ref) ResourceKey {
	return ResourceKey{Category: CategoryChannel, Name: ref.String()}
}

func subscriptionKey(name string) ResourceKey {
	return ResourceKey{Category: CategorySubscription, Name: name}
}

func sourceKey(key string) ResourceKey { return ResourceKey{Category: CategorySource, Name: key} }
