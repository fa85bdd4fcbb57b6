package event

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// binaryHeaders returns the headers of a minimal valid binary-mode request plus extra ones.
func binaryHeaders(extra ...string) http.Header {
	h := http.Header{}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", "1234-1234-1234")
	h.Set("Ce-Source", "/mycontext/subcontext")
	h.Set("Ce-Type", "com.example.someevent")
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "<delete>" {
			h.Del(extra[i])
			continue
		}
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func TestParseHTTPBinary(t *testing.T) {
	tests := []struct {
		name  string
		h     http.Header
		body  string
		check func(t *testing.T, e *Event)
	}{
		{name: "spec example", h: binaryHeaders("Ce-Time", "2018-04-05T03:56:24Z",
			"Content-Type", "application/json; charset=utf-8"), body: `{"a":1}`,
			check: func(t *testing.T, e *Event) {
				want := &Event{ID: "1234-1234-1234", Source: "/mycontext/subcontext", SpecVersion: "1.0",
					Type: "com.example.someevent", Time: "2018-04-05T03:56:24Z",
					DataContentType: "application/json; charset=utf-8", Data: []byte(`{"a":1}`)}
				if !e.Equal(want) {
					t.Errorf("got %+v, want %+v", e, want)
				}
			}},
		{name: "lower-case raw header names", h: http.Header{"ce-specversion": {"1.0"}, "ce-id": {"x"},
			"ce-source": {"/s"}, "ce-type": {"t"}, "ce-myext": {"v"}, "content-type": {"text/plain"}},
			body: "hi", check: func(t *testing.T, e *Event) {
				if e.ID != "x" || e.Extension("myext") != "v" || e.DataContentType != "text/plain" || string(e.Data) != "hi" {
					t.Errorf("got %+v", e)
				}
			}},
		{name: "extensions lower-cased", h: binaryHeaders("Ce-Comexampleextension1", "value", "CE-OTHER", "5"),
			check: func(t *testing.T, e *Event) {
				if e.Extension("comexampleextension1") != "value" || e.Extension("other") != "5" || len(e.Extensions) != 2 {
					t.Errorf("extensions = %v", e.Extensions)
				}
			}},
		{name: "no body no content type", h: binaryHeaders(), check: func(t *testing.T, e *Event) {
			if e.Data != nil || e.DataContentType != "" {
				t.Errorf("got data %q, content type %q", e.Data, e.DataContentType)
			}
		}},
		{name: "percent space", h: binaryHeaders("Ce-Subject", "a%20b"), check: subjectIs("a b")},
		{name: "percent UTF-8", h: binaryHeaders("Ce-Subject", "caf%C3%A9"), check: subjectIs("café")},
		{name: "percent lower-case hex", h: binaryHeaders("Ce-Subject", "caf%c3%a9"), check: subjectIs("café")},
		{name: "unnecessary percent", h: binaryHeaders("Ce-Subject", "%61bc"), check: subjectIs("abc")},
		{name: "euro and emoji", h: binaryHeaders("Ce-Subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"),
			check: subjectIs("Euro € 😀")},
		{name: "raw non-ASCII UTF-8 accepted", h: binaryHeaders("Ce-Subject", "café"), check: subjectIs("café")},
		{name: "plus is not space", h: binaryHeaders("Ce-Subject", "a+b"), check: subjectIs("a+b")},
		{name: "quoted string", h: binaryHeaders("Ce-Subject", `"a b \"c\" \\d"`), check: subjectIs(`a b "c" \d`)},
		{name: "quoted then percent", h: binaryHeaders("Ce-Subject", `"a%20b"`), check: subjectIs("a b")},
		{name: "surrounding whitespace trimmed", h: binaryHeaders("Ce-Subject", " \tx "), check: subjectIs("x")},
		{name: "encoded surrounding space kept", h: binaryHeaders("Ce-Subject", "%20x%20"), check: subjectIs(" x ")},
		{name: "extension empty value", h: binaryHeaders("Ce-Empty", ""), check: func(t *testing.T, e *Event) {
			if v, ok := e.Extensions["empty"]; !ok || v != "" {
				t.Errorf("extensions = %v", e.Extensions)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := ParseHTTP(tt.h, []byte(tt.body))
			if err != nil {
				t.Fatalf("ParseHTTP: %v", err)
			}
			if len(es) != 1 {
				t.Fatalf("got %d events", len(es))
			}
			tt.check(t, es[0])
		})
	}
}

func subjectIs(want string) func(t *testing.T, e *Event) {
	return func(t *testing.T, e *Event) {
		t.Helper()
		if e.Subject != want {
			t.Errorf("subject = %q, want %q", e.Subject, want)
		}
	}
}

const structuredExample = `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "C234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/json",
    "data" : {
        "appinfoA" : "abc",
        "appinfoB" : 123,
        "appinfoC" : true
    }
}`

func structuredHeaders(ct string) http.Header {
	return http.Header{"Content-Type": {ct}}
}

func TestParseHTTPStructured(t *testing.T) {
	base := `"specversion":"1.0","id":"x","source":"/s","type":"t"`
	tests := []struct {
		name string
		ct   string
		body string
		want *Event
	}{
		{name: "spec JSON object data", ct: "application/cloudevents+json; charset=utf-8", body: structuredExample,
			want: &Event{ID: "C234-1234-1234", Source: "/mycontext", SpecVersion: "1.0", Type: "com.example.someevent",
				Time: "2018-04-05T17:31:00Z", DataContentType: "application/json",
				Extensions: map[string]string{"comexampleextension1": "value", "comexampleothervalue": "5"},
				Data: []byte(`{
        "appinfoA" : "abc",
        "appinfoB" : 123,
        "appinfoC" : true
    }`)}},
		{name: "string data, no datacontenttype: JSON string text, implied application/json",
			ct: "Application/CloudEvents+JSON", body: `{` + base + `,"data":"I'm just a string"}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/json",
				Data: []byte(`"I'm just a string"`)}},
		{name: "string data, XML: decoded string", ct: "application/cloudevents+json",
			body: `{` + base + `,"datacontenttype":"application/xml","data":"<much wow=\"xml\"/>"}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/xml",
				Data: []byte(`<much wow="xml"/>`)}},
		{name: "+json suffix is JSON", ct: "application/cloudevents+json",
			body: `{` + base + `,"datacontenttype":"application/vnd.x+json","data":"s"}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/vnd.x+json",
				Data: []byte(`"s"`)}},
		{name: "data_base64", ct: "application/cloudevents+json",
			body: `{` + base + `,"datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/octet-stream",
				Data: []byte{0, 1, 2, 0xff}}},
		{name: "explicit null data", ct: "application/cloudevents+json",
			body: `{` + base + `,"datacontenttype":"application/json","data":null}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "application/json",
				Data: []byte(`null`)}},
		{name: "extension types and nulls", ct: "application/cloudevents+json",
			body: `{` + base + `,"b":true,"f":false,"n":-42,"z":-0,"u":null,"time":null,"data_base64":null}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t",
				Extensions: map[string]string{"b": "true", "f": "false", "n": "-42", "z": "0"}}},
		{name: "string escapes", ct: "application/cloudevents+json",
			body: `{` + base + `,"subject":"caf\u00e9 \"q\""}`,
			want: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t", Subject: `café "q"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := ParseHTTP(structuredHeaders(tt.ct), []byte(tt.body))
			if err != nil {
				t.Fatalf("ParseHTTP: %v", err)
			}
			if len(es) != 1 || !es[0].Equal(tt.want) {
				t.Fatalf("got %+v, want %+v", es[0], tt.want)
			}
		})
	}
}

