package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/kube"
	"github.com/eventgate/eventgate/gateway/resources"
)

// Source kinds this package runs.
const (
	KindKubernetesEventSource = "KubernetesEventSource"
	KindApiServerSource       = "ApiServerSource"
)

// AnnotationReplayEvents, set to "true" on a source, sends Events older than the adapter's start too.
const AnnotationReplayEvents = "eventgate.dev/replay-events"

// DefaultHost is the ApiServerSource source attribute when the API server URL is not known (an
// injected clientset without a host).
const DefaultHost = "https://kubernetes.default.svc"

// Defaults, in one place.
const (
	defaultRetryBase   = 200 * time.Millisecond // first retry delay after a failed send
	defaultRetryMax    = 30 * time.Second       // cap on one retry delay
	defaultMaxAttempts = 15                     // sends of one event before it is dropped
	defaultMaxPending  = 4096                   // events waiting to be sent
	defaultSentMemory  = 16384                  // (UID, resourceVersion) pairs remembered as sent
)

// Adapter is one running KubernetesEventSource or ApiServerSource. Run it once.
type Adapter struct {
	src          *resources.Source
	deps         adapters.Deps
	log          *slog.Logger
	set          settings
	namespace    string
	selector     string // label selector on the watched Events; "" for all
	apiServer    bool   // ApiServerSource (else KubernetesEventSource)
	resourceMode bool   // ApiServerSource mode Resource
	replay       bool   // send Events older than the start too

	mu      sync.Mutex
	pending map[string]*event.Event // queued, not yet sent; keyed by dedupKey
	sent    *sentSet
}

var _ adapters.Adapter = (*Adapter)(nil)

func init() { adapters.Register("kubernetes", New) }

// settings are the adapter's tunables. New uses the defaults; this package's tests set what they
// need through newAdapter. A zero field takes its default.
type settings struct {
	// client is the API client; nil: one from the in-cluster config or KUBECONFIG.
	client clientset.Interface
	// host is the API server URL, the ApiServerSource source attribute; "": the client
	// configuration's host, else DefaultHost.
	host string
	// start is the time before which Events are not sent; zero: when Run starts.
	start time.Time
	// Backoff of failed sends: the first delay, the cap on one delay, and how many sends of one event
	// are made before it is dropped.
	retryBase   time.Duration // default defaultRetryBase
	retryMax    time.Duration // default defaultRetryMax
	maxAttempts int           // default defaultMaxAttempts
	maxPending  int           // events waiting to be sent; default defaultMaxPending
	sentMemory  int           // sent events remembered for de-duplication; default defaultSentMemory
}

func (s settings) withDefaults() settings {
	s.retryBase = cmp.Or(s.retryBase, defaultRetryBase)
	s.retryMax = cmp.Or(s.retryMax, defaultRetryMax)
	s.maxAttempts = cmp.Or(s.maxAttempts, defaultMaxAttempts)
	s.maxPending = cmp.Or(s.maxPending, defaultMaxPending)
	s.sentMemory = cmp.Or(s.sentMemory, defaultSentMemory)
	return s
}

// New is the adapters.Factory for KubernetesEventSource and ApiServerSource, registered as
// "kubernetes"; the Adapter it returns is an *Adapter, with a client from the in-cluster config or
// KUBECONFIG. Without either it returns an error wrapping adapters.ErrNotRun. It validates the
// source and resolves the client; it does not contact the API server (Run does).
func New(src *resources.Source, d adapters.Deps) (adapters.Adapter, error) {
	return newAdapter(src, d, settings{})
}

