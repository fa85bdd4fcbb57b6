// Package dispatch delivers a subscription's events from its channel to the subscriber.
//
// A Dispatcher joins the channel as the subscription's consumer group and, for every record, POSTs the
// event in CloudEvents binary mode to the subscriber, retrying per the subscription's delivery policy,
// forwarding any reply, and sending what cannot be delivered to the dead-letter sink. A record is marked
// done only once it is delivered, dead-lettered or (with no dead-letter sink) given up after every retry;
// the provisioner commits the contiguous prefix of done records, so delivery is at-least-once.
//
// The dispatcher sits above the provisioner seam (gateway/channel) and knows nothing of Kafka.
package dispatch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/filter"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// Destination is where events go: an HTTP URL or, resolved inside the gateway, a channel.
// Exactly one of URL and Channel is set.
type Destination struct {
	URL     string
	Channel *channel.Ref
	// CACerts are PEM CA certificates trusted for an https URL besides the client's roots (see
	// TrustingCAs). A subscription's destinations share one client: the CAs given for any of them
	// are trusted for all three.
	CACerts string
}

// String names the destination: the URL, or "channel:NAMESPACE/NAME". It is the value of the
// knativeerrordest extension when the destination fails.
func (d Destination) String() string {
	if d.Channel != nil {
		return "channel:" + d.Channel.String()
	}
	return d.URL
}

// validate checks that exactly one of URL and Channel is set and that the URL is absolute http(s).
func (d Destination) validate() error {
	switch {
	case d.URL == "" && d.Channel == nil:
		return fmt.Errorf("%w: neither URL nor channel set", ErrInvalidDestination)
	case d.URL != "" && d.Channel != nil:
		return fmt.Errorf("%w: both URL and channel set", ErrInvalidDestination)
	case d.Channel != nil:
		return nil
	}
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: not an absolute http(s) URL", ErrInvalidDestination)
	}
	return nil
}

// BackoffPolicy is how the delay between retries grows: the manifests' type (resources.BackoffPolicy),
// so that the list of policies has one home.
type BackoffPolicy = resources.BackoffPolicy

const (
	// BackoffLinear waits BackoffDelay×n before retry n.
	BackoffLinear = resources.BackoffLinear
	// BackoffExponential waits BackoffDelay×2ⁿ before retry n. It is the default: any value other
	// than BackoffLinear behaves so.
	BackoffExponential = resources.BackoffExponential
)

// Policy is a subscription's delivery policy (Knative's `delivery`). Zero values mean: no retries,
// no backoff, no per-attempt timeout (only Stop bounds an attempt), Retry-After ignored.
type Policy struct {
	// Retry is how many times a failed attempt is repeated (attempts = 1 + Retry).
	Retry   int
	Backoff BackoffPolicy
	// BackoffDelay is the base delay; BackoffMax caps every delay when > 0.
	BackoffDelay, BackoffMax time.Duration
	// Timeout bounds one attempt (request, answer and reading the answer's body) when > 0.
	Timeout time.Duration
	// RetryAfterMax is the longest Retry-After honoured; 0 ignores Retry-After.
	RetryAfterMax time.Duration
	// Format is how events go to the subscriber, reply and dead-letter URLs: FormatJSON in
	// structured mode, anything else in binary mode.
	Format resources.DeliveryFormat
}