func TestParseHTTPBatch(t *testing.T) {
	es, err := ParseHTTP(structuredHeaders("application/cloudevents-batch+json; charset=UTF-8"), []byte(" [] "))
	if err != nil || es == nil || len(es) != 0 {
		t.Fatalf("empty batch: %v, %v", es, err)
	}
	body := `[` + structuredExample + `,{"specversion":"1.0","id":"2","source":"/s","type":"t2","data_base64":"aGk="}]`
	es, err = ParseHTTP(structuredHeaders("application/cloudevents-batch+json"), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ID != "C234-1234-1234" || es[1].ID != "2" || string(es[1].Data) != "hi" {
		t.Fatalf("got %+v", es)
	}
}

func TestParseHTTPErrors(t *testing.T) {
	base := `"specversion":"1.0","id":"x","source":"/s","type":"t"`
	batchCT := "application/cloudevents-batch+json"
	tests := []struct {
		name string
		h    http.Header
		body string
		kind error
		attr string // when set, an *AttributeError for it is expected
		text string // when set, a substring of the message
	}{
		{name: "plain JSON post", h: structuredHeaders("application/json"), body: `{}`, kind: ErrInvalid,
			text: "neither binary"},
		{name: "no headers", h: http.Header{}, kind: ErrInvalid, text: "neither binary"},
		{name: "avro", h: structuredHeaders("application/cloudevents+avro"), kind: ErrUnsupportedMediaType},
		{name: "avro wins over binary headers", h: binaryHeaders("Content-Type", "application/cloudevents+avro"),
			kind: ErrUnsupportedMediaType},
		{name: "binary missing id", h: binaryHeaders("Ce-Id", "<delete>"), kind: ErrInvalid, attr: "id"},
		{name: "binary empty type", h: binaryHeaders("Ce-Type", ""), kind: ErrInvalid, attr: "type"},
		{name: "binary old specversion", h: binaryHeaders("Ce-Specversion", "0.3"), kind: ErrInvalid, attr: "specversion"},
		{name: "bad escape", h: binaryHeaders("Ce-Subject", "a%G1"), kind: ErrInvalid, attr: "subject"},
		{name: "truncated escape", h: binaryHeaders("Ce-Subject", "a%4"), kind: ErrInvalid, attr: "subject"},
		{name: "escape to invalid UTF-8", h: binaryHeaders("Ce-Subject", "%FF"), kind: ErrInvalid, attr: "subject"},
		{name: "overlong UTF-8", h: binaryHeaders("Ce-Subject", "%C0%A0"), kind: ErrInvalid, attr: "subject"},
		{name: "raw invalid UTF-8", h: binaryHeaders("Ce-Subject", "caf\xe9"), kind: ErrInvalid, attr: "subject"},
		{name: "escape to control char", h: binaryHeaders("Ce-Subject", "a%0Ab"), kind: ErrInvalid, attr: "subject"},
		{name: "malformed quoted string", h: binaryHeaders("Ce-Subject", `"a"b"`), kind: ErrInvalid, attr: "subject"},
		{name: "bad time", h: binaryHeaders("Ce-Time", "yesterday"), kind: ErrInvalid, attr: "time",
			text: `attribute "time": not an RFC 3339 timestamp`},
		{name: "empty optional", h: binaryHeaders("Ce-Subject", ""), kind: ErrInvalid, attr: "subject"},
		{name: "ce-datacontenttype", h: binaryHeaders("Ce-Datacontenttype", "text/plain"), kind: ErrInvalid,
			attr: "datacontenttype"},
		{name: "repeated header", h: func() http.Header {
			h := binaryHeaders()
			h.Add("Ce-Id", "again")
			return h
		}(), kind: ErrInvalid, attr: "id"},
		{name: "same attribute twice by case", h: func() http.Header {
			h := binaryHeaders()
			h["ce-id"] = []string{"again"}
			return h
		}(), kind: ErrInvalid, attr: "id"},
		{name: "bad extension name", h: binaryHeaders("Ce-Foo_bar", "v"), kind: ErrInvalid, attr: "foo_bar"},
		{name: "reserved extension", h: binaryHeaders("Ce-Data", "v"), kind: ErrInvalid, attr: "data"},
		{name: "bad content type", h: binaryHeaders("Content-Type", "nonsense"), kind: ErrInvalid, attr: "datacontenttype"},
		{name: "structured not JSON", h: structuredHeaders(MediaTypeStructuredJSON), body: `{`, kind: ErrInvalid},
		{name: "structured array", h: structuredHeaders(MediaTypeStructuredJSON), body: `[]`, kind: ErrInvalid},
		{name: "structured null", h: structuredHeaders(MediaTypeStructuredJSON), body: `null`, kind: ErrInvalid},
		{name: "structured missing source", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{"specversion":"1.0","id":"x","type":"t"}`, kind: ErrInvalid, attr: "source"},
		{name: "structured no specversion", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{"id":"x","source":"/s","type":"t"}`, kind: ErrInvalid, attr: "specversion"},
		{name: "structured numeric id", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{"specversion":"1.0","id":5,"source":"/s","type":"t"}`, kind: ErrInvalid, attr: "id"},
		{name: "data and data_base64", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"data":1,"data_base64":"AA=="}`, kind: ErrInvalid, attr: "data"},
		{name: "bad base64", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"data_base64":"!!"}`, kind: ErrInvalid, attr: "data_base64"},
		{name: "object data with XML type", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"datacontenttype":"application/xml","data":{}}`, kind: ErrInvalid, attr: "data"},
		{name: "fractional extension", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"n":1.5}`, kind: ErrInvalid, attr: "n"},
		{name: "out of range extension", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"n":2147483648}`, kind: ErrInvalid, attr: "n"},
		{name: "object extension", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"obj":{}}`, kind: ErrInvalid, attr: "obj"},
		{name: "upper-case member", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"Ext":"v"}`, kind: ErrInvalid, attr: "Ext"},
		{name: "empty subject", h: structuredHeaders(MediaTypeStructuredJSON),
			body: `{` + base + `,"subject":""}`, kind: ErrInvalid, attr: "subject"},
		{name: "batch not array", h: structuredHeaders(batchCT), body: `{}`, kind: ErrInvalid},
		{name: "batch bad element", h: structuredHeaders(batchCT),
			body: `[{` + base + `},{` + base + `,"time":"x"}]`, kind: ErrInvalid, attr: "time", text: "batch element 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, err := ParseHTTP(tt.h, []byte(tt.body))
			if err == nil {
				t.Fatalf("ParseHTTP = %+v, want error", es)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			if tt.attr != "" {
				var ae *AttributeError
				if !errors.As(err, &ae) || ae.Attribute != tt.attr {
					t.Errorf("error %v does not name attribute %q", err, tt.attr)
				}
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
		})
	}
}

