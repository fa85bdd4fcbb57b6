package resources

import (
	"fmt"
	"sort"
	"strings"
)

// APIResource is one kind an ApiServerSource watches.
type APIResource struct {
	APIVersion string
	Kind       string
	// Selector is a Kubernetes label selector in string form ("app=x,tier in (a,b)"); "" selects all.
	Selector string
}

// Kubernetes source modes.
const (
	// ModeReference sends a reference to the changed object.
	ModeReference = "Reference"
	// ModeResource sends the whole object.
	ModeResource = "Resource"
)

// KubernetesSpec configures KubernetesEventSource and ApiServerSource.
type KubernetesSpec struct {
	Namespace          string // watched namespace; defaults to the source's
	ServiceAccountName string
	Resources          []APIResource // KubernetesEventSource: [{v1, Event}]
	Mode               string        // ModeReference or ModeResource; KubernetesEventSource: ModeResource
}

// decodeKubernetesEventSource decodes the seed's KubernetesEventSource: Events of spec.namespace.
func decodeKubernetesEventSource(in input) resource {
	s, spec := in.source(), in.spec
	s.Kubernetes = &KubernetesSpec{
		Namespace:          spec.field("namespace").str(),
		ServiceAccountName: spec.field("serviceAccountName").str(),
		Resources:          []APIResource{{APIVersion: "v1", Kind: "Event"}},
		Mode:               ModeResource,
	}
	if s.Kubernetes.Namespace == "" {
		s.Kubernetes.Namespace = in.m.Namespace
	}
	return s
}

// decodeAPIServerSource decodes ApiServerSource: spec.resources, spec.mode.
func decodeAPIServerSource(in input) resource {
	s, spec := in.source(), in.spec
	k := &KubernetesSpec{
		Namespace:          in.m.Namespace,
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

func (k *KubernetesSpec) validate(p *problems, _ string) {
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
