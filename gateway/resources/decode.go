package resources

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"gopkg.in/yaml.v3"
)

// Decode reads every document of one file (YAML, or JSON, which is YAML too) into a Set, with
// defaults applied and each resource validated on its own. Cross-resource rules (duplicates, the
// channel a subscription names) are Set.Validate's; Load applies both.
//
// Empty documents are skipped; documents of kinds eventgate does not run become Unmanaged and are never
// an error. On any problem Decode returns a nil Set and all problems joined, each an *Error naming
// file, document, resource and field. Safe for concurrent use; never panics.
func Decode(file string, data []byte, opt Options) (*Set, error) {
	s, errs := decodeFile(file, data, opt)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.DefaultProvisioner == "" {
		o.DefaultProvisioner = ProvisionerInMemory
	}
	if !slices.Contains(provisioners(), o.DefaultProvisioner) {
		return o, fmt.Errorf("%w: default provisioner %q is not %s", ErrInvalid, o.DefaultProvisioner,
			alternatives(quoted(provisioners())))
	}
	return o, nil
}

// decodeFile returns every resource that decoded (valid or not) and every problem.
func decodeFile(file string, data []byte, opt Options) (*Set, []error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, []error{err}
	}
	s := &Set{}
	var errs []error
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := safeDecode(dec, &n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The YAML reader cannot resume after a syntax error: the rest of the file is unread.
			errs = append(errs, &Error{File: file, Doc: doc, Msg: err.Error(), Err: ErrSyntax})
			break
		}
		errs = append(errs, decodeDoc(file, doc, &n, opt, s)...)
	}
	return s, errs
}

// safeDecode guards against a panic in the YAML reader: bad input must be an error, never a crash.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable YAML: %v", r)
		}
	}()
	return dec.Decode(n)
}

// resource is what every decoded kind is.
type resource interface {
	meta() *Meta
	validate(p *problems)
	addTo(s *Set)
}

// input is one document of a managed kind, as its decoder gets it.
type input struct {
	kind *Kind   // the document's row of the kinds table
	m    *Meta   // already filled from apiVersion, kind and metadata
	spec val     // the document's spec (absent when it has none)
	opt  Options // with defaults applied
}

// decodeFunc decodes the spec of one managed kind (Kind.decode). Shape problems are recorded against
// in.m; the resource's own validate method checks the values afterwards.
type decodeFunc func(in input) resource

// alias records that the field at canonical path was written at path written (an older shape), so
// that problems name what the manifest says.
func (m *Meta) alias(canonical, written string) { m.aliases[canonical] = written }

// decodeDoc decodes one document into s and returns its problems.
func decodeDoc(file string, doc int, n *yaml.Node, opt Options, s *Set) []error {
	m := &Meta{File: file, Doc: doc, lines: map[string]int{}, aliases: map[string]string{}}
	p := &problems{m: m}
	root := val{p: p, n: deref(n)}
	if root.n == nil {
		return nil // an empty document: a stray "---"
	}
	if root.n.Kind != yaml.MappingNode {
		p.add(ErrSyntax, "", "a document must be an object (a Kubernetes resource), not %s", describeNode(root.n))
		return p.errs
	}
	m.APIVersion = root.field("apiVersion").str()
	m.Kind = root.field("kind").str()
	md := root.field("metadata")
	md.isMap()
	m.Name = md.field("name").str()
	m.Namespace = md.field("namespace").str()
	m.Annotations = md.field("annotations").strMap()
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	if m.APIVersion == "" {
		p.add(ErrSyntax, "apiVersion", "missing")
	}
	if m.Kind == "" {
		p.add(ErrSyntax, "kind", "missing")
	}
	if m.APIVersion == "" || m.Kind == "" {
		return p.errs
	}
	kind, unsupported := lookupKind(m.APIVersion, m.Kind)
	if unsupported != "" {
		p.invalid("apiVersion", "%s", unsupported)
		return p.errs
	}
	if kind == nil {
		// Not run by eventgate: accepted whatever its shape.
		u := &Unmanaged{Meta: *m}
		if m.Kind == "ConfigMap" {
			u.Data = scalarMap(root.n, "data")
		}
		s.Unmanaged = append(s.Unmanaged, u)
		return nil
	}
	r := kind.decode(input{kind: kind, m: m, spec: root.field("spec"), opt: opt})
	// Shape problems were recorded against m; the resource's own Meta is a copy sharing its maps.
	r.validate(p)
	r.addTo(s)
	return p.errs
}

// scalarMap returns the scalar entries of object n's field key, without recording any problem (an
// unmanaged resource is never an error); nil when there are none.
func scalarMap(n *yaml.Node, key string) map[string]string {
	var out map[string]string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != key {
			continue
		}
		d := deref(n.Content[i+1])
		if d == nil || d.Kind != yaml.MappingNode {
			return nil
		}
		for j := 0; j+1 < len(d.Content); j += 2 {
			if v := deref(d.Content[j+1]); v != nil && v.Kind == yaml.ScalarNode {
				if out == nil {
					out = map[string]string{}
				}
				out[d.Content[j].Value] = v.Value
			}
		}
	}
	return out
}
