package resources

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/filter"
)

func loadBrokers(t *testing.T, file string) (*Set, error) {
	t.Helper()
	return Load([]string{filepath.Join("testdata", "brokers", file)}, Options{})
}

func TestDecodeBrokersAndTriggers(t *testing.T) {
	s, err := loadBrokers(t, "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Brokers) != 2 || len(s.Triggers) != 3 || len(s.Unmanaged) != 1 {
		t.Fatalf("decoded %d brokers, %d triggers, %d unmanaged", len(s.Brokers), len(s.Triggers), len(s.Unmanaged))
	}
	orders, def := s.Broker("shop", "orders"), s.Broker("shop", "default")
	if orders == nil || def == nil {
		t.Fatal("brokers shop/orders and shop/default not found")
	}
	if orders.Class != BrokerClassKafka || orders.Provisioner != ProvisionerKafka {
		t.Errorf("orders: class %q provisioner %q", orders.Class, orders.Provisioner)
	}
	if def.Class != "" || def.Provisioner != ProvisionerInMemory {
		t.Errorf("default: class %q provisioner %q, want the default provisioner", def.Class, def.Provisioner)
	}
	c := s.BrokerChannel(orders)
	if c.Ref() != channel.BrokerRef("shop", "orders") || c.Partitions != 6 || c.ReplicationFactor != 3 {
		t.Errorf("orders channel: %v, %d partitions, replication %d", c.Ref(), c.Partitions, c.ReplicationFactor)
	}
	if got := s.Channel(channel.BrokerRef("shop", "orders")); got == nil || got.Delivery != orders.Delivery {
		t.Errorf("Set.Channel of the broker's ref = %+v", got)
	}
	if s.Channel(channel.Ref{Namespace: "shop", Name: "orders"}) != nil {
		t.Error("a broker is not a channel of its own name")
	}

	created := s.Triggers[0]
	if created.Broker != "orders" || created.Order != Ordered || created.InitialOffset != channel.Earliest {
		t.Errorf("created: %+v", created)
	}
	if !reflect.DeepEqual(created.Attributes, map[string]string{"type": "com.example.order.created", "region": ""}) {
		t.Errorf("created attributes %v", created.Attributes)
	}
	// The trigger's delivery falls back to its broker's.
	if d := s.DeliveryFor(created.Subscription()); d != orders.Delivery {
		t.Errorf("created delivery %+v, want the broker's", d)
	}
	sub := created.Subscription()
	if sub.Name != "trigger.created" || sub.ChannelRef() != channel.BrokerRef("shop", "orders") ||
		sub.Reply == nil || sub.Reply.Ref == nil || !sub.Reply.Ref.IsBroker() {
		t.Errorf("created runs as %+v", sub)
	}

	dialects := s.Triggers[1]
	want := []filter.Spec{
		{Exact: map[string]string{"type": "com.example.order.created"}},
		{Prefix: map[string]string{"source": "/orders/"}},
		{Suffix: map[string]string{"subject": ".json"}},
		{All: []filter.Spec{{Exact: map[string]string{"region": "eu"}}, {Not: &filter.Spec{Exact: map[string]string{"tenant": "test"}}}}},
		{Any: []filter.Spec{{CESQL: "type LIKE 'com.example.%'"}, {Prefix: map[string]string{"type": "org."}}}},
		{CESQL: "source LIKE '%commerce%' AND type IN ('order.created', 'order.updated')"},
	}
	if !reflect.DeepEqual(dialects.Filters, want) {
		t.Errorf("dialects filters\n got %+v\nwant %+v", dialects.Filters, want)
	}
	if d := s.DeliveryFor(dialects.Subscription()); d == nil || d.Retry == nil || *d.Retry != 1 || d.DeadLetterSink != nil {
		t.Errorf("dialects delivery %+v, want its own whole", d)
	}
	// filters overrides filter.attributes: the attributes say another type.
	f, err := dialects.Filter()
	if err != nil {
		t.Fatal(err)
	}
	e := &event.Event{ID: "1", SpecVersion: "1.0", Type: "com.example.order.created", Source: "/orders/commerce",
		Subject: "x.json", Extensions: map[string]string{"region": "eu"}}
	if f.Pass(e) {
		t.Error("the cesql entry requires type IN ('order.created', 'order.updated'): should not pass")
	}

	forward := s.Triggers[2]
	r := &Resolver{}
	target, err := r.Resolve(*forward.Subscriber)
	if err != nil || target.Channel == nil || *target.Channel != channel.BrokerRef("shop", "orders") {
		t.Errorf("a ref to a Broker resolves to %v, %v; want the broker's channel", target, err)
	}
	if target.String() != "broker shop/orders" {
		t.Errorf("target %q", target)
	}

	lines := Describe(s, &Resolver{IngressURL: "http://127.0.0.1:8080"})
	joined := strings.Join(lines, "\n")
	for _, w := range []string{
		"Broker shop/orders → ingress http://127.0.0.1:8080/shop/orders (Kafka, kafka, 6 partitions, replication factor 3, dead letter http://dls.shop.svc.cluster.local)",
		"Broker shop/default → ingress http://127.0.0.1:8080/shop/default (MTChannelBasedBroker, inmemory)",
		"Trigger shop/created → subscriber http://created.shop.svc.cluster.local (broker shop/orders, filter attributes: 2, dead letter http://dls.shop.svc.cluster.local, ordered)",
		"Trigger shop/dialects → subscriber http://dialects.example.com/ (broker shop/orders, filter filters: 6)",
		"Trigger shop/forward → subscriber broker shop/orders (broker shop/default, filter none)",
		"ConfigMap shop/kafka-broker-config: not managed",
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("Describe lacks %q:\n%s", w, joined)
		}
	}
}

