package resources

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/filter"
)

// Trigger subscribes a subscriber to the events of a broker that pass its filter.
type Trigger struct {
	Meta
	// Broker is spec.broker: a broker of the trigger's namespace.
	Broker string
	// Subscriber receives the events that pass; its replies go back to the broker.
	Subscriber *Destination
	// Delivery is the trigger's own delivery spec; nil when unset (then the broker's applies).
	Delivery *Delivery
	// Attributes is spec.filter.attributes: every entry must match ("" matching any value of a
	// present attribute). Nil when unset.
	Attributes map[string]string
	// Filters is spec.filters (the Subscriptions API dialects), ANDed; when non-empty it overrides
	// Attributes.
	Filters []filter.Spec
	// Order, InitialOffset, MinConcurrency and MaxConcurrency are read from the same annotations as
	// a Subscription's, with the same defaults.
	Order          DeliveryOrder
	InitialOffset  channel.StartOffset
	MinConcurrency int
	MaxConcurrency int
}

// BrokerRef returns the reference to the trigger's broker.
func (t *Trigger) BrokerRef() Reference {
	return Reference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: t.Broker, Namespace: t.Namespace}
}

// Filter compiles the trigger's filter (nil when it filters nothing). A trigger that passed
// validation compiles.
func (t *Trigger) Filter() (*filter.Filter, error) { return filter.Compile(t.Attributes, t.Filters) }

// Subscription returns the subscription the trigger runs as: on its broker's channel, replies going
// back to the broker, with the trigger's delivery and annotations. Its name is "trigger.NAME" (a
// name no declared subscription can have, resource names holding no dot), which names its consumer
// group (on Kafka eventgate.NAMESPACE.trigger.NAME by default); its Kind is Trigger.
func (t *Trigger) Subscription() *Subscription {
	m := t.Meta
	m.Name = TriggerGroupPrefix + t.Name
	broker := t.BrokerRef()
	return &Subscription{
		Meta: m, Channel: broker, Subscriber: t.Subscriber, Reply: &Destination{Ref: &broker},
		Delivery: t.Delivery, Order: t.Order, InitialOffset: t.InitialOffset,
		MinConcurrency: t.MinConcurrency, MaxConcurrency: t.MaxConcurrency,
	}
}

// TriggerGroupPrefix starts the name of the subscription a trigger runs as (Trigger.Subscription).
const TriggerGroupPrefix = "trigger."

func (t *Trigger) meta() *Meta  { return &t.Meta }
func (t *Trigger) addTo(s *Set) { s.Triggers = append(s.Triggers, t) }

func decodeTrigger(in input) resource {
	m, spec := in.m, in.spec
	t := &Trigger{Meta: *m}
	t.Order, t.InitialOffset, t.MinConcurrency, t.MaxConcurrency = decodeDeliveryAnnotations(spec.p, m)
	if !spec.isMap() {
		return t
	}
	t.Broker = spec.field("broker").str()
	t.Subscriber = decodeDest(spec.field("subscriber"), m.Namespace)
	t.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)
	if f := spec.field("filter"); f.isMap() {
		t.Attributes = f.field("attributes").strMap()
	}
	for _, item := range spec.field("filters").list() {
		t.Filters = append(t.Filters, decodeFilterSpec(item, 0))
	}
	return t
}

// maxFilterDepth bounds the nesting of all, any and not.
const maxFilterDepth = 16

// filterDialects are the keys of one filters entry, exactly one of which it holds.
var filterDialects = []string{"exact", "prefix", "suffix", "all", "any", "not", "cesql"}

// attributeNameRE is what Knative accepts as an attribute name in a filter.
var attributeNameRE = regexp.MustCompile(`^[a-z0-9]+$`)

