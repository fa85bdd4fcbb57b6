package main

import (
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/event"
)

func TestDisplayWritesExtensionsInNameOrder(t *testing.T) {
	ev := &event.Event{ID: "1", Source: "/s", SpecVersion: event.SpecVersion, Type: "t",
		Extensions: map[string]string{"zeta": "z", "alpha": "a", "mid": "m"}}
	var b strings.Builder
	writeEvent(&b, 1, ev)
	out := b.String()
	a, m, z := strings.Index(out, "alpha:"), strings.Index(out, "mid:"), strings.Index(out, "zeta:")
	if a < 0 || m < 0 || z < 0 || !(a < m && m < z) {
		t.Fatalf("extensions not printed in name order:\n%s", out)
	}
}