// newAdapter is New with settings.
func newAdapter(src *resources.Source, d adapters.Deps, set settings) (*Adapter, error) {
	if src == nil || src.Kubernetes == nil {
		return nil, errors.New("kubernetes source: no kubernetes spec")
	}
	if d.Sink == nil {
		return nil, fmt.Errorf("kubernetes source %s: no sink", src.NamespacedName())
	}
	set = set.withDefaults()
	a := &Adapter{src: src, deps: d, log: d.Logger(src), set: set, namespace: src.Kubernetes.Namespace,
		apiServer: src.Kind == KindApiServerSource, replay: src.Annotations[AnnotationReplayEvents] == "true",
		pending: make(map[string]*event.Event), sent: newSentSet(set.sentMemory)}
	if a.namespace == "" {
		a.namespace = src.Namespace
	}
	switch src.Kind {
	case KindKubernetesEventSource:
	case KindApiServerSource:
		a.resourceMode = src.Kubernetes.Mode == resources.ModeResource
	default:
		return nil, fmt.Errorf("kubernetes source %s: kind %q is not run by this adapter", src.NamespacedName(), src.Kind)
	}
	for i, r := range src.Kubernetes.Resources {
		if r.APIVersion != "v1" || r.Kind != "Event" {
			return nil, fmt.Errorf("kubernetes source %s: spec.resources[%d]: %s %s: %w: only v1 Event is watched",
				src.NamespacedName(), i, r.APIVersion, r.Kind, adapters.ErrNotRun)
		}
		if r.Selector != "" {
			if _, err := labels.Parse(r.Selector); err != nil {
				return nil, fmt.Errorf("kubernetes source %s: spec.resources[%d].selector: %w", src.NamespacedName(), i, err)
			}
			a.selector = r.Selector
		}
	}
	if a.set.client == nil {
		rc, err := kube.RESTConfig("")
		if err != nil {
			return nil, fmt.Errorf("kubernetes source %s: %w: %w", src.NamespacedName(), adapters.ErrNotRun, err)
		}
		cs, err := clientset.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("kubernetes source %s: client: %w", src.NamespacedName(), err)
		}
		a.set.client, a.set.host = cs, rc.Host
	}
	if a.set.host == "" {
		a.set.host = DefaultHost
	}
	return a, nil
}

// Run watches Events until ctx is done, then stops the informer and the sender, waits for them and
// returns nil. A send in progress is abandoned when ctx is done (its event is not remembered as
// sent). Run must be called once.
func (a *Adapter) Run(ctx context.Context) error {
	start := a.set.start
	if start.IsZero() {
		start = time.Now()
	}
	start = start.Truncate(time.Second)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	opts := []informers.SharedInformerOption{informers.WithNamespace(a.namespace)}
	if a.selector != "" {
		sel := a.selector
		opts = append(opts, informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	}
	// Resync 0: a periodic resync would only replay what was already sent.
	factory := informers.NewSharedInformerFactoryWithOptions(a.set.client, 0, opts...)
	inf := factory.Core().V1().Events().Informer()
	if err := inf.SetWatchErrorHandlerWithContext(a.watchError); err != nil {
		return fmt.Errorf("kubernetes source %s: %w", a.src.NamespacedName(), err)
	}

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](a.set.retryBase, a.set.retryMax),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "eventgate-k8s-" + a.src.Namespace + "-" + a.src.Name})

	h := &handler{a: a, queue: queue, start: start}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    h.add,
		UpdateFunc: h.update,
		DeleteFunc: h.delete,
	}); err != nil {
		return fmt.Errorf("kubernetes source %s: %w", a.src.NamespacedName(), err)
	}

	var wg sync.WaitGroup
	wg.Go(func() { a.sendLoop(ctx, queue) })
	factory.StartWithContext(ctx)
	a.log.Info("watching kubernetes events", "namespace", a.namespace, "since", start)

	<-ctx.Done()
	// Order: the informer stops first (no more handler calls), then the queue, then the sender.
	factory.Shutdown()
	queue.ShutDown()
	wg.Wait()
	return nil
}

// watchError logs a dropped watch; the reflector relists and rewatches by itself.
func (a *Adapter) watchError(ctx context.Context, _ *cache.Reflector, err error) {
	if ctx.Err() != nil {
		return
	}
	if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		a.log.Info("kubernetes watch expired, relisting", "err", err)
		return
	}
	a.log.Warn("kubernetes watch failed, retrying", "err", err)
}

// handler turns informer notifications into queued events. Its methods run on the informer's
// handler goroutine and never block.
type handler struct {
	a     *Adapter
	queue workqueue.TypedRateLimitingInterface[string]
	start time.Time
}

