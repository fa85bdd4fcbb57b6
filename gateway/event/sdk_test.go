package event

// Reference tests: the same HTTP messages are read by github.com/cloudevents/sdk-go/v2 and by this
// package, and must give the same attributes and data bytes. Known, deliberate differences:
//   - sdk-go v2 does not percent-decode binary-mode header values, so the messages here use values that
//     need no encoding (the percent rules are covered by the table tests in http_test.go);
//   - for a structured event with "data" and no datacontenttype, this package states the implied
//     application/json (the JSON format says re-encoders SHOULD); sdk-go leaves it unset;
//   - sdk-go keeps the insignificant whitespace that precedes an inline JSON "data" value; this package
//     starts the data at the value itself.

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	ce "github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
)

// sdkParse reads an HTTP request with sdk-go.
func sdkParse(t *testing.T, h http.Header, body []byte) *ce.Event {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header = h.Clone()
	got, err := binding.ToEvent(context.Background(), cehttp.NewMessageFromHttpRequest(req))
	if err != nil {
		t.Fatalf("sdk-go could not read the message: %v", err)
	}
	return got
}

// compareSDK fails the test unless ours and theirs carry the same attributes, extensions and data.
func compareSDK(t *testing.T, ours *Event, theirs *ce.Event, impliedJSON bool) {
	t.Helper()
	check := func(name, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: ours %q, sdk-go %q", name, got, want)
		}
	}
	check("id", ours.ID, theirs.ID())
	check("source", ours.Source, theirs.Source())
	check("specversion", ours.SpecVersion, theirs.SpecVersion())
	check("type", ours.Type, theirs.Type())
	check("subject", ours.Subject, theirs.Subject())
	check("dataschema", ours.DataSchema, theirs.DataSchema())
	wantCT := theirs.DataContentType()
	if impliedJSON && wantCT == "" {
		wantCT = "application/json"
	}
	check("datacontenttype", ours.DataContentType, wantCT)
	if ours.Time == "" {
		if !theirs.Time().IsZero() {
			t.Errorf("time: ours unset, sdk-go %v", theirs.Time())
		}
	} else {
		ot, err := time.Parse(time.RFC3339Nano, ours.Time)
		if err != nil || !ot.Equal(theirs.Time()) {
			t.Errorf("time: ours %q, sdk-go %v", ours.Time, theirs.Time())
		}
	}
	theirExt := theirs.Extensions()
	if len(theirExt) != len(ours.Extensions) {
		t.Errorf("extensions: ours %v, sdk-go %v", ours.Extensions, theirExt)
	}
	for name, v := range theirExt {
		s, err := types.Format(v)
		if err != nil {
			t.Errorf("extension %s: sdk-go value %v: %v", name, v, err)
			continue
		}
		check("extension "+name, ours.Extensions[name], s)
	}
	theirData := theirs.Data()
	if isJSONMediaType(ours.DataContentType) {
		// sdk-go keeps the whitespace before an inline JSON "data" value; it is not part of the value.
		theirData = bytes.TrimLeft(theirData, " \t\r\n")
	}
	if !bytes.Equal(ours.Data, theirData) {
		t.Errorf("data: ours %q, sdk-go %q", ours.Data, theirs.Data())
	}
}

