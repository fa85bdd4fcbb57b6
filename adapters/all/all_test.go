package all_test

import (
	"slices"
	"testing"

	"github.com/eventgate/eventgate/adapters"
	_ "github.com/eventgate/eventgate/adapters/all"
	"github.com/eventgate/eventgate/gateway/resources"
)

// TestEverySourceKindHasAnAdapter checks the kinds table against the registry both ways: every
// source kind's adapter is registered, and every registered adapter runs some source kind.
func TestEverySourceKindHasAnAdapter(t *testing.T) {
	var named []string
	for _, k := range resources.Kinds() {
		if k.Runner.Role != resources.RoleSource {
			if _, ok := adapters.ForKind(k.Kind); ok {
				t.Errorf("%s is a %s, yet ForKind finds an adapter for it", k.Kind, k.Runner.Role)
			}
			continue
		}
		if _, ok := adapters.Lookup(k.Runner.Adapter); !ok {
			t.Errorf("%s: adapter %q is not registered", k.Kind, k.Runner.Adapter)
		}
		if _, ok := adapters.ForKind(k.Kind); !ok {
			t.Errorf("ForKind(%s) finds no adapter", k.Kind)
		}
		named = append(named, k.Runner.Adapter)
	}
	for _, name := range adapters.Registered() {
		if !slices.Contains(named, name) {
			t.Errorf("adapter %q is registered but no source kind names it", name)
		}
	}
	if len(adapters.Registered()) == 0 {
		t.Fatal("no adapter registered")
	}
}
