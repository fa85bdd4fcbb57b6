package kafka

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	segkafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/internal/conformance"
)

func TestConformance(t *testing.T) {
	brokers := testBrokers(t)
	conformance.Run(t, func(t *testing.T) channel.Provisioner {
		return newBackend(t, brokers, nil)
	})
}

// ensureChannel ensures a fresh channel (removed at cleanup) and returns its ref and topic.
func ensureChannel(t testing.TB, b *Backend, spec channel.Spec) (channel.Ref, string) {
	t.Helper()
	spec.Ref = channel.Ref{Namespace: "kafkatest", Name: conformance.UniqueName(t, "ch-")}
	if err := b.Ensure(testCtx(t, 30*time.Second), spec); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Remove(testCtx(t, 30*time.Second), spec.Ref); err != nil {
			t.Errorf("Remove: %v", err)
		}
	})
	topic, err := b.TopicName(spec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	return spec.Ref, topic
}

// topicShape returns the topic's partition count, replication factor and retention.ms, as an
// independent client sees them (it waits until that client's metadata shows the topic).
func topicShape(t *testing.T, brokers []string, topic string) (partitions, rf int, retention string) {
	t.Helper()
	cl, adm := adminClient(t, brokers)
	d := waitTopicVisible(t, cl, topic)
	ctx := testCtx(t, 30*time.Second)
	configs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	rc, err := configs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("DescribeTopicConfigs(%s): %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			retention = *c.Value
		}
	}
	return int(d.partitions), int(d.replicas), retention
}

func TestEnsureCreatesTopicWithPartitionsAndRetention(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	_, topic := ensureChannel(t, b, channel.Spec{Partitions: 4, ReplicationFactor: 1, Retention: 2 * time.Hour})
	if !strings.HasPrefix(topic, "eventgate.kafkatest.ch-") {
		t.Errorf("topic %q does not follow the default template", topic)
	}
	p, rf, ret := topicShape(t, brokers, topic)
	if p != 4 || rf != 1 || ret != "7200000" {
		t.Errorf("topic shape = %d partitions, rf %d, retention.ms %q; want 4, 1, 7200000", p, rf, ret)
	}
}

func TestEnsureDefaultsAndTemplate(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, func(c *Config) {
		c.TopicTemplate = "custom-{{.Namespace}}-{{.Name}}"
		c.DefaultPartitions = 2
	})
	_, topic := ensureChannel(t, b, channel.Spec{})
	if !strings.HasPrefix(topic, "custom-kafkatest-ch-") {
		t.Errorf("topic %q does not follow the configured template", topic)
	}
	if p, rf, _ := topicShape(t, brokers, topic); p != 2 || rf != 1 {
		t.Errorf("topic has %d partitions, rf %d; want the defaults 2, 1", p, rf)
	}
}

func TestEnsureRaisesPartitionsAndUpdatesRetention(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 2, Retention: time.Hour})
	if err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 5, Retention: 3 * time.Hour}); err != nil {
		t.Fatalf("Ensure with more partitions: %v", err)
	}
	// Metadata may lag the admin answer by a moment on a real cluster.
	eventually(t, 20*time.Second, "5 partitions and retention 3h", func() bool {
		p, _, ret := topicShape(t, brokers, topic)
		return p == 5 && ret == "10800000"
	})
	// Repeating the same spec changes nothing and is not an error.
	if err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 5, Retention: 3 * time.Hour}); err != nil {
		t.Fatalf("Ensure again: %v", err)
	}
}

func TestEnsureReportsLowerPartitionsAndChangedReplication(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 4})

	err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 2})
	if !errors.Is(err, ErrSpecConflict) || !strings.Contains(err.Error(), "4 partitions") {
		t.Errorf("Ensure with fewer partitions: err = %v, want ErrSpecConflict naming the 4 partitions", err)
	}
	err = b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 4, ReplicationFactor: 3})
	if !errors.Is(err, ErrSpecConflict) || !strings.Contains(err.Error(), "replication factor 1") {
		t.Errorf("Ensure with another replication factor: err = %v, want ErrSpecConflict naming factor 1", err)
	}
	if p, rf, _ := topicShape(t, brokers, topic); p != 4 || rf != 1 {
		t.Errorf("topic changed to %d partitions, rf %d; want 4, 1 untouched", p, rf)
	}
	// The channel stays usable.
	if err := b.Publish(testCtx(t, 30*time.Second), ref, []*event.Event{conformance.NewEvent("still-usable", "")}); err != nil {
		t.Errorf("Publish after a conflicting Ensure: %v", err)
	}
}

