// Package app wires eventgate together: configuration, provisioners, ingress, dispatchers, the admin
// server and the resource watcher. It starts them in order and stops them in the reverse order.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/console"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/ingress"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/redrive"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
	"github.com/eventgate/eventgate/provisioners/inmemory"
	"github.com/eventgate/eventgate/provisioners/kafka"
	"github.com/eventgate/eventgate/provisioners/nats"
	"github.com/eventgate/eventgate/provisioners/pubsub"
)

// Options configures an App.
type Options struct {
	Config config.Config
	// Paths are the manifest files and directories to load and watch.
	Paths []string
	Log   *slog.Logger
	Build metrics.Build
	// Ready, when set, is called once both servers listen, with their addresses.
	Ready func(ingressAddr, adminAddr string)
	// RunContainerSources lets ContainerSources run their programs as child processes.
	RunContainerSources bool
}

// App is one running gateway. Create it with New and run it with Run; it is not reusable.
type App struct {
	cfg      config.Config
	paths    []string
	log      *slog.Logger
	metrics  *metrics.Metrics
	inmem    *inmemory.Backend
	kafka    *kafka.Backend                 // nil when kafka.brokers is empty
	pubsub   *pubsub.Backend                // nil when pubsub.project is empty
	nats     *nats.Backend                  // always built; connects on the first NATS channel
	backends map[string]channel.Provisioner // by provisioner name (resources.Provisioner*)
	router   *router
	redrives *redrive.Manager // dead-letter redrive jobs (POST /redrives)
	sampler  *console.Sampler // the console's figures, read from the metrics while a console is open
	ingress  *ingress.Handler
	resolver *resources.Resolver
	client   *http.Client
	// caClients are clients that trust a sink's CACerts besides the system's roots (see clientFor),
	// by the certificates' PEM text.
	caClients sync.Map
	onReady   func(string, string)
	tracer    *tracing.Tracer // nil: tracing off (tracing.go)

	loaded   atomic.Bool // a resource set has been applied
	stopping atomic.Bool

	certs         *ingress.CertReloader // nil: plain HTTP
	adminTokens   adminTokens           // empty: the admin port asks for no token
	runContainers bool
	kube          *kubeMode // nil unless resources.kubernetes

	// conds is every resource's Ready condition: the reconciler writes it, /readyz and /status read it.
	conds *conditions

	mu          sync.Mutex // guards what follows: one Apply at a time
	channels    map[channel.Ref]*resources.Channel
	dispatchers map[string]*running       // by NAMESPACE/NAME
	sources     map[string]*runningSource // by KIND/NAMESPACE/NAME
	applied     *resources.Set            // the set the last Apply went through; nil before
	// waiting are the declared channels whose backend could not be reached: not running yet, or
	// running with an update not made. want are the subscriptions of the applied set, by
	// NAMESPACE/NAME. retry brings what waits up in the background; nil when none runs.
	waiting map[channel.Ref]*resources.Channel
	want    map[string]dispatch.Subscription
	// unrouted are the channels started since the ingress table was last made: they count as
	// Ready only once the ingress serves them (routeIngress), so /readyz never says ready while a
	// POST to one would still be answered 503.
	unrouted map[channel.Ref]bool
	retry    *retrier // guarded by retryMu, not mu: it is stopped while an attempt holds mu

	retryMu      sync.Mutex   // guards retry; taken after mu when both are
	retryBackoff retryBackoff // the background retry's delays (a test seam)

	// view is what /status lists while a reconcile holds mu: published at the end of each
	// reconcile step (see currentView).
	view atomic.Pointer[statusView]
	// ingressAddr is the address the ingress listens on ("" before Run opened it): with port 0 in
	// the configuration, /status shows the port actually taken.
	ingressAddr atomic.Pointer[string]
}

type running struct {
	sub dispatch.Subscription
	d   *dispatch.Dispatcher
}

