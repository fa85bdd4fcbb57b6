package resources

import (
	"math"
	"slices"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
)

// Channel is a channel of any kind and apiVersion, resolved to a provisioner.
type Channel struct {
	Meta
	// Provisioner is ProvisionerInMemory, ProvisionerKafka or ProvisionerNATS.
	Provisioner string
	// Kafka settings (KafkaChannel, or a Channel templated on one); zero means the provisioner default.
	Partitions        int32
	ReplicationFactor int16
	Retention         time.Duration
	// Delivery is the channel's default delivery spec for its subscriptions (spec.delivery); nil when unset.
	Delivery *Delivery
	// Broker marks the channel that backs a broker (Set.BrokerChannel): Meta is the broker's, and
	// Ref is channel.BrokerRef.
	Broker bool
}

// Ref returns the channel's identity for provisioners.
func (c *Channel) Ref() channel.Ref {
	if c.Broker {
		return channel.BrokerRef(c.Namespace, c.Name)
	}
	return channel.Ref{Namespace: c.Namespace, Name: c.Name}
}

// Spec returns what a provisioner needs to create or update the channel.
func (c *Channel) Spec() channel.Spec {
	return channel.Spec{Ref: c.Ref(), Partitions: c.Partitions, ReplicationFactor: c.ReplicationFactor,
		Retention: c.Retention}
}

func (c *Channel) meta() *Meta  { return &c.Meta }
func (c *Channel) addTo(s *Set) { s.Channels = append(s.Channels, c) }

// newChannel returns a channel of provisioner; a kafka channel's settings are read from kafkaSpec.
func newChannel(m *Meta, provisioner string, kafkaSpec val) *Channel {
	c := &Channel{Meta: *m, Provisioner: provisioner}
	if provisioner == ProvisionerKafka {
		decodeKafkaSettings(kafkaSpec, c)
	}
	return c
}

// decodeChannel decodes a channel kind that implies its provisioner (InMemoryChannel, KafkaChannel):
// the provisioner is its row's.
func decodeChannel(in input) resource {
	c := newChannel(in.m, in.kind.Runner.Provisioner, in.spec)
	c.Delivery = decodeDelivery(in.spec.field("delivery"), in.m.Namespace)
	return c
}

// decodeProvisionerChannel decodes eventing.knative.dev/v1alpha1 Channel: spec.provisioner.name.
func decodeProvisionerChannel(in input) resource {
	spec := in.spec
	prov := spec.field("provisioner")
	prov.isMap()
	switch name := prov.field("name").str(); name {
	case "":
		return newChannel(in.m, in.opt.DefaultProvisioner, val{})
	case "in-memory-channel", "in-memory":
		return newChannel(in.m, ProvisionerInMemory, val{})
	case "kafka":
		return newChannel(in.m, ProvisionerKafka, spec.field("arguments"))
	case "gcp-pubsub":
		return newChannel(in.m, ProvisionerPubSub, val{})
	case "natss":
		return newChannel(in.m, ProvisionerNATS, val{})
	default:
		spec.p.invalid(joinPath(prov.path, "name"), "provisioner %q is not supported (in-memory-channel, kafka, natss or gcp-pubsub)", name)
		return newChannel(in.m, in.opt.DefaultProvisioner, val{})
	}
}

// decodeTemplateChannel decodes messaging.knative.dev Channel: spec.channelTemplate names a channel
// kind that implies its provisioner; without one, the configured default.
func decodeTemplateChannel(in input) resource {
	spec := in.spec
	c := newChannel(in.m, in.opt.DefaultProvisioner, val{})
	tmpl := spec.field("channelTemplate")
	if tmpl.isMap() {
		kind := tmpl.field("kind").str()
		switch row := templateRow(kind); {
		case row != nil:
			c = newChannel(in.m, row.Runner.Provisioner, tmpl.field("spec"))
		case kind == "":
			spec.p.invalid(joinPath(tmpl.path, "kind"), "missing (%s)", alternatives(templateKinds()))
		default:
			spec.p.invalid(joinPath(tmpl.path, "kind"), "%q is not supported (%s)", kind, alternatives(templateKinds()))
		}
	}
	c.Delivery = decodeDelivery(spec.field("delivery"), in.m.Namespace)
	return c
}

// decodeKafkaSettings reads a KafkaChannel's spec: numPartitions, replicationFactor, retentionDuration.
func decodeKafkaSettings(spec val, c *Channel) {
	if !spec.isMap() {
		return
	}
	if n, ok := spec.field("numPartitions").integer(1, math.MaxInt32); ok {
		c.Partitions = int32(n)
	}
	if n, ok := spec.field("replicationFactor").integer(1, math.MaxInt16); ok {
		c.ReplicationFactor = int16(n)
	}
	rd := spec.field("retentionDuration")
	if d := rd.duration(); d != nil {
		if *d <= 0 {
			spec.p.invalid(rd.path, "must be longer than zero")
		}
		c.Retention = *d
	}
}

func (c *Channel) validate(p *problems) {
	validateMeta(p)
	if !slices.Contains(provisioners(), c.Provisioner) {
		p.invalid("spec", "provisioner %q is not %s", c.Provisioner, alternatives(quoted(provisioners())))
	}
	if c.Partitions < 0 {
		p.invalid("spec.numPartitions", "must not be negative")
	}
	if c.ReplicationFactor < 0 {
		p.invalid("spec.replicationFactor", "must not be negative")
	}
	if c.Retention < 0 {
		p.invalid("spec.retentionDuration", "must not be negative")
	}
	if c.Provisioner != ProvisionerKafka && (c.Partitions != 0 || c.ReplicationFactor != 0 || c.Retention != 0) {
		p.invalid("spec", "partitions, replication factor and retention apply to kafka channels only")
	}
	validateDelivery(p, "spec.delivery", c.Delivery)
}