func TestParseHTTPResponse(t *testing.T) {
	if e, ok, err := ParseHTTPResponse(http.Header{"Content-Type": {"application/json"}}, []byte(`{"ok":true}`)); e != nil || ok || err != nil {
		t.Errorf("plain response: %v %v %v", e, ok, err)
	}
	e, ok, err := ParseHTTPResponse(binaryHeaders("Content-Type", "text/plain"), []byte("reply"))
	if err != nil || !ok || e.ID != "1234-1234-1234" || string(e.Data) != "reply" {
		t.Errorf("binary reply: %+v %v %v", e, ok, err)
	}
	e, ok, err = ParseHTTPResponse(structuredHeaders(MediaTypeStructuredJSON), []byte(structuredExample))
	if err != nil || !ok || e.ID != "C234-1234-1234" {
		t.Errorf("structured reply: %+v %v %v", e, ok, err)
	}
	if _, ok, err = ParseHTTPResponse(binaryHeaders("Ce-Id", ""), nil); ok || !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid reply: %v %v", ok, err)
	}
	if _, ok, err = ParseHTTPResponse(structuredHeaders(MediaTypeBatchJSON), []byte(`[]`)); ok || !errors.Is(err, ErrUnsupportedMediaType) {
		t.Errorf("batch reply: %v %v", ok, err)
	}
}

