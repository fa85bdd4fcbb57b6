package event

import (
	"fmt"
	"net/http"
	"strings"
)

// NATS header names of the binary mode eventgate stores events in on NATS JetStream. They follow the
// CloudEvents HTTP binding (NATS headers are HTTP-like): ce-NAME headers with percent-encoded values,
// content-type for datacontenttype, the data as the message payload.
const (
	natsPrefix      = "ce-"
	natsContentType = "content-type"
)

// ToNATS writes e's attributes into h, a NATS message's headers (nats.Header's underlying type), in
// binary mode: ce-specversion, ce-id, ce-source, ce-type, the set optional attributes and the
// extensions as lower-case ce-NAME headers with percent-encoded values (so that no value carries a
// byte a NATS header line cannot), and content-type for datacontenttype. The payload is e.Data itself.
// Headers h already holds under other names are kept.
//
// e should be valid (see Validate); ToNATS does not check it. Not safe for concurrent use of h.
func ToNATS(e *Event, h map[string][]string) {
	set := func(name, v string) {
		if v != "" {
			h[natsPrefix+name] = []string{encodeHeaderValue(v)}
		}
	}
	set(attrSpecVersion, e.SpecVersion)
	set(attrID, e.ID)
	set(attrSource, e.Source)
	set(attrType, e.Type)
	set(attrDataSchema, e.DataSchema)
	set(attrSubject, e.Subject)
	set(attrTime, e.Time)
	for name, v := range e.Extensions {
		if name != "" {
			h[natsPrefix+name] = []string{encodeHeaderValue(v)}
		}
	}
	if e.DataContentType != "" {
		h[natsContentType] = []string{e.DataContentType}
	}
}

// FromNATS decodes a NATS message (headers h, payload data) into an event and validates it. A
// content-type starting with application/cloudevents selects structured mode (only JSON is read);
// otherwise ce-NAME headers (any case, percent-decoded, each at most once) are the attributes and
// extensions, content-type is datacontenttype and data is the data. Other headers (Nats-Msg-Id, …)
// are ignored. Data may alias data. Errors wrap ErrInvalid or ErrUnsupportedMediaType; FromNATS never
// panics on any input. Safe for concurrent use.
func FromNATS(h map[string][]string, data []byte) (*Event, error) {
	hh := http.Header(h)
	ct, err := headerValue(hh, "Content-Type")
	if err != nil {
		return nil, err
	}
	if isCloudEventsMediaType(ct) {
		base := mediaTypeBase(ct)
		if !strings.EqualFold(base, MediaTypeStructuredJSON) {
			return nil, fmt.Errorf("%w: event format %q (only JSON is read)", ErrUnsupportedMediaType, base)
		}
		return parseStructured(data)
	}
	if hasHeader(hh, "Content-Type") && ct == "" {
		return nil, attrErr(attrDataContentType, "empty content-type header")
	}
	return parseBinaryHTTP(hh, ct, data)
}