// Subscription is what the dispatcher needs of one subscription.
type Subscription struct {
	Namespace, Name string
	// Channel is the channel consumed; the consumer group is named Name.
	Channel    channel.Ref
	Subscriber Destination
	// Reply receives the events subscribers answer with; nil drops them (counted).
	Reply *Destination
	// DeadLetter receives the events that cannot be delivered; nil drops them after every retry (counted).
	DeadLetter *Destination
	Policy     Policy
	// Ordered delivers each partition one event at a time, in offset order; events that carry a
	// partitionkey are ordered per key instead (one at a time per key, keys concurrently), and an
	// event without one waits for everything before it. Default: concurrent.
	Ordered bool
	// Start is where the group starts when it has no committed position.
	Start channel.StartOffset
	// MaxInFlight bounds in-flight deliveries for the whole subscription (all partitions); at least 1
	// (Start refuses less). Config.MaxInFlight is the configured default.
	MaxInFlight int
	// Adaptive makes the bound adapt to the subscriber (see Adaptive), between MinInFlight and
	// MaxInFlight; otherwise it is fixed at MaxInFlight. Ignored when Deps.Limiter is set.
	Adaptive bool
	// MinInFlight is the adaptive limit's floor; values below 1 mean 1, above MaxInFlight mean MaxInFlight.
	MinInFlight int
	// Trigger, when set, makes this a trigger's subscription: a filter in front of delivery. Nil for
	// a subscription.
	Trigger *Trigger
}

// Trigger is what a trigger adds to the subscription it runs as. Every delivery feature is the
// subscription's; the filter runs first, as each record is taken from its claim: an event that does
// not pass is marked done at once, with no limiter slot, no request and no allocation, and counted
// as filtered in eventgate_trigger_events_total, where delivered and dead-lettered events are counted
// too.
type Trigger struct {
	// Name is the trigger's name (the metric's trigger label).
	Name string
	// Filter decides which events are delivered; nil delivers every event.
	Filter *filter.Filter
	// Source identifies the declared filter, so that two Subscriptions compare equal (reflect.DeepEqual)
	// when their triggers declare the same one; Filter itself is not compared.
	Source string
}

// triggerShare is the channel.Group Share key of every unordered trigger: the unordered triggers of
// every broker share one read of the brokers' channels where the backend can. An ordered trigger
// reads on its own, for the reason an ordered subscription does (subscriptionShare).
const triggerShare = "triggers"

// subscriptionShare is the Share key of every other unordered subscription: the unordered
// subscriptions of every channel share one read where the backend can (Kafka: one client for all
// their topics, not one per subscription or channel; each still commits to its own consumer
// group). An ordered subscription reads on its own: one delivery at a time per partition is fed
// best by a read that holds each partition's fetched records for it alone (see
// provisioners/kafka's pollSize), where a shared read sizes its polls by the fullest member.
const subscriptionShare = "subscriptions"

// triggerFilter is a trigger's filter as its channel.Group gives it to the backend: what it rejects
// is counted as filtered, once (the dispatcher never sees those events).
type triggerFilter struct{ d *Dispatcher }

func (f triggerFilter) Pass(e *event.Event) bool {
	if f.d.sub.Trigger.Filter.Pass(e) {
		return true
	}
	f.d.filtered.Inc()
	return false
}

// Deps are the dispatcher's collaborators.
type Deps struct {
	// Channels is consumed for the subscription and published to for channel destinations. Required.
	Channels channel.Provisioner
	// Client sends HTTP deliveries; nil means http.DefaultClient. Per-attempt timeouts are applied
	// through the request context, so the client needs no Timeout of its own.
	Client *http.Client
	// Metrics is updated per attempt and per event; nil means a private, unexported set.
	Metrics *metrics.Metrics
	// Log receives structured logs (never payloads); nil discards them.
	Log *slog.Logger
	// Limiter bounds in-flight deliveries; nil means an Adaptive limiter in [MinInFlight, MaxInFlight]
	// when Subscription.Adaptive is set, else NewSemaphore(MaxInFlight). When it implements
	// AttemptObserver it is told about every subscriber attempt.
	Limiter Limiter
	// Tracer traces each event's processing, attempts, dead letter and reply (see gateway/tracing);
	// nil: tracing off.
	Tracer *tracing.Tracer
}

// ErrStarted is returned by Start on a dispatcher that was already started (or stopped).
var ErrStarted = errors.New("dispatcher already started")

