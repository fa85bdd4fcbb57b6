package event

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Media types of the CloudEvents JSON event formats.
const (
	MediaTypeStructuredJSON = "application/cloudevents+json"
	MediaTypeBatchJSON      = "application/cloudevents-batch+json"
)

// httpMode is how a CloudEvent is carried in an HTTP message.
type httpMode int

const (
	modeNone       httpMode = iota // no CloudEvent at all
	modeBinary                     // ce-* headers + body
	modeStructured                 // application/cloudevents+json
	modeBatch                      // application/cloudevents-batch+json
)

// classifyHTTP picks the content mode from the Content-Type and the presence of ce-specversion.
// A CloudEvents media type wins over binary headers, as the HTTP binding says.
func classifyHTTP(h http.Header) (httpMode, string, error) {
	ct, err := headerValue(h, "Content-Type")
	if err != nil {
		return modeNone, "", err
	}
	if isCloudEventsMediaType(ct) {
		switch base := mediaTypeBase(ct); {
		case strings.EqualFold(base, MediaTypeStructuredJSON):
			return modeStructured, ct, nil
		case strings.EqualFold(base, MediaTypeBatchJSON):
			return modeBatch, ct, nil
		default:
			return modeNone, ct, fmt.Errorf("%w: event format %q (only JSON is read)", ErrUnsupportedMediaType, base)
		}
	}
	if hasHeader(h, "Ce-Specversion") {
		return modeBinary, ct, nil
	}
	return modeNone, ct, nil
}

// ParseHTTP decodes the CloudEvents carried by an HTTP request with headers h and body body, in binary
// mode (ce-* headers, percent-decoded; Content-Type is datacontenttype; body is data), structured mode
// (Content-Type application/cloudevents+json) or batched mode (application/cloudevents-batch+json; an
// empty batch yields an empty, non-nil slice). Header names are matched case-insensitively.
//
// Every returned event has passed Validate. Errors wrap ErrInvalid (usually as an *AttributeError naming
// the attribute; also for a request that is neither binary nor structured CloudEvents) or
// ErrUnsupportedMediaType (another CloudEvents format such as +avro). Events' Data may alias body: the
// caller must not modify body afterwards. ParseHTTP does not block and is safe for concurrent use.
func ParseHTTP(h http.Header, body []byte) ([]*Event, error) {
	mode, ct, err := classifyHTTP(h)
	if err != nil {
		return nil, err
	}
	switch mode {
	case modeBinary:
		e, err := parseBinaryHTTP(h, ct, body)
		if err != nil {
			return nil, err
		}
		return []*Event{e}, nil
	case modeStructured:
		e, err := parseStructured(body)
		if err != nil {
			return nil, err
		}
		return []*Event{e}, nil
	case modeBatch:
		return parseBatch(body)
	default:
		return nil, fmt.Errorf("%w: neither binary (no ce-specversion header) nor structured CloudEvents (Content-Type is not application/cloudevents+json)", ErrInvalid)
	}
}

// ParseHTTPResponse decodes the CloudEvent carried by an HTTP response (a subscriber's reply). It returns
// (nil, false, nil) when the response carries no CloudEvent (no ce-specversion header and no CloudEvents
// Content-Type), (e, true, nil) for a valid event, and an error wrapping ErrInvalid or
// ErrUnsupportedMediaType otherwise; a batch is not a valid reply (ErrUnsupportedMediaType). Data
// may alias body as in ParseHTTP.
func ParseHTTPResponse(h http.Header, body []byte) (*Event, bool, error) {
	mode, ct, err := classifyHTTP(h)
	if err != nil {
		return nil, false, err
	}
	var e *Event
	switch mode {
	case modeNone:
		return nil, false, nil
	case modeBinary:
		e, err = parseBinaryHTTP(h, ct, body)
	case modeStructured:
		e, err = parseStructured(body)
	case modeBatch:
		return nil, false, fmt.Errorf("%w: a reply carries one event, not a batch", ErrUnsupportedMediaType)
	}
	if err != nil {
		return nil, false, err
	}
	return e, true, nil
}