func TestRemoveKeepsTopicUnlessConfigured(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, func(c *Config) { c.DeleteTopicsOnRemove = false })
	ref := channel.Ref{Namespace: "kafkatest", Name: conformance.UniqueName(t, "ch-")}
	topic, _ := b.TopicName(ref)
	if err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	cl, adm := adminClient(t, brokers)
	t.Cleanup(func() { _, _ = adm.DeleteTopic(context.Background(), topic) })
	if err := b.Remove(testCtx(t, 30*time.Second), ref); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := b.Publish(testCtx(t, 30*time.Second), ref, []*event.Event{conformance.NewEvent("x", "")}); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Publish after Remove: err = %v, want ErrNotFound", err)
	}
	// The topic is still there (waitTopicVisible fails the test if it never shows).
	waitTopicVisible(t, cl, topic)
}

func TestPublishFailsFastWhenBrokerGone(t *testing.T) {
	// A kfake cluster that disappears after the channel is ensured: the broker is gone for real.
	cluster := fakeCluster(t)
	const timeout = time.Second
	b := newBackend(t, cluster.ListenAddrs(), func(c *Config) { c.ProduceTimeout = timeout })
	ref := channel.Ref{Namespace: "kafkatest", Name: "broker-gone"}
	if err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if err := b.Publish(testCtx(t, 30*time.Second), ref, []*event.Event{conformance.NewEvent("before", "")}); err != nil {
		t.Fatalf("Publish while the broker is up: %v", err)
	}
	cluster.Close()

	start := time.Now()
	err := b.Publish(testCtx(t, 30*time.Second), ref, []*event.Event{conformance.NewEvent("after", "")})
	elapsed := time.Since(start)
	if !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Publish with the broker gone: err = %v, want ErrUnavailable", err)
	}
	if elapsed > timeout+2*time.Second {
		t.Errorf("Publish took %v, want at most ProduceTimeout (%v) plus slack", elapsed, timeout)
	}
	if err := b.Ready(testCtx(t, 30*time.Second)); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Ready with the broker gone: err = %v, want ErrUnavailable", err)
	}
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestPublishToClosedPortReturnsWithinTimeout(t *testing.T) {
	const timeout = 800 * time.Millisecond
	b := newBackend(t, []string{closedPort(t)}, func(c *Config) { c.ProduceTimeout = timeout })
	ref := channel.Ref{Namespace: "kafkatest", Name: "nobody-home"}
	// Ensure needs a broker; the channel is made known directly, as if ensured before the broker left.
	topic, _ := b.TopicName(ref)
	b.remember(ref, topic)

	start := time.Now()
	err := b.Publish(context.Background(), ref, []*event.Event{conformance.NewEvent("e", "k")})
	if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
		t.Errorf("Publish took %v, want at most ProduceTimeout (%v) plus slack", elapsed, timeout)
	}
	if !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if err := b.Ready(context.Background()); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Ready: err = %v, want ErrUnavailable", err)
	}
	if err := b.Ensure(testCtx(t, 2*time.Second), channel.Spec{Ref: ref}); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Ensure: err = %v, want ErrUnavailable", err)
	}
}

func TestReady(t *testing.T) {
	b := newBackend(t, testBrokers(t), nil)
	if err := b.Ready(testCtx(t, 10*time.Second)); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

// produceRaw writes records to topic with an independent franz-go client.
func produceRaw(t *testing.T, brokers []string, rs ...*kgo.Record) {
	t.Helper()
	cl, _ := adminClient(t, brokers)
	if err := cl.ProduceSync(testCtx(t, 30*time.Second), rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// collect is a claim handler that records every event it receives and marks it done.
type collect struct {
	mu   sync.Mutex
	recs []channel.Record
}

func (c *collect) handle(cl channel.Claim) {
	for r := range cl.Records() {
		c.mu.Lock()
		c.recs = append(c.recs, r)
		c.mu.Unlock()
		cl.MarkDone(r.Offset)
	}
}

func (c *collect) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.recs))
	for i, r := range c.recs {
		out[i] = r.Event.ID
	}
	return out
}