func TestBrokerAndTriggerProblems(t *testing.T) {
	tests := []struct {
		file string
		want []string // each a substring of one problem
	}{
		{"bad-cesql.yaml", []string{
			`bad-cesql.yaml: document 2 (Trigger default/t): spec.filters[1].any[0].cesql: "type = 'a' AND" is not a CESQL expression: `,
		}},
		{"bad-dialects.yaml", []string{
			`spec.filters[0].exact: must name exactly one attribute, not 2`,
			`spec.filters[1]: one filter dialect per entry, not prefix and suffix`,
			`spec.filters[2].regex: unknown filter dialect`,
			`spec.filters[3]: no filter dialect`,
			`spec.filters[4].exact["Type"]: "Type" is not a CloudEvents attribute name`,
			`spec.filter.attributes["Bad-Name"]: "Bad-Name" is not a CloudEvents attribute name`,
			`(Trigger default/nulls): spec.filters[0].not: missing (null)`,
			`(Trigger default/nulls): spec.filters[1].all[0].cesql: missing (null)`,
		}},
		{"bad-annotations.yaml", []string{
			`document 2 (Trigger default/t): metadata.annotations["eventgate.dev/initial-offset"]: "middle" is not earliest or latest`,
			`metadata.annotations["kafka.eventing.knative.dev/delivery.order"]: "sideways" is not ordered or unordered`,
			`metadata.annotations["eventgate.dev/min-concurrency"]: 5 is more than eventgate.dev/max-concurrency 2`,
			`spec.subscriber: missing uri or ref`,
			`spec.delivery.retry: must be between 0 and 2147483647, not -1`,
		}},
		{"name-clash.yaml", []string{
			`name-clash.yaml: document 2 (Broker default/events): metadata.name: InMemoryChannel default/events is already defined at testdata/brokers/name-clash.yaml document 1`,
			`document 3 (Trigger default/t): spec.broker: Broker default/missing is not defined`,
			`document 3 (Trigger default/t): spec.delivery.deadLetterSink.ref: Broker default/nowhere is not defined`,
			`document 4 (Broker default/odd): metadata.annotations["eventing.knative.dev/broker.class"]: "SomethingElse" is not a broker class`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadBrokers(t, tt.file)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("missing problem %q in:\n%s", w, msg)
				}
			}
			if n, w := strings.Count(msg, "\n")+1, len(tt.want); n != w {
				t.Errorf("%d problems, want %d:\n%s", n, w, msg)
			}
			var rerr *Error
			if !errors.As(err, &rerr) {
				t.Errorf("problems are not *Error: %T", err)
			}
		})
	}
}

func TestBrokerConfigValues(t *testing.T) {
	src := `
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: b, annotations: {eventing.knative.dev/broker.class: Kafka}}
spec:
  config: {apiVersion: v1, kind: ConfigMap, name: cfg}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {default.topic.partitions: "many", default.topic.retention.ms: "60000"}
`
	s, err := Decode("b.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Validate()
	if err == nil || !strings.Contains(err.Error(), `spec.config: ConfigMap default/cfg: default.topic.partitions: "many" is not a positive integer`) {
		t.Fatalf("Validate = %v", err)
	}
	if c := s.BrokerChannel(s.Brokers[0]); c.Retention != time.Minute || c.Partitions != 0 {
		t.Errorf("channel %+v", c)
	}
}
