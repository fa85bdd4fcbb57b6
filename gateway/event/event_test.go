package event

import (
	"slices"
	"testing"
)

func TestExtensionNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ext  map[string]string
		want []string
	}{
		{"nil map", nil, []string{}},
		{"one", map[string]string{"partitionkey": "k"}, []string{"partitionkey"}},
		{"byte order", map[string]string{"zeta": "", "alpha": "1", "a1": "2", "b": "3"}, []string{"a1", "alpha", "b", "zeta"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Event{Extensions: tc.ext}
			got := e.ExtensionNames()
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ExtensionNames() = %q, want %q", got, tc.want)
			}
			if len(got) > 0 {
				got[0] = "changed" // the caller owns the slice
				if _, ok := e.Extensions["changed"]; ok || slices.Equal(e.ExtensionNames(), got) {
					t.Fatal("ExtensionNames shares its slice with the event")
				}
			}
		})
	}
}
