package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/kube"
	"github.com/eventgate/eventgate/gateway/resources"
)

// kubeMode is the Kubernetes-native mode (resources.kubernetes): the cluster's objects of the
// managed kinds are a source of resources beside the files, and their status is written back by
// the replica that leads.
type kubeMode struct {
	source *kube.Source
	status *kube.StatusWriter
	stop   context.CancelFunc // ends the informers and the election
	wg     sync.WaitGroup
}

// newKubeMode builds the mode's source and status writer from the configuration (no request is
// made until start).
func (a *App) newKubeMode() (*kubeMode, error) {
	client, err := kube.NewClient(a.cfg.Kubernetes.Kubeconfig)
	if err != nil {
		return nil, err
	}
	log := a.log.With("component", "kubernetes")
	src := kube.NewSource(a.cfg.Kubernetes, client,
		resources.Options{DefaultProvisioner: a.cfg.Channels.DefaultProvisioner}, log)
	a.resolver.Lookup = src.Address
	return &kubeMode{source: src, status: kube.NewStatusWriter(a.cfg.Kubernetes, client, src, a.kubeStatuses, log)}, nil
}

// startKube starts the informers and waits until they hold the cluster's objects (an error when
// the API server cannot be reached before ctx ends). Nil when the mode is off.
func (a *App) startKube(ctx context.Context) error {
	if a.kube == nil {
		return nil
	}
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.kube.stop = cancel
	if err := a.kube.source.Start(kctx); err != nil {
		cancel()
		return fmt.Errorf("resources.kubernetes: %w", err)
	}
	a.kube.wg.Add(1)
	go func() {
		defer a.kube.wg.Done()
		if err := a.kube.status.Run(kctx); err != nil {
			a.log.Error("kubernetes: no status writer", "err", err)
		}
	}()
	return nil
}

// stopKube ends the informers and the election (releasing the Lease) and waits for them.
func (a *App) stopKube() {
	if a.kube == nil || a.kube.stop == nil {
		return
	}
	a.kube.stop()
	a.kube.wg.Wait()
}

// addressRefresh is how often the addresses references resolve to are read again from the API.
const addressRefresh = 30 * time.Second

// watchKube reloads the resources whenever the cluster's objects change, or an address a reference
// resolves to does (looked up every addressRefresh), until ctx is done; the status writer is told
// after each reload.
func (a *App) watchKube(ctx context.Context) {
	if a.kube == nil {
		return
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	addresses := time.NewTicker(addressRefresh)
	defer addresses.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kube.source.Changed():
			timer.Reset(reloadDebounce)
		case <-addresses.C:
			if a.kube.source.AddressesChanged() {
				timer.Reset(reloadDebounce)
			}
		case <-timer.C:
			a.reload(ctx)
			a.kube.status.Kick()
		}
	}
}

// clusterSecrets is how a source the cluster declares reads its Secrets: from the API server; nil
// (the secrets directory) for a source of a file, or when the mode is off.
func (a *App) clusterSecrets(s *resources.Source) func(string, resources.SecretKeyRef) ([]byte, error) {
	if a.kube == nil || s.File != kube.File {
		return nil
	}
	return a.kube.source.ReadSecret
}

// clusterSet returns what the cluster declares now that can run beside files (the files' set): a
// resource the checks before an apply would refuse (a Kafka channel without Kafka configured, a
// subscription without a subscriber) is left out, its object Ready=False with why, rather than
// keep every change from applying. Nil when the mode is off.
func (a *App) clusterSet(files *resources.Set) *resources.Set {
	if a.kube == nil {
		return nil
	}
	check := func(all *resources.Set) error {
		_, err := a.checkSet(runnable(all))
		return err
	}
	return a.kube.source.Snapshot(files, check).Set
}

// Resource names the resource of a problem checkSet found (kube.ResourceProblem).
func (e *resourceError) Resource() (file, kind, namespace, name string) {
	return e.Meta.File, e.Meta.Kind, e.Meta.Namespace, e.Meta.Name
}

var _ kube.ResourceProblem = (*resourceError)(nil)

// kubeStatuses is the status of every resource as the status writer needs it: what /status shows,
// without the backends' lag, with channel destinations as their ingress URLs.
func (a *App) kubeStatuses() []kube.ResourceStatus {
	in := statusInput{now: time.Now(), ingressURL: a.ingressURL(), cond: a.conds.get}
	a.currentView().withConditions(a.conds.notReady()).into(&in)
	st := buildStatus(in)
	base := strings.TrimSuffix(in.ingressURL, "/")
	url := func(dest string) string {
		for _, prefix := range []string{"channel:", "channel ", "broker "} {
			if ref, ok := strings.CutPrefix(dest, prefix); ok {
				ns, name, _ := strings.Cut(ref, "/")
				if b, ok := (channel.Ref{Namespace: ns, Name: name}).Broker(); ok {
					name = b
				}
				return base + "/" + ns + "/" + name
			}
		}
		if strings.Contains(dest, "://") {
			return dest
		}
		return ""
	}
	rs := func(kind, ns, name string, r ReadyState) kube.ResourceStatus {
		return kube.ResourceStatus{Kind: kind, Namespace: ns, Name: name, Known: r.Reason != ReasonUnknown,
			Ready: r.Ready, Reason: r.Reason, Message: r.Message, Since: r.Since}
	}
	var out []kube.ResourceStatus
	for _, c := range append(st.Channels, st.Brokers...) {
		s := rs(c.Kind, c.Namespace, c.Name, c.ReadyState)
		s.Address = c.Address
		out = append(out, s)
	}
	for _, s := range st.Subscriptions {
		r := rs("Subscription", s.Namespace, s.Name, s.ReadyState)
		r.SubscriberURI = url(s.Subscriber)
		out = append(out, r)
	}
	for _, s := range st.Triggers {
		r := rs("Trigger", s.Namespace, s.Name, s.ReadyState)
		r.SubscriberURI = url(s.Subscriber)
		out = append(out, r)
	}
	for _, s := range st.Sources {
		r := rs(s.Kind, s.Namespace, s.Name, s.ReadyState)
		r.SinkURI, r.Running = url(s.Sink), s.Running
		out = append(out, r)
	}
	return out
}