// headerValue returns the single value of header name (canonical form), looking the name up
// case-insensitively when h is not canonicalised. It is an error for the header to be repeated.
func headerValue(h http.Header, canonical string) (string, error) {
	vs, ok := h[canonical]
	if !ok {
		for k, v := range h {
			if strings.EqualFold(k, canonical) {
				vs, ok = v, true
				break
			}
		}
	}
	switch {
	case !ok || len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%w: header %s repeated", ErrInvalid, canonical)
	}
	return trimOWS(vs[0]), nil
}

func hasHeader(h http.Header, canonical string) bool {
	if _, ok := h[canonical]; ok {
		return true
	}
	for k := range h {
		if strings.EqualFold(k, canonical) {
			return true
		}
	}
	return false
}

// Bits recording which context attributes a binary message set, to catch repeats.
const (
	seenID = 1 << iota
	seenSource
	seenSpecVersion
	seenType
	seenDataSchema
	seenSubject
	seenTime
)

// coreAttr returns the field of e holding the core attribute named raw (matched case-insensitively:
// HTTP header names have any case), its bit for repeat detection, and its canonical name; nil for an
// extension.
func coreAttr(e *Event, raw string) (*string, int, string) {
	switch {
	case strings.EqualFold(raw, attrID):
		return &e.ID, seenID, attrID
	case strings.EqualFold(raw, attrSource):
		return &e.Source, seenSource, attrSource
	case strings.EqualFold(raw, attrSpecVersion):
		return &e.SpecVersion, seenSpecVersion, attrSpecVersion
	case strings.EqualFold(raw, attrType):
		return &e.Type, seenType, attrType
	case strings.EqualFold(raw, attrDataSchema):
		return &e.DataSchema, seenDataSchema, attrDataSchema
	case strings.EqualFold(raw, attrSubject):
		return &e.Subject, seenSubject, attrSubject
	case strings.EqualFold(raw, attrTime):
		return &e.Time, seenTime, attrTime
	}
	return nil, 0, ""
}

// setBinaryAttr stores the decoded value v of the binary-mode header for attribute raw (HTTP ce-*,
// Kafka ce_*) in e. seen records the core attributes already set. A repeated attribute, an empty
// optional attribute and a bad extension name are errors. Both bindings use it.
func setBinaryAttr(e *Event, seen *int, raw, v string) error {
	if field, bit, name := coreAttr(e, raw); field != nil {
		if *seen&bit != 0 {
			return attrErr(name, "header repeated")
		}
		*seen |= bit
		if v == "" && bit&(seenDataSchema|seenSubject|seenTime) != 0 {
			return attrErr(name, "empty; omit the header instead")
		}
		*field = v
		return nil
	}
	name := strings.ToLower(raw) // no copy when already lower case
	if err := checkExtensionName(name); err != nil {
		return err
	}
	if _, dup := e.Extensions[name]; dup {
		return attrErr(name, "header repeated")
	}
	e.SetExtension(name, v)
	return nil
}