// Dispatcher runs one subscription. Create it with New, run it with Start, end it with Stop. Its
// methods are safe for concurrent use.
type Dispatcher struct {
	sub    Subscription
	client *http.Client
	m      *metrics.Metrics
	log    *slog.Logger
	lim    Limiter
	tracer *tracing.Tracer // nil: tracing off
	// rt is client's transport, when do may send to it directly (plainTransport); redirected is
	// set once a destination answered with a redirect: do sends through the client from then on.
	rt         http.RoundTripper
	redirected atomic.Bool
	// own is rt when attempts may send on connections of their own with its settings (see ownConn).
	own *http.Transport
	// closeIdle closes the idle connections of a client made for this dispatcher (trustCAs); nil
	// when it uses the one it was given.
	closeIdle func()
	// structured is set when the policy's format is json: deliveries go in structured mode.
	structured bool
	// observer is lim when it implements AttemptObserver, else nil.
	observer AttemptObserver
	// channels is consumed for the subscription and published to for channel destinations.
	channels channel.Provisioner
	// urls holds the HTTP destinations parsed once at Start; read-only afterwards.
	urls map[string]parsedURL

	// Pre-bound metric children (labels namespace, subscription).
	attempts                  map[string]counter
	duration                  observer
	delivered, deadLettered   counter
	droppedExhausted, noReply counter
	droppedInvalid            counter
	repliesSent, repliesDrop  counter
	repliesFailed             counter
	inFlight                  gauge
	// Trigger outcomes (eventgate_trigger_events_total); nil for a subscription.
	filtered, trigDelivered, trigDeadLettered counter
	// status is what Status reports: the latest subscriber attempts' outcomes.
	status statusRecorder

	// Test seams: how a backoff is waited out, the least wait between delivery cycles, the clock,
	// how long an idle delivery worker stays (see worker).
	wait       func(ctx context.Context, d time.Duration) error
	cycleMin   time.Duration
	now        func() time.Time
	workerIdle time.Duration
	// workers counts the delivery workers alive: unordered claims' (see worker) and ordered claims'
	// partition-key runners (see keyedRunner).
	workers atomic.Int64

	// stopCtx ends when Stop is called: claims stop taking records. runCtx ends when Stop gives up
	// waiting: in-flight deliveries are abandoned.
	stopCtx    context.Context
	stopIntake context.CancelFunc
	runCtx     context.Context
	abandon    context.CancelFunc

	lifecycle    sync.Mutex // serialises Start and Stop
	subscription channel.Subscription

	mu         sync.Mutex // guards started, stopped and the Add side of deliveries
	started    bool
	stopped    bool
	deliveries sync.WaitGroup // one per delivery in progress, across all claims
}

type counter interface{ Inc() }
type observer interface{ Observe(float64) }
type gauge interface {
	Inc()
	Dec()
}

