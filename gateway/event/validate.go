package event

import (
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalid is the kind of every error that says "this is not a valid CloudEvent" (HTTP 400). Most such
// errors are an *AttributeError naming the attribute at fault; test with errors.Is(err, ErrInvalid).
var ErrInvalid = errors.New("invalid CloudEvent")

// ErrUnsupportedMediaType is the kind of error returned for a CloudEvents event format eventgate does not
// read (for example application/cloudevents+avro), HTTP 415.
var ErrUnsupportedMediaType = errors.New("unsupported CloudEvents media type")

// AttributeError says which attribute (or extension) of an event is invalid and why. It wraps ErrInvalid.
type AttributeError struct {
	Attribute string // attribute or extension name, as carried (lower-case when valid)
	Reason    string // human-readable, never contains the attribute's value
}

func (e *AttributeError) Error() string {
	return "attribute " + quote(e.Attribute) + ": " + e.Reason
}

// Unwrap returns ErrInvalid, so errors.Is(err, ErrInvalid) holds for every *AttributeError.
func (e *AttributeError) Unwrap() error { return ErrInvalid }

func attrErr(name, reason string) *AttributeError {
	return &AttributeError{Attribute: name, Reason: reason}
}

// quote is strconv.Quote without pulling the error path through fmt; names may be arbitrary bytes.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == utf8.RuneError, r < 0x20, r == 0x7f:
			b.WriteString("\\x")
			b.WriteByte(hexUpper[byte(r)>>4&0xf])
			b.WriteByte(hexUpper[byte(r)&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Names of the CloudEvents 1.0 context attributes.
const (
	attrID              = "id"
	attrSource          = "source"
	attrSpecVersion     = "specversion"
	attrType            = "type"
	attrDataContentType = "datacontenttype"
	attrDataSchema      = "dataschema"
	attrSubject         = "subject"
	attrTime            = "time"
)

// isCoreAttribute reports whether name is a context attribute the Event holds in its own field (and so
// may not also appear as an extension).
func isCoreAttribute(name string) bool {
	switch name {
	case attrID, attrSource, attrSpecVersion, attrType, attrDataContentType, attrDataSchema, attrSubject, attrTime:
		return true
	}
	return false
}

// validName reports whether name is a CloudEvents attribute name: non-empty, ASCII a-z and 0-9 only.
// The spec's 20-character limit is a SHOULD and is not enforced.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// checkValue reports why v is not an acceptable attribute value ("" when it is): it must be valid UTF-8
// and contain no control characters (U+0000–U+001F, U+007F–U+009F).
func checkValue(v string) string {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return "contains a control character"
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			return "not valid UTF-8"
		}
		if r >= 0x80 && r <= 0x9f {
			return "contains a control character"
		}
		i += size
	}
	return ""
}

// Validate checks e against CloudEvents 1.0: id, source, specversion ("1.0") and type present and
// non-empty; source a URI-reference; dataschema, when set, an absolute URI; time, when set, an RFC 3339
// timestamp; datacontenttype, when set, a media type (type/subtype, optional parameters); every value
// valid UTF-8 without control characters; extension names lower-case a-z0-9, neither a context attribute
// name nor the reserved "data"/"data_base64". Empty optional attributes mean "absent".
//
// It returns nil or an *AttributeError (wrapping ErrInvalid) for the first problem, checking the required
// attributes first and extensions in name order. It does not modify e and is safe for concurrent use on
// an event nobody is mutating.
func (e *Event) Validate() error {
	if e == nil {
		return attrErr(attrSpecVersion, "missing: no event")
	}
	if err := checkRequired(attrSpecVersion, e.SpecVersion); err != nil {
		return err
	}
	if e.SpecVersion != SpecVersion {
		return attrErr(attrSpecVersion, `unsupported version (want "1.0")`)
	}
	if err := checkRequired(attrID, e.ID); err != nil {
		return err
	}
	if err := checkRequired(attrSource, e.Source); err != nil {
		return err
	}
	if !validURIReference(e.Source) {
		return attrErr(attrSource, "not a URI-reference")
	}
	if err := checkRequired(attrType, e.Type); err != nil {
		return err
	}
	if e.DataContentType != "" {
		if r := checkValue(e.DataContentType); r != "" {
			return attrErr(attrDataContentType, r)
		}
		if !validMediaType(e.DataContentType) {
			return attrErr(attrDataContentType, "not a media type (type/subtype)")
		}
	}
	if e.DataSchema != "" {
		if r := checkValue(e.DataSchema); r != "" {
			return attrErr(attrDataSchema, r)
		}
		if u, err := url.Parse(e.DataSchema); err != nil || u.Scheme == "" {
			return attrErr(attrDataSchema, "not an absolute URI")
		}
	}
	if e.Subject != "" {
		if r := checkValue(e.Subject); r != "" {
			return attrErr(attrSubject, r)
		}
	}
	if e.Time != "" {
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			return attrErr(attrTime, "not an RFC 3339 timestamp")
		}
	}
	for name, v := range e.Extensions {
		if checkExtension(name, v) != nil {
			// Report deterministically: the first bad extension in name order.
			for _, n := range e.ExtensionNames() {
				if err := checkExtension(n, e.Extensions[n]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkRequired(name, v string) error {
	if v == "" {
		return attrErr(name, "required")
	}
	if r := checkValue(v); r != "" {
		return attrErr(name, r)
	}
	return nil
}

func checkExtension(name, v string) error {
	switch {
	case name == "data" || name == "data_base64":
		return attrErr(name, "reserved name, not allowed as an extension")
	case !validName(name):
		return attrErr(name, "name must be lower-case letters a-z and digits 0-9")
	case isCoreAttribute(name):
		return attrErr(name, "context attribute name used as an extension")
	}
	if r := checkValue(v); r != "" {
		return attrErr(name, r)
	}
	return nil
}

// validURIReference reports whether s parses as an RFC 3986 URI-reference (as net/url understands one).
// The common shapes — a path, or scheme://authority/path made of unreserved characters — are checked
// without allocating; anything else goes through url.Parse.
func validURIReference(s string) bool {
	if simpleURIReference(s) {
		return true
	}
	_, err := url.Parse(s)
	return err == nil
}

// simpleURIReference accepts, without allocating, references made only of RFC 3986 unreserved
// characters and '/', either starting with '/' or of the form scheme://host[/path] with a plain host.
// It returns false for anything else (which then needs the full parser), never true for an invalid one.
func simpleURIReference(s string) bool {
	rest := s
	if i := strings.Index(s, "://"); i > 0 {
		scheme := s[:i]
		if !isAlpha(scheme[0]) {
			return false
		}
		for j := 1; j < len(scheme); j++ {
			c := scheme[j]
			if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
				return false
			}
		}
		rest = s[i+3:]
		host := rest
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			host, rest = rest[:j], rest[j:]
		} else {
			rest = ""
		}
		if host == "" {
			return false
		}
		for j := 0; j < len(host); j++ {
			c := host[j]
			if !isAlpha(c) && !isDigit(c) && c != '-' && c != '.' {
				return false
			}
		}
	} else if s == "" || s[0] != '/' {
		return false
	}
	for j := 0; j < len(rest); j++ {
		c := rest[j]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '.' && c != '_' && c != '~' && c != '/' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isTChar reports whether c is an RFC 7230 token character.
func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validMediaType reports whether s is "type/subtype" (RFC 7230 tokens) optionally followed by
// parameters introduced by ';'. It does not allow surrounding whitespace and does not allocate;
// parameters are not checked further (values have already been checked for control characters).
func validMediaType(s string) bool {
	i := 0
	for i < len(s) && isTChar(s[i]) {
		i++
	}
	if i == 0 || i == len(s) || s[i] != '/' {
		return false
	}
	i++
	j := i
	for i < len(s) && isTChar(s[i]) {
		i++
	}
	if i == j {
		return false
	}
	if i == len(s) {
		return true
	}
	rest := trimOWS(s[i:])
	return rest != "" && rest[0] == ';' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t'
}

// mediaTypeBase returns s up to any ';', without surrounding whitespace. It does not lower-case.
func mediaTypeBase(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// isJSONMediaType reports whether media type s declares JSON content: after stripping parameters it has
// the form */json or */*+json (case-insensitive), as the JSON event format defines.
func isJSONMediaType(s string) bool {
	base := mediaTypeBase(s)
	slash := strings.IndexByte(base, '/')
	if slash < 0 {
		return false
	}
	sub := base[slash+1:]
	return strings.EqualFold(sub, "json") || (len(sub) > 5 && strings.EqualFold(sub[len(sub)-5:], "+json"))
}

// isCloudEventsMediaType reports whether s (a Content-Type value) names a CloudEvents event format,
// i.e. starts with "application/cloudevents" case-insensitively.
func isCloudEventsMediaType(s string) bool {
	const prefix = "application/cloudevents"
	s = trimOWS(s)
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// trimOWS removes the optional whitespace (space, tab) HTTP allows around a header value.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

const hexUpper = "0123456789ABCDEF"
