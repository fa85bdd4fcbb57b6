package resources

import (
	"errors"
	"fmt"
	"regexp"
)

var (
	// dnsLabelRE is an RFC 1123 label: what Kubernetes allows for namespaces and Knative resource names.
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// labelKeyRE is a Kubernetes label key: an optional DNS prefix and a name.
	labelKeyRE   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	// extensionNameRE is a CloudEvents extension attribute name.
	extensionNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)
)

// reservedAttributes are CloudEvents context attributes a ceOverrides extension may not replace.
var reservedAttributes = map[string]bool{
	"id": true, "source": true, "specversion": true, "type": true, "datacontenttype": true,
	"dataschema": true, "subject": true, "time": true, "data": true, "data_base64": true,
}

// Validate checks every resource of the set on its own and the set as a whole: no two channels or
// brokers share a namespace and name (whatever their kinds: they share the ingress paths), no two
// subscriptions, triggers or sources of one kind share one, every reference to a channel or a broker
// (a subscription's channel, a trigger's broker, a sink, reply or dead letter sink) names one of the
// set, and a Kafka broker's config ConfigMap, when the set holds it, has usable values. Unmanaged resources are never a problem. It returns all problems
// joined, each an *Error; nil when the set is valid. It does not modify s.
func (s *Set) Validate() error {
	var errs []error
	for _, r := range s.resources() {
		p := &problems{m: r.meta()}
		r.validate(p)
		errs = append(errs, p.errs...)
	}
	errs = append(errs, s.crossCheck()...)
	return errors.Join(errs...)
}

func (s *Set) resources() []resource {
	out := make([]resource, 0, len(s.Channels)+len(s.Subscriptions)+len(s.Sources))
	for _, c := range s.Channels {
		out = append(out, c)
	}
	for _, x := range s.Subscriptions {
		out = append(out, x)
	}
	for _, x := range s.Sources {
		out = append(out, x)
	}
	for _, x := range s.Brokers {
		out = append(out, x)
	}
	for _, x := range s.Triggers {
		out = append(out, x)
	}
	return out
}

// crossCheck applies the rules that span resources.
func (s *Set) crossCheck() []error {
	var errs []error
	first := map[string]*Meta{}
	dup := func(key string, m *Meta) {
		if prev, ok := first[key]; ok {
			where := "in code"
			if prev.File != "" {
				where = fmt.Sprintf("at %s document %d", prev.File, prev.Doc)
			}
			p := &problems{m: m}
			p.add(ErrDuplicate, "metadata.name", "%s %s is already defined %s", prev.Kind, prev.NamespacedName(), where)
			errs = append(errs, p.errs...)
			return
		}
		first[key] = m
	}
	for _, c := range s.Channels {
		dup("channel/"+c.NamespacedName(), &c.Meta) // one namespace of channels, whatever their kind
	}
	for _, b := range s.Brokers {
		dup("channel/"+b.NamespacedName(), &b.Meta) // brokers share the channels' names (one ingress path)
	}
	for _, x := range s.Triggers {
		dup("Trigger/"+x.NamespacedName(), &x.Meta)
	}
	for _, x := range s.Subscriptions {
		dup("Subscription/"+x.NamespacedName(), &x.Meta)
	}
	for _, x := range s.Sources {
		dup(x.Kind+"/"+x.NamespacedName(), &x.Meta)
	}

	defined := func(p *problems, path string, r *Reference) {
		if r == nil || !(r.IsChannel() || r.IsBroker()) || r.Name == "" {
			return
		}
		if s.Channel(r.ChannelRef()) == nil {
			p.add(ErrUndefined, path, "%s is not defined", r)
		}
	}
	definedDest := func(p *problems, path string, d *Destination) {
		if d != nil {
			defined(p, path+".ref", d.Ref)
		}
	}
	definedDelivery := func(p *problems, path string, d *Delivery) {
		if d != nil {
			definedDest(p, path+".deadLetterSink", d.DeadLetterSink)
		}
	}
	for _, c := range s.Channels {
		p := &problems{m: &c.Meta}
		definedDelivery(p, "spec.delivery", c.Delivery)
		errs = append(errs, p.errs...)
	}
	for _, x := range s.Subscriptions {
		p := &problems{m: &x.Meta}
		ch := x.Channel
		defined(p, "spec.channel", &ch)
		definedDest(p, "spec.subscriber", x.Subscriber)
		definedDest(p, "spec.reply", x.Reply)
		definedDelivery(p, "spec.delivery", x.Delivery)
		errs = append(errs, p.errs...)
	}
	for _, x := range s.Sources {
		p := &problems{m: &x.Meta}
		definedDest(p, "spec.sink", &x.Sink)
		errs = append(errs, p.errs...)
	}
	for _, b := range s.Brokers {
		p := &problems{m: &b.Meta}
		definedDelivery(p, "spec.delivery", b.Delivery)
		s.checkBrokerConfig(b, p)
		errs = append(errs, p.errs...)
	}
	for _, x := range s.Triggers {
		p := &problems{m: &x.Meta}
		if x.Broker != "" && s.Broker(x.Namespace, x.Broker) == nil {
			p.add(ErrUndefined, "spec.broker", "Broker %s/%s is not defined", x.Namespace, x.Broker)
		}
		definedDest(p, "spec.subscriber", x.Subscriber)
		definedDelivery(p, "spec.delivery", x.Delivery)
		errs = append(errs, p.errs...)
	}
	return errs
}

// validateMeta checks what every managed resource needs.
func validateMeta(p *problems) {
	m := p.m
	switch {
	case m.Name == "":
		p.invalid("metadata.name", "missing")
	case !dnsLabelRE.MatchString(m.Name):
		p.invalid("metadata.name", "%q is not a valid name (lower-case letters, digits and '-', at most 63)", truncate(m.Name, 80))
	}
	if !dnsLabelRE.MatchString(m.Namespace) {
		p.invalid("metadata.namespace", "%q is not a valid namespace (lower-case letters, digits and '-', at most 63)",
			truncate(m.Namespace, 80))
	}
}