// New returns a dispatcher for s. It does nothing until Start.
func New(s Subscription, d Deps) *Dispatcher {
	if s.Policy.Retry < 0 {
		s.Policy.Retry = 0
	}
	if s.MinInFlight < 1 {
		s.MinInFlight = 1
	}
	if s.MinInFlight > s.MaxInFlight {
		s.MinInFlight = s.MaxInFlight
	}
	dp := &Dispatcher{
		sub:        s,
		client:     d.Client,
		m:          d.Metrics,
		log:        d.Log,
		lim:        d.Limiter,
		tracer:     d.Tracer,
		wait:       sleepCtx,
		cycleMin:   minCycleDelay,
		now:        time.Now,
		workerIdle: workerIdle,
		structured: s.Policy.Format == resources.FormatJSON,
	}
	if dp.client == nil {
		dp.client = http.DefaultClient
	}
	dp.rt = plainTransport(dp.client)
	dp.own = ownTransport(dp.rt)
	if dp.m == nil {
		dp.m = metrics.New(metrics.Build{})
	}
	if dp.log == nil {
		dp.log = slog.New(slog.DiscardHandler)
	}
	dp.log = dp.log.With("namespace", s.Namespace, "subscription", s.Name)
	dp.channels = d.Channels

	ns, name := s.Namespace, s.Name
	switch {
	case dp.lim != nil:
	case s.Adaptive:
		dp.lim = NewAdaptive(AdaptiveConfig{Min: s.MinInFlight, Max: s.MaxInFlight,
			Gauge: dp.m.ConcurrencyLimit.WithLabelValues(ns, name), Log: dp.log})
	default:
		dp.lim = NewSemaphore(s.MaxInFlight)
	}
	dp.observer, _ = dp.lim.(AttemptObserver)
	dp.attempts = make(map[string]counter, 7)
	for _, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "timeout", "error"} {
		dp.attempts[class] = dp.m.DispatchAttempts.WithLabelValues(ns, name, class)
	}
	dp.duration = dp.m.DispatchDuration.WithLabelValues(ns, name)
	dp.delivered = dp.m.Delivered.WithLabelValues(ns, name)
	dp.deadLettered = dp.m.DeadLettered.WithLabelValues(ns, name)
	dp.droppedExhausted = dp.m.Dropped.WithLabelValues(ns, name, "retries_exhausted")
	dp.noReply = dp.m.Dropped.WithLabelValues(ns, name, "no_reply_destination")
	dp.droppedInvalid = dp.m.Dropped.WithLabelValues(ns, name, "invalid_record")
	dp.repliesSent = dp.m.Replies.WithLabelValues(ns, name, "sent")
	dp.repliesDrop = dp.m.Replies.WithLabelValues(ns, name, "dropped")
	dp.repliesFailed = dp.m.Replies.WithLabelValues(ns, name, "failed")
	dp.inFlight = dp.m.InFlight.WithLabelValues(ns, name)
	if s.Trigger != nil {
		dp.filtered = dp.m.TriggerEvents.WithLabelValues(ns, s.Trigger.Name, "filtered")
		dp.trigDelivered = dp.m.TriggerEvents.WithLabelValues(ns, s.Trigger.Name, "delivered")
		dp.trigDeadLettered = dp.m.TriggerEvents.WithLabelValues(ns, s.Trigger.Name, "dead_lettered")
	}

	dp.stopCtx, dp.stopIntake = context.WithCancel(context.Background())
	dp.runCtx, dp.abandon = context.WithCancel(context.Background())
	return dp
}

// Start validates the subscription (its MaxInFlight and destinations) and joins its channel as
// consumer group {Channel, Name, Start}. It blocks only while subscribing (bounded by ctx); deliveries
// run until Stop, independent of ctx. A dispatcher starts once: a second Start returns ErrStarted.
func (d *Dispatcher) Start(ctx context.Context) error {
	d.lifecycle.Lock()
	defer d.lifecycle.Unlock()
	d.mu.Lock()
	if d.started || d.stopped {
		d.mu.Unlock()
		return ErrStarted
	}
	d.mu.Unlock()

	if d.channels == nil {
		return errors.New("dispatch: Deps.Channels is required")
	}
	if d.sub.MaxInFlight < 1 {
		return fmt.Errorf("dispatch: MaxInFlight must be at least 1, got %d", d.sub.MaxInFlight)
	}
	if err := d.sub.Subscriber.validate(); err != nil {
		return fmt.Errorf("dispatch: subscriber: %w", err)
	}
	if d.sub.Reply != nil {
		if err := d.sub.Reply.validate(); err != nil {
			return fmt.Errorf("dispatch: reply: %w", err)
		}
	}
	if d.sub.DeadLetter != nil {
		if err := d.sub.DeadLetter.validate(); err != nil {
			return fmt.Errorf("dispatch: dead letter: %w", err)
		}
	}

	if err := d.trustCAs(); err != nil {
		return fmt.Errorf("dispatch: %w", err)
	}
	d.urls = d.parseURLs(&d.sub.Subscriber, d.sub.Reply, d.sub.DeadLetter)

	if l, ok := d.lim.(interface{ Limit() int }); ok {
		d.m.ConcurrencyLimit.WithLabelValues(d.sub.Namespace, d.sub.Name).Set(float64(l.Limit()))
	}
	g := channel.Group{Channel: d.sub.Channel, Name: d.sub.Name, Start: d.sub.Start, Ordered: d.sub.Ordered}
	if !d.sub.Ordered {
		g.Share = subscriptionShare
	}
	if t := d.sub.Trigger; t != nil {
		// A broker's unordered triggers share one read of its channel where the backend can; an
		// ordered one reads on its own, as an ordered subscription does. Either way the backend drops
		// what the filter rejects before it reaches the claim (counted as filtered here).
		g.Filter = triggerFilter{d}
		if !d.sub.Ordered {
			g.Share = triggerShare
		}
	}
	sub, err := d.channels.Subscribe(ctx, g, d.handleClaim)
	if err != nil {
		return fmt.Errorf("dispatch: subscribe %s as %q: %w", d.sub.Channel, d.sub.Name, err)
	}
	d.subscription = sub
	d.mu.Lock()
	d.started = true
	d.mu.Unlock()
	d.log.Info("dispatcher started", "channel", d.sub.Channel.String(), "ordered", d.sub.Ordered,
		"adaptive", d.sub.Adaptive, "min_in_flight", d.sub.MinInFlight, "max_in_flight", d.sub.MaxInFlight)
	return nil
}

