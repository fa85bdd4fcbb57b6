package kube

import (
	"bytes"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/eventgate/eventgate/gateway/resources"
)

// CRD is one CustomResourceDefinition eventgate needs in a cluster without Knative: one per group
// and Kind of the kinds table (resources.Kinds). It is what the chart's crds/ file holds, generated
// by CRDManifest and checked against it by a test, so the table stays the one list of kinds.
type CRD struct {
	Group    string
	Kind     string
	Plural   string
	Versions []string // in the table's order; the first is the storage version
	Role     resources.Role
}

// CRDs returns the definitions for every managed kind, one per group and Kind, in table order.
func CRDs() []CRD {
	var out []CRD
	index := map[string]int{}
	for _, k := range resources.Kinds() {
		for _, av := range k.APIVersions {
			group, version, _ := strings.Cut(av, "/")
			key := group + "/" + k.Kind
			i, ok := index[key]
			if !ok {
				i = len(out)
				index[key] = i
				out = append(out, CRD{Group: group, Kind: k.Kind, Plural: Plural(k.Kind), Role: k.Runner.Role})
			}
			out[i].Versions = append(out[i].Versions, version)
		}
	}
	return out
}

// Plural is the resource name of kind, as Knative names its resources ("KafkaChannel" →
// "kafkachannels").
func Plural(kind string) string { return strings.ToLower(kind) + "s" }

// Name is the CRD's object name, PLURAL.GROUP.
func (c CRD) Name() string { return c.Plural + "." + c.Group }

// The shapes of a CustomResourceDefinition (apiextensions.k8s.io/v1), as much of them as eventgate
// writes: marshalled to YAML for the chart and created as-is by the end-to-end tests.
type (
	crdObject struct {
		APIVersion string      `json:"apiVersion"`
		Kind       string      `json:"kind"`
		Metadata   crdMetadata `json:"metadata"`
		Spec       crdSpec     `json:"spec"`
	}
	crdMetadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	}
	crdSpec struct {
		Group    string       `json:"group"`
		Names    crdNames     `json:"names"`
		Scope    string       `json:"scope"`
		Versions []crdVersion `json:"versions"`
	}
	crdNames struct {
		Kind       string   `json:"kind"`
		ListKind   string   `json:"listKind"`
		Plural     string   `json:"plural"`
		Singular   string   `json:"singular"`
		Categories []string `json:"categories"`
	}
	crdVersion struct {
		Name                     string       `json:"name"`
		Served                   bool         `json:"served"`
		Storage                  bool         `json:"storage"`
		Subresources             subres       `json:"subresources"`
		Schema                   crdSchema    `json:"schema"`
		AdditionalPrinterColumns []printerCol `json:"additionalPrinterColumns"`
	}
	subres struct {
		Status map[string]any `json:"status"`
	}
	crdSchema struct {
		OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
	}
	printerCol struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		JSONPath string `json:"jsonPath"`
	}
)

// openAPISchema is every version's structural schema: spec is free-form (eventgate validates it and reports
// problems in status, with the words `eventgate validate` prints), status has the fields eventgate
// writes and keeps any others.
func openAPISchema() map[string]any {
	obj := func(props map[string]any) map[string]any {
		m := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
		if props != nil {
			m["properties"] = props
		}
		return m
	}
	str := map[string]any{"type": "string"}
	condition := map[string]any{"type": "object", "required": []string{"type", "status"}, "properties": map[string]any{
		"type": str, "status": str, "reason": str, "message": str, "severity": str,
		"lastTransitionTime": str,
	}}
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"spec": obj(nil),
			"status": obj(map[string]any{
				"observedGeneration": map[string]any{"type": "integer", "format": "int64"},
				"conditions":         map[string]any{"type": "array", "items": condition},
				"address":            obj(map[string]any{"url": str}),
				"sinkUri":            str,
				"subscriberUri":      str,
				"physicalSubscription": obj(map[string]any{
					"subscriberUri": str, "replyUri": str, "deadLetterSinkUri": str,
				}),
			}),
		},
	}
}

// columns are the printer columns of a kind: READY and REASON from the Ready condition, the URL
// that matters for the role (a channel's or broker's address, a subscriber, a sink), and AGE.
func columns(role resources.Role) []printerCol {
	ready := `.status.conditions[?(@.type=="Ready")]`
	cols := []printerCol{
		{Name: "Ready", Type: "string", JSONPath: ready + ".status"},
		{Name: "Reason", Type: "string", JSONPath: ready + ".reason"},
	}
	switch role {
	case resources.RoleChannel, resources.RoleBroker:
		cols = append(cols, printerCol{Name: "URL", Type: "string", JSONPath: ".status.address.url"})
	case resources.RoleSubscription:
		cols = append(cols, printerCol{Name: "Subscriber", Type: "string", JSONPath: ".status.physicalSubscription.subscriberUri"})
	case resources.RoleTrigger:
		cols = append(cols, printerCol{Name: "Subscriber", Type: "string", JSONPath: ".status.subscriberUri"})
	case resources.RoleSource:
		cols = append(cols, printerCol{Name: "Sink", Type: "string", JSONPath: ".status.sinkUri"})
	}
	return append(cols, printerCol{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"})
}

// object returns the CustomResourceDefinition of c.
func (c CRD) object() crdObject {
	o := crdObject{
		APIVersion: "apiextensions.k8s.io/v1",
		Kind:       "CustomResourceDefinition",
		Metadata:   crdMetadata{Name: c.Name(), Labels: map[string]string{"app.kubernetes.io/part-of": "eventgate"}},
		Spec: crdSpec{
			Group: c.Group,
			Names: crdNames{Kind: c.Kind, ListKind: c.Kind + "List", Plural: c.Plural, Singular: strings.ToLower(c.Kind),
				Categories: []string{"all", "knative", "eventgate"}},
			Scope: "Namespaced",
		},
	}
	for i, v := range c.Versions {
		o.Spec.Versions = append(o.Spec.Versions, crdVersion{
			Name: v, Served: true, Storage: i == 0,
			Subresources:             subres{Status: map[string]any{}},
			Schema:                   crdSchema{OpenAPIV3Schema: openAPISchema()},
			AdditionalPrinterColumns: columns(c.Role),
		})
	}
	return o
}

// CRDManifest returns every CRD as one multi-document YAML file: the chart's crds/ file.
func CRDManifest() []byte {
	var b bytes.Buffer
	b.WriteString("# The CustomResourceDefinitions of every kind eventgate runs, for clusters without Knative.\n")
	b.WriteString("# Generated from the kinds table (gateway/resources/kinds.go): do not edit; run\n")
	b.WriteString("#   go test ./gateway/kube -run TestChartCRDs -update\n")
	for _, c := range CRDs() {
		y, err := yaml.Marshal(c.object())
		if err != nil { // plain data: cannot fail
			panic(fmt.Sprintf("kube: CRD %s: %v", c.Name(), err))
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes()
}
