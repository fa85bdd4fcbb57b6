package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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

// Apply makes the running gateway match set, in steps: check the whole set, then channels and
// brokers, subscriptions and triggers, sources, and last the removal of what is no longer declared. On error nothing
// already running is torn down for it: the caller keeps the last good set.
//
// A backend that cannot be reached is not an error: its channels wait (the ingress answers 503 with
// the reason), their subscriptions wait, and a background retry brings them up when it can (see
// retryPending). One Apply at a time; it first stops and joins the retry of the previous one.
func (a *App) Apply(ctx context.Context, set *resources.Set) error {
	set = runnable(set) // brokers as their channels, triggers as their subscriptions
	a.stopRetrying()
	a.mu.Lock()
	defer a.mu.Unlock()
	defer a.retryPending(ctx)
	defer a.publishViewLocked()
	subs, err := a.checkSet(set)
	if err != nil {
		return err
	}
	errs := a.applyChannels(ctx, set)
	errs = append(errs, a.applySubscriptions(ctx, subs)...)
	// A new channel takes events only once its subscriptions have fixed their start: an event it
	// accepted before then would be skipped by a subscription that starts at the latest offset.
	a.routeIngress(set)
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
		if c.Provisioner == resources.ProvisionerKafka && a.backends[c.Provisioner] == nil {
			errs = append(errs, inResource(&c.Meta, fmt.Errorf("%s: %s %s uses Kafka but kafka.brokers is not configured", c.File, c.Kind, c.NamespacedName())))
		}
		// The server delivers an event again after nats.ackWait: a delivery must end before that.
		// (Checked here, where a NATS channel is declared, not in the configuration: without one the
		// two settings have nothing to do with each other.)
		if c.Provisioner == resources.ProvisionerNATS && a.cfg.NATS.AckWait <= a.cfg.Dispatch.Timeout {
			errs = append(errs, inResource(&c.Meta, fmt.Errorf("%s: %s %s is on NATS: nats.ackWait (%s) must be longer than dispatch.timeout (%s)",
				c.File, c.Kind, c.NamespacedName(), a.cfg.NATS.AckWait, a.cfg.Dispatch.Timeout)))
		}
		if c.Provisioner == resources.ProvisionerPubSub && a.backends[c.Provisioner] == nil {
			errs = append(errs, inResource(&c.Meta, fmt.Errorf("%s: Channel %s uses Pub/Sub but pubsub.project is not configured (nor GOOGLE_CLOUD_PROJECT)",
				c.File, c.NamespacedName())))
		}
	}
	subs := map[string]dispatch.Subscription{}
	for _, s := range set.Subscriptions {
		ds, err := a.dispatchSubscription(set, s)
		if err != nil {
			errs = append(errs, inResource(&s.Meta, err))
			continue
		}
		if t := triggerOf(set, s); t != nil {
			if ds.Trigger, err = triggerDispatch(t); err != nil {
				errs = append(errs, inResource(&s.Meta, err))
				continue
			}
		}
		subs[s.NamespacedName()] = ds
	}
	return subs, errors.Join(errs...)
}

// resourceError is a problem checkSet found with one resource, which keeps the whole set from
// applying. Meta is the resource as declared: a broker, not the channel it runs as; a trigger, not
// its subscription.
type resourceError struct {
	Meta resources.Meta
	err  error
}

func (e *resourceError) Error() string { return e.err.Error() }
func (e *resourceError) Unwrap() error { return e.err }

// inResource ties err to the resource m declares.
func inResource(m *resources.Meta, err error) error {
	meta := *m
	if meta.Kind == "Trigger" {
		meta.Name = strings.TrimPrefix(meta.Name, resources.TriggerGroupPrefix)
	}
	return &resourceError{Meta: meta, err: err}
}