// Stop stops taking records, lets in-flight deliveries finish until ctx is done, then abandons the
// rest (they are not marked done, so they are delivered again later), and closes the subscription
// (which commits what is done). It blocks until all of that has happened. It returns ctx's error when
// deliveries had to be abandoned, joined with any error closing the subscription. Stop on a dispatcher
// never started, or a second Stop, returns nil.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.lifecycle.Lock()
	defer d.lifecycle.Unlock()
	d.mu.Lock()
	if d.stopped || !d.started {
		d.stopped = true
		d.mu.Unlock()
		return nil
	}
	d.stopped = true
	d.mu.Unlock()

	d.stopIntake()
	finished := make(chan struct{})
	go func() {
		d.deliveries.Wait()
		close(finished)
	}()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = fmt.Errorf("dispatch: in-flight deliveries abandoned: %w", ctx.Err())
		d.log.Warn("stop deadline reached; abandoning in-flight deliveries (they will be redelivered)")
		d.abandon()
		<-finished
	}
	if cerr := d.subscription.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("dispatch: close subscription: %w", cerr))
	}
	d.abandon()
	if d.closeIdle != nil {
		d.closeIdle()
	}
	d.log.Info("dispatcher stopped")
	return err
}

// trustCAs gives the dispatcher a client that trusts its destinations' CACerts, when they have any.
func (d *Dispatcher) trustCAs() error {
	pems := []string{d.sub.Subscriber.CACerts}
	for _, dst := range []*Destination{d.sub.Reply, d.sub.DeadLetter} {
		if dst != nil {
			pems = append(pems, dst.CACerts)
		}
	}
	c, err := TrustingCAs(d.client, pems...)
	if err != nil || c == d.client {
		return err
	}
	d.client = c
	d.rt = plainTransport(c)
	d.own = ownTransport(d.rt)
	d.closeIdle = c.CloseIdleConnections
	return nil
}

// begin registers a delivery about to start; false when Stop has begun (the record is left undone).
func (d *Dispatcher) begin() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return false
	}
	d.deliveries.Add(1)
	return true
}

