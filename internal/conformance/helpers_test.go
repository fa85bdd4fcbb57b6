package conformance

import (
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"TestConformance/PublishThenSubscribe", "testconformance-publishthensubscribe"},
		{"Test/a__b//c", "test-a-b-c"},
		{"/leading/and/trailing/", "leading-and-trailing"},
		{"ÄÖÜ", ""},
		{strings.Repeat("x", 100) + "/end", strings.Repeat("x", 76) + "-end"},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestUniqueNameIsUnique(t *testing.T) {
	a, b := UniqueName(t, "g-"), UniqueName(t, "g-")
	if a == b || !strings.HasPrefix(a, "g-testuniquenameisunique-") {
		t.Errorf("UniqueName gave %q and %q", a, b)
	}
}

// FuzzSanitize checks sanitize's invariants for any input: at most 80 bytes, only [a-z0-9-], no
// leading, trailing or doubled '-', and sanitizing again changes nothing.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"", "Test/x", "--", "a b\tc", "Ünïcödé/名前", strings.Repeat("ab/", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := sanitize(in)
		if len(out) > 80 {
			t.Fatalf("len %d > 80: %q", len(out), out)
		}
		for _, r := range out {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("%q contains %q", out, r)
			}
		}
		if strings.HasPrefix(out, "-") || strings.HasSuffix(out, "-") || strings.Contains(out, "--") {
			t.Fatalf("bad dashes in %q", out)
		}
		if again := sanitize(out); again != out {
			t.Fatalf("not idempotent: %q → %q", out, again)
		}
	})
}
