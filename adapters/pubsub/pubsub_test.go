package pubsub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	ps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/internal/adapterstest"
)

const (
	project = "proj"
	topicID = "orders"
	topic   = "projects/proj/topics/orders"
)

func newSink() *adapterstest.Sink { return adapterstest.NewSink() }

// fakeServer starts pstest on loopback and returns it with client options that reach it.
func fakeServer(t *testing.T) (*pstest.Server, []option.ClientOption) {
	t.Helper()
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	t.Cleanup(func() { _ = srv.Close() })
	opts := []option.ClientOption{
		option.WithEndpoint(srv.Addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
	return srv, opts
}

// adminClient returns a client for setting up topics and subscriptions.
func adminClient(t *testing.T, opts []option.ClientOption) *ps.Client {
	t.Helper()
	c, err := ps.NewClient(context.Background(), project, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	return c
}

func source(subID string) *resources.Source {
	return &resources.Source{
		Meta:        resources.Meta{Kind: "CloudPubSubSource", Name: "src", Namespace: "default"},
		CEOverrides: map[string]string{"team": "billing"},
		PubSub:      &resources.PubSubSpec{Project: project, Topic: topicID, SubscriptionID: subID},
	}
}

// run starts a for src and stops it (and waits for Run to return nil) at cleanup.
func run(t *testing.T, a *Adapter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		tick := time.NewTimer(10 * time.Millisecond)
		<-tick.C
	}
}

// waitSubscription waits until the named subscription exists (published messages reach only
// subscriptions that exist at publish time).
func waitSubscription(t *testing.T, c *ps.Client, name string) *pubsubpb.Subscription {
	t.Helper()
	var got *pubsubpb.Subscription
	waitFor(t, "subscription "+name, func() bool {
		s, err := c.SubscriptionAdminClient.GetSubscription(context.Background(),
			&pubsubpb.GetSubscriptionRequest{Subscription: name})
		got = s
		return err == nil
	})
	return got
}

func TestPublishedMessageDeliveredAndAckedOnAutoCreatedSubscription(t *testing.T) {
	srv, opts := fakeServer(t)
	admin := adminClient(t, opts)
	sink := newSink()
	m := metrics.New(metrics.Build{})
	src := source("")
	a, err := newAdapter(src, adapters.Deps{Sink: sink, Metrics: m}, settings{clientOpts: opts})
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	sub := waitSubscription(t, admin, "projects/proj/subscriptions/eventgate-default-src")
	if sub.Topic != topic || !sub.EnableMessageOrdering {
		t.Fatalf("created subscription = %v, want topic %s with ordering", sub, topic)
	}

	id := srv.Publish(topic, []byte(`{"order":42}`), map[string]string{"region": "eu"})
	e := sink.Next(t)

	pub := srv.Message(id)
	want := &event.Event{
		ID:              id,
		Source:          "//pubsub.googleapis.com/projects/proj/topics/orders",
		SpecVersion:     "1.0",
		Type:            "google.cloud.pubsub.topic.v1.messagePublished",
		DataContentType: "application/json",
		Time:            pub.PublishTime.UTC().Format(time.RFC3339Nano),
		Extensions:      map[string]string{"team": "billing"},
	}
	data := e.Data
	e.Data = nil
	if !e.Equal(want) {
		t.Fatalf("event = %+v\nwant    %+v", e, want)
	}
	var d struct {
		Subscription string `json:"subscription"`
		Message      struct {
			MessageID   string            `json:"messageId"`
			Data        string            `json:"data"`
			Attributes  map[string]string `json:"attributes"`
			PublishTime string            `json:"publishTime"`
			OrderingKey *string           `json:"orderingKey"`
		} `json:"message"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("data %s: %v", data, err)
	}
	raw, err := base64.StdEncoding.DecodeString(d.Message.Data)
	if err != nil || string(raw) != `{"order":42}` {
		t.Errorf("message.data = %q (%v), want base64 of the payload", d.Message.Data, err)
	}
	if d.Subscription != "projects/proj/subscriptions/eventgate-default-src" || d.Message.MessageID != id ||
		d.Message.Attributes["region"] != "eu" || d.Message.PublishTime != want.Time || d.Message.OrderingKey != nil {
		t.Errorf("data = %s", data)
	}

	waitFor(t, "the ack", func() bool { return srv.Message(id).Acks == 1 })
	waitFor(t, "the accepted count", func() bool {
		return testutil.ToFloat64(m.SourceEvents.WithLabelValues("default", "src", "CloudPubSubSource", adapters.OutcomeAccepted)) == 1
	})
}

func TestRefusedMessageIsNackedRedeliveredThenAcked(t *testing.T) {
	srv, opts := fakeServer(t)
	admin := adminClient(t, opts)
	sink := newSink()
	var mu sync.Mutex
	refusals := 0
	var acksWhileRefused []int
	sink.Fail = func(e *event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if refusals < 2 {
			refusals++
			acksWhileRefused = append(acksWhileRefused, srv.Message(e.ID).Acks)
			return errors.New("sink down")
		}
		return nil
	}
	m := metrics.New(metrics.Build{})
	a, err := newAdapter(source(""), adapters.Deps{Sink: sink, Metrics: m},
		settings{clientOpts: opts, nackDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	waitSubscription(t, admin, "projects/proj/subscriptions/eventgate-default-src")

	id := srv.Publish(topic, []byte("x"), nil)
	e := sink.Next(t)
	if e.ID != id {
		t.Fatalf("accepted %s, want %s", e.ID, id)
	}
	waitFor(t, "the ack", func() bool { return srv.Message(id).Acks == 1 })
	if got := srv.Message(id).Deliveries; got < 3 {
		t.Errorf("deliveries = %d, want at least 3 (two nacked, one accepted)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, acks := range acksWhileRefused {
		if acks != 0 {
			t.Errorf("refusal %d: message already acked %d times", i, acks)
		}
	}
	if got := testutil.ToFloat64(m.SourceEvents.WithLabelValues("default", "src", "CloudPubSubSource", adapters.OutcomeFailed)); got != 2 {
		t.Errorf("failed count = %v, want 2", got)
	}
}

func TestOrderingKeyBecomesPartitionKeyInOrder(t *testing.T) {
	srv, opts := fakeServer(t)
	admin := adminClient(t, opts)
	sink := newSink()
	a, err := newAdapter(source(""), adapters.Deps{Sink: sink}, settings{clientOpts: opts})
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	waitSubscription(t, admin, "projects/proj/subscriptions/eventgate-default-src")

	var ids []string
	for _, p := range []string{"first", "second", "third"} {
		ids = append(ids, srv.PublishOrdered(topic, []byte(p), nil, "customer-7"))
	}
	for i, id := range ids {
		e := sink.Next(t)
		if e.ID != id {
			t.Fatalf("event %d is %s, want %s (order per key lost)", i, e.ID, id)
		}
		if got := e.Extension(event.PartitionKeyExtension); got != "customer-7" {
			t.Errorf("partitionkey = %q, want customer-7", got)
		}
		var d messageData
		if err := json.Unmarshal(e.Data, &d); err != nil || d.Message.OrderingKey != "customer-7" {
			t.Errorf("data %s: orderingKey missing (%v)", e.Data, err)
		}
	}
}

func TestNamedSubscriptionIsUsedNotCreated(t *testing.T) {
	srv, opts := fakeServer(t)
	admin := adminClient(t, opts)
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(context.Background(),
		&pubsubpb.Subscription{Name: "projects/proj/subscriptions/mine", Topic: topic}); err != nil {
		t.Fatal(err)
	}
	sink := newSink()
	a, err := newAdapter(source("mine"), adapters.Deps{Sink: sink}, settings{clientOpts: opts})
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	id := srv.Publish(topic, []byte("hi"), nil)
	e := sink.Next(t)
	var d messageData
	if err := json.Unmarshal(e.Data, &d); err != nil || e.ID != id || d.Subscription != "projects/proj/subscriptions/mine" {
		t.Fatalf("event %s data %s (%v)", e.ID, e.Data, err)
	}
	_, err = admin.SubscriptionAdminClient.GetSubscription(context.Background(),
		&pubsubpb.GetSubscriptionRequest{Subscription: "projects/proj/subscriptions/eventgate-default-src"})
	if err == nil {
		t.Error("a subscription was created although one was named")
	}
}

func TestMessageEvent(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123000000, time.FixedZone("x", 3600))
	tests := []struct {
		name     string
		msg      *ps.Message
		wantKey  string
		wantData string
		wantErr  bool
	}{
		{
			name:     "plain",
			msg:      &ps.Message{ID: "1", Data: []byte("hi"), PublishTime: at},
			wantData: `{"subscription":"projects/p/subscriptions/s","message":{"messageId":"1","data":"aGk=","publishTime":"2024-05-01T11:00:00.123Z"}}`,
		},
		{
			name:     "ordering key and attributes",
			msg:      &ps.Message{ID: "2", Attributes: map[string]string{"k": "v"}, PublishTime: at, OrderingKey: "o"},
			wantKey:  "o",
			wantData: `{"subscription":"projects/p/subscriptions/s","message":{"messageId":"2","attributes":{"k":"v"},"publishTime":"2024-05-01T11:00:00.123Z","orderingKey":"o"}}`,
		},
		{name: "no id", msg: &ps.Message{Data: []byte("x")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := MessageEvent("projects/p/topics/t", "projects/p/subscriptions/s", tt.msg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Data) != tt.wantData {
				t.Errorf("data = %s\nwant   %s", e.Data, tt.wantData)
			}
			if e.Extension(event.PartitionKeyExtension) != tt.wantKey {
				t.Errorf("partitionkey = %q, want %q", e.Extension(event.PartitionKeyExtension), tt.wantKey)
			}
			if e.Time != "2024-05-01T11:00:00.123Z" || e.Source != "//pubsub.googleapis.com/projects/p/topics/t" {
				t.Errorf("time %q source %q", e.Time, e.Source)
			}
		})
	}
}

func TestNewRejectsBadSpecs(t *testing.T) {
	sink := newSink()
	for name, spec := range map[string]*resources.PubSubSpec{
		"no project":         {Topic: "t"},
		"no topic":           {Project: "p"},
		"topic of another":   {Project: "p", Topic: "projects/p/subscriptions/t"},
		"topic with slash":   {Project: "p", Topic: "a/b"},
		"bad subscription":   {Project: "p", Topic: "t", SubscriptionID: "projects/p/topics/x"},
		"missing secret":     {Project: "p", Topic: "t", Credentials: &resources.SecretKeyRef{Name: "gcp", Key: "key.json"}},
		"full name too long": {Project: "p", Topic: "projects/p/topics/t/x"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("PUBSUB_EMULATOR_HOST", "")
			src := &resources.Source{Meta: resources.Meta{Kind: "GcpPubSubSource", Name: "s", Namespace: "n"}, PubSub: spec}
			if _, err := New(src, adapters.Deps{Sink: sink, SecretsDir: t.TempDir()}); err == nil {
				t.Fatal("New accepted the spec")
			}
		})
	}
	src := &resources.Source{Meta: resources.Meta{Kind: "GcpPubSubSource", Name: "s", Namespace: "n"},
		PubSub: &resources.PubSubSpec{Project: "p", Topic: "projects/p/topics/t"}}
	a, err := newAdapter(src, adapters.Deps{Sink: sink}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	if a.topic != "projects/p/topics/t" || a.sub != "projects/p/subscriptions/eventgate-n-s" {
		t.Errorf("topic %s sub %s", a.topic, a.sub)
	}
}

// FuzzFullName checks fullName on any input. Invariants: it never panics; on success the result is
// "projects/P/COLLECTION/ID" with exactly four non-empty '/'-separated parts, COLLECTION as asked,
// and an input without "projects/" keeps the given project.
func FuzzFullName(f *testing.F) {
	for _, s := range []string{"t", "projects/p/topics/t", "projects/p/subscriptions/t", "a/b", "", "projects//topics/x",
		"projects/p/topics/t/extra", "projects/p/topics/"} {
		f.Add("p", s)
	}
	f.Fuzz(func(t *testing.T, project, s string) {
		got, err := fullName(project, "topics", s)
		if err != nil {
			return
		}
		parts := strings.Split(got, "/")
		if len(parts) != 4 || parts[0] != "projects" || parts[1] == "" || parts[2] != "topics" || parts[3] == "" {
			t.Fatalf("fullName(%q, %q) = %q", project, s, got)
		}
		if !strings.HasPrefix(s, "projects/") && (parts[1] != project || parts[3] != s) {
			t.Fatalf("fullName(%q, %q) = %q lost the project or ID", project, s, got)
		}
	})
}
