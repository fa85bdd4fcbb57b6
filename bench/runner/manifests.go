package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

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

func subscription(name, kind, channel, uri string) string {
	api := "messaging.knative.dev/v1"
	if kind == "KafkaChannel" {
		api = "messaging.knative.dev/v1beta1"
	}
	return fmt.Sprintf(`apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: %s
  namespace: bench
  annotations:
    eventgate.dev/initial-offset: earliest
spec:
  channel:
    apiVersion: %s
    kind: %s
    name: %s
  subscriber:
    uri: %s
---
`, name, api, kind, channel, uri)
}

func (r *runner) topic(channel string) string {
	t := "eventgate.bench." + channel
	r.topics = append(r.topics, t)
	return t
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
