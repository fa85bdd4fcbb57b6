package event

import (
	"fmt"
	"strings"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Kafka header names of the CloudEvents Kafka binding (binary mode).
const (
	kafkaPrefix      = "ce_"
	kafkaContentType = "content-type"
)

// ToKafka encodes e as a Kafka record in binary content mode: ce_specversion, ce_id, ce_source, ce_type,
// then the set optional attributes and the extensions (in name order) as ce_NAME headers with their
// UTF-8 values, and a content-type header for datacontenttype. value is e.Data itself (not copied: do not
// modify it while the record is in use). key is the partitionkey extension's value, nil when absent or
// empty; the extension is also kept as the ce_partitionkey header.
//
// e should be valid (see Validate); ToKafka does not check it. All header values share one allocation.
func ToKafka(e *Event) (key []byte, headers []Header, value []byte) {
	n := 4 + len(e.Extensions)
	size := len(e.SpecVersion) + len(e.ID) + len(e.Source) + len(e.Type)
	for _, s := range [...]string{e.DataSchema, e.Subject, e.Time, e.DataContentType} {
		if s != "" {
			n++
			size += len(s)
		}
	}
	for _, v := range e.Extensions {
		size += len(v)
	}
	buf := make([]byte, 0, size)
	headers = make([]Header, 0, n)
	add := func(k, v string) {
		start := len(buf)
		buf = append(buf, v...)
		headers = append(headers, Header{Key: k, Value: buf[start:len(buf):len(buf)]})
	}
	add("ce_specversion", e.SpecVersion)
	add("ce_id", e.ID)
	add("ce_source", e.Source)
	add("ce_type", e.Type)
	if e.DataSchema != "" {
		add("ce_dataschema", e.DataSchema)
	}
	if e.Subject != "" {
		add("ce_subject", e.Subject)
	}
	if e.Time != "" {
		add("ce_time", e.Time)
	}
	switch len(e.Extensions) {
	case 0:
	case 1:
		for name, v := range e.Extensions {
			add(kafkaPrefix+name, v)
		}
	default:
		for _, name := range e.ExtensionNames() {
			add(kafkaPrefix+name, e.Extensions[name])
		}
	}
	if e.DataContentType != "" {
		add(kafkaContentType, e.DataContentType)
	}
	if pk := e.Extensions[PartitionKeyExtension]; pk != "" {
		for i := range headers {
			if headers[i].Key == "ce_"+PartitionKeyExtension {
				key = headers[i].Value
				break
			}
		}
		if key == nil {
			key = []byte(pk)
		}
	}
	return key, headers, e.Data
}

// FromKafka decodes a Kafka record into an event and validates it. A content-type header starting with
// application/cloudevents selects structured mode: application/cloudevents+json is decoded from value,
// other formats are ErrUnsupportedMediaType. Otherwise the record is binary mode: ce_NAME headers are the
// attributes and extensions (a repeated header is invalid), content-type is datacontenttype, value is
// the data. The record key is ignored: the partitionkey extension travels in its own header, and the
// binding forbids deriving attributes from the key.
//
// Data may alias value; in binary mode all attribute strings share one allocation. Errors wrap ErrInvalid or
// ErrUnsupportedMediaType. Safe for concurrent use.
func FromKafka(key []byte, headers []Header, value []byte) (*Event, error) {
	size, exts := 0, 0
	var ct []byte
	haveCT := false
	for i := range headers {
		h := &headers[i]
		if strings.EqualFold(h.Key, kafkaContentType) {
			if haveCT {
				return nil, fmt.Errorf("%w: header content-type repeated", ErrInvalid)
			}
			ct, haveCT = h.Value, true
			continue
		}
		if strings.HasPrefix(h.Key, kafkaPrefix) {
			size += len(h.Value)
			if !isCoreAttribute(h.Key[len(kafkaPrefix):]) {
				exts++
			}
		}
	}
	if haveCT && isCloudEventsMediaType(string(ct)) {
		base := mediaTypeBase(string(ct))
		if !strings.EqualFold(base, MediaTypeStructuredJSON) {
			return nil, fmt.Errorf("%w: event format %q (only JSON is read)", ErrUnsupportedMediaType, base)
		}
		return parseStructured(value)
	}

	// One string holds every attribute value; the attributes are substrings of it.
	var sb strings.Builder
	sb.Grow(size + len(ct))
	for i := range headers {
		if strings.HasPrefix(headers[i].Key, kafkaPrefix) {
			sb.Write(headers[i].Value)
		}
	}
	sb.Write(ct)
	all := sb.String()

	e := &Event{}
	if exts > 0 {
		e.Extensions = make(map[string]string, exts)
	}
	if len(value) > 0 {
		e.Data = value
	}
	var seen int
	off := 0
	for i := range headers {
		h := &headers[i]
		if !strings.HasPrefix(h.Key, kafkaPrefix) {
			continue
		}
		v := all[off : off+len(h.Value)]
		off += len(h.Value)
		name := h.Key[len(kafkaPrefix):]
		if name == attrDataContentType {
			return nil, attrErr(attrDataContentType, "carried by the content-type header in binary mode; ce_datacontenttype must not be present")
		}
		if name != strings.ToLower(name) { // Kafka header names are case-sensitive: ce_ID is no id
			return nil, attrErr(name, "name must be lower-case letters a-z and digits 0-9")
		}
		if err := setBinaryAttr(e, &seen, name, v); err != nil {
			return nil, err
		}
	}
	if haveCT {
		e.DataContentType = trimOWS(all[off:])
		if e.DataContentType == "" {
			return nil, attrErr(attrDataContentType, "empty content-type header")
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}
