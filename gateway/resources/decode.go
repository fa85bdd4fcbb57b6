package resources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/eventgate/eventgate/gateway/channel"
)

// Decode reads every document of one file (YAML, or JSON, which is YAML too) into a Set, with
// defaults applied and each resource validated on its own. Cross-resource rules (duplicates, the
// channel a subscription names) are Set.Validate's; Load applies both.
//
// Empty documents are skipped; documents of kinds eventgate does not run become Unmanaged and are never
// an error. On any problem Decode returns a nil Set and all problems joined, each an *Error naming
// file, document, resource and field. Safe for concurrent use; never panics.
func Decode(file string, data []byte, opt Options) (*Set, error) {
	s, errs := decodeFile(file, data, opt)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (o Options) withDefaults() (Options, error) {
	switch o.DefaultProvisioner {
	case "":
		o.DefaultProvisioner = ProvisionerInMemory
	case ProvisionerInMemory, ProvisionerKafka:
	default:
		return o, fmt.Errorf("%w: default provisioner %q is not %q or %q", ErrInvalid, o.DefaultProvisioner,
			ProvisionerInMemory, ProvisionerKafka)
	}
	return o, nil
}

// decodeFile returns every resource that decoded (valid or not) and every problem.
func decodeFile(file string, data []byte, opt Options) (*Set, []error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, []error{err}
	}
	s := &Set{}
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := safeDecode(dec, &n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The YAML reader cannot resume after a syntax error: the rest of the file is unread.
			errs = append(errs, &Error{File: file, Doc: doc, Msg: err.Error(), Err: ErrSyntax})
			break
		}
		errs = append(errs, decodeDoc(file, doc, &n, opt, s)...)
	}
	return s, errs
}

// safeDecode guards against a panic in the YAML reader: bad input must be an error, never a crash.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable YAML: %v", r)
		}
	}()
	return dec.Decode(n)
}

// resource is what every decoded kind is.
type resource interface {
	meta() *Meta
	validate(p *problems)
	addTo(s *Set)
}

func (c *Channel) meta() *Meta      { return &c.Meta }
func (s *Subscription) meta() *Meta { return &s.Meta }
func (s *Source) meta() *Meta       { return &s.Meta }
func (c *Channel) addTo(s *Set)     { s.Channels = append(s.Channels, c) }
func (x *Subscription) addTo(s *Set) {
	s.Subscriptions = append(s.Subscriptions, x)
}
func (x *Source) addTo(s *Set) { s.Sources = append(s.Sources, x) }

// decodeFunc decodes the spec of one managed kind; m is already filled from metadata.
type decodeFunc func(m *Meta, spec val, opt Options) resource

type kindVersions struct {
	group    string
	versions []string
	decode   decodeFunc
}

// kinds lists the managed kinds by Kind, then API group. A managed Kind of another group (someone
// else's "Channel") is Unmanaged; a managed group at an unknown version is an error.
var kinds = map[string][]kindVersions{
	"Channel": {
		{"eventing.knative.dev", []string{"v1alpha1"}, decodeProvisionerChannel},
		{"messaging.knative.dev", []string{"v1", "v1beta1", "v1alpha1"}, decodeTemplateChannel},
	},
	"InMemoryChannel": {{"messaging.knative.dev", []string{"v1", "v1beta1", "v1alpha1"}, decodeInMemoryChannel}},
	"KafkaChannel":    {{"messaging.knative.dev", []string{"v1", "v1beta1", "v1alpha1"}, decodeKafkaChannel}},
	"Subscription": {
		{"eventing.knative.dev", []string{"v1alpha1"}, decodeSubscription},
		{"messaging.knative.dev", []string{"v1", "v1beta1", "v1alpha1"}, decodeSubscription},
	},
	"KubernetesEventSource": {{"sources.eventing.knative.dev", []string{"v1alpha1"}, decodeKubernetesEventSource}},
	"ApiServerSource": {
		{"sources.knative.dev", []string{"v1", "v1beta1", "v1alpha2"}, decodeAPIServerSource},
		{"sources.eventing.knative.dev", []string{"v1alpha1"}, decodeAPIServerSource},
	},
	"GitHubSource": {
		{"sources.knative.dev", []string{"v1alpha1"}, decodeGitHubSource},
		{"sources.eventing.knative.dev", []string{"v1alpha1"}, decodeGitHubSource},
	},
	"CloudPubSubSource": {{"events.cloud.google.com", []string{"v1", "v1beta1", "v1alpha1"}, decodeCloudPubSubSource}},
	"GcpPubSubSource":   {{"sources.eventing.knative.dev", []string{"v1alpha1"}, decodeGcpPubSubSource}},
	"ContainerSource": {
		{"sources.knative.dev", []string{"v1", "v1beta1", "v1alpha2"}, decodeContainerSource},
		{"sources.eventing.knative.dev", []string{"v1alpha1"}, decodeContainerSource},
	},
}

