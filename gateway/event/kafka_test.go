package event

import (
	"errors"
	"testing"
)

func fullEvent() *Event {
	return &Event{
		ID:              "A234-1234-1234",
		Source:          "https://example.com/source",
		SpecVersion:     "1.0",
		Type:            "com.example.someevent",
		DataContentType: "application/vnd.apache.thrift.binary",
		DataSchema:      "https://example.com/schema",
		Subject:         "café €",
		Time:            "2018-04-05T17:31:00Z",
		Extensions:      map[string]string{"comexampleextension1": "value", "partitionkey": "tenant-7", "empty": ""},
		Data:            []byte{0, 1, 2, 0xff},
	}
}

func TestToKafka(t *testing.T) {
	e := fullEvent()
	key, headers, value := ToKafka(e)
	if string(key) != "tenant-7" {
		t.Errorf("key = %q, want the partitionkey", key)
	}
	if string(value) != string(e.Data) {
		t.Errorf("value = %q", value)
	}
	want := []Header{
		{"ce_specversion", []byte("1.0")},
		{"ce_id", []byte("A234-1234-1234")},
		{"ce_source", []byte("https://example.com/source")},
		{"ce_type", []byte("com.example.someevent")},
		{"ce_dataschema", []byte("https://example.com/schema")},
		{"ce_subject", []byte("café €")},
		{"ce_time", []byte("2018-04-05T17:31:00Z")},
		{"ce_comexampleextension1", []byte("value")},
		{"ce_empty", []byte("")},
		{"ce_partitionkey", []byte("tenant-7")},
		{"content-type", []byte("application/vnd.apache.thrift.binary")},
	}
	if len(headers) != len(want) {
		t.Fatalf("headers = %q", headers)
	}
	for i := range want {
		if headers[i].Key != want[i].Key || string(headers[i].Value) != string(want[i].Value) {
			t.Errorf("header %d = %s:%q, want %s:%q", i, headers[i].Key, headers[i].Value, want[i].Key, want[i].Value)
		}
	}
	// Header values share one buffer but must not overlap: appending to one may not clobber the next.
	_ = append(headers[0].Value, 'X')
	if string(headers[1].Value) != "A234-1234-1234" {
		t.Errorf("header values alias each other: %q", headers[1].Value)
	}

	noKey, _, _ := ToKafka(validEvent())
	if noKey != nil {
		t.Errorf("key without partitionkey = %q, want nil", noKey)
	}
}

func TestKafkaRoundTrip(t *testing.T) {
	for _, e := range []*Event{fullEvent(), validEvent()} {
		key, headers, value := ToKafka(e)
		got, err := FromKafka(key, headers, value)
		if err != nil {
			t.Fatalf("FromKafka: %v", err)
		}
		if !got.Equal(e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
	}
}

func TestFromKafkaStructured(t *testing.T) {
	headers := []Header{{"content-type", []byte("application/cloudevents+json; charset=UTF-8")}}
	e, err := FromKafka([]byte("mykey"), headers, []byte(structuredExample))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "C234-1234-1234" || e.Extension("comexampleothervalue") != "5" || e.DataContentType != "application/json" {
		t.Errorf("got %+v", e)
	}
	if _, ok := e.Extensions[PartitionKeyExtension]; ok {
		t.Error("the record key must not become an attribute")
	}
}

func TestFromKafkaErrors(t *testing.T) {
	base := func(extra ...Header) []Header {
		return append([]Header{
			{"ce_specversion", []byte("1.0")}, {"ce_id", []byte("1")},
			{"ce_source", []byte("/s")}, {"ce_type", []byte("t")},
		}, extra...)
	}
	tests := []struct {
		name    string
		headers []Header
		value   string
		kind    error
		attr    string
	}{
		{name: "no headers", kind: ErrInvalid, attr: "specversion"},
		{name: "avro", headers: []Header{{"content-type", []byte("application/cloudevents+avro")}}, kind: ErrUnsupportedMediaType},
		{name: "structured garbage", headers: []Header{{"content-type", []byte(MediaTypeStructuredJSON)}}, value: "{", kind: ErrInvalid},
		{name: "repeated id", headers: base(Header{"ce_id", []byte("2")}), kind: ErrInvalid, attr: "id"},
		{name: "repeated extension", headers: base(Header{"ce_x", nil}, Header{"ce_x", nil}), kind: ErrInvalid, attr: "x"},
		{name: "repeated content-type", headers: base(Header{"content-type", []byte("a/b")}, Header{"content-type", []byte("a/b")}), kind: ErrInvalid},
		{name: "upper-case name", headers: base(Header{"ce_Foo", []byte("v")}), kind: ErrInvalid, attr: "Foo"},
		{name: "reserved name", headers: base(Header{"ce_data", []byte("v")}), kind: ErrInvalid, attr: "data"},
		{name: "empty name", headers: base(Header{"ce_", []byte("v")}), kind: ErrInvalid, attr: ""},
		{name: "ce_datacontenttype", headers: base(Header{"ce_datacontenttype", []byte("a/b")}), kind: ErrInvalid, attr: "datacontenttype"},
		{name: "invalid UTF-8", headers: base(Header{"ce_subject", []byte{0xff}}), kind: ErrInvalid, attr: "subject"},
		{name: "bad time", headers: base(Header{"ce_time", []byte("noon")}), kind: ErrInvalid, attr: "time"},
		{name: "empty subject", headers: base(Header{"ce_subject", nil}), kind: ErrInvalid, attr: "subject"},
		{name: "empty content-type", headers: base(Header{"content-type", nil}), kind: ErrInvalid, attr: "datacontenttype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := FromKafka(nil, tt.headers, []byte(tt.value))
			if err == nil {
				t.Fatalf("FromKafka = %+v, want error", e)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			var ae *AttributeError
			if tt.attr != "" || errors.As(err, &ae) {
				if !errors.As(err, &ae) || ae.Attribute != tt.attr {
					t.Errorf("error %v does not name attribute %q", err, tt.attr)
				}
			}
		})
	}
}

func TestFromKafkaIgnoresOtherHeaders(t *testing.T) {
	headers := []Header{
		{"traceparent", []byte("00-abc")}, {"ce_specversion", []byte("1.0")}, {"ce_id", []byte("1")},
		{"ce_source", []byte("/s")}, {"ce_type", []byte("t")}, {"Content-Type", []byte("text/plain")},
	}
	e, err := FromKafka(nil, headers, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "text/plain"}
	if !e.Equal(want) {
		t.Fatalf("got %+v, want %+v", e, want)
	}
}
