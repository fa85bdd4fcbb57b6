package resources

import (
	"cmp"
	"fmt"
	"reflect"
	"strings"
)

// Describe returns one line per resource, channels first, then subscriptions, brokers, triggers,
// sources and unmanaged resources, each in the order read: what `eventgate validate` prints. For
// example:
//
//	Channel default/demo → ingress http://127.0.0.1:8080/default/demo (inmemory)
//	Subscription default/sub → subscriber http://sub.default.svc.cluster.local (channel default/demo, reply channel default/out, dead letter http://dls)
//	Subscription default/json → subscriber https://json.example (CACerts: 1 certificate) (channel default/demo, structured mode)
//	Broker default/events → ingress http://127.0.0.1:8080/default/events (MTChannelBasedBroker, inmemory)
//	Trigger default/orders → subscriber http://orders.default.svc.cluster.local (broker default/events, filter filters: 1)
//	GitHubSource default/gh → webhook http://127.0.0.1:8080/sources/default/gh, sink channel default/demo
//	Service default/x: not managed
//
// A destination that does not resolve is shown as "unresolved (reason)".
func Describe(s *Set, r *Resolver) []string {
	var out []string
	for _, c := range s.Channels {
		detail := c.Provisioner
		if c.Partitions > 0 {
			detail += fmt.Sprintf(", %d partitions", c.Partitions)
		}
		if c.ReplicationFactor > 0 {
			detail += fmt.Sprintf(", replication factor %d", c.ReplicationFactor)
		}
		if c.Retention > 0 {
			detail += fmt.Sprintf(", retention %v", c.Retention)
		}
		out = append(out, fmt.Sprintf("%s %s → ingress %s (%s)", c.Kind, c.NamespacedName(), r.ChannelAddress(c), detail))
	}
	for _, x := range s.Subscriptions {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s → ", x.Kind, x.NamespacedName())
		if x.Subscriber != nil {
			b.WriteString("subscriber " + describeDest(r, *x.Subscriber))
		} else {
			b.WriteString("no subscriber")
		}
		extra := []string{"channel " + x.ChannelRef().String()}
		if x.Reply != nil {
			extra = append(extra, "reply "+describeDest(r, *x.Reply))
		}
		extra = append(extra, describeDelivery(r, s.DeliveryFor(x))...)
		if x.Order == Ordered {
			extra = append(extra, "ordered")
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(extra, ", "))
		out = append(out, b.String())
	}
	for _, b := range s.Brokers {
		c := s.BrokerChannel(b)
		detail := cmp.Or(b.Class, BrokerClassChannel) + ", " + c.Provisioner
		if c.Partitions > 0 {
			detail += fmt.Sprintf(", %d partitions", c.Partitions)
		}
		if c.ReplicationFactor > 0 {
			detail += fmt.Sprintf(", replication factor %d", c.ReplicationFactor)
		}
		if b.Delivery != nil && b.Delivery.DeadLetterSink != nil {
			detail += ", dead letter " + describeDest(r, *b.Delivery.DeadLetterSink)
		}
		out = append(out, fmt.Sprintf("Broker %s → ingress %s (%s)", b.NamespacedName(), r.BrokerAddress(b), detail))
	}
	for _, t := range s.Triggers {
		var b strings.Builder
		fmt.Fprintf(&b, "Trigger %s → ", t.NamespacedName())
		if t.Subscriber != nil {
			b.WriteString("subscriber " + describeDest(r, *t.Subscriber))
		} else {
			b.WriteString("no subscriber")
		}
		extra := []string{"broker " + t.Namespace + "/" + t.Broker, "filter " + describeFilter(t)}
		extra = append(extra, describeDelivery(r, s.DeliveryFor(t.Subscription()))...)
		if t.Order == Ordered {
			extra = append(extra, "ordered")
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(extra, ", "))
		out = append(out, b.String())
	}
	for _, x := range s.Sources {
		line := fmt.Sprintf("%s %s → ", x.Kind, x.NamespacedName())
		if w := r.WebhookAddress(x); w != "" {
			line += "webhook " + w + ", "
		}
		out = append(out, line+"sink "+describeDest(r, x.Sink))
	}
	for _, u := range s.Unmanaged {
		name := u.Name
		if name == "" {
			name = "(unnamed)"
		}
		out = append(out, fmt.Sprintf("%s %s/%s: not managed", u.Kind, u.Namespace, name))
	}
	return out
}

