package app

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/resources"
)

// Status is the body of the admin port's GET /status: every resource the gateway runs with its Ready
// condition, as `eventgate status` prints it. Field names are part of the interface: add, never
// rename. Lists are sorted by namespace and name (sources then by kind) and are never null.
type Status struct {
	// Time is when the status was taken (the gateway's clock): ages are measured from it.
	Time time.Time `json:"time"`
	// Ready and NotReady are what /readyz answers: ready when the resources are loaded, the gateway is
	// not stopping, every backend can store events and every channel and subscription is ready;
	// otherwise NotReady says why, one line per cause. A resource listed with no condition yet
	// (Reason Unknown) does not count.
	Ready         bool                 `json:"ready"`
	NotReady      []string             `json:"notReady,omitempty"`
	Channels      []ChannelStatus      `json:"channels"`
	Subscriptions []SubscriptionStatus `json:"subscriptions"`
	Sources       []SourceStatus       `json:"sources"`
	// Brokers and Triggers list brokers (their Kind is Broker, their Backend the class's backend) and
	// triggers (Channel names the broker, NAMESPACE/NAME); omitted when there are none.
	Brokers  []ChannelStatus      `json:"brokers,omitempty"`
	Triggers []SubscriptionStatus `json:"triggers,omitempty"`
}

// ReadyState is a resource's Ready condition as /status shows it (see Condition). Since is omitted
// when the gateway has not reported on the resource yet (Reason is then Unknown).
type ReadyState struct {
	Ready   bool      `json:"ready"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since,omitzero"`
}

// ChannelStatus is one channel.
type ChannelStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	// Backend is the channel's provisioner: inmemory or kafka.
	Backend string `json:"backend"`
	// Address is the URL events are POSTed to: ingress.externalURL (or the ingress address) + /NAMESPACE/NAME.
	Address string `json:"address"`
	// Partitions is the count the channel is declared with, or its provisioner's default.
	Partitions int32 `json:"partitions"`
	ReadyState
}

// SubscriptionStatus is one subscription.
type SubscriptionStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Channel is NAMESPACE/NAME.
	Channel string `json:"channel"`
	// Subscriber is the URL (without credentials or query) or channel:NAMESPACE/NAME events go to.
	Subscriber string `json:"subscriber,omitempty"`
	// Reply and DeadLetterSink are where the subscriber's replies and the events that cannot be
	// delivered go, as Subscriber names them; omitted when there is none. (The console draws them.)
	Reply          string `json:"reply,omitempty"`
	DeadLetterSink string `json:"deadLetterSink,omitempty"`
	ReadyState
	// Lag is how many events of the channel the subscription's group has not committed, summed over
	// partitions; omitted when the backend could not say.
	Lag *int64 `json:"lag,omitempty"`
	// ConcurrencyLimit is how many deliveries may be in flight now; 0 when the subscription is not running.
	ConcurrencyLimit int `json:"concurrencyLimit"`
	// LastDeliveryTime is when the subscriber last accepted an event.
	LastDeliveryTime time.Time `json:"lastDeliveryTime,omitzero"`
	// LastError is the last failed attempt to the subscriber and LastErrorTime when it ended; a later
	// delivery does not clear it.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
}

// SourceStatus is one source.
type SourceStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Sink is where the source's events go: "channel NAMESPACE/NAME" or a URL (without credentials or query).
	Sink string `json:"sink,omitempty"`
	// Running is true while the source's adapter runs.
	Running bool `json:"running"`
	ReadyState
	// LastEventTime is when the sink last accepted an event of this source.
	LastEventTime time.Time `json:"lastEventTime,omitzero"`
	// LastError is the last event the sink refused and LastErrorTime when.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
}

// Reasons /status gives on its own (the reconciler gives the others).
const (
	// ReasonUnknown: the gateway has not reported on the resource yet.
	ReasonUnknown = "Unknown"
)

// sourceStats records what a source's sink saw: the last event it accepted and the last it refused.
// Safe for concurrent use (sources send from many goroutines).
type sourceStats struct {
	mu          sync.Mutex
	lastEvent   time.Time
	lastError   string
	lastErrorAt time.Time
}

