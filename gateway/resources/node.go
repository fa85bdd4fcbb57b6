package resources

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// val is a position in a YAML document: a node (nil when absent or null) and its field path.
// Reading a val of the wrong shape records one problem and yields the zero value.
type val struct {
	p    *problems
	n    *yaml.Node
	path string
}

// deref follows aliases and turns null into nil.
func deref(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 32; depth++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return deref(n.Content[0])
	}
	return n
}

func (v val) ok() bool { return v.n != nil }

// wrong records that v is not of the wanted shape.
func (v val) wrong(want string) {
	if v.p.reported(v.n) {
		return
	}
	v.p.invalid(v.path, "must be %s, not %s", want, describeNode(v.n))
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "an object"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(truncate(n.Value, 40))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (v val) child(path string, n *yaml.Node, line int) val {
	if line > 0 {
		if v.p.m.lines == nil {
			v.p.m.lines = map[string]int{}
		}
		v.p.m.lines[path] = line
	}
	return val{p: v.p, n: deref(n), path: path}
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// isMap reports whether v is an object, recording a problem if it is present but is not.
func (v val) isMap() bool {
	if !v.ok() {
		return false
	}
	if v.n.Kind != yaml.MappingNode {
		v.wrong("an object")
		return false
	}
	return true
}

// has reports whether v is an object with a non-null key.
func (v val) has(key string) bool {
	if v.n == nil || v.n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(v.n.Content); i += 2 {
		if v.n.Content[i].Value == key {
			return deref(v.n.Content[i+1]) != nil
		}
	}
	return false
}

// field returns v[key]; absent when v is absent, not an object (a problem), or lacks key.
func (v val) field(key string) val {
	path := joinPath(v.path, key)
	if v.n == nil || v.n.Kind != yaml.MappingNode {
		if v.n != nil {
			v.wrong("an object")
		}
		return val{p: v.p, path: path}
	}
	for i := 0; i+1 < len(v.n.Content); i += 2 {
		if k := v.n.Content[i]; k.Value == key {
			return v.child(path, v.n.Content[i+1], k.Line)
		}
	}
	return val{p: v.p, path: path}
}

// list returns the items of a sequence; nil when absent or not a list (a problem).
func (v val) list() []val {
	if !v.ok() {
		return nil
	}
	if v.n.Kind != yaml.SequenceNode {
		v.wrong("a list")
		return nil
	}
	out := make([]val, 0, len(v.n.Content))
	for i, c := range v.n.Content {
		out = append(out, v.child(fmt.Sprintf("%s[%d]", v.path, i), c, c.Line))
	}
	return out
}

// str returns a scalar's text ("" when absent; any scalar is accepted, so `true` reads as "true").
func (v val) str() string {
	if !v.ok() {
		return ""
	}
	if v.n.Kind != yaml.ScalarNode {
		v.wrong("a string")
		return ""
	}
	return v.n.Value
}

// strList returns a list of scalars.
func (v val) strList() []string {
	items := v.list()
	if items == nil {
		return nil
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.str())
	}
	return out
}

// strMap returns an object of scalars; nil when absent or empty.
func (v val) strMap() map[string]string {
	if !v.isMap() {
		return nil
	}
	var out map[string]string
	for i := 0; i+1 < len(v.n.Content); i += 2 {
		k := v.n.Content[i]
		path := fmt.Sprintf("%s[%q]", v.path, k.Value)
		c := v.child(path, v.n.Content[i+1], k.Line)
		if out == nil {
			out = map[string]string{}
		}
		out[k.Value] = c.str()
	}
	return out
}

// integer parses an integer in [lo, hi]; ok is false when absent or invalid (a problem).
func (v val) integer(lo, hi int64) (int64, bool) {
	s := v.str()
	if !v.ok() || v.n.Kind != yaml.ScalarNode {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		v.p.invalid(v.path, "%q is not an integer", truncate(s, 40))
		return 0, false
	}
	if n < lo || n > hi {
		if hi == math.MaxInt64 {
			v.p.invalid(v.path, "must be at least %d, not %d", lo, n)
		} else {
			v.p.invalid(v.path, "must be between %d and %d, not %d", lo, hi, n)
		}
		return 0, false
	}
	return n, true
}

// duration parses an ISO 8601 duration; nil when absent or invalid (a problem).
func (v val) duration() *time.Duration {
	s := v.str()
	if !v.ok() || v.n.Kind != yaml.ScalarNode {
		return nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		v.p.invalid(v.path, "%q is not an ISO 8601 duration (like PT10S, PT0.5S, P1D): %s", truncate(s, 40),
			strings.TrimPrefix(err.Error(), ErrDuration.Error()+" "+strconv.Quote(s)+": "))
		return nil
	}
	return &d
}

// reported remembers nodes already reported as the wrong shape, so that reading several fields of
// one wrong node reports it once.
func (p *problems) reported(n *yaml.Node) bool {
	if p.seen == nil {
		p.seen = map[*yaml.Node]bool{}
	}
	if p.seen[n] {
		return true
	}
	p.seen[n] = true
	return false
}