func TestWriteHTTPBinary(t *testing.T) {
	e := validEvent()
	e.Subject = `Euro € 😀 "q" 100%`
	e.Time = "2018-04-05T17:31:00Z"
	e.DataContentType = "text/plain; charset=utf-8"
	e.SetExtension("comexampleextension1", " padded ")
	e.Data = []byte("body")
	h := http.Header{"Ce-Stale": {"x"}, "Content-Type": {"old"}, "Accept": {"*/*"}}
	WriteHTTPBinary(e, h)
	want := map[string]string{
		"Ce-Specversion":          "1.0",
		"Ce-Id":                   "1234-1234-1234",
		"Ce-Source":               "/mycontext/subcontext",
		"Ce-Type":                 "com.example.someevent",
		"Ce-Subject":              "Euro%20%E2%82%AC%20%F0%9F%98%80%20%22q%22%20100%25",
		"Ce-Time":                 "2018-04-05T17:31:00Z",
		"Ce-Comexampleextension1": "%20padded%20",
		"Content-Type":            "text/plain; charset=utf-8",
		"Accept":                  "*/*",
	}
	if len(h) != len(want) {
		t.Errorf("headers = %v", h)
	}
	for k, v := range want {
		if got := h[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	es, err := ParseHTTP(h, e.Data)
	if err != nil || len(es) != 1 || !es[0].Equal(e) {
		t.Fatalf("round trip: %+v, %v", es, err)
	}
}

func TestPercentEncodingRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", " ", "%", "%25", "\"", "a b", "é", "\u20ac\U0001F600", "~!#$&'()*+,/:;=?@[]"} {
		enc := encodeHeaderValue(s)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c <= ' ' || c >= 0x7f || c == '"' {
				t.Errorf("encode(%q) = %q has unsafe byte %q", s, enc, c)
			}
		}
		dec, reason := decodeHeaderValue(enc)
		if reason != "" || dec != s {
			t.Errorf("decode(encode(%q)) = %q, %q", s, dec, reason)
		}
	}
}

// The header values WriteHTTPBinary writes share one backing array; adding a value to one header
// must not change another.
func TestWriteHTTPBinaryValuesAreIndependent(t *testing.T) {
	e := &Event{SpecVersion: "1.0", ID: "id-1", Source: "/src", Type: "t", Subject: "sub",
		Extensions: map[string]string{"a": "x", "b": ""}, DataContentType: "application/json"}
	h := http.Header{}
	WriteHTTPBinary(e, h)
	h.Add("Ce-Id", "second")
	h["Ce-Source"] = append(h["Ce-Source"], "more")
	want := map[string][]string{"Ce-Specversion": {"1.0"}, "Ce-Id": {"id-1", "second"}, "Ce-Source": {"/src", "more"},
		"Ce-Type": {"t"}, "Ce-Subject": {"sub"}, "Ce-A": {"x"}, "Ce-B": {""}, "Content-Type": {"application/json"}}
	if len(h) != len(want) {
		t.Errorf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}