// lookupKind returns the decoder of apiVersion/kind; nil and "" for an unmanaged kind; nil and a
// message for a managed kind at an unsupported version.
func lookupKind(apiVersion, kind string) (decodeFunc, string) {
	group, version := "", apiVersion
	if i := strings.LastIndexByte(apiVersion, '/'); i >= 0 {
		group, version = apiVersion[:i], apiVersion[i+1:]
	}
	for _, kv := range kinds[kind] {
		if kv.group != group {
			continue
		}
		if slices.Contains(kv.versions, version) {
			return kv.decode, ""
		}
		want := make([]string, len(kv.versions))
		for i, v := range kv.versions {
			want[i] = group + "/" + v
		}
		return nil, fmt.Sprintf("%s %q is not supported (supported: %s)", kind, apiVersion, strings.Join(want, ", "))
	}
	return nil, ""
}

// decodeDoc decodes one document into s and returns its problems.
func decodeDoc(file string, doc int, n *yaml.Node, opt Options, s *Set) []error {
	m := &Meta{File: file, Doc: doc, lines: map[string]int{}, aliases: map[string]string{}}
	p := &problems{m: m}
	root := val{p: p, n: deref(n)}
	if root.n == nil {
		return nil // an empty document: a stray "---"
	}
	if root.n.Kind != yaml.MappingNode {
		p.add(ErrSyntax, "", "a document must be an object (a Kubernetes resource), not %s", describeNode(root.n))
		return p.errs
	}
	m.APIVersion = root.field("apiVersion").str()
	m.Kind = root.field("kind").str()
	md := root.field("metadata")
	md.isMap()
	m.Name = md.field("name").str()
	m.Namespace = md.field("namespace").str()
	m.Annotations = md.field("annotations").strMap()
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	if m.APIVersion == "" {
		p.add(ErrSyntax, "apiVersion", "missing")
	}
	if m.Kind == "" {
		p.add(ErrSyntax, "kind", "missing")
	}
	if m.APIVersion == "" || m.Kind == "" {
		return p.errs
	}
	decode, unsupported := lookupKind(m.APIVersion, m.Kind)
	if unsupported != "" {
		p.invalid("apiVersion", "%s", unsupported)
		return p.errs
	}
	if decode == nil {
		// Not run by eventgate: accepted whatever its shape.
		s.Unmanaged = append(s.Unmanaged, &Unmanaged{Meta: *m})
		return nil
	}
	r := decode(m, root.field("spec"), opt)
	// Shape problems were recorded against m; the resource's own Meta is a copy sharing its maps.
	r.validate(p)
	r.addTo(s)
	return p.errs
}

// decodeProvisionerChannel decodes eventing.knative.dev/v1alpha1 Channel: spec.provisioner.name.
func decodeProvisionerChannel(m *Meta, spec val, opt Options) resource {
	c := &Channel{Meta: *m}
	prov := spec.field("provisioner")
	prov.isMap()
	switch name := prov.field("name").str(); name {
	case "":
		c.Provisioner = opt.DefaultProvisioner
	case "in-memory-channel", "in-memory":
		c.Provisioner = ProvisionerInMemory
	case "kafka":
		c.Provisioner = ProvisionerKafka
		decodeKafkaSettings(spec.field("arguments"), c)
	default:
		spec.p.invalid(joinPath(prov.path, "name"), "provisioner %q is not supported (in-memory-channel or kafka)", name)
		c.Provisioner = opt.DefaultProvisioner
	}
	return c
}

