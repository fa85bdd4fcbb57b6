package deploytest

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

// promqlKeywords are PromQL words that look like identifiers but are not metric names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true,
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
	"limitk": true, "limit_ratio": true, "inf": true, "nan": true,
}

// labelListWords are followed by a parenthesised list of label names, not of expressions.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

func isIdentStart(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) && r < 128 }
func isIdentPart(r rune) bool  { return isIdentStart(r) || unicode.IsDigit(r) && r < 128 }

// metricNames returns the metric names a PromQL expression selects, in order of first appearance.
//
// It is a small scanner, not a full PromQL parser: it skips string literals, label matchers ({...}),
// range and subquery brackets ([...]), label lists after by/without/on/ignoring/group_left/group_right,
// function names (an identifier followed by "("), keywords and numbers (including 1e3, 0x1f).
//
// Invariants (checked by FuzzMetricNames): it never panics on any input, and every name it returns is
// a non-empty identifier ([a-zA-Z_:][a-zA-Z0-9_:]*) that occurs in the input and is not a keyword.
func metricNames(expr string) []string {
	rs := []rune(expr)
	var out []string
	skipLabelList := false
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			i = skipString(rs, i)
		case r == '{':
			i = skipUntil(rs, i, '}')
		case r == '[':
			i = skipUntil(rs, i, ']')
		case r == '#':
			i = skipUntil(rs, i, '\n')
		case r == '(' && skipLabelList:
			skipLabelList = false
			i = skipUntil(rs, i, ')')
		case unicode.IsDigit(r) || r == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1]):
			// A number: digits, letters (hex, exponents, durations) and dots. The first rune is taken
			// whatever it is: a digit of another script (߇) is no identifier part, and would stall here.
			for i++; i < len(rs) && (isIdentPart(rs[i]) || rs[i] == '.'); {
				i++
			}
		case isIdentStart(r):
			start := i
			for i < len(rs) && isIdentPart(rs[i]) {
				i++
			}
			word := string(rs[start:i])
			lower := strings.ToLower(word)
			next := i
			for next < len(rs) && unicode.IsSpace(rs[next]) {
				next++
			}
			switch {
			case labelListWords[lower]:
				skipLabelList = true
			case promqlKeywords[lower]:
			case next < len(rs) && rs[next] == '(':
				// A function call.
			case start > 0 && rs[start-1] == '$':
				// A Grafana variable outside a string ($__range); not a metric.
			default:
				if !slices.Contains(out, word) {
					out = append(out, word)
				}
			}
		default:
			i++
		}
	}
	return out
}

// skipString returns the index after the string literal starting at rs[i].
func skipString(rs []rune, i int) int {
	q := rs[i]
	for i++; i < len(rs); i++ {
		if rs[i] == '\\' && q != '`' {
			i++
			continue
		}
		if rs[i] == q {
			return i + 1
		}
	}
	return len(rs)
}

// skipUntil returns the index after the first end at or after rs[i+1], skipping string literals.
func skipUntil(rs []rune, i int, end rune) int {
	for i++; i < len(rs); {
		switch rs[i] {
		case end:
			return i + 1
		case '"', '\'', '`':
			i = skipString(rs, i)
		default:
			i++
		}
	}
	return len(rs)
}

func TestMetricNames(t *testing.T) {
	cases := map[string][]string{
		`eventgate_build_info`: {"eventgate_build_info"},
		`sum by (namespace, channel) (rate(eventgate_ingress_requests_total{namespace=~"$namespace", code!="202"}[$__rate_interval]))`: {"eventgate_ingress_requests_total"},
		`histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{a="}"}[5m])))`:                                                    {"x_seconds_bucket"},
		`sum without (instance) (a_total) / ignoring (code) group_left (ns) b_total > bool 0.5e3`:                                      {"a_total", "b_total"},
		`max_over_time(up[1h:5m]) offset 1d or on() vector(0)`:                                                                         {"up"},
		`label_values(eventgate_build_info, job)`:                                                                                      {"eventgate_build_info", "job"},
		`increase(c_total[$__range]) * 0x1F`:                                                                                           {"c_total"},
		`topk(5, sum by (le)(d))`:                                                                                                      {"d"},
		``:                                                                                                                             nil,
	}
	for expr, want := range cases {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{
		`sum by (le) (rate(a_bucket{x="y"}[5m]))`, `"unterminated`, `{`, `[`, `by (`, `1e+3 - .5`,
		"a`b`c", `x{a="\"}"} + y`, `$__range`, `é_metric`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, name := range metricNames(expr) {
			if name == "" || !strings.Contains(expr, name) || promqlKeywords[strings.ToLower(name)] {
				t.Fatalf("metricNames(%q) returned %q", expr, name)
			}
			for i, r := range name {
				if i == 0 && !isIdentStart(r) || !isIdentPart(r) {
					t.Fatalf("metricNames(%q) returned non-identifier %q", expr, name)
				}
			}
		}
	})
}
