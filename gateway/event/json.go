package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// parseStructured decodes one event in the JSON event format and validates it. Data may alias body.
func parseStructured(body []byte) (*Event, error) {
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: structured body is not valid JSON", ErrInvalid)
	}
	return eventFromJSON(body)
}

// parseBatch decodes a JSON batch: an array of JSON-format events, each validated. Data may alias body.
func parseBatch(body []byte) ([]*Event, error) {
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: batch body is not valid JSON", ErrInvalid)
	}
	out := make([]*Event, 0, 4)
	err := forEachElement(body, func(i int, raw []byte) error {
		e, err := eventFromJSON(raw)
		if err != nil {
			return fmt.Errorf("batch element %d: %w", i, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var jsonNull = []byte("null")

// eventFromJSON maps the members of a JSON-format event (obj, already known to be valid JSON) onto an
// Event. Members whose value is null are unset (the JSON format says so), except "data", where null is
// an explicit JSON null payload. A repeated member's last value wins.
func eventFromJSON(obj []byte) (*Event, error) {
	e := &Event{}
	var data, dataB64 []byte
	err := forEachMember(obj, func(key, raw []byte) error {
		var (
			field *string
			name  string
		)
		switch string(key) {
		case "data":
			data = raw
			return nil
		case "data_base64":
			dataB64 = nil
			if !bytes.Equal(raw, jsonNull) {
				dataB64 = raw
			}
			return nil
		case attrID:
			field, name = &e.ID, attrID
		case attrSource:
			field, name = &e.Source, attrSource
		case attrSpecVersion:
			field, name = &e.SpecVersion, attrSpecVersion
		case attrType:
			field, name = &e.Type, attrType
		case attrDataContentType:
			field, name = &e.DataContentType, attrDataContentType
		case attrDataSchema:
			field, name = &e.DataSchema, attrDataSchema
		case attrSubject:
			field, name = &e.Subject, attrSubject
		case attrTime:
			field, name = &e.Time, attrTime
		}
		if field != nil {
			if bytes.Equal(raw, jsonNull) {
				*field = ""
				return nil
			}
			v, ok := jsonString(raw)
			if !ok {
				return attrErr(name, "must be a JSON string")
			}
			if v == "" && (name == attrDataContentType || name == attrDataSchema || name == attrSubject || name == attrTime) {
				return attrErr(name, "empty; omit it or use null instead")
			}
			*field = v
			return nil
		}
		name = string(key)
		if err := checkExtensionName(name); err != nil {
			return err
		}
		v, set, err := extensionFromJSON(name, raw)
		if err != nil {
			return err
		}
		if set {
			e.SetExtension(name, v)
		} else {
			delete(e.Extensions, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case data != nil && dataB64 != nil:
		return nil, attrErr("data", `"data" and "data_base64" are mutually exclusive`)
	case dataB64 != nil:
		s, ok := jsonString(dataB64)
		if !ok {
			return nil, attrErr("data_base64", "must be a JSON string")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, attrErr("data_base64", "not valid base64")
		}
		if len(b) > 0 {
			e.Data = b
		}
	case data != nil:
		if e.DataContentType == "" {
			// The JSON format implies application/json; state it so other bindings keep the meaning.
			e.DataContentType = "application/json"
		}
		if isJSONMediaType(e.DataContentType) {
			e.Data = data
			break
		}
		if bytes.Equal(data, jsonNull) {
			break // no payload
		}
		s, ok := jsonString(data)
		if !ok {
			return nil, attrErr("data", "must be a JSON string when datacontenttype is not JSON")
		}
		if s != "" {
			e.Data = []byte(s)
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

func checkExtensionName(name string) error {
	if !validName(name) {
		return attrErr(name, "name must be lower-case letters a-z and digits 0-9")
	}
	return nil
}

// extensionFromJSON converts an extension member to its canonical string: strings as they are, booleans
// as "true"/"false", numbers only when they are CloudEvents Integers (optional '-', digits, 32-bit range)
// in decimal. null means unset (set == false).
//
// raw is one complete, valid JSON value without surrounding whitespace.
func extensionFromJSON(name string, raw []byte) (v string, set bool, err error) {
	if len(raw) == 0 {
		return "", false, attrErr(name, "no value")
	}
	switch c := raw[0]; {
	case c == 'n':
		return "", false, nil
	case c == 't':
		return "true", true, nil
	case c == 'f':
		return "false", true, nil
	case c == '"':
		s, ok := jsonString(raw)
		if !ok {
			return "", false, attrErr(name, "not a JSON string")
		}
		return s, true, nil
	case c == '-' || (c >= '0' && c <= '9'):
		n, perr := strconv.ParseInt(string(raw), 10, 32)
		if perr != nil {
			return "", false, attrErr(name, "number is not a CloudEvents Integer (32-bit, no fraction or exponent)")
		}
		return strconv.FormatInt(n, 10), true, nil
	}
	return "", false, attrErr(name, "extension value must be a string, number, boolean or null")
}

// MarshalStructured encodes e in the JSON event format (for Content-Type application/cloudevents+json).
// Data goes in "data" as JSON when datacontenttype is JSON (*/json, */*+json) and Data is valid JSON
// without surrounding whitespace, otherwise base64-encoded in "data_base64"; with no Data neither member is written. Extensions are
// written as JSON strings in name order, so the output is deterministic. An invalid event is an error
// wrapping ErrInvalid. Safe for concurrent use.
func MarshalStructured(e *Event) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return appendStructured(make([]byte, 0, 256+len(e.Data)*4/3), e), nil
}

// MarshalBatch encodes es in the JSON batch format (application/cloudevents-batch+json); an empty or nil
// slice gives "[]". Any invalid event makes it fail with an error naming its index.
func MarshalBatch(es []*Event) ([]byte, error) {
	size := 2
	for i, e := range es {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("batch element %d: %w", i, err)
		}
		size += 256 + len(e.Data)*4/3
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStructured(b, e)
	}
	return append(b, ']'), nil
}

func appendStructured(b []byte, e *Event) []byte {
	b = append(b, '{')
	b = appendMember(b, attrSpecVersion, e.SpecVersion, true)
	b = appendMember(b, attrID, e.ID, false)
	b = appendMember(b, attrSource, e.Source, false)
	b = appendMember(b, attrType, e.Type, false)
	b = appendMember(b, attrDataContentType, e.DataContentType, false)
	b = appendMember(b, attrDataSchema, e.DataSchema, false)
	b = appendMember(b, attrSubject, e.Subject, false)
	b = appendMember(b, attrTime, e.Time, false)
	if len(e.Extensions) > 0 {
		for _, name := range e.ExtensionNames() {
			b = append(b, ',')
			b = appendJSONString(b, name)
			b = append(b, ':')
			b = appendJSONString(b, e.Extensions[name])
		}
	}
	if len(e.Data) > 0 {
		if inlineJSON(e) {
			b = append(b, `,"data":`...)
			b = append(b, e.Data...)
		} else {
			b = append(b, `,"data_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, e.Data)
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// inlineJSON reports whether e's data can go in the "data" member as JSON and come back byte for byte:
// datacontenttype is JSON, the data is valid UTF-8 JSON, and it has no surrounding whitespace (a
// decoder would drop it).
func inlineJSON(e *Event) bool {
	d := e.Data
	if e.DataContentType == "" || !isJSONMediaType(e.DataContentType) || len(d) == 0 {
		return false
	}
	if isJSONSpace(d[0]) || isJSONSpace(d[len(d)-1]) {
		return false
	}
	return utf8.Valid(d) && json.Valid(d)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// appendMember appends "name":"value" (preceded by a comma unless first); an empty value is omitted.
func appendMember(b []byte, name, value string, first bool) []byte {
	if value == "" {
		return b
	}
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 bytes become U+FFFD (validated
// events have none); control characters and U+2028/U+2029 are escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexUpper[c>>4], hexUpper[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\uFFFD`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexUpper[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
