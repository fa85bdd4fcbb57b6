package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/eventgate/eventgate/adapters"
	_ "github.com/eventgate/eventgate/adapters/all" // every source adapter registers itself
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// runningSource is one started source adapter.
type runningSource struct {
	src    *resources.Source
	cancel context.CancelFunc
	done   chan struct{}
	hook   http.Handler // non-nil for webhook sources
	stats  *sourceStats // what its sink saw, for /status
}

// sink delivers a source's events to its resolved destination: a channel of ours (no HTTP hop) or a URL.
type sink struct {
	a      *App
	target resources.Target
	stats  *sourceStats // nil: not recorded
}

var _ adapters.Sink = sink{}

// Send delivers e and records the outcome in s.stats (a recorded error shows the sink URL without its
// credentials or query).
func (s sink) Send(ctx context.Context, e *event.Event) error {
	err := s.send(ctx, e)
	if s.stats != nil {
		s.stats.record(err, time.Now(), s.target.URL)
	}
	return err
}

func (s sink) send(ctx context.Context, e *event.Event) error {
	err := s.a.send(ctx, s.target, tracing.RoleSink, e)
	if err != nil && s.target.Channel == nil {
		return fmt.Errorf("sink: %w", err)
	}
	return err
}

// applySources stops the sources gone or changed, starts those new or changed, then routes the
// webhooks to them. Called with a.mu held, after channels are in place.
func (a *App) applySources(ctx context.Context, set *resources.Set) []error {
	want := map[string]*resources.Source{}
	for _, s := range set.Sources {
		want[s.Key()] = s
	}
	for key, r := range a.sources {
		if s, ok := want[key]; ok && s.Equal(r.src) {
			continue
		}
		r.cancel()
		<-r.done
		delete(a.sources, key)
		a.log.Info("source stopped", "source", key)
	}
	var errs []error
	for key, s := range want {
		if _, ok := a.sources[key]; ok {
			continue
		}
		if err := a.startSource(ctx, key, s); err != nil {
			a.conds.set(sourceKey(key), false, ReasonFailed, err.Error())
			errs = append(errs, err)
		}
	}
	a.routeWebhooks()
	return errs
}

// startSource builds the adapter of s and runs it until it is stopped. A source this build or
// configuration does not run is reported (NotRun), not an error.
func (a *App) startSource(ctx context.Context, key string, s *resources.Source) error {
	factory, ok := adapters.ForKind(s.Kind)
	if !ok {
		a.notRun(key, "this build has no adapter for its kind")
		return nil
	}
	target, err := a.resolver.Resolve(s.Sink)
	if err != nil {
		return fmt.Errorf("%s: %s %s: spec.sink: %w", s.File, s.Kind, s.NamespacedName(), err)
	}
	stats := &sourceStats{}
	ad, err := factory(s, adapters.Deps{
		Sink:                sink{a: a, target: target, stats: stats},
		Log:                 a.log.With("source", key),
		Metrics:             a.metrics,
		SecretsDir:          a.cfg.SecretsDir,
		Secrets:             a.clusterSecrets(s),
		IngressURL:          a.cfg.IngressURL(),
		AddressBook:         a.cfg.AddressBook,
		RunContainerSources: a.runContainers,
	})
	if errors.Is(err, adapters.ErrNotRun) {
		a.notRun(key, err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.Kind, s.NamespacedName(), err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &runningSource{src: s, cancel: cancel, done: make(chan struct{}), stats: stats}
	if h, ok := ad.(http.Handler); ok {
		r.hook = h
	}
	go func() {
		defer close(r.done)
		if err := ad.Run(runCtx); err != nil && runCtx.Err() == nil {
			a.conds.set(sourceKey(key), false, ReasonFailed, err.Error())
			a.log.Error("source failed", "source", key, "err", err)
		}
	}()
	a.sources[key] = r
	a.conds.set(sourceKey(key), true, ReasonRunning, "")
	a.log.Info("source started", "source", key, "sink", target.String())
	return nil
}

// notRun reports a source that is accepted but not run, and why.
func (a *App) notRun(key, why string) {
	a.conds.set(sourceKey(key), false, ReasonNotRun, why)
	a.log.Warn("source not run", "source", key, "reason", why)
}

// routeWebhooks serves the running webhook sources at /sources/NAMESPACE/NAME.
func (a *App) routeWebhooks() {
	routes := map[string]http.Handler{}
	for _, r := range a.sources {
		if r.hook != nil {
			routes[r.src.NamespacedName()] = r.hook
		}
	}
	a.ingress.SetSources(routes)
}

// stopSources stops every source and waits for each.
func (a *App) stopSources() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, r := range a.sources {
		r.cancel()
		<-r.done
		delete(a.sources, key)
	}
	a.ingress.SetSources(map[string]http.Handler{})
}