func decodeTemplateChannel(m *Meta, spec val, opt Options) resource {
	c := &Channel{Meta: *m, Provisioner: opt.DefaultProvisioner}
	tmpl := spec.field("channelTemplate")
	if tmpl.isMap() {
		switch kind := tmpl.field("kind").str(); kind {
		case "InMemoryChannel":
			c.Provisioner = ProvisionerInMemory
		case "KafkaChannel":
			c.Provisioner = ProvisionerKafka
			decodeKafkaSettings(tmpl.field("spec"), c)
		case "":
			spec.p.invalid(joinPath(tmpl.path, "kind"), "missing (InMemoryChannel or KafkaChannel)")
		default:
			spec.p.invalid(joinPath(tmpl.path, "kind"), "%q is not supported (InMemoryChannel or KafkaChannel)", kind)
		}
	}
	c.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)
	return c
}

func decodeInMemoryChannel(m *Meta, spec val, _ Options) resource {
	c := &Channel{Meta: *m, Provisioner: ProvisionerInMemory}
	c.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)
	return c
}

func decodeKafkaChannel(m *Meta, spec val, _ Options) resource {
	c := &Channel{Meta: *m, Provisioner: ProvisionerKafka}
	decodeKafkaSettings(spec, c)
	c.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)
	return c
}

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

func decodeSubscription(m *Meta, spec val, _ Options) resource {
	s := &Subscription{Meta: *m, Order: Unordered, InitialOffset: channel.Latest}
	if r := decodeRef(spec.field("channel"), m.Namespace); r != nil {
		s.Channel = *r
	}
	s.Subscriber = decodeDest(spec.field("subscriber"), m.Namespace)
	s.Reply = decodeDest(spec.field("reply"), m.Namespace)
	s.Delivery = decodeDelivery(spec.field("delivery"), m.Namespace)

	p := spec.p
	if v, ok := m.Annotations[AnnotationDeliveryOrder]; ok {
		s.Order = DeliveryOrder(v) // checked by validate
	}
	if v, ok := m.Annotations[AnnotationInitialOffset]; ok {
		switch v {
		case "latest":
			s.InitialOffset = channel.Latest
		case "earliest":
			s.InitialOffset = channel.Earliest
		default:
			p.invalid(annotationPath(AnnotationInitialOffset), "%q is not earliest or latest", truncate(v, 40))
		}
	}
	s.MinConcurrency = annotationInt(p, m, AnnotationMinConcurrency)
	s.MaxConcurrency = annotationInt(p, m, AnnotationMaxConcurrency)
	return s
}

func annotationPath(key string) string { return fmt.Sprintf("metadata.annotations[%q]", key) }

// annotationInt parses an integer annotation of at least 1; 0 when absent or invalid (a problem).
func annotationInt(p *problems, m *Meta, key string) int {
	v, ok := m.Annotations[key]
	if !ok {
		return 0
	}
	n := 0
	for _, r := range v {
		if r < '0' || r > '9' || n > 1<<20 {
			p.invalid(annotationPath(key), "%q is not a positive integer", truncate(v, 40))
			return 0
		}
		n = n*10 + int(r-'0')
	}
	if n < 1 {
		p.invalid(annotationPath(key), "%q is not a positive integer", truncate(v, 40))
		return 0
	}
	return n
}

// decodeRef reads a reference {apiVersion, kind, name, namespace}; nil when absent.
func decodeRef(v val, namespace string) *Reference {
	if !v.isMap() {
		return nil
	}
	r := &Reference{
		APIVersion: v.field("apiVersion").str(),
		Kind:       v.field("kind").str(),
		Name:       v.field("name").str(),
		Namespace:  v.field("namespace").str(),
	}
	if r.Namespace == "" {
		r.Namespace = namespace
	}
	return r
}

