package resources

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"PT0.5S", 500 * time.Millisecond},
		{"PT0,5S", 500 * time.Millisecond},
		{"PT10S", 10 * time.Second},
		{"PT1M", time.Minute},
		{"PT1H", time.Hour},
		{"P1D", 24 * time.Hour},
		{"P2W", 14 * 24 * time.Hour},
		{"P1DT12H", 36 * time.Hour},
		{"PT1H30M15S", time.Hour + 30*time.Minute + 15*time.Second},
		{"P1W2DT3H4M5.006S", (9*24+3)*time.Hour + 4*time.Minute + 5006*time.Millisecond},
		{"PT0S", 0},
		{"PT168H", 7 * 24 * time.Hour},
		{"PT1.5H", 90 * time.Minute},
		{"PT.5S", 500 * time.Millisecond},
		{"PT0.000000001S", time.Nanosecond},
		{"PT0.0000000019S", time.Nanosecond}, // below a nanosecond: truncated
		{"PT0.1234567890123456789012S", 123456789 * time.Nanosecond},
		{"PT2562047H", 2562047 * time.Hour},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseDurationRejects(t *testing.T) {
	tests := []struct {
		in, why string
	}{
		{"", "empty"},
		{"10s", `must start with "P"`},
		{"-PT1S", "negative"},
		{"P", "no components"},
		{"PT", `"T" must be followed`},
		{"P1DT", `"T" must be followed`},
		{"P1Y", "years and months"},
		{"P1M", "years and months"},
		{"PT1H1H", "unexpected designator"},
		{"PT1S1M", "unexpected designator"},
		{"P1D1W", "unexpected designator"},
		{"P1H", "unexpected designator"},
		{"PT1X", "unexpected designator"},
		{"PT1.5M30S", "only the last component may have a fraction"},
		{"PT1.S", "decimal separator must be followed by digits"},
		{"PT10", "must be followed by a designator"},
		{"PTS", "expected a number"},
		{"PT1HT1M", `"T" appears twice`},
		{"pt1s", `must start with "P"`},
		{"PT2562048H", "too long"},
		{"PT99999999999999999999S", "too long"},
		{"P106751DT23H47M16.854775808S", "too long"},
	}
	for _, tt := range tests {
		_, err := ParseDuration(tt.in)
		if err == nil {
			t.Errorf("ParseDuration(%q) accepted", tt.in)
			continue
		}
		if !errors.Is(err, ErrDuration) {
			t.Errorf("ParseDuration(%q) = %v, not ErrDuration", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParseDuration(%q) = %q, want it to say %q", tt.in, err, tt.why)
		}
	}
}

// FuzzParseDuration checks that ParseDuration never panics, never returns a negative duration, and
// either accepts or returns an ErrDuration that quotes its input.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT0.5S", "P1DT12H", "P2W", "PT1,5H", "P1Y", "-PT1S", "PT", "PT99999999999999999999S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if !errors.Is(err, ErrDuration) {
				t.Fatalf("ParseDuration(%q): error %v is not ErrDuration", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
	})
}