// decodeFilterSpec decodes one entry of spec.filters (or of a nested all, any or not), recording
// every problem at its path: not exactly one dialect, an exact/prefix/suffix that is not one
// attribute, a CESQL expression that does not parse (with the parser's message).
func decodeFilterSpec(v val, depth int) filter.Spec {
	var s filter.Spec
	if !v.isMap() {
		return s
	}
	if depth >= maxFilterDepth {
		v.p.invalid(v.path, "filters nested more than %d deep", maxFilterDepth)
		return s
	}
	var set []string
	unknown := false
	for i := 0; i+1 < len(v.n.Content); i += 2 {
		k := v.n.Content[i].Value
		found := false
		for _, d := range filterDialects {
			found = found || d == k
		}
		if !found {
			v.p.invalid(joinPath(v.path, k), "unknown filter dialect (%s)", strings.Join(filterDialects, ", "))
			unknown = true
			continue
		}
		set = append(set, k)
	}
	switch {
	case len(set) == 0:
		if !unknown {
			v.p.invalid(v.path, "no filter dialect (one of %s)", strings.Join(filterDialects, ", "))
		}
		return s
	case len(set) > 1:
		v.p.invalid(v.path, "one filter dialect per entry, not %s", strings.Join(set, " and "))
	}
	if !v.has(set[0]) {
		v.p.invalid(joinPath(v.path, set[0]), "missing (null)")
		return s
	}
	single := func(key string) map[string]string {
		f := v.field(key)
		m := f.strMap()
		if f.ok() && f.n.Kind == yaml.MappingNode && len(m) != 1 {
			v.p.invalid(f.path, "must name exactly one attribute, not %d", len(m))
		}
		for name := range m {
			if !attributeNameRE.MatchString(name) {
				v.p.invalid(fmt.Sprintf("%s[%q]", f.path, name), "%q is not a CloudEvents attribute name (lower-case letters and digits)", truncate(name, 40))
			}
		}
		if m == nil && f.ok() {
			m = map[string]string{}
		}
		return m
	}
	list := func(key string) []filter.Spec {
		f := v.field(key)
		items := f.list()
		if !f.ok() {
			return nil
		}
		out := make([]filter.Spec, 0, len(items))
		for _, it := range items {
			out = append(out, decodeFilterSpec(it, depth+1))
		}
		return out
	}
	switch set[0] {
	case "exact":
		s.Exact = single("exact")
	case "prefix":
		s.Prefix = single("prefix")
	case "suffix":
		s.Suffix = single("suffix")
	case "all":
		s.All = list("all")
	case "any":
		s.Any = list("any")
	case "not":
		n := decodeFilterSpec(v.field("not"), depth+1)
		s.Not = &n
	case "cesql":
		f := v.field("cesql")
		s.CESQL = f.str()
		if f.ok() && f.n.Kind == yaml.ScalarNode {
			if err := filter.ParseCESQL(s.CESQL); err != nil {
				v.p.invalid(f.path, "%q is not a CESQL expression: %s", truncate(s.CESQL, 80), oneLine(err.Error()))
			}
		}
	}
	return s
}

// oneLine folds a multi-line message (a parser's errors) into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (t *Trigger) validate(p *problems) {
	validateMeta(p)
	switch {
	case t.Broker == "":
		p.invalid("spec.broker", "missing")
	case !dnsLabelRE.MatchString(t.Broker):
		p.invalid("spec.broker", "%q is not a valid broker name", truncate(t.Broker, 80))
	}
	if t.Subscriber == nil {
		p.invalid("spec.subscriber", "missing")
	} else {
		validateDest(p, "spec.subscriber", *t.Subscriber)
	}
	validateDelivery(p, "spec.delivery", t.Delivery)
	for name := range t.Attributes {
		if !attributeNameRE.MatchString(name) {
			p.invalid(fmt.Sprintf("spec.filter.attributes[%q]", name), "%q is not a CloudEvents attribute name (lower-case letters and digits)", truncate(name, 40))
		}
	}
	validateDeliveryAnnotations(p, t.Order, t.MinConcurrency, t.MaxConcurrency)
}
