package resources

import (
	"fmt"
)

// Source is any source kind. Exactly one of Kubernetes, GitHub, PubSub and Container is set, per Kind.
type Source struct {
	Meta
	Sink Destination
	// CEOverrides are extension attributes added to every event (spec.ceOverrides.extensions).
	CEOverrides map[string]string

	Kubernetes *KubernetesSpec
	GitHub     *GitHubSpec
	PubSub     *PubSubSpec
	Container  *ContainerSpec
}

// sourceSpec is the kind-specific part of a Source (one of its spec fields).
type sourceSpec interface {
	// validate checks the spec; kind is the source's Kind.
	validate(p *problems, kind string)
}

// specs returns the kind-specific parts s has set: exactly one in a valid Source.
func (s *Source) specs() []sourceSpec {
	var out []sourceSpec
	if s.Kubernetes != nil {
		out = append(out, s.Kubernetes)
	}
	if s.GitHub != nil {
		out = append(out, s.GitHub)
	}
	if s.PubSub != nil {
		out = append(out, s.PubSub)
	}
	if s.Container != nil {
		out = append(out, s.Container)
	}
	return out
}

// WebhookPath returns the ingress path a webhook source receives on ("/sources/NS/NAME"), or "" for a
// source that receives no webhooks.
func (s *Source) WebhookPath() string {
	if s.GitHub == nil {
		return ""
	}
	return "/sources/" + s.Namespace + "/" + s.Name
}

func (s *Source) meta() *Meta { return &s.Meta }
func (s *Source) addTo(set *Set) {
	set.Sources = append(set.Sources, s)
}

// source returns the Source of a source kind's document with what every source kind has: the sink
// (spec.sink) and the extensions (spec.ceOverrides.extensions). Its decoder sets the kind's spec.
func (in input) source() *Source {
	s := &Source{Meta: *in.m}
	if d := decodeDest(in.spec.field("sink"), in.m.Namespace); d != nil {
		s.Sink = *d
	}
	s.CEOverrides = in.spec.field("ceOverrides").field("extensions").strMap()
	return s
}

func (s *Source) validate(p *problems) {
	validateMeta(p)
	validateDest(p, "spec.sink", s.Sink)
	for k := range s.CEOverrides {
		path := fmt.Sprintf("spec.ceOverrides.extensions[%q]", k)
		switch {
		case !extensionNameRE.MatchString(k):
			p.invalid(path, "%q is not a CloudEvents extension name (1-20 lower-case letters and digits)", truncate(k, 40))
		case reservedAttributes[k]:
			p.invalid(path, "%q is a CloudEvents context attribute, not an extension", k)
		}
	}
	specs := s.specs()
	if len(specs) != 1 {
		p.invalid("spec", "a source needs exactly one of its kind's settings, has %d", len(specs))
	}
	if len(specs) > 0 {
		specs[0].validate(p, s.Kind)
	}
}