func parseBinaryHTTP(h http.Header, ct string, body []byte) (*Event, error) {
	e := &Event{DataContentType: ct}
	if len(body) > 0 {
		e.Data = body
	}
	var seen int
	for k, vs := range h {
		if len(k) < 3 || k[0]|0x20 != 'c' || k[1]|0x20 != 'e' || k[2] != '-' {
			continue
		}
		raw := k[3:]
		if strings.EqualFold(raw, attrDataContentType) {
			return nil, attrErr(attrDataContentType, "carried by Content-Type in binary mode; ce-datacontenttype must not be present")
		}
		if len(vs) != 1 {
			return nil, attrErr(strings.ToLower(raw), "header repeated")
		}
		v, reason := decodeHeaderValue(vs[0])
		if reason != "" {
			return nil, attrErr(strings.ToLower(raw), reason)
		}
		if err := setBinaryAttr(e, &seen, raw, v); err != nil {
			return nil, err
		}
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// decodeHeaderValue turns a binary-mode header value into the attribute value: surrounding whitespace
// removed, a double-quoted string unescaped (RFC 7230 §3.2.6), then one round of percent-decoding. It
// returns a non-empty reason when the value is malformed (bad quoted string, bad %XX escape, or bytes
// that are not valid UTF-8 after decoding). Values needing no decoding are returned without copying.
func decodeHeaderValue(v string) (string, string) {
	v = trimOWS(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var ok bool
		if v, ok = unquote(v[1 : len(v)-1]); !ok {
			return "", "malformed quoted string"
		}
	}
	if strings.IndexByte(v, '%') < 0 {
		if !utf8.ValidString(v) {
			return "", "not valid UTF-8"
		}
		return v, ""
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(v) {
			return "", "truncated percent-encoding"
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return "", "invalid percent-encoding"
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", "percent-decodes to invalid UTF-8"
	}
	return string(b), ""
}

// unquote undoes quoted-pair escapes in the inside of a quoted-string; an unescaped '"' or a trailing
// '\' makes it malformed.
func unquote(s string) (string, bool) {
	if strings.IndexByte(s, '\\') < 0 && strings.IndexByte(s, '"') < 0 {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return "", false
		case '\\':
			if i+1 == len(s) {
				return "", false
			}
			i++
			b = append(b, s[i])
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// needsPercent reports whether byte c must be percent-encoded in a header value: space, '"', '%', and
// anything outside printable ASCII (which covers every byte of a non-ASCII UTF-8 sequence).
func needsPercent(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}

// encodeHeaderValue percent-encodes v for a binary-mode header, with upper-case hex digits. It returns v
// itself when nothing needs encoding.
func encodeHeaderValue(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if needsPercent(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if needsPercent(c) {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

// WriteHTTPBinary writes e's attributes into h for a binary-mode HTTP message: Ce-* headers with
// percent-encoded values, and Content-Type from datacontenttype (removed when e has none). Any Ce-*
// and Content-Type headers already in h are replaced. The caller sends e.Data as the body.
//
// e should be valid (see Validate); WriteHTTPBinary does not check it. Not safe for concurrent use of h.
func WriteHTTPBinary(e *Event, h http.Header) {
	for k := range h {
		if len(k) >= 3 && k[0]|0x20 == 'c' && k[1]|0x20 == 'e' && k[2] == '-' || strings.EqualFold(k, "Content-Type") {
			delete(h, k)
		}
	}
	// Every value is a one-element slice of one backing array: one allocation per event instead of
	// one per header (a delivery writes these for every event it sends).
	vals := make([]string, 0, 8+len(e.Extensions))
	set := func(key, v string) {
		if v != "" {
			vals = append(vals, v)
			h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	set("Ce-Specversion", encodeHeaderValue(e.SpecVersion))
	set("Ce-Id", encodeHeaderValue(e.ID))
	set("Ce-Source", encodeHeaderValue(e.Source))
	set("Ce-Type", encodeHeaderValue(e.Type))
	set("Ce-Dataschema", encodeHeaderValue(e.DataSchema))
	set("Ce-Subject", encodeHeaderValue(e.Subject))
	set("Ce-Time", encodeHeaderValue(e.Time))
	for name, v := range e.Extensions {
		if name == "" {
			continue
		}
		vals = append(vals, encodeHeaderValue(v)) // an empty value is written too, as before
		h[extensionHeader(name)] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("Content-Type", e.DataContentType)
}

// extensionHeader is the canonical (textproto) header key for extension name: "Ce-" and the name with
// its first letter upper-cased.
func extensionHeader(name string) string {
	b := make([]byte, 0, 3+len(name))
	b = append(b, "Ce-"...)
	c := name[0]
	if c >= 'a' && c <= 'z' {
		c -= 'a' - 'A'
	}
	b = append(b, c)
	b = append(b, name[1:]...)
	return string(b)
}