// handleClaim is the channel.ClaimHandler: it runs for one partition until its Records is closed.
//
// It takes records in order, acquires a limiter slot for each (blocking the loop: the backpressure
// that makes the provisioner pause fetching), and delivers them concurrently on reused worker
// goroutines (unordered; see worker) or in order: one at a time on this goroutine, or per partition
// key on reused runner goroutines (see keyedRunner). It returns only after Records is closed and
// every delivery it started has returned.
func (d *Dispatcher) handleClaim(c channel.Claim) {
	// Delivery context: ends when the partition is revoked or Stop abandons in-flight work.
	dctx, cancelDeliveries := context.WithCancel(c.Context())
	defer cancelDeliveries()
	unlinkRun := context.AfterFunc(d.runCtx, cancelDeliveries)
	defer unlinkRun()
	// Intake context: additionally ends when Stop stops intake.
	ictx, cancelIntake := context.WithCancel(dctx)
	defer cancelIntake()
	unlinkStop := context.AfterFunc(d.stopCtx, cancelIntake)
	defer unlinkStop()

	log := d.log.With("partition", c.Partition())
	inline := newAttemptScope(dctx) // the attempts of ordered records delivered on this goroutine
	defer inline.end()
	var wg sync.WaitGroup
	work := make(chan channel.Record)                       // unordered: records for idle workers
	keyed := newKeyedRunner(dctx, d.workerIdle, &d.workers) // ordered: one at a time per partition key
	// next takes the next record: from the claim itself where it is a channel.Puller (no goroutine
	// hand-off per record), else from Records. ok is false when intake ends.
	puller, pulls := c.(channel.Puller)
	var records <-chan channel.Record
	if !pulls {
		records = c.Records()
	}
	next := func() (channel.Record, bool) {
		if pulls {
			return puller.Next(ictx)
		}
		select {
		case <-ictx.Done():
			return channel.Record{}, false
		case rec, ok := <-records:
			if !ok {
				records = nil
			}
			return rec, ok
		}
	}
intake:
	for {
		rec, ok := next()
		if !ok {
			break intake
		}
		if d.sub.Trigger != nil && !d.sub.Trigger.Filter.Pass(rec.Event) {
			c.MarkDone(rec.Offset) // filtered out: done, with no delivery
			d.filtered.Inc()
			continue
		}
		if err := d.lim.Acquire(ictx); err != nil {
			break intake // the record stays undone: it is delivered again after the revoke/restart
		}
		if !d.begin() {
			d.lim.Release(Outcome{Result: Abandoned})
			break intake
		}
		if d.sub.Ordered {
			if key := partitionKey(rec); key != "" {
				keyed.submit(key, func(ctx context.Context) { d.run(ctx, c, rec, log) })
				continue
			}
			keyed.wait()
			d.run(inline, c, rec, log)
			continue
		}
		select {
		case work <- rec: // an idle worker takes it
		default:
			wg.Add(1)
			go d.worker(dctx, c, rec, work, log, &wg)
		}
	}
	close(work)
	keyed.close()
	wg.Wait()
	// Records taken from here on are not delivered (not marked done): wait for the provisioner to
	// close Records (or, pulling, to revoke the claim), as the ClaimHandler contract requires.
	if pulls {
		<-c.Context().Done()
	}
	if records != nil {
		for range records {
		}
	}
}

// workerIdle is how long, at least, an unordered claim's idle delivery worker waits for another
// record before it exits (at most twice that; see worker), and an ordered claim's idle key runner for
// another key (see keyedRunner).
const workerIdle = 2 * time.Second

// worker delivers rec, then further records handed to it on work, until work is closed or its idle
// timer (d.workerIdle, see idleTimer) runs a whole period without a record taken: it exits between
// one and two periods after its last record. Reusing workers matters on a busy claim: a
// goroutine per record spent about 8% of a Kafka drain's CPU growing fresh stacks to what an HTTP
// delivery needs. Workers never outnumber the claim's records in flight at its busiest, which the
// limiter bounds. The idle timer is set once and looked at when it fires (was a record taken since
// it was last set?), not reset for every record: a reset per record was about 0.5% of the drain's CPU.
func (d *Dispatcher) worker(ctx context.Context, c channel.Claim, rec channel.Record, work <-chan channel.Record,
	log *slog.Logger, wg *sync.WaitGroup) {
	defer wg.Done()
	d.workers.Add(1)
	defer d.workers.Add(-1)
	scope := newAttemptScope(ctx)
	defer scope.end()
	ctx = scope
	idle := newIdleTimer(d.workerIdle)
	defer idle.stop()
	for ok := true; ok; rec, ok = takeOrIdle(idle, work) {
		d.run(ctx, c, rec, log)
	}
}

