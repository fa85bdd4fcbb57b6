package pubsub

import (
	"strings"
	"testing"
)

func TestFitName(t *testing.T) {
	long := "eventgate.ns." + strings.Repeat("n", 300)
	tests := []struct {
		in   string
		keep bool // returned unchanged
	}{
		{"eventgate.default.orders", true},
		{"a-b_c.d~e+f%g", true},
		{"eventgate.ns/with:bad chars", false},
		{"1-starts-with-digit", false},
		{"goog-reserved", false},
		{"ab", false},
		{"", false},
		{long, false},
		{long + "x", false},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := fitName(tt.in)
		if !legalName(got) {
			t.Errorf("fitName(%.30q) = %q: not a legal Pub/Sub name", tt.in, got)
		}
		if (got == tt.in) != tt.keep {
			t.Errorf("fitName(%.30q) = %.40q; unchanged = %v, want %v", tt.in, got, got == tt.in, tt.keep)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("fitName(%.30q) and fitName(%.30q) are both %q", prev, tt.in, got)
		}
		seen[got] = tt.in
	}
}

// FuzzFitName: whatever the input, the result is a legal Pub/Sub name, and a legal name is kept.
func FuzzFitName(f *testing.F) {
	for _, s := range []string{"", "eventgate.a.b", "goog", "9x", strings.Repeat("é", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := fitName(in)
		if !legalName(out) {
			t.Fatalf("fitName(%q) = %q is not legal", in, out)
		}
		if legalName(in) && out != in {
			t.Fatalf("legal %q changed to %q", in, out)
		}
	})
}