func subscribe(t *testing.T, b *Backend, g channel.Group, h channel.ClaimHandler) *subscription {
	t.Helper()
	s, err := b.Subscribe(testCtx(t, 30*time.Second), g, h)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Subscription.Close: %v", err)
		}
	})
	return s.(*subscription)
}

func TestStructuredAndUndecodableRecordsFromOtherClients(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 1})
	structured := `{"specversion":"1.0","id":"structured-1","source":"/other/client","type":"com.example.other",` +
		`"datacontenttype":"application/json","data":{"hello":"world"}}`
	produceRaw(t, brokers,
		&kgo.Record{Topic: topic, Value: []byte("not a cloudevent")},
		&kgo.Record{Topic: topic, Value: []byte(structured),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")}}},
	)
	before := b.UndecodableRecords()
	c := &collect{}
	subscribe(t, b, channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}, c.handle)
	eventually(t, 30*time.Second, "the structured-mode event", func() bool { return len(c.ids()) == 1 })

	c.mu.Lock()
	r := c.recs[0]
	c.mu.Unlock()
	if r.Event.ID != "structured-1" || r.Event.Source != "/other/client" || r.Event.Type != "com.example.other" ||
		string(r.Event.Data) != `{"hello":"world"}` || r.Offset != 1 {
		t.Errorf("structured record decoded as offset %d %+v", r.Offset, r.Event)
	}
	if n := b.UndecodableRecords() - before; n != 1 {
		t.Errorf("undecodable records counted: %d, want 1", n)
	}
}

func TestRecordsCarryBindingForIndependentClient(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, topic := ensureChannel(t, b, channel.Spec{Partitions: 1})
	e := &event.Event{ID: "id-1", Source: "/src", SpecVersion: "1.0", Type: "com.example.t",
		DataContentType: "application/json", Subject: "subj", Data: []byte(`{"a":1}`)}
	e.SetExtension(event.PartitionKeyExtension, "the-key")
	e.SetExtension("traceparent", "00-abc-def-01")
	if err := b.Publish(testCtx(t, 30*time.Second), ref, []*event.Event{e}); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	rd := segkafka.NewReader(segkafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: 0, StartOffset: segkafka.FirstOffset, MaxWait: 200 * time.Millisecond,
	})
	defer rd.Close()
	m, err := rd.ReadMessage(testCtx(t, 30*time.Second))
	if err != nil {
		t.Fatalf("kafka-go ReadMessage: %v", err)
	}
	headers := make(map[string]string)
	for _, h := range m.Headers {
		headers[h.Key] = string(h.Value)
	}
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": "id-1", "ce_source": "/src", "ce_type": "com.example.t",
		"ce_subject": "subj", "ce_partitionkey": "the-key", "ce_traceparent": "00-abc-def-01",
		"content-type": "application/json",
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("header %s = %q, want %q (all: %v)", k, headers[k], v, headers)
		}
	}
	if string(m.Key) != "the-key" {
		t.Errorf("record key = %q, want the partitionkey", m.Key)
	}
	if string(m.Value) != `{"a":1}` {
		t.Errorf("record value = %q, want the data", m.Value)
	}
}