// idleTimer ends a reused goroutine (a delivery worker, a key runner) that has taken nothing for a
// whole period: it is set once and looked at when it fires (was anything taken since it was last
// set?), not reset for every item, so the goroutine exits between one and two periods after its
// last item.
type idleTimer struct {
	t      *time.Timer
	period time.Duration
	took   bool // an item was taken since the timer was last set
}

func newIdleTimer(period time.Duration) *idleTimer {
	return &idleTimer{t: time.NewTimer(period), period: period, took: true}
}

func (i *idleTimer) stop() { i.t.Stop() }

// takeOrIdle waits for the next item on ch; ok is false once ch is closed or idle has run a whole
// period without an item taken.
func takeOrIdle[T any](idle *idleTimer, ch <-chan T) (v T, ok bool) {
	for {
		select {
		case v, ok = <-ch:
			if ok {
				idle.took = true
			}
			return v, ok
		case <-idle.t.C:
			if !idle.took {
				return v, false
			}
			idle.took = false
			idle.t.Reset(idle.period)
		}
	}
}

// run delivers one record, marks it done unless abandoned, and releases its limiter slot.
func (d *Dispatcher) run(ctx context.Context, c channel.Claim, rec channel.Record, log *slog.Logger) {
	defer d.deliveries.Done()
	d.inFlight.Inc()
	out := d.process(ctx, rec, log)
	// The gauge drops before the slot is released, so it never shows more than the limit.
	d.inFlight.Dec()
	if out.Result != Abandoned {
		c.MarkDone(rec.Offset)
	}
	d.lim.Release(out)
}

// process takes one record through the whole delivery cycle: subscriber (with retries), then reply
// or dead letter, repeating the cycle while the dead-letter sink fails. It returns Abandoned, with the
// record not to be marked done, only when ctx ends first.
func (d *Dispatcher) process(ctx context.Context, rec channel.Record, log *slog.Logger) Outcome {
	start := time.Now()
	out := Outcome{}
	var span trace.Span // the CONSUMER span; nil with tracing off
	finish := func(r Result) Outcome {
		out.Result = r
		out.Duration = time.Since(start)
		if span != nil {
			endProcess(span, r)
		}
		return out
	}
	if rec.Event == nil {
		d.droppedInvalid.Inc()
		log.Warn("record without an event dropped", "offset", rec.Offset)
		return finish(Dropped)
	}
	if d.tracer != nil {
		ctx, span = d.startProcess(ctx, rec)
		log = log.With("trace_id", tracing.TraceID(ctx))
	}
	// Record attributes are added at each log call, not with log.With: that would allocate per event.
	id := rec.Event.ID
	for {
		res := d.send(ctx, d.sub.Subscriber, rec.Event, true, &out)
		if res.ok {
			d.delivered.Inc()
			if d.trigDelivered != nil {
				d.trigDelivered.Inc()
			}
			if !d.handleReply(ctx, res, rec, log) {
				return finish(Abandoned)
			}
			return finish(Delivered)
		}
		if ctx.Err() != nil {
			return finish(Abandoned)
		}
		if d.sub.DeadLetter == nil {
			d.droppedExhausted.Inc()
			log.Warn("delivery failed after every retry and there is no dead-letter sink; event dropped",
				"offset", rec.Offset, "event_id", id, "status", res.status, "error", errString(res.err), "attempts", out.Attempts)
			return finish(Dropped)
		}
		dl := deadLetterEvent(rec.Event, d.sub.Subscriber, res)
		dctx, dspan := ctx, trace.Span(nil)
		if d.tracer != nil {
			dctx, dspan = d.startOut(ctx, *d.sub.DeadLetter, tracing.RoleDeadLetter, dl)
		}
		dres := d.send(dctx, *d.sub.DeadLetter, dl, false, nil)
		if dspan != nil {
			endOut(dspan, dres)
		}
		if dres.ok {
			d.deadLettered.Inc()
			if d.trigDeadLettered != nil {
				d.trigDeadLettered.Inc()
			}
			log.Info("event dead-lettered", "offset", rec.Offset, "event_id", id, "status", res.status,
				"error", errString(res.err))
			return finish(DeadLettered)
		}
		if ctx.Err() != nil {
			return finish(Abandoned)
		}
		wait := cycleDelay(d.sub.Policy, d.cycleMin)
		log.Error("dead-letter sink failed too; retrying the whole delivery later",
			"offset", rec.Offset, "event_id", id, "status", res.status, "dead_letter_status", dres.status, "error", errString(dres.err),
			"wait", wait)
		if d.wait(ctx, wait) != nil {
			return finish(Abandoned)
		}
	}
}