// describeFilter summarises a trigger's filter: which form is in force and how many entries it has.
func describeFilter(t *Trigger) string {
	switch {
	case len(t.Filters) > 0:
		return fmt.Sprintf("filters: %d", len(t.Filters))
	case len(t.Attributes) > 0:
		return fmt.Sprintf("attributes: %d", len(t.Attributes))
	default:
		return "none"
	}
}

// describeDelivery is what a delivery spec adds to a subscription's line: its dead letter, and
// structured mode when its format is json.
func describeDelivery(r *Resolver, d *Delivery) []string {
	var out []string
	if d != nil && d.DeadLetterSink != nil {
		out = append(out, "dead letter "+describeDest(r, *d.DeadLetterSink))
	}
	if d != nil && d.Format == FormatJSON {
		out = append(out, "structured mode")
	}
	return out
}

// describeDest is where d goes, and how many CA certificates of its own are trusted for it.
func describeDest(r *Resolver, d Destination) string {
	t, err := r.Resolve(d)
	if err != nil {
		return fmt.Sprintf("unresolved (%v)", err)
	}
	if certs, err := ParseCACerts(t.CACerts); err == nil {
		if len(certs) == 1 {
			return fmt.Sprintf("%s (CACerts: 1 certificate)", t)
		}
		return fmt.Sprintf("%s (CACerts: %d certificates)", t, len(certs))
	}
	return t.String()
}

// Key returns the channel's identity across reloads: "NAMESPACE/NAME" (channels of every kind share
// one namespace of names).
func (c *Channel) Key() string { return c.NamespacedName() }

// Key returns the subscription's identity across reloads: "NAMESPACE/NAME".
func (s *Subscription) Key() string { return s.NamespacedName() }

// Key returns the trigger's identity across reloads: "NAMESPACE/NAME".
func (t *Trigger) Key() string { return t.NamespacedName() }

// Key returns the source's identity across reloads: "KIND/NAMESPACE/NAME".
func (s *Source) Key() string { return s.Kind + "/" + s.NamespacedName() }

// Equal reports whether c and o configure the same channel: everything but where they were read
// from, their kind, apiVersion and annotations. A reload needs to act on a channel only when it is not Equal.
func (c *Channel) Equal(o *Channel) bool {
	a, b := *c, *o
	a.Meta = Meta{Namespace: c.Namespace, Name: c.Name}
	b.Meta = Meta{Namespace: o.Namespace, Name: o.Name}
	return reflect.DeepEqual(a, b)
}

// Equal reports whether s and o configure the same subscription: everything but where they were read
// from, their apiVersion and annotations other than the ones eventgate reads (whose effect is in the
// typed fields).
func (s *Subscription) Equal(o *Subscription) bool {
	a, b := *s, *o
	a.Meta, b.Meta = identity(s.Meta), identity(o.Meta)
	return reflect.DeepEqual(a, b)
}

// Equal reports whether s and o configure the same source (see Subscription.Equal); the
// eventgate.dev/unauthenticated annotation counts, through GitHubSpec.Unauthenticated.
func (s *Source) Equal(o *Source) bool {
	a, b := *s, *o
	a.Meta, b.Meta = identity(s.Meta), identity(o.Meta)
	return reflect.DeepEqual(a, b)
}

// identity keeps what names a resource, dropping where it came from.
func identity(m Meta) Meta {
	return Meta{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name}
}
