package event

import (
	"errors"
	"net/http"
	"testing"
)

// checkAccepted asserts the invariants every accepted event must keep: it validates, and it survives
// WriteHTTPBinary → ParseHTTP, MarshalStructured → ParseHTTP and ToKafka → FromKafka unchanged. An event
// whose datacontenttype is itself a CloudEvents media type is exempt from the binary round trips: binary
// mode cannot carry it unambiguously (a receiver must read such a Content-Type as structured mode).
func checkAccepted(t *testing.T, e *Event) {
	t.Helper()
	if err := e.Validate(); err != nil {
		t.Fatalf("accepted event fails Validate: %v (%+v)", err, e)
	}
	if e.ID == "" || e.Source == "" || e.SpecVersion != "1.0" || e.Type == "" {
		t.Fatalf("accepted event lacks a required attribute: %+v", e)
	}
	b, err := MarshalStructured(e)
	if err != nil {
		t.Fatalf("MarshalStructured: %v", err)
	}
	es, err := ParseHTTP(http.Header{"Content-Type": {MediaTypeStructuredJSON}}, b)
	if err != nil || len(es) != 1 || !es[0].Equal(e) {
		t.Fatalf("structured round trip of %+v via %s: %+v, %v", e, b, es, err)
	}
	if isCloudEventsMediaType(e.DataContentType) {
		return
	}
	h := http.Header{}
	WriteHTTPBinary(e, h)
	es, err = ParseHTTP(h, e.Data)
	if err != nil || len(es) != 1 || !es[0].Equal(e) {
		t.Fatalf("binary round trip of %+v via %v: %+v, %v", e, h, es, err)
	}
	key, headers, value := ToKafka(e)
	k, err := FromKafka(key, headers, value)
	if err != nil || !k.Equal(e) {
		t.Fatalf("Kafka round trip of %+v: %+v, %v", e, k, err)
	}
}

func checkRejected(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupportedMediaType) {
		t.Fatalf("error of unknown kind: %v", err)
	}
}

// FuzzParseHTTP parses requests in the mode chosen by the first argument (mode%3: 0 binary, 1 structured,
// 2 batched), fuzzing the body and, in binary mode, the specversion, id, source, an extension and the
// Content-Type header values.
//
// Invariants: ParseHTTP never panics; it returns events or an error, and every error wraps ErrInvalid or
// ErrUnsupportedMediaType; every accepted event passes Validate (id, source, specversion "1.0", type);
// an accepted event re-encoded with WriteHTTPBinary (or MarshalStructured, or ToKafka) and parsed again
// is Equal to it (see checkAccepted for the one exemption).
func FuzzParseHTTP(f *testing.F) {
	f.Add(uint8(0), "1.0", "1234-1234-1234", "/mycontext/subcontext", "value", "application/json; charset=utf-8", []byte(`{"a":1}`))
	f.Add(uint8(0), "1.0", "A234", "https://example.com/x", "a%20b%C3%A9", "application/vnd.apache.thrift.binary", []byte{0, 1, 0xff})
	f.Add(uint8(0), "1.0", `"quoted \"id\""`, "urn:x", "%G1", "", []byte(nil))
	f.Add(uint8(0), "0.3", "x", "/s", "v", "text/plain", []byte("x"))
	f.Add(uint8(1), "", "", "", "", "", []byte(structuredExample))
	f.Add(uint8(1), "", "", "", "", "", []byte(`{"specversion":"1.0","id":"B","source":"/c","type":"t","datacontenttype":"application/xml","data":"<much wow=\"xml\"/>"}`))
	f.Add(uint8(1), "", "", "", "", "", []byte(`{"specversion":"1.0","id":"D","source":"/c","type":"t","data":"I'm just a string","n":5,"b":true}`))
	f.Add(uint8(1), "", "", "", "", "", []byte(`{"specversion":"1.0","id":"A","source":"/c","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC"}`))
	f.Add(uint8(2), "", "", "", "", "", []byte(`[]`))
	f.Add(uint8(2), "", "", "", "", "", []byte(`[`+structuredExample+`,{"specversion":"1.0","id":"2","source":"/s","type":"t"}]`))
	f.Fuzz(func(t *testing.T, mode uint8, specversion, id, source, ext, contentType string, body []byte) {
		var h http.Header
		switch mode % 3 {
		case 0:
			h = http.Header{
				"Ce-Specversion": {specversion}, "Ce-Id": {id}, "Ce-Source": {source},
				"Ce-Type": {"com.example.fuzz"}, "Ce-Fuzzext": {ext},
			}
			if contentType != "" {
				h["Content-Type"] = []string{contentType}
			}
		case 1:
			h = http.Header{"Content-Type": {MediaTypeStructuredJSON}}
		case 2:
			h = http.Header{"Content-Type": {MediaTypeBatchJSON + "; charset=utf-8"}}
		}
		es, err := ParseHTTP(h, body)
		if err != nil {
			if es != nil {
				t.Fatalf("events and error together: %v", err)
			}
			checkRejected(t, err)
			return
		}
		if es == nil {
			t.Fatal("no events and no error")
		}
		for _, e := range es {
			checkAccepted(t, e.Clone()) // Clone: binary-mode Data aliases body
		}
	})
}

// FuzzFromKafka decodes records in the mode chosen by the first argument (mode%2: 0 binary with fuzzed
// header values and value, 1 structured with a fuzzed JSON value).
//
// Invariants: FromKafka never panics; every error wraps ErrInvalid or ErrUnsupportedMediaType; every
// accepted event passes Validate and round-trips through ToKafka → FromKafka (and the HTTP encodings)
// unchanged, as checkAccepted describes.
func FuzzFromKafka(f *testing.F) {
	f.Add(uint8(0), "1.0", "1234", "/mycontext", "tenant-1", "2018-04-05T03:56:24Z", "application/avro", []byte("payload"))
	f.Add(uint8(0), "1.0", "1234", "https://example.com", "café", "", "", []byte(nil))
	f.Add(uint8(0), "1.0", "", "/s", "k", "noon", "text/plain", []byte{0xff})
	f.Add(uint8(1), "", "", "", "", "", MediaTypeStructuredJSON, []byte(structuredExample))
	f.Add(uint8(1), "", "", "", "", "", "application/cloudevents+avro", []byte("x"))
	f.Fuzz(func(t *testing.T, mode uint8, specversion, id, source, partitionKey, tm, contentType string, value []byte) {
		var headers []Header
		if mode%2 == 0 {
			headers = []Header{
				{"ce_specversion", []byte(specversion)}, {"ce_id", []byte(id)}, {"ce_source", []byte(source)},
				{"ce_type", []byte("com.example.fuzz")}, {"ce_partitionkey", []byte(partitionKey)},
			}
			if tm != "" {
				headers = append(headers, Header{"ce_time", []byte(tm)})
			}
		}
		if contentType != "" {
			headers = append(headers, Header{"content-type", []byte(contentType)})
		}
		e, err := FromKafka([]byte(partitionKey), headers, value)
		if err != nil {
			if e != nil {
				t.Fatalf("event and error together: %v", err)
			}
			checkRejected(t, err)
			return
		}
		checkAccepted(t, e.Clone())
	})
}
