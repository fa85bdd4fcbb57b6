package resources

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// The kinds of problem a resource can have; every *Error wraps one of them.
var (
	// ErrSyntax: the file is not valid YAML/JSON, or a document is not a Kubernetes-style object.
	ErrSyntax = errors.New("invalid manifest")
	// ErrInvalid: a field is missing, of the wrong type, or has a value eventgate does not accept.
	ErrInvalid = errors.New("invalid resource")
	// ErrDuplicate: two resources of one kind share a namespace and name.
	ErrDuplicate = errors.New("duplicate resource")
	// ErrUndefined: a reference to a channel names no channel of the set.
	ErrUndefined = errors.New("undefined reference")
)

// Error is one problem with one resource. Its message names the file, the document (1-based), the
// resource when known, the field path and, when known, the line:
//
//	demo.yaml: document 2 (Subscription default/sub): spec.subscriber.uri: "::bad" is not a URL (line 14)
type Error struct {
	File      string // "" for a resource built in code
	Doc       int    // 0 when not about one document
	Kind      string // the resource, when known
	Namespace string
	Name      string
	Path      string // field path, "" for the whole document
	Line      int    // 0 when unknown
	Msg       string
	Err       error // the kind: ErrSyntax, ErrInvalid, ErrDuplicate or ErrUndefined
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Doc > 0 {
		b.WriteString("document ")
		b.WriteString(strconv.Itoa(e.Doc))
	}
	if e.Kind != "" {
		if e.Doc > 0 {
			b.WriteString(" (")
		}
		b.WriteString(printable(e.Kind))
		if e.Name != "" {
			b.WriteString(" ")
			b.WriteString(printable(e.Namespace))
			b.WriteString("/")
			b.WriteString(printable(e.Name))
		}
		if e.Doc > 0 {
			b.WriteString(")")
		}
	}
	if e.Doc > 0 || e.Kind != "" {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(printable(e.Path))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// printable returns s as it is when every rune is a printable character, else quoted with Go
// escapes: names taken from a manifest must not break a problem's line (one problem per line).
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// Unwrap returns the kind of problem.
func (e *Error) Unwrap() error { return e.Err }

// problems collects the errors of one resource.
type problems struct {
	m    *Meta
	errs []error
	seen map[*yaml.Node]bool // see reported
}

// add records a problem at path (a field path of the canonical v1 shape; rewritten through the
// resource's aliases to the shape it was written in).
func (p *problems) add(kind error, path, format string, args ...any) {
	path = p.m.actualPath(path)
	p.errs = append(p.errs, &Error{
		File: p.m.File, Doc: p.m.Doc, Kind: p.m.Kind, Namespace: p.m.Namespace, Name: p.m.Name,
		Path: path, Line: p.m.lineOf(path), Msg: fmt.Sprintf(format, args...), Err: kind,
	})
}

func (p *problems) invalid(path, format string, args ...any) {
	p.add(ErrInvalid, path, format, args...)
}

// actualPath maps a canonical field path to the path in the source document, using the longest
// aliased prefix.
func (m *Meta) actualPath(path string) string {
	best := ""
	for from := range m.aliases {
		if hasPathPrefix(path, from) && len(from) > len(best) {
			best = from
		}
	}
	if best == "" {
		return path
	}
	return m.aliases[best] + path[len(best):]
}

// lineOf returns the line of path, or of its nearest recorded ancestor; 0 when unknown.
func (m *Meta) lineOf(path string) int {
	for path != "" {
		if l, ok := m.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func hasPathPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	rest := path[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}
