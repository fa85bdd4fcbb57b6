package app

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/provisioners/inmemory"
)

func testChannel(ns, name, kind, provisioner string, partitions int32) *resources.Channel {
	return &resources.Channel{Meta: resources.Meta{Kind: kind, Namespace: ns, Name: name}, Provisioner: provisioner,
		Partitions: partitions}
}

// statusFixture is a gateway with two channels (one Kafka channel whose broker is down), two
// subscriptions and a source, as buildStatus sees it.
func statusFixture(now time.Time) statusInput {
	conds := newConditions()
	conds.now = func() time.Time { return now.Add(-time.Minute) }
	conds.set(ResourceKey{CategoryChannel, "default/orders"}, true, "Ready", "")
	conds.set(ResourceKey{CategoryChannel, "team-a/payments"}, false, "BackendUnavailable", "no Kafka broker answers\nat 127.0.0.1:9092")
	conds.set(ResourceKey{CategorySubscription, "default/audit"}, true, "Ready", "")
	conds.set(ResourceKey{CategorySource, "GitHubSource/default/repo"}, true, "Ready", "")
	orders := channel.Ref{Namespace: "default", Name: "orders"}
	stats := &sourceStats{}
	stats.record(nil, now.Add(-2*time.Second), "")
	stats.record(errors.New("channel is full"), now.Add(-time.Second), "")
	return statusInput{
		now:               now,
		ingressURL:        "http://gw.example:8080/",
		defaultPartitions: map[string]int32{resources.ProvisionerInMemory: 4, resources.ProvisionerKafka: 3},
		// Declared out of order: the output is sorted.
		channels: []*resources.Channel{
			testChannel("team-a", "payments", "KafkaChannel", resources.ProvisionerKafka, 12),
			testChannel("default", "orders", "InMemoryChannel", resources.ProvisionerInMemory, 0),
		},
		subscriptions: []subscriptionSnapshot{
			{namespace: "team-a", name: "ledger", channel: channel.Ref{Namespace: "team-a", Name: "payments"},
				subscriber: "http://ledger.team-a.svc.cluster.local"},
			{namespace: "default", name: "audit", channel: orders, subscriber: "http://audit.example/in", running: true,
				status: dispatch.Status{Limit: 16, LastDelivered: now.Add(-3 * time.Second),
					LastError: "answered 500 Internal Server Error", LastErrorAt: now.Add(-4 * time.Second)}},
		},
		sources: []sourceSnapshot{{
			src:  &resources.Source{Meta: resources.Meta{Kind: "GitHubSource", Namespace: "default", Name: "repo"}},
			sink: "channel default/orders", running: true, stats: stats,
		}},
		cond:     conds.get,
		notReady: readinessLines(conds.notReady()),
		lag: []channel.LagSample{
			{Group: channel.Group{Channel: orders, Name: "audit", Start: channel.Latest}, Partition: 0, Lag: 5},
			{Group: channel.Group{Channel: orders, Name: "audit"}, Partition: 3, Lag: 2},
			{Group: channel.Group{Channel: orders, Name: "other"}, Partition: 0, Lag: 100},
		},
	}
}

func TestBuildStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := buildStatus(statusFixture(now))

	if st.Ready {
		t.Error("ready with a channel not ready")
	}
	// What /readyz says; ledger, with no condition yet, is listed Unknown but does not count.
	wantNotReady := []string{"channel team-a/payments: BackendUnavailable: no Kafka broker answers; at 127.0.0.1:9092"}
	if !slices.Equal(st.NotReady, wantNotReady) {
		t.Errorf("notReady:\n got %q\nwant %q", st.NotReady, wantNotReady)
	}

	if len(st.Channels) != 2 {
		t.Fatalf("%d channels, want 2", len(st.Channels))
	}
	orders, payments := st.Channels[0], st.Channels[1]
	if orders.Name != "orders" || payments.Name != "payments" {
		t.Fatalf("channels not sorted by namespace and name: %s, %s", orders.Name, payments.Name)
	}
	if orders.Address != "http://gw.example:8080/default/orders" || orders.Partitions != 4 || orders.Backend != "inmemory" ||
		orders.Kind != "InMemoryChannel" || !orders.Ready || orders.Reason != "Ready" || !orders.Since.Equal(now.Add(-time.Minute)) {
		t.Errorf("orders = %+v, want the ingress address, the in-memory default of 4 partitions, ready since a minute", orders)
	}
	if payments.Partitions != 12 || payments.Ready || payments.Reason != "BackendUnavailable" || payments.Backend != "kafka" {
		t.Errorf("payments = %+v, want 12 partitions, not ready: BackendUnavailable", payments)
	}

	if len(st.Subscriptions) != 2 || st.Subscriptions[0].Name != "audit" || st.Subscriptions[1].Name != "ledger" {
		t.Fatalf("subscriptions = %+v, want audit then ledger", st.Subscriptions)
	}
	audit, ledger := st.Subscriptions[0], st.Subscriptions[1]
	if audit.Lag == nil || *audit.Lag != 7 {
		t.Errorf("audit lag = %v, want 7 (5 + 2 over its partitions, not the other group's)", audit.Lag)
	}
	if audit.Channel != "default/orders" || audit.ConcurrencyLimit != 16 || audit.LastError != "answered 500 Internal Server Error" ||
		!audit.LastErrorTime.Equal(now.Add(-4*time.Second)) || !audit.LastDeliveryTime.Equal(now.Add(-3*time.Second)) {
		t.Errorf("audit = %+v", audit)
	}
	if ledger.Lag != nil || ledger.ConcurrencyLimit != 0 || ledger.Ready || ledger.Reason != ReasonUnknown || !ledger.Since.IsZero() {
		t.Errorf("ledger (not running, no condition, no lag sample) = %+v", ledger)
	}

	if len(st.Sources) != 1 {
		t.Fatalf("%d sources, want 1", len(st.Sources))
	}
	src := st.Sources[0]
	if !src.Running || !src.Ready || src.Sink != "channel default/orders" || !src.LastEventTime.Equal(now.Add(-2*time.Second)) ||
		src.LastError != "channel is full" || !src.LastErrorTime.Equal(now.Add(-time.Second)) {
		t.Errorf("source = %+v", src)
	}
}