func (h *handler) add(obj any, _ bool) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	if !h.a.replay && eventTime(ev).Before(h.start) {
		h.a.count(adapters.OutcomeSkipped)
		return
	}
	h.a.enqueue(h.queue, ev, opAdd)
}

func (h *handler) update(oldObj, newObj any) {
	ev, ok := newObj.(*corev1.Event)
	if !ok {
		return
	}
	if old, ok := oldObj.(*corev1.Event); ok && old.ResourceVersion == ev.ResourceVersion {
		return // a resync or relist showing what we already have
	}
	h.a.enqueue(h.queue, ev, opUpdate)
}

func (h *handler) delete(obj any) {
	if !h.a.apiServer {
		return // KubernetesEventSource reports Events as they happen, not their expiry
	}
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	h.a.enqueue(h.queue, ev, opDelete)
}

// enqueue builds the CloudEvent for ev and queues it, unless it was already sent or is queued.
func (a *Adapter) enqueue(q workqueue.TypedRateLimitingInterface[string], ev *corev1.Event, o op) {
	key := dedupKey(ev, o)
	a.mu.Lock()
	_, queued := a.pending[key]
	dup := queued || a.sent.has(key)
	full := len(a.pending) >= a.set.maxPending
	a.mu.Unlock()
	if dup {
		a.count(adapters.OutcomeSkipped)
		return
	}
	if full {
		a.count(adapters.OutcomeFailed)
		a.log.Error("kubernetes event dropped: too many events waiting for the sink", "event", ev.Namespace+"/"+ev.Name,
			"id", key, "max_pending", a.set.maxPending)
		return
	}
	e, err := a.build(ev, o)
	if err != nil {
		a.count(adapters.OutcomeInvalid)
		a.log.Error("kubernetes event not converted", "event", ev.Namespace+"/"+ev.Name, "err", err)
		return
	}
	a.mu.Lock()
	a.pending[key] = e
	a.mu.Unlock()
	q.Add(key)
}

// build makes the CloudEvent for o happening to ev, with the source's ceOverrides.
func (a *Adapter) build(ev *corev1.Event, o op) (*event.Event, error) {
	var e *event.Event
	var err error
	if a.apiServer {
		e, err = apiServerEvent(ev, o, a.set.host, a.resourceMode)
	} else {
		e, err = k8sEvent(ev)
	}
	if err != nil {
		return nil, err
	}
	for k, v := range a.src.CEOverrides {
		e.SetExtension(k, v)
	}
	return e, nil
}

// sendLoop sends queued events, one at a time, until the queue shuts down.
func (a *Adapter) sendLoop(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) {
	for {
		key, shutdown := q.Get()
		if shutdown {
			return
		}
		a.sendOne(ctx, q, key)
		q.Done(key)
	}
}

// sendOne sends the event queued under key; on failure it requeues it with backoff, or drops it once
// its attempts are spent.
func (a *Adapter) sendOne(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], key string) {
	a.mu.Lock()
	e := a.pending[key]
	a.mu.Unlock()
	if e == nil {
		q.Forget(key)
		return
	}
	err := a.deps.Sink.Send(ctx, e)
	if err == nil {
		a.mu.Lock()
		delete(a.pending, key)
		a.sent.add(key)
		a.mu.Unlock()
		q.Forget(key)
		a.count(adapters.OutcomeAccepted)
		return
	}
	a.count(adapters.OutcomeFailed)
	if ctx.Err() != nil {
		return // stopping: the queue is about to shut down
	}
	attempts := q.NumRequeues(key) + 1
	if attempts >= a.set.maxAttempts {
		a.mu.Lock()
		delete(a.pending, key)
		a.mu.Unlock()
		q.Forget(key)
		a.log.Error("kubernetes event dropped: sink kept refusing it", "id", e.ID, "type", e.Type,
			"attempts", attempts, "err", err)
		return
	}
	a.log.Warn("kubernetes event not accepted by sink, will retry", "id", e.ID, "type", e.Type,
		"attempt", attempts, "err", err)
	q.AddRateLimited(key)
}

func (a *Adapter) count(outcome string) { adapters.Count(a.deps.Metrics, a.src, outcome) }