// decodeDest reads a destination: {uri}, {ref: {...}}, the seed's inline {apiVersion, kind, name},
// v1alpha1's {dnsName} and reply {channel: {...}}. Nil when absent.
func decodeDest(v val, namespace string) *Destination {
	if !v.isMap() {
		return nil
	}
	d := &Destination{URI: v.field("uri").str()}
	if d.URI == "" && v.has("dnsName") {
		d.URI = v.field("dnsName").str()
		v.p.m.aliases[joinPath(v.path, "uri")] = joinPath(v.path, "dnsName")
	}
	switch {
	case v.has("ref"):
		d.Ref = decodeRef(v.field("ref"), namespace)
	case v.has("channel"):
		d.Ref = decodeRef(v.field("channel"), namespace)
		v.p.m.aliases[joinPath(v.path, "ref")] = joinPath(v.path, "channel")
	case v.has("kind") || v.has("name") || v.has("apiVersion"):
		d.Ref = decodeRef(v, namespace)
		v.p.m.aliases[joinPath(v.path, "ref")] = v.path
	}
	return d
}

// decodeDelivery reads a DeliverySpec; nil when absent.
func decodeDelivery(v val, namespace string) *Delivery {
	if !v.isMap() {
		return nil
	}
	d := &Delivery{BackoffPolicy: BackoffPolicy(v.field("backoffPolicy").str())}
	if n, ok := v.field("retry").integer(0, math.MaxInt32); ok {
		r := int32(n)
		d.Retry = &r
	}
	d.BackoffDelay = v.field("backoffDelay").duration()
	d.BackoffMax = v.field("backoffMax").duration()
	d.Timeout = v.field("timeout").duration()
	d.RetryAfterMax = v.field("retryAfterMax").duration()
	d.DeadLetterSink = decodeDest(v.field("deadLetterSink"), namespace)
	return d
}

func newSource(m *Meta, spec val) *Source {
	s := &Source{Meta: *m}
	if d := decodeDest(spec.field("sink"), m.Namespace); d != nil {
		s.Sink = *d
	}
	s.CEOverrides = spec.field("ceOverrides").field("extensions").strMap()
	return s
}

func decodeKubernetesEventSource(m *Meta, spec val, _ Options) resource {
	s := newSource(m, spec)
	s.Kubernetes = &KubernetesSpec{
		Namespace:          spec.field("namespace").str(),
		ServiceAccountName: spec.field("serviceAccountName").str(),
		Resources:          []APIResource{{APIVersion: "v1", Kind: "Event"}},
		Mode:               ModeResource,
	}
	if s.Kubernetes.Namespace == "" {
		s.Kubernetes.Namespace = m.Namespace
	}
	return s
}

func decodeAPIServerSource(m *Meta, spec val, _ Options) resource {
	s := newSource(m, spec)
	k := &KubernetesSpec{
		Namespace:          m.Namespace,
		ServiceAccountName: spec.field("serviceAccountName").str(),
		Mode:               spec.field("mode").str(),
	}
	switch k.Mode {
	case "":
		k.Mode = ModeReference
	case "Ref": // v1alpha1's name
		k.Mode = ModeReference
	}
	for _, r := range spec.field("resources").list() {
		r.isMap()
		res := APIResource{APIVersion: r.field("apiVersion").str(), Kind: r.field("kind").str()}
		sel := r.field("selector")
		if !sel.ok() {
			sel = r.field("labelSelector") // v1alpha1
		}
		res.Selector = decodeSelector(sel)
		k.Resources = append(k.Resources, res)
	}
	s.Kubernetes = k
	return s
}

func decodeGitHubSource(m *Meta, spec val, _ Options) resource {
	s := newSource(m, spec)
	g := &GitHubSpec{EventTypes: spec.field("eventTypes").strList()}
	oar := spec.field("ownerAndRepository").str()
	g.Owner, g.Repository, _ = strings.Cut(oar, "/")
	g.AccessToken = decodeSecretKeyRef(spec.field("accessToken").field("secretKeyRef"))
	g.SecretToken = decodeSecretKeyRef(spec.field("secretToken").field("secretKeyRef"))
	if v, ok := m.Annotations[AnnotationUnauthenticated]; ok {
		switch v {
		case "true":
			g.Unauthenticated = true
		case "false":
		default:
			spec.p.invalid(annotationPath(AnnotationUnauthenticated), "%q is not true or false", truncate(v, 40))
		}
	}
	s.GitHub = g
	return s
}

func decodeCloudPubSubSource(m *Meta, spec val, _ Options) resource {
	s := newSource(m, spec)
	s.PubSub = &PubSubSpec{
		Project:        spec.field("project").str(),
		Topic:          spec.field("topic").str(),
		SubscriptionID: spec.field("subscriptionID").str(),
		Credentials:    decodeSecretKeyRef(spec.field("secret")),
	}
	return s
}

