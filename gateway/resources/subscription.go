package resources

import (
	"strings"

	"github.com/eventgate/eventgate/gateway/channel"
)

// DeliveryOrder is a subscription's ordering (annotation kafka.eventing.knative.dev/delivery.order).
type DeliveryOrder string

const (
	// Unordered delivers concurrently; retries never block a partition. The default.
	Unordered DeliveryOrder = "unordered"
	// Ordered delivers one event at a time per partition, in order.
	Ordered DeliveryOrder = "ordered"
)

// Subscription links a channel to a subscriber.
type Subscription struct {
	Meta
	// Channel is the subscribed channel; a channel is identified by namespace and name whatever its kind.
	Channel Reference
	// Subscriber receives the events; nil when the subscription only forwards to Reply.
	Subscriber *Destination
	// Reply receives the subscriber's replies; nil when none (replies are dropped and counted).
	Reply *Destination
	// Delivery is the subscription's own delivery spec; nil when unset (see Set.DeliveryFor).
	Delivery *Delivery
	// Order defaults to Unordered.
	Order DeliveryOrder
	// InitialOffset is where a new consumer group starts; defaults to channel.Latest.
	InitialOffset channel.StartOffset
	// MinConcurrency and MaxConcurrency bound in-flight deliveries; 0 means the dispatcher default.
	MinConcurrency int
	MaxConcurrency int
}

// ChannelRef returns the subscribed channel.
func (s *Subscription) ChannelRef() channel.Ref { return s.Channel.ChannelRef() }

func (s *Subscription) meta() *Meta { return &s.Meta }
func (s *Subscription) addTo(set *Set) {
	set.Subscriptions = append(set.Subscriptions, s)
}

func decodeSubscription(in input) resource {
	m, spec := in.m, in.spec
	s := &Subscription{Meta: *m, Order: Unordered, InitialOffset: channel.Latest}
	if r := decodeRef(spec.field("channel"), m.Namespace); r != nil {
		s.Channel = *r
	}
	s.Subscriber = decodeDest(spec.field("subscriber"), m.Namespace)
	s.Reply = decodeDest(spec.field("reply"), m.Namespace)
	s.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)

	s.Order, s.InitialOffset, s.MinConcurrency, s.MaxConcurrency = decodeDeliveryAnnotations(spec.p, m)
	return s
}

func (s *Subscription) validate(p *problems) {
	validateMeta(p)
	validateRef(p, "spec.channel", &s.Channel)
	if s.Channel.Kind != "" && !s.Channel.IsChannel() {
		p.invalid("spec.channel.kind", "%q is not a channel kind (%s)", s.Channel.Kind, strings.Join(channelKinds(), ", "))
	}
	if s.Subscriber == nil && s.Reply == nil {
		p.invalid("spec.subscriber", "missing (a subscription needs a subscriber, a reply or both)")
	}
	if s.Subscriber != nil {
		validateDest(p, "spec.subscriber", *s.Subscriber)
	}
	if s.Reply != nil {
		validateDest(p, "spec.reply", *s.Reply)
	}
	validateDelivery(p, "spec.delivery", s.Delivery)
	validateDeliveryAnnotations(p, s.Order, s.MinConcurrency, s.MaxConcurrency)
}

// decodeDeliveryAnnotations reads the annotations subscriptions and triggers share: the delivery
// order (default Unordered), the initial offset (default channel.Latest) and the concurrency bounds
// (0 when unset). A bad initial offset or bound is a problem here; a bad order is validate's.
func decodeDeliveryAnnotations(p *problems, m *Meta) (order DeliveryOrder, start channel.StartOffset, minC, maxC int) {
	order, start = Unordered, channel.Latest
	if v, ok := m.Annotations[AnnotationDeliveryOrder]; ok {
		order = DeliveryOrder(v) // checked by validate
	}
	if v, ok := m.Annotations[AnnotationInitialOffset]; ok {
		switch v {
		case "latest":
			start = channel.Latest
		case "earliest":
			start = channel.Earliest
		default:
			p.invalid(annotationPath(AnnotationInitialOffset), "%q is not earliest or latest", truncate(v, 40))
		}
	}
	return order, start, annotationInt(p, m, AnnotationMinConcurrency), annotationInt(p, m, AnnotationMaxConcurrency)
}

// validateDeliveryAnnotations checks the shared annotations' values.
func validateDeliveryAnnotations(p *problems, order DeliveryOrder, minC, maxC int) {
	switch order {
	case Ordered, Unordered:
	default:
		p.invalid(annotationPath(AnnotationDeliveryOrder), "%q is not ordered or unordered", truncate(string(order), 40))
	}
	if minC < 0 {
		p.invalid(annotationPath(AnnotationMinConcurrency), "must not be negative")
	}
	if maxC < 0 {
		p.invalid(annotationPath(AnnotationMaxConcurrency), "must not be negative")
	}
	if minC > 0 && maxC > 0 && minC > maxC {
		p.invalid(annotationPath(AnnotationMinConcurrency), "%d is more than %s %d", minC, AnnotationMaxConcurrency, maxC)
	}
}