// applyChannels creates or updates every declared channel and routes dispatch to it; Apply routes
// the ingress once the subscriptions have started.
func (a *App) applyChannels(ctx context.Context, set *resources.Set) []error {
	return a.ensureChannels(ctx, set.Channels)
}

// reconcileParallel bounds the backend calls the reconciler makes at once: Ensure of different
// channels, Start of different subscriptions. Each waits on the backend's round trips (a Kafka topic
// takes a create and a few metadata polls, a new consumer group four admin requests), so one at a
// time made a gateway with 1,000 Kafka channels take a minute to start; a few dozen at once keep a
// broker busy without flooding it.
const reconcileParallel = 32

// parallel runs fn(0) … fn(n-1), at most reconcileParallel at once, and returns when all have.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, reconcileParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// ensureChannels brings each of cs to its declared spec and routes dispatch to it; an unchanged
// running channel is left alone. When its backend cannot be reached a channel waits for it
// (waitForBackend) and that is not an error. On any other failure a channel already running keeps
// running (recorded with its new spec); a new one does not start. The backends' Ensure calls run in
// parallel; the rest, under a.mu, in the order of cs, which is also the order of the errors.
func (a *App) ensureChannels(ctx context.Context, cs []*resources.Channel) []error {
	type job struct {
		c   *resources.Channel
		b   channel.Provisioner
		err error
	}
	var jobs []*job
	errs := make([]error, len(cs))
	at := make([]int, 0, len(cs)) // index in cs of each job
	for i, c := range cs {
		b, err := a.prepareChannel(c)
		switch {
		case err != nil:
			errs[i] = err
		case b != nil:
			jobs = append(jobs, &job{c: c, b: b})
			at = append(at, i)
		}
	}
	parallel(len(jobs), func(i int) { jobs[i].err = jobs[i].b.Ensure(ctx, jobs[i].c.Spec()) })
	for i, j := range jobs {
		errs[at[i]] = a.ensured(ctx, j.c, j.b, j.err)
	}
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// prepareChannel is the part of ensureChannels before the backend call: it returns the backend to
// call Ensure on, or nil when there is nothing to do, or the error that keeps c from changing.
func (a *App) prepareChannel(c *resources.Channel) (channel.Provisioner, error) {
	ref, key := c.Ref(), channelKey(c.Ref())
	old := a.channels[ref]
	if old != nil && old.Provisioner == c.Provisioner && old.Spec() == c.Spec() {
		if _, ok := a.waiting[ref]; ok { // an update that waited was taken back
			delete(a.waiting, ref)
			a.conds.set(key, true, ReasonReady, "")
		}
		return nil, nil
	}
	if old != nil && old.Provisioner != c.Provisioner {
		cause := fmt.Sprintf("changing the provisioner from %s to %s needs a restart", old.Provisioner, c.Provisioner)
		a.conds.set(key, false, ReasonRestartRequired, cause)
		return nil, fmt.Errorf("%s: %s", ref.Describe(), cause)
	}
	return a.backendFor(c.Provisioner), nil
}

// ensured is the part of ensureChannels after backend b's Ensure of c returned err.
func (a *App) ensured(ctx context.Context, c *resources.Channel, b channel.Provisioner, err error) error {
	ref, key := c.Ref(), channelKey(c.Ref())
	old := a.channels[ref]
	switch {
	case err == nil:
		a.runChannel(c, b)
		return nil
	case ctx.Err() != nil: // stopped: neither ready nor failed
		return fmt.Errorf("%s: %w", ref.Describe(), ctx.Err())
	case errors.Is(err, channel.ErrUnavailable) && !errors.Is(err, kafka.ErrSpecConflict):
		a.waitForBackend(c, err)
		return nil
	}
	a.conds.set(key, false, ensureReason(err), err.Error())
	err = fmt.Errorf("%s: %w", ref.Describe(), err)
	delete(a.waiting, ref)
	if old == nil {
		a.router.drop(ref) // it may have waited
		return err
	}
	a.channels[ref] = c
	return err
}

// runChannel records c as running on backend b and routes dispatch to it. It becomes Ready when the
// ingress serves it too (routeIngress, after its subscriptions started).
func (a *App) runChannel(c *resources.Channel, b channel.Provisioner) {
	a.router.set(c.Ref(), b)
	a.channels[c.Ref()] = c
	delete(a.waiting, c.Ref())
	a.unrouted[c.Ref()] = true
	a.log.Info("channel ready", "channel", c.Ref().String(), "provisioner", c.Provisioner)
}

// waitForBackend records that c waits for its backend, which failed with err. A channel that is not
// running yet answers every call with the reason (the ingress: 503); one already running keeps
// running with its last spec. Logged once per change, not per attempt.
func (a *App) waitForBackend(c *resources.Channel, err error) {
	ref := c.Ref()
	werr := &channel.WaitingError{Channel: ref, Reason: fmt.Sprintf("%s is unavailable: %v", backendTitle(c.Provisioner), err)}
	a.waiting[ref] = c
	if _, running := a.channels[ref]; !running {
		a.router.wait(ref, werr)
	}
	if a.conds.set(channelKey(ref), false, ReasonBackendUnavailable, werr.Reason) {
		a.log.Warn("channel waits for its backend; retrying in the background", "channel", ref.String(),
			"provisioner", c.Provisioner, "err", err)
	}
}

// backendTitle names a provisioner for people.
func backendTitle(provisioner string) string {
	if provisioner == resources.ProvisionerKafka {
		return "Kafka"
	}
	if provisioner == resources.ProvisionerPubSub {
		return "Pub/Sub"
	}
	if provisioner == resources.ProvisionerNATS {
		return "NATS"
	}
	return provisioner
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

// routeIngress serves every declared channel that runs, and those that wait for their backend
// (answered 503 with the reason); no others. A channel that waited is served from here on, so the
// retry calls it after starting the channel's subscriptions: nothing is accepted before they run.
func (a *App) routeIngress(set *resources.Set) {
	if set == nil {
		return
	}
	table := ingress.Table{}
	for _, c := range set.Channels {
		if running, ok := a.channels[c.Ref()]; ok {
			table[c.Ref()] = a.backendFor(running.Provisioner)
		} else if err := a.router.waitingErr(c.Ref()); err != nil {
			table[c.Ref()] = waitingPublisher{err}
		}
	}
	a.ingress.SetChannels(table)
	for ref := range a.unrouted {
		if _, served := table[ref]; served {
			a.conds.set(channelKey(ref), true, ReasonReady, "")
		}
		delete(a.unrouted, ref)
	}
}

// removeUndeclared removes the channels set no longer declares, running or waiting (everything that
// used them has stopped by now), and forgets the conditions of every resource it no longer declares.
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
	for ref := range a.waiting {
		if set.Channel(ref) == nil {
			delete(a.waiting, ref)
			a.router.drop(ref)
		}
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

// backendFor is the backend of a provisioner (checkSet made sure it runs).
func (a *App) backendFor(provisioner string) channel.Provisioner {
	if b, ok := a.backends[provisioner]; ok {
		return b
	}
	return a.inmem
}

// channelKey is the condition key of channel ref, or of the broker it backs.
func channelKey(ref channel.Ref) ResourceKey {
	if _, ok := ref.Broker(); ok {
		return brokerKey(ref)
	}
	return ResourceKey{Category: CategoryChannel, Name: ref.String()}
}

// subscriptionKey is the condition key of the subscription the dispatcher key name names, or of the
// trigger it runs.
func subscriptionKey(name string) ResourceKey {
	if k, ok := triggerKey(name); ok {
		return k
	}
	return ResourceKey{Category: CategorySubscription, Name: name}
}

func sourceKey(key string) ResourceKey { return ResourceKey{Category: CategorySource, Name: key} }