// TestBacklogStaysWithinBufferBound checks both memory bounds behind a stalled handler: a claim
// buffers at most MaxBufferedPerPartition records, and the subscription fetches about two fetch
// responses (FetchMaxPartitionBytes) ahead, the one whose surplus is pending for the claim and the
// client's next, rather than the whole backlog.
func TestBacklogStaysWithinBufferBound(t *testing.T) {
	brokers := testBrokers(t)
	const bound, backlog, chunk = 8, 6000, 100
	b := newBackend(t, brokers, func(c *Config) {
		c.MaxBufferedPerPartition = bound
		c.FetchMaxBytes = 16 << 10
		c.FetchMaxPartitionBytes = 16 << 10
	})
	ref, _ := ensureChannel(t, b, channel.Spec{Partitions: 1})
	evs := conformance.Events("e", backlog, nil)
	// In chunks, so that no record batch is much larger than a fetch may be.
	for i := 0; i < backlog; i += chunk {
		if err := b.Publish(testCtx(t, 30*time.Second), ref, evs[i:i+chunk]); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}

	// The handler takes a record only when the test hands it a token.
	tokens := make(chan struct{}, backlog)
	c := &collect{}
	h := func(cl channel.Claim) {
		for {
			select {
			case <-tokens:
			case <-cl.Context().Done():
				return
			}
			r, ok := <-cl.Records()
			if !ok {
				return
			}
			c.mu.Lock()
			c.recs = append(c.recs, r)
			c.mu.Unlock()
			cl.MarkDone(r.Offset)
		}
	}
	s := subscribe(t, b, channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}, h)

	// With the handler stalled, the claim's buffer fills and the rest of the first poll waits
	// pending; no claim wants records, so nothing is polled (nor paused: the only claim holds no
	// other back) and the client fetches no further than the fetch it holds.
	eventually(t, 30*time.Second, "the buffer to fill", func() bool {
		return s.maxQueued.Load() >= bound/2
	})
	if q := s.maxQueued.Load(); q > bound {
		t.Fatalf("a stalled claim buffered %d records, bound is %d", q, bound)
	}
	// While it stays stalled the client does not fetch on: two fetch responses or three (FetchMaxBytes
	// counts compressed bytes, so one holds several of these small batches), never the whole backlog,
	// as with the default 1 MiB per partition (watched for a second).
	const fetchBound = backlog / 2
	deadline := time.Now().Add(time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	for time.Now().Before(deadline) {
		if f := s.fetched.Load(); f > fetchBound {
			t.Fatalf("a stalled subscription fetched %d of %d records, want at most %d", f, backlog, fetchBound)
		}
		<-tick.C
	}
	tick.Stop()
	t.Logf("stalled: %d records fetched, %d pauses", s.fetched.Load(), s.pauses.Load())
	for range backlog {
		tokens <- struct{}{}
	}
	eventually(t, 60*time.Second, "the whole backlog", func() bool { return len(c.ids()) == backlog })
	if q := s.maxQueued.Load(); q > bound {
		t.Errorf("a claim buffered %d records, bound is %d", q, bound)
	}
	if got := c.ids(); !slices.Equal(got, conformance.IDs(evs)) {
		t.Errorf("backlog arrived out of order or incomplete")
	}
}

func TestLagReportsUncommittedRecords(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref, _ := ensureChannel(t, b, channel.Spec{Partitions: 1})
	if err := b.Publish(testCtx(t, 30*time.Second), ref, conformance.Events("e", 5, nil)); err != nil {
		t.Fatal(err)
	}
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}
	var seen sync.WaitGroup
	seen.Add(5)
	subscribe(t, b, g, func(cl channel.Claim) {
		for r := range cl.Records() {
			if r.Offset < 2 {
				cl.MarkDone(r.Offset) // offsets 0 and 1 done: commit point 2, lag 3
			}
			seen.Done()
		}
	})
	seen.Wait()
	var last []channel.LagSample
	eventually(t, 30*time.Second, "lag 3 on partition 0", func() bool {
		last = b.Lag(testCtx(t, 10*time.Second))
		return slices.Contains(last, channel.LagSample{Group: g, Partition: 0, Lag: 3})
	})
}

