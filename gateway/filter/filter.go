// Package filter decides which events a trigger delivers, as Knative specifies trigger filters.
//
// Two forms exist. The older `filter.attributes` is a map of attribute names to values: every listed
// attribute (a context attribute or an extension) must be present and equal its value, and an empty
// value matches any value of a present attribute. The newer `filters` (the CloudEvents Subscriptions
// API dialects) is a list ANDed together of exact, prefix, suffix, all, any, not and cesql
// expressions. A non-empty `filters` overrides `filter`.
//
// Compile turns the declared form into a *Filter once; Pass then decides per event. Pass allocates
// nothing for the attribute dialects, so a filtered-out event costs little more than its lookup;
// only CESQL builds the SDK's event value it evaluates against. CESQL 1.0 runs through
// github.com/cloudevents/sdk-go/sql/v2: an evaluation error or a non-boolean result does not pass.
//
// The package imports only gateway/event and the CESQL module. A compiled *Filter is immutable and
// safe for concurrent use.
package filter

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eventgate/eventgate/gateway/event"
)

// Spec is one entry of a trigger's `filters`: exactly one dialect is set in a valid Spec (the
// manifest decoder checks that; Compile takes the first one set, in the order of the fields).
type Spec struct {
	// Exact, Prefix and Suffix map one attribute name to a value: the attribute must be present and
	// equal the value, start with it, or end with it. Matching is case-sensitive.
	Exact  map[string]string
	Prefix map[string]string
	Suffix map[string]string
	// All passes when every nested filter passes (an empty list passes).
	All []Spec
	// Any passes when at least one nested filter passes (an empty list passes: it filters nothing).
	Any []Spec
	// Not passes when the nested filter does not.
	Not *Spec
	// CESQL is a CloudEvents SQL 1.0 expression; it passes when it evaluates to true without error.
	CESQL string
}

// ErrInvalid is wrapped by Compile's errors: a filter that cannot be compiled (a CESQL expression
// that does not parse, or an entry with no dialect).
var ErrInvalid = errors.New("invalid filter")

// Filter is a compiled trigger filter. The nil *Filter passes every event.
type Filter struct {
	root node
}

// node is one compiled expression.
type node interface {
	pass(e *event.Event) bool
}

// Compile compiles a trigger's filters: filters when non-empty (ANDed), else attributes (every
// entry required, "" meaning any value); nil when neither filters anything. Errors wrap ErrInvalid and
// name the entry, like `filters[1].any[0].cesql: ...`.
func Compile(attributes map[string]string, filters []Spec) (*Filter, error) {
	if len(filters) > 0 {
		n, err := compileList(filters, "filters")
		if err != nil {
			return nil, err
		}
		return &Filter{root: n}, nil
	}
	if len(attributes) == 0 {
		return nil, nil
	}
	return &Filter{root: attributesNode(attributes)}, nil
}

// Pass reports whether e passes f. A nil f passes every event; a nil e passes none.
func (f *Filter) Pass(e *event.Event) bool {
	if f == nil {
		return true
	}
	if e == nil {
		return false
	}
	return f.root.pass(e)
}

func compileList(specs []Spec, path string) (allNode, error) {
	out := make(allNode, 0, len(specs))
	for i := range specs {
		n, err := compile(&specs[i], fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func compile(s *Spec, path string) (node, error) {
	switch {
	case s.Exact != nil:
		return matchNode(s.Exact, matchExact), nil
	case s.Prefix != nil:
		return matchNode(s.Prefix, strings.HasPrefix), nil
	case s.Suffix != nil:
		return matchNode(s.Suffix, strings.HasSuffix), nil
	case s.All != nil:
		return compileList(s.All, path+".all")
	case s.Any != nil:
		l, err := compileList(s.Any, path+".any")
		if err != nil {
			return nil, err
		}
		return anyNode(l), nil
	case s.Not != nil:
		n, err := compile(s.Not, path+".not")
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case s.CESQL != "":
		n, err := compileCESQL(s.CESQL)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.cesql: %w", ErrInvalid, path, err)
		}
		return n, nil
	}
	return nil, fmt.Errorf("%w: %s: no dialect (exact, prefix, suffix, all, any, not or cesql)", ErrInvalid, path)
}

func matchExact(value, want string) bool { return value == want }

// Attribute returns the value of e's attribute name, a context attribute or an extension, in its
// canonical string form, and whether e has it. The names are the CloudEvents ones, lower case.
func Attribute(e *event.Event, name string) (string, bool) {
	var v string
	switch name {
	case "specversion":
		v = e.SpecVersion
	case "id":
		v = e.ID
	case "source":
		v = e.Source
	case "type":
		v = e.Type
	case "subject":
		v = e.Subject
	case "time":
		v = e.Time
	case "dataschema":
		v = e.DataSchema
	case "datacontenttype":
		v = e.DataContentType
	default:
		v, ok := e.Extensions[name]
		return v, ok
	}
	return v, v != ""
}

// attrNode is one attribute compared with one value.
type attrNode struct {
	name, value string
	match       func(value, want string) bool // nil: any value of a present attribute
}

func (n attrNode) pass(e *event.Event) bool {
	v, ok := Attribute(e, n.name)
	if !ok {
		return false
	}
	return n.match == nil || n.match(v, n.value)
}

// matchNode compiles an exact, prefix or suffix map: every entry must match (a valid manifest has one).
func matchNode(m map[string]string, match func(value, want string) bool) node {
	out := make(allNode, 0, len(m))
	for k, v := range m {
		out = append(out, attrNode{name: k, value: v, match: match})
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}

// attributesNode compiles filter.attributes: every entry equal, "" meaning any value.
func attributesNode(m map[string]string) node {
	out := make(allNode, 0, len(m))
	for k, v := range m {
		n := attrNode{name: k, value: v, match: matchExact}
		if v == "" {
			n.match = nil
		}
		out = append(out, n)
	}
	return out
}

// allNode passes when every node passes.
type allNode []node

func (l allNode) pass(e *event.Event) bool {
	for _, n := range l {
		if !n.pass(e) {
			return false
		}
	}
	return true
}

// anyNode passes when one node passes, or when it has none.
type anyNode []node

func (l anyNode) pass(e *event.Event) bool {
	if len(l) == 0 {
		return true
	}
	for _, n := range l {
		if n.pass(e) {
			return true
		}
	}
	return false
}

// notNode passes when its node does not.
type notNode struct{ n node }

func (n notNode) pass(e *event.Event) bool { return !n.n.pass(e) }