// New builds an App from its configuration: metrics, provisioners and the ingress handler. Nothing
// listens or runs until Run.
func New(o Options) (*App, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	a := &App{
		cfg:           cfg,
		paths:         o.Paths,
		log:           o.Log,
		metrics:       metrics.New(o.Build),
		onReady:       o.Ready,
		conds:         newConditions(),
		channels:      map[channel.Ref]*resources.Channel{},
		dispatchers:   map[string]*running{},
		waiting:       map[channel.Ref]*resources.Channel{},
		unrouted:      map[channel.Ref]bool{},
		retryBackoff:  defaultRetryBackoff,
		sources:       map[string]*runningSource{},
		runContainers: o.RunContainerSources,
		resolver:      &resources.Resolver{AddressBook: cfg.AddressBook, IngressURL: cfg.IngressURL()},
	}
	a.inmem = inmemory.New(cfg.InMemory, o.Log.With("provisioner", "inmemory"))
	a.metrics.RegisterLag(lagSources{a}, 5*time.Second)
	a.metrics.RegisterChannelUsage(func() []metrics.ChannelUsage {
		var out []metrics.ChannelUsage
		for _, ref := range a.router.refsOf(a.inmem) {
			b, limit := a.inmem.Stats(ref)
			out = append(out, metrics.ChannelUsage{Channel: ref, Bytes: b, Limit: limit})
		}
		return out
	})
	if len(cfg.Kafka.Brokers) > 0 {
		var err error
		a.kafka, err = kafka.New(cfg.Kafka, o.Log.With("provisioner", "kafka"))
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
	}
	a.backends = map[string]channel.Provisioner{resources.ProvisionerInMemory: a.inmem}
	backends := []channel.Provisioner{a.inmem}
	if a.kafka != nil {
		a.backends[resources.ProvisionerKafka] = a.kafka
		backends = append(backends, a.kafka)
	}
	if cfg.PubSub.Project != "" {
		var err error
		if a.pubsub, err = pubsub.New(cfg.PubSub, o.Log.With("provisioner", "pubsub")); err != nil {
			return nil, fmt.Errorf("pubsub: %w", err)
		}
		a.backends[resources.ProvisionerPubSub] = a.pubsub
		backends = append(backends, a.pubsub)
	}
	natsb, err := nats.New(cfg.NATS, o.Log.With("provisioner", "nats"))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	a.nats = natsb
	a.backends[resources.ProvisionerNATS] = a.nats
	backends = append(backends, a.nats)
	a.router = newRouter(backends...)
	a.redrives = a.newRedrives()
	a.sampler = console.NewSampler(a.metrics.Registry, console.SamplerOptions{})
	if err := a.startTracing(o.Build.Version); err != nil {
		return nil, err
	}
	a.ingress = ingress.New(cfg.Ingress, ingress.Deps{Log: o.Log, Metrics: a.metrics, Tracer: a.tracer})
	if cfg.Ingress.Auth.Secret != "" {
		if err := a.loadTokens(); err != nil {
			return nil, err
		}
	}
	if cfg.Admin.Auth.Secret != "" {
		t, err := loadAdminTokens(cfg.SecretsDir, cfg.Admin.Auth.Secret)
		if err != nil {
			return nil, err
		}
		a.adminTokens = t
	}
	if cfg.Ingress.TLS.CertFile != "" {
		r, err := ingress.NewCertReloader(cfg.Ingress.TLS.CertFile, cfg.Ingress.TLS.KeyFile)
		if err != nil {
			return nil, err
		}
		a.certs = r
	}
	if cfg.Resources.Kubernetes {
		if a.kube, err = a.newKubeMode(); err != nil {
			return nil, err
		}
	}
	a.client = &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
	return a, nil
}