// handleReply forwards a subscriber's reply. It returns false only when ctx ended while the reply
// was being sent (the original record is then left undone and delivered again).
func (d *Dispatcher) handleReply(ctx context.Context, res attemptResult, rec channel.Record, log *slog.Logger) bool {
	if res.replyErr != nil {
		d.repliesFailed.Inc()
		log.Warn("subscriber answered with an unusable reply", "offset", rec.Offset, "event_id", rec.Event.ID,
			"error", res.replyErr.Error())
		return true
	}
	if res.reply == nil {
		return true
	}
	if d.sub.Reply == nil {
		d.noReply.Inc()
		d.repliesDrop.Inc()
		log.Debug("reply dropped: the subscription has no reply destination", "offset", rec.Offset,
			"event_id", rec.Event.ID, "reply_id", res.reply.ID)
		return true
	}
	rctx, rspan := ctx, trace.Span(nil)
	if d.tracer != nil {
		rctx, rspan = d.startOut(ctx, *d.sub.Reply, tracing.RoleReply, res.reply)
	}
	rres := d.send(rctx, *d.sub.Reply, res.reply, false, nil)
	if rspan != nil {
		endOut(rspan, rres)
	}
	switch {
	case rres.ok:
		d.repliesSent.Inc()
	case ctx.Err() != nil:
		return false
	default:
		d.repliesFailed.Inc()
		log.Warn("reply could not be sent", "offset", rec.Offset, "event_id", rec.Event.ID,
			"reply_id", res.reply.ID, "status", rres.status,
			"error", errString(rres.err))
	}
	return true
}

// sleepCtx waits for d or until ctx is done (then it returns ctx's error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errString renders err for a log line and the status. A transport error's URL (which may carry
// credentials or tokens in its query) is left out: only the underlying cause is kept. A certificate
// no trusted CA vouches for gets a hint at how to trust its CA.
func errString(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr.Err != nil {
		s = uerr.Op + ": " + uerr.Err.Error()
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		s += " (to trust its CA: the destination's CACerts, or SSL_CERT_FILE for the gateway)"
	}
	return s
}

// Redeliver takes ev through this subscription's delivery cycle outside its consumer group, as if
// it had been read from the channel: the subscriber under the subscription's policy, its reply
// forwarded, and, when every attempt fails, the dead-letter sink (retried until it takes the event).
// It is how a dead-letter redrive sends an event back to a subscription. It blocks until then or
// until ctx is done (Abandoned). The dispatcher must have been started; it may have been stopped
// since (a reload), in which case the subscription as it was is used.
func (d *Dispatcher) Redeliver(ctx context.Context, ev *event.Event) Result {
	return d.process(ctx, channel.Record{Partition: -1, Offset: -1, Event: ev}, d.log.With("redrive", true)).Result
}
