package adapters

import (
	"context"
	"slices"
	"testing"

	"github.com/eventgate/eventgate/gateway/resources"
)

type nopAdapter struct{}

func (nopAdapter) Run(context.Context) error { return nil }

func TestRegister(t *testing.T) {
	f := func(*resources.Source, Deps) (Adapter, error) { return nopAdapter{}, nil }
	Register("registry-test", f)
	t.Cleanup(func() {
		registry.Lock()
		delete(registry.byName, "registry-test")
		registry.Unlock()
	})
	if _, ok := Lookup("registry-test"); !ok || !slices.Contains(Registered(), "registry-test") {
		t.Fatalf("registered adapter not found: %v", Registered())
	}
	if _, ok := Lookup("nope"); ok {
		t.Error("Lookup found an adapter never registered")
	}
	for name, call := range map[string]func(){
		"twice":      func() { Register("registry-test", f) },
		"no name":    func() { Register("", f) },
		"no factory": func() { Register("x", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			call()
		}()
	}
}

func TestForKindOfKindsThatAreNotSources(t *testing.T) {
	for _, kind := range []string{"KafkaChannel", "Subscription", "Service", ""} {
		if _, ok := ForKind(kind); ok {
			t.Errorf("ForKind(%q) found an adapter", kind)
		}
	}
}