// Metrics returns the App's metrics (for tests and embedding).
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// Run loads the resources, starts everything, and serves until ctx is done; then it shuts down in
// order within shutdown.grace: not ready, drain ingress, finish or hand back in-flight deliveries,
// close the provisioners. A broken resource set at start is an error; later a broken file is logged
// and the last good set keeps running.
func (a *App) Run(ctx context.Context) error {
	if err := a.startKube(ctx); err != nil {
		a.closeBackends()
		return err
	}
	set, err := a.load()
	if err != nil {
		a.stopKube()
		a.closeBackends()
		return err
	}
	abort := func(err error) error {
		a.stopKube()
		a.stopRetrying()
		a.stopSources()
		a.shutdownDispatchers(context.Background())
		a.closeBackends()
		a.stopTracing()
		return err
	}
	ingressLn, err := net.Listen("tcp", a.cfg.Ingress.Address)
	if err != nil {
		return abort(fmt.Errorf("ingress.address: %w", err))
	}
	addr := ingressLn.Addr().String()
	a.ingressAddr.Store(&addr)
	adminLn, err := net.Listen("tcp", a.cfg.Admin.Address)
	if err != nil {
		ingressLn.Close()
		return abort(fmt.Errorf("admin.address: %w", err))
	}
	if err := a.Apply(ctx, set); err != nil {
		ingressLn.Close()
		adminLn.Close()
		return abort(err)
	}
	// Jobs a previous run left unfinished resume now that their channels are routed.
	if err := a.redrives.Resume(); err != nil {
		a.log.Error("redrive jobs not all loaded", "err", err)
	}
	ingressSrv := &http.Server{
		Handler:           a.ingress,
		ReadHeaderTimeout: a.cfg.Ingress.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.Ingress.ReadTimeout,
		WriteTimeout:      a.cfg.Ingress.WriteTimeout,
		IdleTimeout:       a.cfg.Ingress.IdleTimeout,
		MaxHeaderBytes:    a.cfg.Ingress.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	// Requests on the admin port end when it shuts down: a tail streams until then, and
	// http.Server.Shutdown would otherwise wait for it.
	adminCtx, endAdmin := context.WithCancel(context.Background())
	defer endAdmin()
	adminSrv := &http.Server{Handler: a.adminMux(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return adminCtx }}
	adminSrv.RegisterOnShutdown(endAdmin)
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); a.sampler.Run(adminCtx) }()

	serveErr := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	if a.certs != nil {
		ingressSrv.TLSConfig = a.certs.TLSConfig()
		ingressLn = tls.NewListener(ingressLn, ingressSrv.TLSConfig)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	watcher := a.newWatcher() // before the servers: a change made once /readyz answers is seen
	kubeDone := make(chan struct{})
	go func() { defer close(watchDone); a.watch(watchCtx, watcher) }()
	go func() { defer close(kubeDone); a.watchKube(watchCtx) }()
	go func() { defer wg.Done(); serveErr <- serve(ingressSrv, ingressLn) }()
	go func() { defer wg.Done(); serveErr <- serve(adminSrv, adminLn) }()
	a.log.Info("eventgate serving", "ingress", ingressLn.Addr().String(), "admin", adminLn.Addr().String(),
		"channels", len(set.Channels), "subscriptions", len(set.Subscriptions))
	if a.onReady != nil {
		a.onReady(ingressLn.Addr().String(), adminLn.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}

	// Shutdown, in order, bounded by the grace period.
	a.log.Info("eventgate shutting down", "grace", a.cfg.Shutdown.Grace.String())
	a.stopping.Store(true)
	stopWatch()
	<-watchDone
	<-kubeDone
	a.stopKube() // the Lease is released: another replica writes status from now
	a.stopRetrying()
	graceCtx, cancel := context.WithTimeout(context.Background(), a.cfg.Shutdown.Grace)
	defer cancel()
	if err := ingressSrv.Shutdown(graceCtx); err != nil {
		a.log.Warn("ingress drain cut short", "err", err)
		ingressSrv.Close()
	}
	a.stopSources()
	a.redrives.Close(graceCtx) // before the dispatchers: a redrive may be delivering through one
	a.shutdownDispatchers(graceCtx)
	a.closeBackends()
	a.stopTracing()
	shortCtx, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	adminSrv.Shutdown(shortCtx)
	wg.Wait()
	endAdmin()
	<-samplerDone
	a.log.Info("eventgate stopped")
	return runErr
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *App) shutdownDispatchers(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var wg sync.WaitGroup
	for key, r := range a.dispatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.d.Stop(ctx); err != nil {
				a.log.Warn("subscription stop", "subscription", key, "err", err)
			}
		}()
	}
	wg.Wait()
	a.dispatchers = map[string]*running{}
}

func (a *App) closeBackends() {
	if a.pubsub != nil {
		if err := a.pubsub.Close(); err != nil {
			a.log.Warn("pubsub close", "err", err)
		}
	}
	if a.kafka != nil {
		if err := a.kafka.Close(); err != nil {
			a.log.Warn("kafka close", "err", err)
		}
	}
	if a.nats != nil {
		if err := a.nats.Close(); err != nil {
			a.log.Warn("nats close", "err", err)
		}
	}
	a.inmem.Close()
}

