package adapters

import (
	"fmt"
	"slices"
	"sync"

	"github.com/eventgate/eventgate/gateway/resources"
)

// registry holds the adapters linked into this build, by name. Adapter packages fill it from their
// init functions (Register); the composition root links them in by importing adapters/all.
var registry = struct {
	sync.RWMutex
	byName map[string]Factory
}{byName: map[string]Factory{}}

// Register makes f the Factory of the adapter called name: the name the kinds table gives a source
// kind's runner (resources.Runner.Adapter). Adapter packages call it from init. It panics when name
// is empty, f is nil or name is already taken. Safe for concurrent use.
func Register(name string, f Factory) {
	if name == "" || f == nil {
		panic("adapters: Register needs a name and a factory")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.byName[name]; dup {
		panic(fmt.Sprintf("adapters: adapter %q registered twice", name))
	}
	registry.byName[name] = f
}

// Lookup returns the Factory registered as name. Safe for concurrent use.
func Lookup(name string) (Factory, bool) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.byName[name]
	return f, ok
}

// Registered returns the names of the registered adapters, sorted. Safe for concurrent use.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.byName))
	for name := range registry.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ForKind returns the Factory of the adapter that runs sources of kind: the adapter the kinds table
// names (resources.RunnerOf), as registered. It is false when kind is not a source kind or its
// adapter is not linked into this build. Safe for concurrent use.
func ForKind(kind string) (Factory, bool) {
	run, ok := resources.RunnerOf(kind)
	if !ok || run.Role != resources.RoleSource {
		return nil, false
	}
	return Lookup(run.Adapter)
}