// specExamples are HTTP messages built from the CloudEvents spec's examples (HTTP binding and JSON
// format), plus variations exercising every attribute.
var specExamples = []struct {
	name        string
	header      http.Header
	body        string
	impliedJSON bool
}{
	{name: "binary JSON data", header: http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Type": {"com.example.someevent"}, "Ce-Time": {"2018-04-05T03:56:24Z"},
		"Ce-Id": {"1234-1234-1234"}, "Ce-Source": {"/mycontext/subcontext"},
		"Content-Type": {"application/json; charset=utf-8"},
	}, body: "{\n    \"appinfoA\" : \"abc\"\n}"},
	{name: "binary everything", header: http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Type": {"com.example.someevent"}, "Ce-Time": {"2018-04-05T17:31:00.123456+02:00"},
		"Ce-Id": {"A234-1234-1234"}, "Ce-Source": {"https://example.com/mycontext"},
		"Ce-Subject": {"larger-context"}, "Ce-Dataschema": {"https://example.com/schema/v1"},
		"Ce-Comexampleextension1": {"value"}, "Ce-Comexampleothervalue": {"5"}, "Ce-Partitionkey": {"key-1"},
		"Content-Type": {"application/vnd.apache.thrift.binary"},
	}, body: "\x00\x01\x02binary\xff"},
	{name: "binary no data", header: http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Type": {"t"}, "Ce-Id": {"1"}, "Ce-Source": {"urn:example:source"},
	}},
	{name: "structured base64 data", header: http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
		body: `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "A234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "datacontenttype" : "application/vnd.apache.thrift.binary",
    "data_base64" : "` + base64.StdEncoding.EncodeToString([]byte("\x00\x01thrift\xfe")) + `"
}`},
	{name: "structured XML string data", header: http.Header{"Content-Type": {"application/cloudevents+json"}},
		body: `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "id" : "B234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "unsetextension": null,
    "datacontenttype" : "application/xml",
    "data" : "<much wow=\"xml\"/>"
}`},
	{name: "structured JSON object data", header: http.Header{"Content-Type": {"application/cloudevents+json"}},
		body: structuredExample},
	{name: "structured JSON string, no datacontenttype", header: http.Header{"Content-Type": {"application/cloudevents+json"}},
		impliedJSON: true, body: `{
    "specversion" : "1.0",
    "type" : "com.example.someevent",
    "source" : "/mycontext",
    "subject": null,
    "id" : "D234-1234-1234",
    "time" : "2018-04-05T17:31:00Z",
    "comexampleextension1" : "value",
    "comexampleothervalue" : 5,
    "data" : "I'm just a string"
}`},
	{name: "structured all attributes", header: http.Header{"Content-Type": {"application/cloudevents+json"}},
		body: `{"specversion":"1.0","type":"t","source":"https://example.com/x","id":"E1","subject":"s",
		"dataschema":"https://example.com/schema","time":"2021-12-31T23:59:59.999Z","flag":true,"n":-7,
		"datacontenttype":"application/json","data":[1,"two",{"three":3}]}`},
}

func TestReferenceParseHTTPAgainstSDK(t *testing.T) {
	for _, ex := range specExamples {
		t.Run(ex.name, func(t *testing.T) {
			ours, err := ParseHTTP(ex.header, []byte(ex.body))
			if err != nil {
				t.Fatalf("ParseHTTP: %v", err)
			}
			if len(ours) != 1 {
				t.Fatalf("got %d events", len(ours))
			}
			compareSDK(t, ours[0], sdkParse(t, ex.header, []byte(ex.body)), ex.impliedJSON)
		})
	}
}

func TestReferenceWriteHTTPBinaryReadBySDK(t *testing.T) {
	for _, ex := range specExamples {
		t.Run(ex.name, func(t *testing.T) {
			ours, err := ParseHTTP(ex.header, []byte(ex.body))
			if err != nil {
				t.Fatal(err)
			}
			e := ours[0]
			h := http.Header{}
			WriteHTTPBinary(e, h)
			msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(e.Data)))
			theirs, err := binding.ToEvent(context.Background(), msg)
			if err != nil {
				t.Fatalf("sdk-go could not read WriteHTTPBinary output: %v", err)
			}
			compareSDK(t, e, theirs, false)
		})
	}
}

func TestReferenceMarshalStructuredReadBySDK(t *testing.T) {
	for _, ex := range specExamples {
		t.Run(ex.name, func(t *testing.T) {
			ours, err := ParseHTTP(ex.header, []byte(ex.body))
			if err != nil {
				t.Fatal(err)
			}
			e := ours[0]
			b, err := MarshalStructured(e)
			if err != nil {
				t.Fatal(err)
			}
			theirs := sdkParse(t, http.Header{"Content-Type": {MediaTypeStructuredJSON}}, b)
			compareSDK(t, e, theirs, false)
		})
	}
}

func TestReferenceBatchAgainstSDK(t *testing.T) {
	var parts []string
	for _, ex := range specExamples {
		if strings.HasPrefix(ex.name, "structured") {
			parts = append(parts, ex.body)
		}
	}
	body := []byte("[" + strings.Join(parts, ",") + "]")
	ours, err := ParseHTTP(http.Header{"Content-Type": {MediaTypeBatchJSON}}, body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", MediaTypeBatchJSON)
	theirs, err := cehttp.NewEventsFromHTTPRequest(req)
	if err != nil {
		t.Fatalf("sdk-go batch: %v", err)
	}
	if len(ours) != len(theirs) {
		t.Fatalf("ours %d events, sdk-go %d", len(ours), len(theirs))
	}
	for i := range ours {
		compareSDK(t, ours[i], &theirs[i], true)
	}

	// And the reverse: MarshalBatch output read by sdk-go.
	out, err := MarshalBatch(ours)
	if err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(out))
	req.Header.Set("Content-Type", MediaTypeBatchJSON)
	back, err := cehttp.NewEventsFromHTTPRequest(req)
	if err != nil || len(back) != len(ours) {
		t.Fatalf("sdk-go reading MarshalBatch output: %d events, %v", len(back), err)
	}
	for i := range ours {
		compareSDK(t, ours[i], &back[i], false)
	}
}