func (a *App) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{Registry: a.metrics.Registry}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.serveReadyz)
	mux.HandleFunc("GET /status", a.serveStatus)
	mux.HandleFunc("GET /tail/{namespace}/{name}", a.requireAdmin(a.serveTail))
	mux.HandleFunc("POST /redrives", a.requireAdmin(a.serveRedriveStart))
	mux.HandleFunc("GET /redrives", a.serveRedriveList)
	mux.HandleFunc("GET /redrives/{id}", a.serveRedriveGet)
	mux.HandleFunc("DELETE /redrives/{id}", a.requireAdmin(a.serveRedriveCancel))
	// The console: its page and figures are read-only, as /status is; what it tails or starts goes
	// through the endpoints above, with their token.
	c := console.New(a.sampler)
	mux.Handle("GET /{$}", c)
	mux.Handle("GET /console/", c)
	if a.cfg.Admin.Pprof {
		// pprof.Index serves every named profile (heap, goroutine, allocs, block, mutex, ...) below it.
		mux.HandleFunc("GET /debug/pprof/", a.requireAdmin(pprof.Index))
		mux.HandleFunc("GET /debug/pprof/cmdline", a.requireAdmin(pprof.Cmdline))
		mux.HandleFunc("GET /debug/pprof/profile", a.requireAdmin(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", a.requireAdmin(pprof.Symbol))
		mux.HandleFunc("GET /debug/pprof/trace", a.requireAdmin(pprof.Trace))
	}
	return mux
}

// ready is why the gateway is not ready, one line per cause, as /readyz answers; empty when it is:
// the resources are loaded, the gateway is not stopping, every backend can store events, and every
// channel and subscription is ready. It reads only flags and conditions, never the reconciler's lock,
// so a probe never waits for a reconcile. Sources do not count: one that cannot run does not stop
// the gateway from accepting events.
func (a *App) ready(ctx context.Context) []string {
	if a.stopping.Load() {
		return []string{"shutting down"}
	}
	var lines []string
	if !a.loaded.Load() {
		lines = append(lines, "resources not loaded")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.router.Ready(ctx); err != nil {
		lines = append(lines, oneLine("backend: "+err.Error()))
	}
	return append(lines, readinessLines(a.conds.notReady())...)
}

// ingressURL is the base URL of the ingress as /status shows it: ingress.externalURL when set, else
// the address the ingress listens on (its port, when the configuration says 0).
func (a *App) ingressURL() string {
	cfg := a.cfg
	if addr := a.ingressAddr.Load(); addr != nil && cfg.Ingress.ExternalURL == "" {
		cfg.Ingress.Address = *addr
	}
	return cfg.IngressURL()
}

func (a *App) load() (*resources.Set, error) {
	set, err := resources.Load(a.paths, resources.Options{DefaultProvisioner: a.cfg.Channels.DefaultProvisioner})
	if err != nil {
		return nil, err
	}
	set.Add(a.clusterSet(set))
	if err := set.Validate(); err != nil {
		return nil, err
	}
	return set, nil
}

// loadTokens (re)reads the ingress bearer tokens from the secrets directory.
func (a *App) loadTokens() error {
	t, err := ingress.LoadTokens(filepath.Join(a.cfg.SecretsDir, a.cfg.Ingress.Auth.Secret))
	if err != nil {
		return fmt.Errorf("ingress.auth.secret: %w", err)
	}
	a.ingress.SetTokens(t)
	return nil
}

// lagSources reports consumer lag from every backend that has it.
type lagSources struct{ a *App }

func (l lagSources) Lag(ctx context.Context) []channel.LagSample {
	var out []channel.LagSample
	if l.a.kafka != nil {
		out = append(out, l.a.kafka.Lag(ctx)...)
	}
	if l.a.nats != nil {
		out = append(out, l.a.nats.Lag(ctx)...)
	}
	return append(out, l.a.inmem.Lag(ctx)...)
}

func (l lagSources) TopicName(ref channel.Ref) string {
	if b, err := l.a.router.backend(ref); err == nil && l.a.kafka != nil && b == channel.Provisioner(l.a.kafka) {
		if name, err := l.a.kafka.TopicName(ref); err == nil {
			return name
		}
	}
	if b, err := l.a.router.backend(ref); err == nil && l.a.nats != nil && b == channel.Provisioner(l.a.nats) {
		if name, err := l.a.nats.StreamName(ref); err == nil {
			return name
		}
	}
	return ref.Namespace + "." + ref.Name
}
