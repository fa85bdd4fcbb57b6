package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/resources"
)

// applySubscriptions stops the dispatchers of subscriptions gone or changed, then starts those of
// subscriptions new or changed. want is by NAMESPACE/NAME (checkSet); it is kept for the background
// retry of those that wait.
func (a *App) applySubscriptions(ctx context.Context, want map[string]dispatch.Subscription) []error {
	a.want = want
	for key, r := range a.dispatchers {
		ds, ok := want[key]
		if ok && sameSubscription(ds, r.sub) {
			continue
		}
		a.stopSubscription(ctx, key, r, !ok)
	}
	return a.startSubscriptions(ctx)
}

// sameSubscription reports whether a and b run the same: equal in every field, a trigger's compiled
// filter compared by what it was compiled from (dispatch.Trigger.Source).
func sameSubscription(a, b dispatch.Subscription) bool {
	if (a.Trigger == nil) != (b.Trigger == nil) {
		return false
	}
	if a.Trigger != nil {
		ta, tb := *a.Trigger, *b.Trigger
		ta.Filter, tb.Filter = nil, nil
		a.Trigger, b.Trigger = &ta, &tb
	}
	return reflect.DeepEqual(a, b)
}

// startSubscriptions starts every wanted subscription that is not running (see newDispatcher).
func (a *App) startSubscriptions(ctx context.Context) []error {
	var errs []error
	// Those that start at the earliest offset first: in memory, a channel keeps events only as long
	// as some group needs them, and a latest group started first would let go of what an earliest
	// one declared beside it is there to read. Within each of the two waves, starts run in parallel
	// (see reconcileParallel) and are recorded by name, so the outcome is repeatable.
	var earliest, rest []string
	for _, key := range slices.Sorted(maps.Keys(a.want)) {
		if _, ok := a.dispatchers[key]; ok {
			continue
		}
		if a.want[key].Start == channel.Earliest {
			earliest = append(earliest, key)
		} else {
			rest = append(rest, key)
		}
	}
	for _, group := range [][]string{earliest, rest} {
		type job struct {
			key string
			d   *dispatch.Dispatcher
			err error
		}
		var jobs []*job
		for _, key := range group {
			d, err := a.newDispatcher(key, a.want[key])
			switch {
			case err != nil:
				errs = append(errs, err)
			case d != nil:
				jobs = append(jobs, &job{key: key, d: d})
			}
		}
		parallel(len(jobs), func(i int) { jobs[i].err = jobs[i].d.Start(ctx) })
		for _, j := range jobs {
			if err := a.started(ctx, j.key, a.want[j.key], j.d, j.err); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// stopSubscription stops one dispatcher, within shutdown.grace. A subscription that is gone also
// loses its consumer group.
func (a *App) stopSubscription(ctx context.Context, key string, r *running, gone bool) {
	stopCtx, cancel := context.WithTimeout(ctx, a.cfg.Shutdown.Grace)
	if err := r.d.Stop(stopCtx); err != nil {
		a.log.Warn("subscription stop", "subscription", key, "err", err)
	}
	cancel()
	delete(a.dispatchers, key)
	if !gone {
		return
	}
	g := channel.Group{Channel: r.sub.Channel, Name: r.sub.Name}
	if err := a.router.DeleteGroup(ctx, g); err != nil && !errors.Is(err, channel.ErrNotFound) {
		a.log.Warn("subscription group delete", "subscription", key, "err", err)
	}
	a.log.Info("subscription stopped", "subscription", key)
}

// A subscription's dispatcher starts once its channel runs (newDispatcher, d.Start, started). It is
// Ready when Start returned: its consumer group has joined and its start offsets are committed. A
// subscription whose channel waits for its backend, or whose backend cannot be reached, waits too
// (not an error); the background retry starts it.

// newDispatcher is the part before Start: the dispatcher to start, or nil (with the error, if it is
// one) when its channel does not run.
func (a *App) newDispatcher(key string, ds dispatch.Subscription) (*dispatch.Dispatcher, error) {
	if _, ok := a.channels[ds.Channel]; !ok {
		return nil, a.channelNotReady(key, ds.Channel)
	}
	return dispatch.New(ds, dispatch.Deps{Channels: a.router, Client: a.client, Metrics: a.metrics, Log: a.log,
		Tracer: a.tracer}), nil
}

// started records the outcome of d.Start (err) for subscription key.
func (a *App) started(ctx context.Context, key string, ds dispatch.Subscription, d *dispatch.Dispatcher, err error) error {
	k := subscriptionKey(key)
	if err != nil {
		if ctx.Err() != nil { // stopped: neither ready nor failed
			return fmt.Errorf("subscription %s: %w", key, ctx.Err())
		}
		if a.conds.set(k, false, ReasonStartFailed, err.Error()) {
			a.log.Warn("subscription not started; retrying in the background", "subscription", key, "err", err)
		}
		if errors.Is(err, channel.ErrUnavailable) {
			return nil
		}
		return fmt.Errorf("subscription %s: %w", key, err)
	}
	a.dispatchers[key] = &running{sub: ds, d: d}
	a.conds.set(k, true, ReasonReady, "")
	a.log.Info("subscription started", "subscription", key, "channel", ds.Channel.String(), "subscriber", ds.Subscriber.String())
	return nil
}

// channelNotReady records that subscription key waits for its channel ch, which does not run: not
// an error while ch waits for its backend, an error when ch failed.
func (a *App) channelNotReady(key string, ch channel.Ref) error {
	_, waits := a.waiting[ch]
	cause := fmt.Sprintf("%s is not running", ch.Describe())
	if waits {
		cause = fmt.Sprintf("%s waits for its backend", ch.Describe())
	}
	if a.conds.set(subscriptionKey(key), false, ReasonChannelNotReady, cause) && waits {
		a.log.Warn("subscription waits for its channel", "subscription", key, "channel", ch.String())
	}
	if waits {
		return nil
	}
	return fmt.Errorf("subscription %s: %s", key, cause)
}

// dispatchSubscription resolves a Subscription into what the dispatcher runs: its destinations,
// and its delivery settings from dispatch.Overlay.
func (a *App) dispatchSubscription(set *resources.Set, s *resources.Subscription) (dispatch.Subscription, error) {
	where := func(field string) string {
		return fmt.Sprintf("%s: %s: %s", s.File, displayName(s), field)
	}
	st := dispatch.Overlay(a.cfg.Dispatch, set, s)
	ds := dispatch.Subscription{
		Namespace:   s.Namespace,
		Name:        s.Name,
		Channel:     s.ChannelRef(),
		Ordered:     s.Order == resources.Ordered,
		Start:       s.InitialOffset,
		Policy:      st.Policy,
		MaxInFlight: st.MaxInFlight,
		MinInFlight: st.MinInFlight,
		Adaptive:    st.Adaptive,
	}
	if s.Subscriber == nil {
		return ds, fmt.Errorf("%s: a subscriber is required by eventgate", where("spec.subscriber"))
	}
	var err error
	if ds.Subscriber, err = a.destination(*s.Subscriber); err != nil {
		return ds, fmt.Errorf("%s: %w", where("spec.subscriber"), err)
	}
	if ds.Reply, err = a.optionalDestination(s.Reply); err != nil {
		return ds, fmt.Errorf("%s: %w", where("spec.reply"), err)
	}
	if ds.DeadLetter, err = a.optionalDestination(st.DeadLetterSink); err != nil {
		return ds, fmt.Errorf("%s: %w", where("spec.delivery.deadLetterSink"), err)
	}
	return ds, nil
}

// destination resolves a declared destination: a channel of ours or a URL.
func (a *App) destination(d resources.Destination) (dispatch.Destination, error) {
	t, err := a.resolver.Resolve(d)
	if err != nil {
		return dispatch.Destination{}, err
	}
	if t.Channel != nil {
		ref := *t.Channel
		return dispatch.Destination{Channel: &ref}, nil
	}
	return dispatch.Destination{URL: t.URL, CACerts: t.CACerts}, nil
}

// optionalDestination is destination for a destination that may be absent (nil gives nil).
func (a *App) optionalDestination(d *resources.Destination) (*dispatch.Destination, error) {
	if d == nil {
		return nil, nil
	}
	out, err := a.destination(*d)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