func TestSubscribeUnknownChannel(t *testing.T) {
	b := newBackend(t, testBrokers(t), nil)
	g := channel.Group{Channel: channel.Ref{Namespace: "kafkatest", Name: "never"}, Name: "g"}
	if _, err := b.Subscribe(context.Background(), g, func(channel.Claim) {}); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Subscribe to unknown channel: err = %v, want ErrNotFound", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		keys   []string
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, []string{"brokers"}},
		{"bad broker", func(c *Config) { c.Brokers = []string{"x:1", "nohost"} }, []string{"brokers[1]"}},
		{"bad templates", func(c *Config) { c.TopicTemplate, c.GroupTemplate = "{{.Nope}}", "{{" }, []string{"topicTemplate", "groupTemplate"}},
		{"illegal topic characters", func(c *Config) { c.TopicTemplate = "a/{{.Name}}" }, []string{"topicTemplate"}},
		{"negatives", func(c *Config) { c.ProduceTimeout, c.DefaultPartitions, c.MaxBufferedPerPartition = -1, -1, -1 },
			[]string{"produceTimeout", "defaultPartitions", "maxBufferedPerPartition"}},
		{"zeros", func(c *Config) {
			c.ProduceTimeout, c.DefaultPartitions, c.DefaultReplicationFactor, c.MaxBufferedPerPartition = 0, 0, 0, 0
			c.FetchMaxBytes, c.FetchMaxPartitionBytes, c.SessionTimeout = 0, 0, 0
		}, []string{"produceTimeout", "defaultPartitions", "defaultReplicationFactor", "maxBufferedPerPartition",
			"fetchMaxBytes", "fetchMaxPartitionBytes", "sessionTimeout"}},
		{"sasl", func(c *Config) { c.SASL = SASL{Mechanism: "GSSAPI"} }, []string{"sasl.mechanism", "sasl.username"}},
		{"fetch and session", func(c *Config) {
			c.FetchMaxBytes, c.FetchMaxPartitionBytes, c.SessionTimeout = 200<<20, -1, time.Millisecond
		}, []string{"fetchMaxBytes", "fetchMaxPartitionBytes", "sessionTimeout"}},
		{"compression", func(c *Config) { c.Compression = "brotli" }, []string{"compression"}},
		{"tls pair", func(c *Config) { c.TLS = TLS{Enabled: true, CertFile: "cert.pem"} }, []string{"tls.certFile"}},
		{"tls files missing", func(c *Config) { c.TLS = TLS{Enabled: true, CAFile: "/nonexistent/ca.pem"} }, []string{"tls.caFile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Brokers = []string{"x:1"}
			tt.mutate(&cfg)
			_, err := New(cfg, nil)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			for _, k := range tt.keys {
				if !strings.Contains(err.Error(), k+":") {
					t.Errorf("error %q does not name %s", err, k)
				}
			}
		})
	}
	cfg := DefaultConfig()
	cfg.Brokers, cfg.SASL = []string{"127.0.0.1:1"}, SASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	b.Close()
}

func TestHeartbeatInterval(t *testing.T) {
	for _, tt := range []struct{ session, want time.Duration }{
		{15 * time.Second, 5 * time.Second},
		{6 * time.Second, 2 * time.Second},
		{time.Second, time.Second / 3},
		{time.Minute, 5 * time.Second},
	} {
		if got := heartbeatInterval(tt.session); got != tt.want {
			t.Errorf("heartbeatInterval(%v) = %v, want %v", tt.session, got, tt.want)
		}
	}
}

func TestGroupNameTemplate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers, cfg.GroupTemplate = []string{"127.0.0.1:1"}, "eg.{{.Namespace}}.{{.Channel}}.{{.Name}}"
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	name, err := b.GroupName(channel.Group{Channel: channel.Ref{Namespace: "ns", Name: "ch"}, Name: "sub"})
	if err != nil || name != "eg.ns.ch.sub" {
		t.Errorf("GroupName = %q, %v; want eg.ns.ch.sub", name, err)
	}
	if _, err := b.GroupName(channel.Group{Channel: channel.Ref{Namespace: "ns", Name: "ch"}, Name: "bad name"}); err == nil {
		t.Error("GroupName accepted a space")
	}
}

// FuzzValidName checks validName's invariants: it never panics, and a name it accepts is 1 to 249
// bytes of [a-zA-Z0-9._-] and not "." or "..".
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"eventgate.default.orders", "", ".", "..", "a/b", strings.Repeat("x", 250), "ä", "A_b-9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > 249 || name == "." || name == ".." {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", r) {
				t.Fatalf("accepted %q with %q", name, strconv.QuoteRune(r))
			}
		}
	})
}

// A replication factor above the cluster's size is answered as one above the brokers available now:
// Ensure says so and the channel waits (a rolling restart answers the same for a while).
func TestEnsureReplicationFactorAboveTheClusterWaits(t *testing.T) {
	brokers := testBrokers(t)
	b := newBackend(t, brokers, nil)
	ref := channel.Ref{Namespace: "kafkatest", Name: conformance.UniqueName(t, "ch-")}
	err := b.Ensure(testCtx(t, 30*time.Second), channel.Spec{Ref: ref, Partitions: 1, ReplicationFactor: 7})
	if err == nil {
		if realBrokers() == nil {
			t.Skip("kfake accepts a replication factor above its broker count")
		}
		t.Fatal("Ensure with replication factor 7 on a small cluster succeeded")
	}
	if !errors.Is(err, channel.ErrUnavailable) || errors.Is(err, ErrSpecConflict) || !strings.Contains(err.Error(), "replication factor 7") {
		t.Errorf("err = %v, want ErrUnavailable naming the replication factor", err)
	}
}
