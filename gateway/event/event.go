// Package event holds eventgate's CloudEvent value and its codecs: the CloudEvents 1.0 HTTP binding
// (binary, structured and batched modes) and the Kafka binding (binary mode, structured read).
//
// The codec is small and allocation-conscious on purpose: it sits on the ingress hot path. Its
// behaviour is checked against github.com/cloudevents/sdk-go/v2 in tests.
package event

import "slices"

// SpecVersion is the only CloudEvents version eventgate accepts and emits.
const SpecVersion = "1.0"

// Event is one CloudEvent. Context attributes are kept as their canonical string form (the form the
// HTTP and Kafka bindings carry); Time, when set, is an RFC 3339 timestamp.
//
// An Event is a plain value: it is not safe for concurrent mutation, but may be read concurrently.
type Event struct {
	// Required attributes.
	ID          string
	Source      string // URI-reference
	SpecVersion string // always "1.0" once validated
	Type        string

	// Optional attributes; empty means absent.
	DataContentType string
	DataSchema      string // URI
	Subject         string
	Time            string // RFC 3339

	// Extensions maps lower-case extension names to their string values.
	Extensions map[string]string

	// Data is the event payload, exactly as carried on the wire (for JSON data in structured mode:
	// the JSON text of the "data" member; for "data_base64": the decoded bytes).
	Data []byte
}

// PartitionKeyExtension is the CloudEvents partitioning extension: its value becomes the Kafka record key
// and picks the in-memory partition.
const PartitionKeyExtension = "partitionkey"

// Extension returns the value of extension name ("" when absent).
func (e *Event) Extension(name string) string { return e.Extensions[name] }

// SetExtension sets extension name to value, allocating the map when needed.
func (e *Event) SetExtension(name, value string) {
	if e.Extensions == nil {
		e.Extensions = make(map[string]string, 4)
	}
	e.Extensions[name] = value
}

// ExtensionNames returns the names of e's extensions in ascending byte order, in a new slice the caller
// owns (empty when there are none). Every encoding and printout that lists extensions uses this order,
// so their output is deterministic.
func (e *Event) ExtensionNames() []string {
	names := make([]string, 0, len(e.Extensions))
	for n := range e.Extensions {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Clone returns a deep copy of e.
func (e *Event) Clone() *Event {
	c := *e
	if e.Extensions != nil {
		c.Extensions = make(map[string]string, len(e.Extensions))
		for k, v := range e.Extensions {
			c.Extensions[k] = v
		}
	}
	if e.Data != nil {
		c.Data = append([]byte(nil), e.Data...)
	}
	return &c
}

// Size approximates the bytes e holds; the in-memory channel uses it to bound memory.
func (e *Event) Size() int {
	n := len(e.ID) + len(e.Source) + len(e.SpecVersion) + len(e.Type) + len(e.DataContentType) +
		len(e.DataSchema) + len(e.Subject) + len(e.Time) + len(e.Data) + 128
	for k, v := range e.Extensions {
		n += len(k) + len(v) + 16
	}
	return n
}

// Equal reports whether e and o carry the same attributes, extensions and data. A nil and an empty
// Extensions map are equal, as are nil and empty Data. Equal is safe to call on nil pointers.
func (e *Event) Equal(o *Event) bool {
	if e == nil || o == nil {
		return e == o
	}
	if e.ID != o.ID || e.Source != o.Source || e.SpecVersion != o.SpecVersion || e.Type != o.Type ||
		e.DataContentType != o.DataContentType || e.DataSchema != o.DataSchema ||
		e.Subject != o.Subject || e.Time != o.Time {
		return false
	}
	if len(e.Extensions) != len(o.Extensions) {
		return false
	}
	for k, v := range e.Extensions {
		if ov, ok := o.Extensions[k]; !ok || ov != v {
			return false
		}
	}
	return string(e.Data) == string(o.Data)
}
