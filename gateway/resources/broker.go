package resources

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

// Broker classes (annotation eventing.knative.dev/broker.class).
const (
	// BrokerClassKafka is backed by a Kafka topic.
	BrokerClassKafka = "Kafka"
	// BrokerClassChannel is backed by the configured default channel backend; so is a broker with no
	// class, and one of class "eventgate".
	BrokerClassChannel = "MTChannelBasedBroker"
	// BrokerClassEventgate is eventgate's own class: the configured default backend.
	BrokerClassEventgate = "eventgate"
)

// AnnotationBrokerClass names a broker's class.
const AnnotationBrokerClass = "eventing.knative.dev/broker.class"

// The keys of a Kafka broker's config ConfigMap (Knative's kafka-broker-config) that eventgate reads.
const (
	brokerConfigPartitions  = "default.topic.partitions"
	brokerConfigReplication = "default.topic.replication.factor"
	brokerConfigRetentionMs = "default.topic.retention.ms"
)

// Broker is a broker: a channel underneath (its backing channel is channel.BrokerRef), events posted
// to it reach every trigger whose filter passes them.
type Broker struct {
	Meta
	// Class is the broker class as written ("" when not annotated).
	Class string
	// Provisioner is ProvisionerKafka for class Kafka, else the configured default.
	Provisioner string
	// Config is spec.config (a ConfigMap with the topic settings of a Kafka broker); nil when unset.
	Config *Reference
	// Delivery is spec.delivery, the default of the broker's triggers; nil when unset.
	Delivery *Delivery
}

// Ref returns the channel that backs the broker.
func (b *Broker) Ref() channel.Ref { return channel.BrokerRef(b.Namespace, b.Name) }

func (b *Broker) meta() *Meta  { return &b.Meta }
func (b *Broker) addTo(s *Set) { s.Brokers = append(s.Brokers, b) }

func decodeBroker(in input) resource {
	m, spec := in.m, in.spec
	b := &Broker{Meta: *m, Class: m.Annotations[AnnotationBrokerClass], Provisioner: in.opt.DefaultProvisioner}
	if b.Class == BrokerClassKafka {
		b.Provisioner = ProvisionerKafka
	}
	if spec.isMap() {
		b.Config = decodeRef(spec.field("config"), m.Namespace)
		b.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)
	}
	return b
}

func (b *Broker) validate(p *problems) {
	validateMeta(p)
	switch b.Class {
	case "", BrokerClassKafka, BrokerClassChannel, BrokerClassEventgate:
	default:
		p.invalid(annotationPath(AnnotationBrokerClass), "%q is not a broker class eventgate runs (%s, %s or %s)",
			truncate(b.Class, 40), BrokerClassKafka, BrokerClassChannel, BrokerClassEventgate)
	}
	if b.Config != nil {
		validateRef(p, "spec.config", b.Config)
		if b.Config.Kind != "" && b.Config.Kind != "ConfigMap" {
			p.invalid("spec.config.kind", "%q is not ConfigMap", truncate(b.Config.Kind, 40))
		}
	}
	validateDelivery(p, "spec.delivery", b.Delivery)
}

// Broker returns the broker named name in namespace, or nil.
func (s *Set) Broker(namespace, name string) *Broker {
	for _, b := range s.Brokers {
		if b.Namespace == namespace && b.Name == name {
			return b
		}
	}
	return nil
}

// configMap returns the data of the ConfigMap ref names, and whether the set holds it.
func (s *Set) configMap(ref *Reference) (map[string]string, bool) {
	for _, u := range s.Unmanaged {
		if u.Kind == "ConfigMap" && u.Namespace == ref.Namespace && u.Name == ref.Name {
			return u.Data, true
		}
	}
	return nil, false
}

// BrokerChannel returns the channel that backs b, as provisioners create it: a Kafka broker's
// partitions, replication factor and retention come from its spec.config ConfigMap when the set holds
// it (keys default.topic.partitions, default.topic.replication.factor, default.topic.retention.ms),
// else from the provisioner's defaults. Its Delivery is the broker's.
func (s *Set) BrokerChannel(b *Broker) *Channel {
	c := &Channel{Meta: b.Meta, Provisioner: b.Provisioner, Delivery: b.Delivery, Broker: true}
	if b.Provisioner != ProvisionerKafka || b.Config == nil {
		return c
	}
	data, _ := s.configMap(b.Config)
	if n, err := strconv.ParseInt(strings.TrimSpace(data[brokerConfigPartitions]), 10, 32); err == nil && n > 0 {
		c.Partitions = int32(n)
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(data[brokerConfigReplication]), 10, 16); err == nil && n > 0 {
		c.ReplicationFactor = int16(n)
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(data[brokerConfigRetentionMs]), 10, 64); err == nil && n > 0 &&
		n < math.MaxInt64/int64(time.Millisecond) {
		c.Retention = time.Duration(n) * time.Millisecond
	}
	return c
}

// checkBrokerConfig reports the problems of b's config ConfigMap: one the set holds with values that
// are not positive integers.
func (s *Set) checkBrokerConfig(b *Broker, p *problems) {
	if b.Config == nil || b.Config.Kind != "ConfigMap" {
		return
	}
	data, ok := s.configMap(b.Config)
	if !ok {
		return // not in the manifests: the provisioner's defaults
	}
	for _, k := range []string{brokerConfigPartitions, brokerConfigReplication, brokerConfigRetentionMs} {
		v, ok := data[k]
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil || n < 1 {
			p.invalid("spec.config", "ConfigMap %s/%s: %s: %q is not a positive integer", b.Config.Namespace,
				b.Config.Name, k, truncate(v, 40))
		}
	}
}
