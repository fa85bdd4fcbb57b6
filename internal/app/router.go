package app

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// router is the channel.Provisioner the dispatcher and the sources see: it sends each call to the
// backend that holds the channel (in-memory or Kafka), so a subscription on a Kafka channel can
// reply into an in-memory one.
//
// A declared channel whose backend has not created it yet waits (see wait): every call for it answers
// the channel's *channel.WaitingError (ErrUnavailable, with the reason), so the ingress answers 503
// and says why, and dispatchers and sources retry.
type router struct {
	mu      sync.RWMutex
	routes  map[channel.Ref]channel.Provisioner
	waiting map[channel.Ref]*channel.WaitingError
	all     []channel.Provisioner
}

var _ channel.Provisioner = (*router)(nil)

func newRouter(backends ...channel.Provisioner) *router {
	r := &router{routes: map[channel.Ref]channel.Provisioner{}, waiting: map[channel.Ref]*channel.WaitingError{}}
	for _, b := range backends {
		if b != nil {
			r.all = append(r.all, b)
		}
	}
	return r
}

// set routes ref to backend p.
func (r *router) set(ref channel.Ref, p channel.Provisioner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[ref] = p
	delete(r.waiting, ref)
}

// wait makes every call for ref answer err until set or drop.
func (r *router) wait(ref channel.Ref, err *channel.WaitingError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, ref)
	r.waiting[ref] = err
}

// waitingErr is why ref waits; nil when it does not.
func (r *router) waitingErr(ref channel.Ref) *channel.WaitingError {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.waiting[ref]
}

// waitingPublisher answers every Publish with why its channel waits: the ingress's entry for a
// channel that waits for its backend, until the reconciler routes the ingress to the backend.
type waitingPublisher struct{ err *channel.WaitingError }

func (w waitingPublisher) Publish(context.Context, channel.Ref, []*event.Event) error { return w.err }

// drop forgets ref: calls for it answer ErrNotFound.
func (r *router) drop(ref channel.Ref) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, ref)
	delete(r.waiting, ref)
}

func (r *router) backend(ref channel.Ref) (channel.Provisioner, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err, ok := r.waiting[ref]; ok {
		return nil, err
	}
	p, ok := r.routes[ref]
	if !ok {
		return nil, fmt.Errorf("%w: %s", channel.ErrNotFound, ref)
	}
	return p, nil
}

func (r *router) Publish(ctx context.Context, ref channel.Ref, events []*event.Event) error {
	p, err := r.backend(ref)
	if err != nil {
		return err
	}
	return p.Publish(ctx, ref, events)
}

func (r *router) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	p, err := r.backend(g.Channel)
	if err != nil {
		return nil, err
	}
	return p.Subscribe(ctx, g, h)
}

// ErrNoTail is Tail's answer for a channel whose backend cannot be tailed.
var ErrNoTail = errors.New("the channel's backend cannot be tailed")

// Tail opens a tail on the backend that holds ref (see channel.Tailer).
func (r *router) Tail(ctx context.Context, ref channel.Ref, start channel.TailStart) (channel.Tail, error) {
	p, err := r.backend(ref)
	if err != nil {
		return nil, err
	}
	t, ok := p.(channel.Tailer)
	if !ok {
		return nil, fmt.Errorf("channel %s: %w", ref, ErrNoTail)
	}
	return t.Tail(ctx, ref, start)
}

func (r *router) Ensure(ctx context.Context, spec channel.Spec) error {
	p, err := r.backend(spec.Ref)
	if err != nil {
		return err
	}
	return p.Ensure(ctx, spec)
}

func (r *router) Remove(ctx context.Context, ref channel.Ref) error {
	p, err := r.backend(ref)
	if err != nil {
		return err
	}
	return p.Remove(ctx, ref)
}

func (r *router) DeleteGroup(ctx context.Context, g channel.Group) error {
	p, err := r.backend(g.Channel)
	if err != nil {
		return err
	}
	return p.DeleteGroup(ctx, g)
}

// Ready is nil only when every backend is ready.
func (r *router) Ready(ctx context.Context) error {
	var errs []error
	for _, b := range r.all {
		if err := b.Ready(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close is a no-op: the app closes each backend itself, in order.
func (r *router) Close() error { return nil }

// refsOf lists the channels routed to backend p.
func (r *router) refsOf(p channel.Provisioner) []channel.Ref {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []channel.Ref
	for ref, b := range r.routes {
		if b == p {
			out = append(out, ref)
		}
	}
	return out
}

// ErrNoRedrive is Spans's answer for a channel whose backend cannot be read up to a fixed end, so
// cannot be redriven.
var ErrNoRedrive = errors.New("the channel's backend cannot be redriven (in memory and Kafka can)")

// Spans asks the backend that holds ref (see channel.Spanner).
func (r *router) Spans(ctx context.Context, ref channel.Ref, start channel.TailStart) ([]channel.Span, error) {
	p, err := r.backend(ref)
	if err != nil {
		return nil, err
	}
	s, ok := p.(channel.Spanner)
	if _, tails := p.(channel.Tailer); !ok || !tails {
		return nil, fmt.Errorf("channel %s: %w", ref, ErrNoRedrive)
	}
	return s.Spans(ctx, ref, start)
}
