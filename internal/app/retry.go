package app

import (
	"context"
	"maps"
	"slices"
	"time"
)

// retryBackoff is the background retry's delays: the first attempt after first, each next one
// twice the last, at most max.
type retryBackoff struct{ first, max time.Duration }

// defaultRetryBackoff is what New sets: 1s, 2s, 4s, … 30s.
var defaultRetryBackoff = retryBackoff{first: time.Second, max: 30 * time.Second}

// retrier is the background retry of what waits for a backend (see retryPending). Whoever starts it
// cancels it and waits for done (stopRetrying).
type retrier struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// retryPending starts the background retry when something waits for a backend and none runs (not
// while the gateway stops). Called with a.mu held, at the end of Apply.
func (a *App) retryPending(ctx context.Context) {
	a.retryMu.Lock()
	defer a.retryMu.Unlock()
	if a.retry != nil || a.stopping.Load() || !a.pending() {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &retrier{cancel: cancel, done: make(chan struct{})}
	a.retry = r
	go a.retryLoop(ctx, r)
}

// stopRetrying stops the background retry and waits for it: an attempt in progress is cancelled.
// Call it without a.mu held (an attempt holds it while it runs).
func (a *App) stopRetrying() {
	a.retryMu.Lock()
	r := a.retry
	a.retry = nil
	a.retryMu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// retryLoop converges with capped exponential backoff until nothing waits or ctx ends.
func (a *App) retryLoop(ctx context.Context, r *retrier) {
	defer close(r.done)
	delay := a.retryBackoff.first
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !a.retryOnce(ctx, r) {
			return
		}
		delay = min(2*delay, a.retryBackoff.max)
		t.Reset(delay)
	}
}

// retryOnce makes one attempt; it reports whether something still waits (false also when stopped).
// When nothing does, r ends and a later Apply may start a new retry.
func (a *App) retryOnce(ctx context.Context, r *retrier) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	a.converge(ctx)
	a.publishViewLocked()
	if ctx.Err() == nil && a.pending() {
		return true
	}
	a.retryMu.Lock()
	if a.retry == r {
		a.retry = nil
	}
	a.retryMu.Unlock()
	return false
}

// converge repeats the steps that waited: Ensure each channel that waits for its backend, start each
// subscription that does not run, and only then serve the channels that came up, so that no event
// is accepted before their subscriptions' start offsets are committed. What changes is recorded in
// the conditions (and logged once per change) by the steps themselves. Called with a.mu held.
func (a *App) converge(ctx context.Context) {
	_ = a.ensureChannels(ctx, slices.Collect(maps.Values(a.waiting))) // a failure is in the channel's condition
	_ = a.startSubscriptions(ctx)                                     // so are these
	a.routeIngress(a.applied)
}

// pending reports whether something waits that the background retry can bring up: a channel waiting
// for its backend, or a wanted subscription that does not run although its channel does. Called
// with a.mu held.
func (a *App) pending() bool {
	if len(a.waiting) > 0 {
		return true
	}
	for key, ds := range a.want {
		if _, running := a.dispatchers[key]; running {
			continue
		}
		if _, ok := a.channels[ds.Channel]; ok {
			return true
		}
	}
	return false
}
