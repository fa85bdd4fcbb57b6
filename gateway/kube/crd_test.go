package kube

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/eventgate/eventgate/gateway/resources"
)

var update = flag.Bool("update", false, "rewrite the chart's CRD file from the kinds table")

// chartCRDs is the chart's CRD file, which CRDManifest generates.
const chartCRDs = "../../charts/eventgate/crds/eventgate-crds.yaml"

// TestChartCRDs checks the chart's crds/ file against the kinds table: one home for the list of kinds.
func TestChartCRDs(t *testing.T) {
	want := CRDManifest()
	if *update {
		if err := os.WriteFile(chartCRDs, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(chartCRDs)
	if err != nil {
		t.Fatalf("%v (run go test ./gateway/kube -run TestChartCRDs -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what the kinds table generates: run go test ./gateway/kube -run TestChartCRDs -update", chartCRDs)
	}
}

// TestEveryKindHasCRD: every apiVersion of every managed kind is served by one CRD, with the status
// subresource, the printer columns and a structural schema.
func TestEveryKindHasCRD(t *testing.T) {
	docs := strings.Split(string(CRDManifest()), "\n---\n")
	type crd struct {
		Spec struct {
			Group    string
			Names    struct{ Kind, Plural string }
			Versions []struct {
				Name                     string
				Served, Storage          bool
				Subresources             struct{ Status *map[string]any }
				Schema                   struct{ OpenAPIV3Schema map[string]any }
				AdditionalPrinterColumns []struct{ Name string }
			}
		}
	}
	served := map[string]bool{} // GROUP/VERSION/KIND
	for _, d := range docs[1:] {
		var c crd
		if err := yaml.Unmarshal([]byte(d), &c); err != nil {
			t.Fatal(err)
		}
		storage := 0
		for _, v := range c.Spec.Versions {
			served[c.Spec.Group+"/"+v.Name+"/"+c.Spec.Names.Kind] = v.Served
			if v.Storage {
				storage++
			}
			if v.Subresources.Status == nil {
				t.Errorf("%s %s: no status subresource", c.Spec.Names.Plural, v.Name)
			}
			if v.Schema.OpenAPIV3Schema["type"] != "object" {
				t.Errorf("%s %s: schema is not an object", c.Spec.Names.Plural, v.Name)
			}
			var cols []string
			for _, col := range v.AdditionalPrinterColumns {
				cols = append(cols, col.Name)
			}
			for _, want := range []string{"Ready", "Reason", "Age"} {
				if !slices.Contains(cols, want) {
					t.Errorf("%s %s: no printer column %s (%v)", c.Spec.Names.Plural, v.Name, want, cols)
				}
			}
		}
		if storage != 1 {
			t.Errorf("%s: %d storage versions, want 1", c.Spec.Names.Plural, storage)
		}
	}
	for _, k := range resources.Kinds() {
		for _, av := range k.APIVersions {
			if !served[av+"/"+k.Kind] {
				t.Errorf("%s %s: no CRD serves it", av, k.Kind)
			}
		}
	}
}