// record notes one Send that ended at now with err. sinkURL, when set, is replaced in the error's
// text by its displayURL (an error may quote the URL with its credentials).
func (s *sourceStats) record(err error, now time.Time, sinkURL string) {
	var msg string
	if err != nil {
		msg = err.Error()
		if sinkURL != "" {
			msg = strings.ReplaceAll(msg, sinkURL, displayURL(sinkURL))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastEvent = now
		return
	}
	s.lastError, s.lastErrorAt = msg, now
}

func (s *sourceStats) get() (lastEvent time.Time, lastError string, lastErrorAt time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastEvent, s.lastError, s.lastErrorAt
}

// statusInput is what buildStatus assembles: a snapshot of the App's state, taken under its locks.
type statusInput struct {
	now        time.Time
	ingressURL string
	// defaultPartitions is the partition count of a channel that declares none, by provisioner.
	defaultPartitions map[string]int32
	// notReady is what /readyz answers (App.ready): empty when the gateway is ready.
	notReady      []string
	channels      []*resources.Channel
	subscriptions []subscriptionSnapshot
	sources       []sourceSnapshot
	// cond returns a resource's Ready condition.
	cond func(ResourceKey) (Condition, bool)
	lag  []channel.LagSample
}

// subscriptionSnapshot is one subscription: declared (sub) and, when running, its dispatcher's status.
type subscriptionSnapshot struct {
	namespace, name string
	channel         channel.Ref
	subscriber      string
	reply, dls      string               // as subscriber: "" when none
	d               *dispatch.Dispatcher // nil when not running
	running         bool                 // d != nil, when read
	status          dispatch.Status      // d's, when read
}

// sourceSnapshot is one source: declared, and whether its adapter runs.
type sourceSnapshot struct {
	src     *resources.Source
	sink    string
	done    <-chan struct{} // closed when its adapter stopped; nil when it was not started
	running bool            // done is open, when read
	stats   *sourceStats
}

// buildStatus assembles the /status document. Pure: everything it reads is in in.
func buildStatus(in statusInput) Status {
	st := Status{
		Time:          in.now,
		Channels:      []ChannelStatus{},
		Subscriptions: []SubscriptionStatus{},
		Sources:       []SourceStatus{},
	}
	state := func(k ResourceKey) ReadyState {
		c, ok := in.cond(k)
		if !ok {
			return ReadyState{Reason: ReasonUnknown, Message: "the gateway has not reported on it yet"}
		}
		return ReadyState{Ready: c.Ready, Reason: c.Reason, Message: c.Message, Since: c.Since}
	}
	for _, c := range in.channels {
		parts := c.Partitions
		if parts <= 0 {
			parts = in.defaultPartitions[c.Provisioner]
		}
		cs := ChannelStatus{
			Namespace: c.Namespace, Name: c.Name, Kind: c.Kind, Backend: c.Provisioner,
			Address:    strings.TrimSuffix(in.ingressURL, "/") + "/" + c.Namespace + "/" + c.Name,
			Partitions: parts,
			ReadyState: state(channelKey(c.Ref())),
		}
		if c.Broker {
			st.Brokers = append(st.Brokers, cs)
			continue
		}
		st.Channels = append(st.Channels, cs)
	}
	lags := map[channel.Group]int64{}
	for _, s := range in.lag {
		g := channel.Group{Channel: s.Group.Channel, Name: s.Group.Name}
		lags[g] += s.Lag
	}
	for _, s := range in.subscriptions {
		ss := SubscriptionStatus{
			Namespace: s.namespace, Name: s.name, Channel: s.channel.String(), Subscriber: s.subscriber,
			Reply: s.reply, DeadLetterSink: s.dls,
			ReadyState: state(subscriptionKey(s.namespace + "/" + s.name)),
		}
		if lag, ok := lags[channel.Group{Channel: s.channel, Name: s.name}]; ok {
			ss.Lag = &lag
		}
		if s.running {
			ss.ConcurrencyLimit = s.status.Limit
			ss.LastDeliveryTime = s.status.LastDelivered
			ss.LastError, ss.LastErrorTime = s.status.LastError, s.status.LastErrorAt
		}
		if trigger, ok := strings.CutPrefix(s.name, resources.TriggerGroupPrefix); ok {
			ss.Name, ss.Channel = trigger, s.channel.Public().String()
			st.Triggers = append(st.Triggers, ss)
			continue
		}
		st.Subscriptions = append(st.Subscriptions, ss)
	}
	for _, s := range in.sources {
		ss := SourceStatus{
			Kind: s.src.Kind, Namespace: s.src.Namespace, Name: s.src.Name, Sink: s.sink, Running: s.running,
			ReadyState: state(ResourceKey{Category: CategorySource, Name: s.src.Key()}),
		}
		ss.LastEventTime, ss.LastError, ss.LastErrorTime = s.stats.get()
		st.Sources = append(st.Sources, ss)
	}
	slices.SortFunc(st.Channels, func(a, b ChannelStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(st.Subscriptions, func(a, b SubscriptionStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(st.Brokers, func(a, b ChannelStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(st.Triggers, func(a, b SubscriptionStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	slices.SortFunc(st.Sources, func(a, b SourceStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	st.NotReady = in.notReady
	st.Ready = len(in.notReady) == 0
	return st
}

// oneLine folds a multi-line message (errors.Join) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// displayURL is u as /status shows it: without user information or query, which may carry secrets.
// Anything that does not parse as a URL is returned as is.
func displayURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment = nil, "", false, ""
	return p.String()
}

// displayDestination is an optional destination as /status shows it: "" for none.
func displayDestination(d *dispatch.Destination) string {
	if d == nil {
		return ""
	}
	return displayURL(d.String())
}

// readinessLines names each channel and subscription that is not ready, as
// `channel default/orders: Reason: message`. Sources do not count: a source that cannot run does not
// stop the gateway from accepting events. Pure.
func readinessLines(notReady []KeyedCondition) []string {
	var out []string
	for _, kc := range notReady {
		switch kc.Key.Category {
		case CategoryChannel, CategorySubscription, CategoryBroker, CategoryTrigger:
		default:
			continue
		}
		s := kc.Key.Category + " " + kc.Key.Name + ": " + cmp.Or(kc.Reason, ReasonUnknown)
		if kc.Message != "" {
			s += ": " + kc.Message
		}
		out = append(out, oneLine(s))
	}
	return out
}

// serveReadyz answers 200 "ok" when the gateway is ready, else 503 with ready's lines.
func (a *App) serveReadyz(w http.ResponseWriter, r *http.Request) {
	lines := a.ready(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(lines) == 0 {
		io.WriteString(w, "ok\n")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, strings.Join(lines, "\n")+"\n")
}

// serveStatus answers GET /status with the Status document (indented JSON).
func (a *App) serveStatus(w http.ResponseWriter, r *http.Request) {
	st := a.status(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// status assembles the Status document from the resources of the last view (see currentView), the
// live conditions and dispatcher figures, and the backends' lag (bounded). It never waits for a
// reconcile: one that hangs on a backend leaves /status showing the resources as the last finished
// step left them, with their conditions as they are now.
func (a *App) status(ctx context.Context) Status {
	in := statusInput{
		now:        time.Now(),
		ingressURL: a.ingressURL(),
		defaultPartitions: map[string]int32{
			resources.ProvisionerInMemory: a.cfg.InMemory.Partitions,
			resources.ProvisionerKafka:    a.cfg.Kafka.DefaultPartitions,
			resources.ProvisionerNATS:     a.cfg.NATS.DefaultPartitions,
		},
		cond: a.conds.get,
	}
	in.notReady = a.ready(ctx)
	a.currentView().withConditions(a.conds.notReady()).into(&in)
	lagCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	in.lag = lagSources{a}.Lag(lagCtx)
	return buildStatus(in)
}

// currentView returns the resources as they are when no reconcile is in progress (and publishes
// that view), else the view the last reconcile step published.
func (a *App) currentView() *statusView {
	if a.mu.TryLock() {
		v := a.publishViewLocked()
		a.mu.Unlock()
		return v
	}
	if v := a.view.Load(); v != nil {
		return v
	}
	return &statusView{}
}

// publishViewLocked takes the view of what is declared and runs, and publishes it for /status to
// read while a later reconcile holds a.mu. a.mu must be held.
func (a *App) publishViewLocked() *statusView {
	v := &statusView{}
	a.snapshotLocked(v)
	a.view.Store(v)
	return v
}

// statusView is the resources /status lists: those declared (the applied set) and those running,
// each once, with what runs them. It is taken under a.mu and not changed after; what changes while
// they run (a dispatcher's figures, whether a source's adapter still runs) is read through it when
// /status answers.
type statusView struct {
	seen          map[ResourceKey]bool
	channels      []*resources.Channel
	subscriptions []subscriptionSnapshot
	sources       []sourceSnapshot
}

func (v *statusView) addChannel(c *resources.Channel) {
	if k := channelKey(c.Ref()); !v.seen[k] {
		v.mark(k)
		v.channels = append(v.channels, c)
	}
}

func (v *statusView) addSubscription(key string, snap subscriptionSnapshot) {
	if k := subscriptionKey(key); !v.seen[k] {
		v.mark(k)
		v.subscriptions = append(v.subscriptions, snap)
	}
}

func (v *statusView) addSource(snap sourceSnapshot) {
	if k := sourceKey(snap.src.Key()); !v.seen[k] {
		v.mark(k)
		v.sources = append(v.sources, snap)
	}
}

func (v *statusView) mark(k ResourceKey) {
	if v.seen == nil {
		v.seen = map[ResourceKey]bool{}
	}
	v.seen[k] = true
}

// withConditions returns v and, after its own, a resource for each condition in notReady that v
// does not list (a resource whose start failed): listed with what its key says of it.
func (v *statusView) withConditions(notReady []KeyedCondition) *statusView {
	out := &statusView{seen: maps.Clone(v.seen), channels: slices.Clip(v.channels),
		subscriptions: slices.Clip(v.subscriptions), sources: slices.Clip(v.sources)}
	for _, kc := range notReady {
		switch kc.Key.Category {
		case CategoryChannel:
			ns, name, _ := strings.Cut(kc.Key.Name, "/")
			out.addChannel(&resources.Channel{Meta: resources.Meta{Namespace: ns, Name: name}})
		case CategoryBroker:
			ns, name, _ := strings.Cut(kc.Key.Name, "/")
			out.addChannel(&resources.Channel{Meta: resources.Meta{Kind: "Broker", Namespace: ns, Name: name}, Broker: true})
		case CategorySubscription:
			ns, name, _ := strings.Cut(kc.Key.Name, "/")
			out.addSubscription(kc.Key.Name, subscriptionSnapshot{namespace: ns, name: name})
		case CategoryTrigger:
			ns, name, _ := strings.Cut(kc.Key.Name, "/")
			name = resources.TriggerGroupPrefix + name
			out.addSubscription(ns+"/"+name, subscriptionSnapshot{namespace: ns, name: name})
		case CategorySource:
			kind, rest, _ := strings.Cut(kc.Key.Name, "/")
			ns, name, _ := strings.Cut(rest, "/")
			out.addSource(sourceSnapshot{src: &resources.Source{Meta: resources.Meta{Kind: kind, Namespace: ns, Name: name}}})
		}
	}
	return out
}

// into copies v's resources into in, reading their live figures now.
func (v *statusView) into(in *statusInput) {
	in.channels = v.channels
	in.subscriptions = make([]subscriptionSnapshot, len(v.subscriptions))
	for i, s := range v.subscriptions {
		if s.d != nil {
			s.running, s.status = true, s.d.Status()
		}
		in.subscriptions[i] = s
	}
	in.sources = make([]sourceSnapshot, len(v.sources))
	for i, s := range v.sources {
		if s.done != nil {
			select {
			case <-s.done:
			default:
				s.running = true
			}
		}
		in.sources[i] = s
	}
}

// snapshotLocked adds to v every resource of the applied set, with what runs of it (a channel that
// waits for its backend, a subscription or a source that did not start are listed too), then what
// runs without being in the set (none, unless an Apply was cut short). a.mu must be held.
func (a *App) snapshotLocked(v *statusView) {
	addSubscription := func(key string, snap subscriptionSnapshot) {
		if r, ok := a.dispatchers[key]; ok {
			snap.channel, snap.subscriber = r.sub.Channel, displayURL(r.sub.Subscriber.String())
			snap.reply, snap.dls = displayDestination(r.sub.Reply), displayDestination(r.sub.DeadLetter)
			snap.d = r.d
		}
		v.addSubscription(key, snap)
	}
	addSource := func(src *resources.Source) {
		snap := sourceSnapshot{src: src}
		if t, err := a.resolver.Resolve(src.Sink); err == nil {
			snap.sink = displayURL(t.String())
		}
		if r, ok := a.sources[src.Key()]; ok {
			snap.stats, snap.done = r.stats, r.done
		}
		v.addSource(snap)
	}
	if set := a.applied; set != nil {
		for _, c := range set.Channels {
			v.addChannel(c)
		}
		for _, s := range set.Subscriptions {
			snap := subscriptionSnapshot{namespace: s.Namespace, name: s.Name, channel: s.ChannelRef()}
			// What resolved of its destinations, even when one of them does not (the error is its condition's).
			ds, _ := a.dispatchSubscription(set, s)
			if ds.Subscriber.URL != "" || ds.Subscriber.Channel != nil {
				snap.subscriber = displayURL(ds.Subscriber.String())
			}
			snap.reply, snap.dls = displayDestination(ds.Reply), displayDestination(ds.DeadLetter)
			addSubscription(s.NamespacedName(), snap)
		}
		for _, s := range set.Sources {
			addSource(s)
		}
	}
	for _, c := range a.channels {
		v.addChannel(c)
	}
	for key, r := range a.dispatchers {
		addSubscription(key, subscriptionSnapshot{namespace: r.sub.Namespace, name: r.sub.Name})
	}
	for _, r := range a.sources {
		addSource(r.src)
	}
}
