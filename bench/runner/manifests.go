package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func inMemoryChannel(name string) string {
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata:
  name: %s
  namespace: bench
---
`, name)
}

func kafkaChannel(name string) string {
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata:
  name: %s
  namespace: bench
spec:
  numPartitions: 3
  replicationFactor: 1
---
`, name)
}

// natsChannel is eventing-natss' kind; the NATS provisioner gives it nats.defaultPartitions (3)
// partitions, as many as the Kafka channels have.
func natsChannel(name string) string {
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
metadata:
  name: %s
  namespace: bench
---
`, name)
}

// subscription is a Subscription of channel (of kind) to uri that starts at the earliest offset, with
// further annotations ("key: value" each).
func subscription(name, kind, channel, uri string, annotations ...string) string {
	api := "messaging.knative.dev/v1"
	switch kind {
	case "KafkaChannel":
		api = "messaging.knative.dev/v1beta1"
	case "NatsJetStreamChannel":
		api = "messaging.knative.dev/v1alpha1"
	}
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: %s
  namespace: bench
  annotations:
    eventgate.dev/initial-offset: earliest
%sspec:
  channel:
    apiVersion: %s
    kind: %s
    name: %s
  subscriber:
    uri: %s
---
`, name, annotationLines(annotations), api, kind, channel, uri)
}

// annotationLines is annotations ("key: value" each) as lines of a manifest's metadata.annotations.
func annotationLines(annotations []string) string {
	var b strings.Builder
	for _, a := range annotations {
		b.WriteString("    " + a + "\n")
	}
	return b.String()
}

func (r *runner) topic(channel string) string {
	t := "eventgate.bench." + channel
	r.topics = append(r.topics, t)
	return t
}

// stream records a NATS channel's stream (its name under the provisioner's default template) for
// deletion at the end of the run, and returns it.
func (r *runner) stream(channel string) string {
	s := "EVENTGATE_bench_" + channel
	r.streams = append(r.streams, s)
	return s
}

// deleteStreams removes the streams this run created (eventgate's and the baselines').
func (r *runner) deleteStreams() {
	if !r.nats || len(r.streams) == 0 {
		return
	}
	nc, err := nats.Connect(r.s.nats)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slices.Sort(r.streams)
	for _, s := range slices.Compact(r.streams) {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			fmt.Fprintln(os.Stderr, "deleting bench stream", s+":", err)
		}
	}
}

// deleteTopics removes the topics this run created, so repeated runs do not fill the broker.
func (r *runner) deleteTopics() {
	if !r.kafka || len(r.topics) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.s.brokers))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slices.Sort(r.topics)
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, slices.Compact(r.topics)...); err != nil {
		fmt.Fprintln(os.Stderr, "deleting bench topics:", err)
	}
}

// kafkaBroker is a Broker of the Kafka class (kafka.defaultPartitions partitions: 3).
func kafkaBroker(name string) string {
	return fmt.Sprintf(`apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: %s
  namespace: bench
  annotations: {eventing.knative.dev/broker.class: Kafka}
---
`, name)
}

// trigger is a Trigger on broker to uri, passing events of type typ, that starts at the earliest
// offset, with further annotations ("key: value" each).
func trigger(name, broker, typ, uri string, annotations ...string) string {
	return fmt.Sprintf(`apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: %s
  namespace: bench
  annotations:
    eventgate.dev/initial-offset: earliest
%sspec:
  broker: %s
  filter: {attributes: {type: %s}}
  subscriber:
    uri: %s
---
`, name, annotationLines(annotations), broker, typ, uri)
}