func decodeGcpPubSubSource(m *Meta, spec val, _ Options) resource {
	s := newSource(m, spec)
	s.PubSub = &PubSubSpec{
		Project:     spec.field("googleCloudProject").str(),
		Topic:       spec.field("topic").str(),
		Credentials: decodeSecretKeyRef(spec.field("gcpCredsSecret")),
	}
	m.aliases["spec.project"] = "spec.googleCloudProject"
	m.aliases["spec.secret"] = "spec.gcpCredsSecret"
	return s
}

func decodeContainerSource(m *Meta, spec val, _ Options) resource {
	s := newSource(m, spec)
	c := &ContainerSpec{}
	if spec.has("template") {
		containers := spec.field("template").field("spec").field("containers").list()
		if len(containers) > 1 {
			spec.p.invalid(joinPath(spec.path, "template.spec.containers"),
				"has %d containers: eventgate runs exactly one program per source", len(containers))
		}
		if len(containers) > 0 {
			decodeContainer(containers[0], c)
		}
	} else if spec.has("image") || spec.has("args") || spec.has("command") {
		// v1alpha1's flat form: spec.image, spec.args, spec.env.
		decodeContainer(spec, c)
		m.aliases["spec.template.spec.containers[0]"] = "spec"
	}
	s.Container = c
	return s
}

func decodeContainer(v val, c *ContainerSpec) {
	v.isMap()
	c.Name = v.field("name").str()
	c.Image = v.field("image").str()
	c.Command = v.field("command").strList()
	c.Args = v.field("args").strList()
	for _, e := range v.field("env").list() {
		e.isMap()
		ev := EnvVar{Name: e.field("name").str(), Value: e.field("value").str()}
		ev.SecretKeyRef = decodeSecretKeyRef(e.field("valueFrom").field("secretKeyRef"))
		c.Env = append(c.Env, ev)
	}
}

func decodeSecretKeyRef(v val) *SecretKeyRef {
	if !v.isMap() {
		return nil
	}
	return &SecretKeyRef{Name: v.field("name").str(), Key: v.field("key").str()}
}

// decodeSelector renders a Kubernetes LabelSelector {matchLabels, matchExpressions} in string form.
func decodeSelector(v val) string {
	if !v.isMap() {
		return ""
	}
	var parts []string
	labels := v.field("matchLabels").strMap()
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := fmt.Sprintf("%s.matchLabels[%q]", v.path, k)
		if checkLabel(v.p, path, k, labels[k]) {
			parts = append(parts, k+"="+labels[k])
		}
	}
	for _, e := range v.field("matchExpressions").list() {
		e.isMap()
		key := e.field("key").str()
		op := e.field("operator").str()
		values := e.field("values").strList()
		ok := checkLabel(v.p, e.path+".key", key)
		for _, x := range values {
			ok = checkLabel(v.p, e.path+".values", "", x) && ok
		}
		if !ok {
			continue
		}
		switch op {
		case "In", "NotIn":
			if len(values) == 0 {
				v.p.invalid(e.path+".values", "%s needs at least one value", op)
				continue
			}
			parts = append(parts, key+" "+strings.ToLower(op)+" ("+strings.Join(values, ",")+")")
		case "Exists":
			parts = append(parts, key)
		case "DoesNotExist":
			parts = append(parts, "!"+key)
		default:
			v.p.invalid(e.path+".operator", "%q is not In, NotIn, Exists or DoesNotExist", truncate(op, 40))
		}
	}
	return strings.Join(parts, ",")
}

// checkLabel checks a label key (when key is not "") and values: the characters Kubernetes allows.
func checkLabel(p *problems, path, key string, values ...string) bool {
	ok := true
	if key != "" || len(values) == 0 {
		if !labelKeyRE.MatchString(key) {
			p.invalid(path, "%q is not a label key", truncate(key, 80))
			ok = false
		}
	}
	for _, x := range values {
		if !labelValueRE.MatchString(x) {
			p.invalid(path, "%q is not a label value", truncate(x, 80))
			ok = false
		}
	}
	return ok
}
