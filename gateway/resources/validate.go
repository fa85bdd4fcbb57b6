package resources

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"
)

var (
	// dnsLabelRE is an RFC 1123 label: what Kubernetes allows for namespaces and Knative resource names.
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// labelKeyRE is a Kubernetes label key: an optional DNS prefix and a name.
	labelKeyRE   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	// extensionNameRE is a CloudEvents extension attribute name.
	extensionNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)
	// githubNameRE is a GitHub owner or repository name.
	githubNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	// githubEventRE is a GitHub webhook event name ("push", "pull_request").
	githubEventRE = regexp.MustCompile(`^[a-z_]{1,64}$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// reservedAttributes are CloudEvents context attributes a ceOverrides extension may not replace.
var reservedAttributes = map[string]bool{
	"id": true, "source": true, "specversion": true, "type": true, "datacontenttype": true,
	"dataschema": true, "subject": true, "time": true, "data": true, "data_base64": true,
}

// Validate checks every resource of the set on its own and the set as a whole: no two channels
// share a namespace and name (whatever their kinds), no two subscriptions or sources of one kind
// share one, and every reference to a channel (a subscription's channel, a sink, reply or dead letter
// sink) names a channel of the set. Unmanaged resources are never a problem. It returns all problems
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
	for _, x := range s.Subscriptions {
		dup("Subscription/"+x.NamespacedName(), &x.Meta)
	}
	for _, x := range s.Sources {
		dup(x.Kind+"/"+x.NamespacedName(), &x.Meta)
	}

	defined := func(p *problems, path string, r *Reference) {
		if r == nil || !r.IsChannel() || r.Name == "" {
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

func (c *Channel) validate(p *problems) {
	validateMeta(p)
	switch c.Provisioner {
	case ProvisionerInMemory, ProvisionerKafka:
	default:
		p.invalid("spec", "provisioner %q is not %q or %q", c.Provisioner, ProvisionerInMemory, ProvisionerKafka)
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

func (s *Subscription) validate(p *problems) {
	validateMeta(p)
	validateRef(p, "spec.channel", &s.Channel)
	if s.Channel.Kind != "" && !s.Channel.IsChannel() {
		p.invalid("spec.channel.kind", "%q is not a channel kind (Channel, InMemoryChannel, KafkaChannel)", s.Channel.Kind)
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
	switch s.Order {
	case Ordered, Unordered:
	default:
		p.invalid(annotationPath(AnnotationDeliveryOrder), "%q is not ordered or unordered", truncate(string(s.Order), 40))
	}
	if s.MinConcurrency < 0 {
		p.invalid(annotationPath(AnnotationMinConcurrency), "must not be negative")
	}
	if s.MaxConcurrency < 0 {
		p.invalid(annotationPath(AnnotationMaxConcurrency), "must not be negative")
	}
	if s.MinConcurrency > 0 && s.MaxConcurrency > 0 && s.MinConcurrency > s.MaxConcurrency {
		p.invalid(annotationPath(AnnotationMinConcurrency), "%d is more than %s %d",
			s.MinConcurrency, AnnotationMaxConcurrency, s.MaxConcurrency)
	}
}

func validateRef(p *problems, path string, r *Reference) {
	if r.APIVersion == "" && r.Kind == "" && r.Name == "" {
		p.invalid(path, "missing")
		return
	}
	if r.APIVersion == "" {
		p.invalid(path+".apiVersion", "missing")
	}
	if r.Kind == "" {
		p.invalid(path+".kind", "missing")
	}
	if r.Name == "" {
		p.invalid(path+".name", "missing")
	}
	if r.Namespace != "" && !dnsLabelRE.MatchString(r.Namespace) {
		p.invalid(path+".namespace", "%q is not a valid namespace", truncate(r.Namespace, 80))
	}
}

func validateDest(p *problems, path string, d Destination) {
	switch {
	case d.URI != "" && d.Ref != nil:
		p.invalid(path, "give either uri or ref, not both")
	case d.Ref != nil:
		validateRef(p, path+".ref", d.Ref)
	case d.URI != "":
		if err := checkURL(d.URI); err != nil {
			p.invalid(path+".uri", "%s", err)
		}
	default:
		p.invalid(path, "missing uri or ref")
	}
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", truncate(s, 80))
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", truncate(s, 80))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q is not an http or https URL", truncate(s, 80))
	}
	return nil
}

func validateDelivery(p *problems, path string, d *Delivery) {
	if d == nil {
		return
	}
	if d.Retry != nil && *d.Retry < 0 {
		p.invalid(path+".retry", "must not be negative")
	}
	switch d.BackoffPolicy {
	case "", BackoffLinear, BackoffExponential:
	default:
		p.invalid(path+".backoffPolicy", "%q is not linear or exponential", truncate(string(d.BackoffPolicy), 40))
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"backoffDelay", d.BackoffDelay}, {"backoffMax", d.BackoffMax}, {"retryAfterMax", d.RetryAfterMax}} {
		if f.d != nil && *f.d < 0 {
			p.invalid(path+"."+f.name, "must not be negative")
		}
	}
	if d.Timeout != nil && *d.Timeout <= 0 {
		p.invalid(path+".timeout", "must be longer than zero")
	}
	if d.BackoffDelay != nil && d.BackoffMax != nil && *d.BackoffMax < *d.BackoffDelay {
		p.invalid(path+".backoffMax", "%v is less than backoffDelay %v", *d.BackoffMax, *d.BackoffDelay)
	}
	if d.DeadLetterSink != nil {
		validateDest(p, path+".deadLetterSink", *d.DeadLetterSink)
	}
}

func validateSecretRef(p *problems, path string, r *SecretKeyRef) {
	if r == nil {
		return
	}
	if err := checkSecretPart("name", r.Name); err != nil {
		p.invalid(path+".name", "%s", err)
	}
	if err := checkSecretPart("key", r.Key); err != nil {
		p.invalid(path+".key", "%s", err)
	}
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
	specs := 0
	for _, set := range []bool{s.Kubernetes != nil, s.GitHub != nil, s.PubSub != nil, s.Container != nil} {
		if set {
			specs++
		}
	}
	if specs != 1 {
		p.invalid("spec", "a source needs exactly one of its kind's settings, has %d", specs)
	}
	switch {
	case s.Kubernetes != nil:
		s.Kubernetes.validate(p)
	case s.GitHub != nil:
		s.GitHub.validate(p)
	case s.PubSub != nil:
		s.PubSub.validate(p, s.Kind)
	case s.Container != nil:
		s.Container.validate(p)
	}
}

func (k *KubernetesSpec) validate(p *problems) {
	if !dnsLabelRE.MatchString(k.Namespace) {
		p.invalid("spec.namespace", "%q is not a valid namespace", truncate(k.Namespace, 80))
	}
	if k.Mode != ModeReference && k.Mode != ModeResource {
		p.invalid("spec.mode", "%q is not %s or %s", truncate(k.Mode, 40), ModeReference, ModeResource)
	}
	if len(k.Resources) == 0 {
		p.invalid("spec.resources", "missing (at least one resource to watch, like {apiVersion: v1, kind: Event})")
	}
	for i, r := range k.Resources {
		if r.APIVersion == "" {
			p.invalid(fmt.Sprintf("spec.resources[%d].apiVersion", i), "missing")
		}
		if r.Kind == "" {
			p.invalid(fmt.Sprintf("spec.resources[%d].kind", i), "missing")
		}
	}
}

func (g *GitHubSpec) validate(p *problems) {
	switch {
	case g.Owner == "" && g.Repository == "":
		p.invalid("spec.ownerAndRepository", "missing (OWNER/REPOSITORY, or OWNER for an organisation)")
	case !githubNameRE.MatchString(g.Owner) ||
		(g.Repository != "" && !githubNameRE.MatchString(g.Repository)):
		p.invalid("spec.ownerAndRepository", "%q is not OWNER/REPOSITORY", truncate(g.Owner+"/"+g.Repository, 80))
	}
	if len(g.EventTypes) == 0 {
		p.invalid("spec.eventTypes", "missing (GitHub event names, like push or pull_request)")
	}
	for i, t := range g.EventTypes {
		if !githubEventRE.MatchString(t) {
			p.invalid(fmt.Sprintf("spec.eventTypes[%d]", i), "%q is not a GitHub event name", truncate(t, 40))
		}
	}
	validateSecretRef(p, "spec.accessToken.secretKeyRef", g.AccessToken)
	validateSecretRef(p, "spec.secretToken.secretKeyRef", g.SecretToken)
	if g.SecretToken == nil && !g.Unauthenticated {
		p.invalid("spec.secretToken", "missing: webhooks must be signed (or annotate %s: \"true\" to accept unsigned ones)",
			AnnotationUnauthenticated)
	}
}

func (ps *PubSubSpec) validate(p *problems, kind string) {
	if ps.Topic == "" {
		p.invalid("spec.topic", "missing")
	}
	if ps.Project == "" && kind == "GcpPubSubSource" {
		p.invalid("spec.project", "missing")
	}
	validateSecretRef(p, "spec.secret", ps.Credentials)
}

func (c *ContainerSpec) validate(p *problems) {
	const path = "spec.template.spec.containers[0]"
	if c.Image == "" && len(c.Command) == 0 {
		p.invalid(path, "needs an image or a command")
	}
	for i, e := range c.Env {
		ep := fmt.Sprintf("%s.env[%d]", path, i)
		if !envNameRE.MatchString(e.Name) {
			p.invalid(ep+".name", "%q is not an environment variable name", truncate(e.Name, 40))
		}
		if e.SecretKeyRef != nil && e.Value != "" {
			p.invalid(ep, "give either value or valueFrom, not both")
		}
		validateSecretRef(p, ep+".valueFrom.secretKeyRef", e.SecretKeyRef)
		if e.Name == "K_SINK" || e.Name == "K_CE_OVERRIDES" {
			p.invalid(ep+".name", "%s is set by eventgate", e.Name)
		}
	}
}
