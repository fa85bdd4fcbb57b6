package app

import (
	"context"
	"os"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// startTracing builds the tracer the tracing section and the OTEL_* environment ask for (a.tracer
// stays nil when tracing is off) and tells it which system holds each channel. Called by New before
// the ingress and the dispatchers are built: they take a.tracer.
func (a *App) startTracing(version string) error {
	t, err := tracing.Start(context.Background(), a.cfg.Tracing, os.Getenv, version)
	if err != nil || t == nil {
		return err
	}
	t.SetSystems(a.messagingSystem)
	// The SDK reports failed exports (a collector that is down) here, not to the event path.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { a.log.Warn("tracing: span export failed", "err", err) }))
	a.tracer = t
	a.log.Info("tracing on", t.Describe()...)
	return nil
}

// stopTracing exports the spans still buffered, for at most a few seconds.
func (a *App) stopTracing() {
	if a.tracer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tracer.Shutdown(ctx); err != nil {
		a.log.Warn("tracing: flush at shutdown", "err", err)
	}
}

// messagingSystem is messaging.system for the channel ref: the system of the backend holding it.
func (a *App) messagingSystem(ref channel.Ref) string {
	p, err := a.router.backend(ref)
	if err != nil {
		return ""
	}
	switch {
	case a.kafka != nil && p == channel.Provisioner(a.kafka):
		return "kafka"
	case a.nats != nil && p == channel.Provisioner(a.nats):
		return "nats"
	case a.pubsub != nil && p == channel.Provisioner(a.pubsub):
		return "gcp_pubsub"
	}
	return tracing.SystemEventgate
}