// The JSON field names are an interface (eventgate status, scripts, the console): this pins them.
func TestStatusJSONFieldNames(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b, err := json.Marshal(buildStatus(statusFixture(now)))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Top           map[string]json.RawMessage
		Channels      []map[string]any `json:"channels"`
		Subscriptions []map[string]any `json:"subscriptions"`
		Sources       []map[string]any `json:"sources"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc.Top); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return strings.Join(k, " ")
	}
	var top []string
	for k := range doc.Top {
		top = append(top, k)
	}
	slices.Sort(top)
	for what, c := range map[string]struct{ got, want string }{
		"top":                {strings.Join(top, " "), "channels notReady ready sources subscriptions time"},
		"channel":            {keys(doc.Channels[0]), "address backend kind name namespace partitions ready reason since"},
		"channel not ready":  {keys(doc.Channels[1]), "address backend kind message name namespace partitions ready reason since"},
		"subscription":       {keys(doc.Subscriptions[0]), "channel concurrencyLimit lag lastDeliveryTime lastError lastErrorTime name namespace ready reason since subscriber"},
		"subscription, idle": {keys(doc.Subscriptions[1]), "channel concurrencyLimit message name namespace ready reason subscriber"},
		"source":             {keys(doc.Sources[0]), "kind lastError lastErrorTime lastEventTime name namespace ready reason running since sink"},
	} {
		if c.got != c.want {
			t.Errorf("%s fields:\n got %s\nwant %s", what, c.got, c.want)
		}
	}
	if got := doc.Subscriptions[0]["lastErrorTime"]; got != "2026-03-01T11:59:56Z" {
		t.Errorf("lastErrorTime = %v, want RFC 3339", got)
	}
	// Empty lists are [], not null.
	b, _ = json.Marshal(buildStatus(statusInput{now: now, cond: newConditions().get}))
	if !strings.Contains(string(b), `"channels":[]`) || !strings.Contains(string(b), `"ready":true`) {
		t.Errorf("empty status = %s, want empty lists and ready", b)
	}
}

func TestDisplayURLDropsCredentialsAndQuery(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@sub.example:8443/in?token=abc#x": "https://sub.example:8443/in",
		"http://audit.example/in":                         "http://audit.example/in",
		"channel:default/orders":                          "channel:default/orders",
	} {
		if got := displayURL(in); got != want {
			t.Errorf("displayURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// readyApp is an App with only what /readyz and /status read: flags, conditions, an in-memory backend.
func readyApp(t *testing.T) *App {
	t.Helper()
	cfg := config.Default()
	inmem := inmemory.New(cfg.InMemory, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { inmem.Close() })
	a := &App{cfg: cfg, metrics: metrics.New(metrics.Build{}), inmem: inmem, router: newRouter(inmem),
		conds: newConditions(), channels: map[channel.Ref]*resources.Channel{}, dispatchers: map[string]*running{},
		sources: map[string]*runningSource{}, resolver: &resources.Resolver{IngressURL: cfg.IngressURL()}}
	a.loaded.Store(true)
	return a
}

func adminGET(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestReadyzNamesWhatIsNotReady(t *testing.T) {
	a := readyApp(t)
	mux := a.adminMux()
	a.conds.set(ResourceKey{CategoryChannel, "default/orders"}, true, "Ready", "")
	a.conds.set(ResourceKey{CategorySubscription, "default/audit"}, true, "Ready", "")
	if code, body := adminGET(t, mux, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("all ready: %d %q, want 200 ok", code, body)
	}

	a.conds.set(ResourceKey{CategoryChannel, "team-a/payments"}, false, "BackendUnavailable", "no Kafka broker answers at 127.0.0.1:9092")
	a.conds.set(ResourceKey{CategorySubscription, "team-a/ledger"}, false, "ChannelNotReady", "channel team-a/payments is not ready")
	a.conds.set(ResourceKey{CategorySource, "GitHubSource/default/repo"}, false, "Failed", "secret gh-secret not found")
	code, body := adminGET(t, mux, "/readyz")
	want := "channel team-a/payments: BackendUnavailable: no Kafka broker answers at 127.0.0.1:9092\n" +
		"subscription team-a/ledger: ChannelNotReady: channel team-a/payments is not ready\n"
	if code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/readyz = %d\n%s\nwant 503\n%s(a source that is not ready does not count)", code, body, want)
	}

	// /status says the same, and lists the resources that do not run from their conditions.
	code, body = adminGET(t, mux, "/status")
	if code != http.StatusOK {
		t.Fatalf("/status = %d %s", code, body)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ready || strings.Join(st.NotReady, "\n")+"\n" != want {
		t.Errorf("/status ready %v notReady %q, want what /readyz says", st.Ready, st.NotReady)
	}
	if len(st.Channels) != 1 || st.Channels[0].Name != "payments" || st.Channels[0].Reason != "BackendUnavailable" ||
		len(st.Subscriptions) != 1 || st.Subscriptions[0].Name != "ledger" ||
		len(st.Sources) != 1 || st.Sources[0].Kind != "GitHubSource" || st.Sources[0].Running || st.Sources[0].Message != "secret gh-secret not found" {
		t.Errorf("/status lists %+v", st)
	}

	a.loaded.Store(false)
	if _, body := adminGET(t, mux, "/readyz"); !strings.HasPrefix(body, "resources not loaded\n") {
		t.Errorf("not loaded: /readyz body %q, want it first", body)
	}
	a.stopping.Store(true)
	if code, body := adminGET(t, mux, "/readyz"); code != http.StatusServiceUnavailable || body != "shutting down\n" {
		t.Errorf("stopping: /readyz = %d %q", code, body)
	}
}

// A reconcile that hangs (on a backend that does not answer) holds the App's lock: /status still
// answers at once, with the resources as the last step left them and the conditions as they are now.
func TestStatusAnswersWhileAReconcileHoldsTheLock(t *testing.T) {
	a := readyApp(t)
	mux := a.adminMux()
	a.mu.Lock()
	// Before any reconcile step finished: what the conditions name.
	a.conds.set(ResourceKey{CategoryChannel, "team-a/payments"}, false, ReasonBackendUnavailable, "no Kafka broker answers")
	code, body := adminGET(t, mux, "/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/status with the lock held = %d %s (%v), want 200", code, body, err)
	}
	if len(st.Channels) != 1 || st.Channels[0].Name != "payments" || st.Channels[0].Reason != ReasonBackendUnavailable {
		t.Errorf("/status before any view lists %+v, want the channel its condition names", st.Channels)
	}

	// A step finished and published its view; the next one hangs while the channel's condition changes.
	a.applied = &resources.Set{Channels: []*resources.Channel{
		testChannel("team-a", "payments", "KafkaChannel", resources.ProvisionerKafka, 6),
		testChannel("team-a", "audit", "InMemoryChannel", resources.ProvisionerInMemory, 0),
	}}
	a.publishViewLocked()
	a.applied = nil // what the hanging step is changing is not read
	a.conds.set(ResourceKey{CategoryChannel, "team-a/payments"}, true, ReasonReady, "")
	code, body = adminGET(t, mux, "/status")
	st = Status{}
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/status with the lock held = %d %s (%v), want 200", code, body, err)
	}
	if len(st.Channels) != 2 || st.Channels[0].Name != "audit" || st.Channels[1].Name != "payments" ||
		st.Channels[1].Partitions != 6 || !st.Channels[1].Ready {
		t.Errorf("/status during a reconcile lists %+v, want the published view with the live conditions", st.Channels)
	}
	a.mu.Unlock()
}

// With port 0 in the configuration the addresses name the port the ingress took.
func TestStatusAddressesNameTheListeningPort(t *testing.T) {
	a := readyApp(t)
	a.cfg.Ingress.Address = "127.0.0.1:0"
	addr := "127.0.0.1:43123"
	a.ingressAddr.Store(&addr)
	a.applied = &resources.Set{Channels: []*resources.Channel{testChannel("default", "orders", "InMemoryChannel", resources.ProvisionerInMemory, 0)}}
	if got := a.status(context.Background()).Channels; len(got) != 1 || got[0].Address != "http://127.0.0.1:43123/default/orders" {
		t.Errorf("channels = %+v, want the address on port 43123", got)
	}
	a.cfg.Ingress.ExternalURL = "https://events.example.com/"
	if got := a.status(context.Background()).Channels; len(got) != 1 || got[0].Address != "https://events.example.com/default/orders" {
		t.Errorf("channels = %+v, want the external URL", got)
	}
}

// A declared channel that waits for its backend and the subscription that waits for it are listed
// from the applied set, with what the manifests say of them.
func TestStatusListsWhatDoesNotRunFromTheAppliedSet(t *testing.T) {
	a := readyApp(t)
	a.applied = &resources.Set{
		Channels: []*resources.Channel{testChannel("team-a", "payments", "KafkaChannel", resources.ProvisionerKafka, 0)},
		Subscriptions: []*resources.Subscription{{
			Meta:       resources.Meta{Kind: "Subscription", Namespace: "team-a", Name: "ledger"},
			Channel:    resources.Reference{Kind: "KafkaChannel", Namespace: "team-a", Name: "payments"},
			Subscriber: &resources.Destination{URI: "https://bot:pw@ledger.example/in?key=k"},
			Reply:      &resources.Destination{Ref: &resources.Reference{Kind: "InMemoryChannel", Namespace: "team-a", Name: "replies"}},
			Delivery:   &resources.Delivery{DeadLetterSink: &resources.Destination{URI: "http://dls.example/x?token=t"}},
		}},
	}
	a.conds.set(ResourceKey{CategoryChannel, "team-a/payments"}, false, ReasonBackendUnavailable, "no Kafka broker answers")
	a.conds.set(ResourceKey{CategorySubscription, "team-a/ledger"}, false, ReasonChannelNotReady, "channel team-a/payments is not running")
	st := a.status(context.Background())
	if len(st.Channels) != 1 || len(st.Subscriptions) != 1 {
		t.Fatalf("status = %+v, want the channel and the subscription", st)
	}
	ch, sub := st.Channels[0], st.Subscriptions[0]
	if ch.Kind != "KafkaChannel" || ch.Backend != "kafka" || ch.Partitions != a.cfg.Kafka.DefaultPartitions ||
		ch.Reason != ReasonBackendUnavailable || ch.Address != "http://127.0.0.1:8080/team-a/payments" {
		t.Errorf("channel = %+v", ch)
	}
	if sub.Channel != "team-a/payments" || sub.Subscriber != "https://ledger.example/in" || sub.ConcurrencyLimit != 0 ||
		sub.Reason != ReasonChannelNotReady || !sub.LastDeliveryTime.IsZero() {
		t.Errorf("subscription = %+v", sub)
	}
	if sub.Reply != "channel:team-a/replies" || sub.DeadLetterSink != "http://dls.example/x" {
		t.Errorf("reply %q, dead-letter sink %q; want the channel and the URL without its query", sub.Reply, sub.DeadLetterSink)
	}
	if st.Ready || len(st.NotReady) != 2 {
		t.Errorf("ready %v, notReady %q; want both named", st.Ready, st.NotReady)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	a := readyApp(t)
	if code, _ := adminGET(t, a.adminMux(), "/debug/pprof/goroutine?debug=1"); code != http.StatusNotFound {
		t.Errorf("admin.pprof off: /debug/pprof/goroutine = %d, want 404", code)
	}
	a.cfg.Admin.Pprof = true
	mux := a.adminMux()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap?debug=1", "/debug/pprof/cmdline"} {
		if code, body := adminGET(t, mux, path); code != http.StatusOK || body == "" {
			t.Errorf("admin.pprof on: %s = %d (%d bytes), want 200 with a body", path, code, len(body))
		}
	}
	a.adminTokens = adminTokens{sha256.Sum256([]byte("tok"))}
	if code, _ := adminGET(t, mux, "/debug/pprof/heap"); code != http.StatusUnauthorized {
		t.Errorf("admin.pprof with an admin secret and no token = %d, want 401", code)
	}
}
