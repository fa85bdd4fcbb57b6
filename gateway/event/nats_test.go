package event

import (
	"errors"
	"testing"
)

func TestNATSRoundTrip(t *testing.T) {
	e := &Event{
		ID: "id 1", Source: "/src", SpecVersion: SpecVersion, Type: "t", Subject: "ünïcode \"quoted\" 100%",
		Time: "2026-11-27T10:00:00Z", DataContentType: "application/json", Data: []byte(`{"a":1}`),
	}
	e.SetExtension(PartitionKeyExtension, "key with spaces")
	e.SetExtension("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h := map[string][]string{"Nats-Msg-Id": {"x"}}
	ToNATS(e, h)
	for k, vs := range h {
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if v[i] < ' ' || v[i] >= 0x7f {
					t.Errorf("header %s value %q has byte %#x a NATS header line cannot carry", k, v, v[i])
				}
			}
		}
	}
	if h["content-type"][0] != "application/json" || h["ce-id"][0] != "id%201" {
		t.Errorf("headers = %v", h)
	}
	got, err := FromNATS(h, e.Data)
	if err != nil {
		t.Fatalf("FromNATS: %v", err)
	}
	if !got.Equal(e) {
		t.Errorf("round trip: got %+v, want %+v", got, e)
	}
}

func TestFromNATSRejects(t *testing.T) {
	base := func() map[string][]string {
		return map[string][]string{"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-source": {"/s"}, "ce-type": {"t"}}
	}
	tests := []struct {
		name string
		edit func(h map[string][]string)
		want error
	}{
		{"no headers at all", func(h map[string][]string) { clear(h) }, ErrInvalid},
		{"missing id", func(h map[string][]string) { delete(h, "ce-id") }, ErrInvalid},
		{"repeated id", func(h map[string][]string) { h["ce-id"] = []string{"1", "2"} }, ErrInvalid},
		{"id in two cases", func(h map[string][]string) { h["CE-ID"] = []string{"2"} }, ErrInvalid},
		{"bad percent-encoding", func(h map[string][]string) { h["ce-source"] = []string{"/a%zz"} }, ErrInvalid},
		{"datacontenttype header", func(h map[string][]string) { h["ce-datacontenttype"] = []string{"a/b"} }, ErrInvalid},
		{"empty content-type", func(h map[string][]string) { h["content-type"] = []string{""} }, ErrInvalid},
		{"structured avro", func(h map[string][]string) { h["content-type"] = []string{"application/cloudevents+avro"} }, ErrUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.edit(h)
			e, err := FromNATS(h, nil)
			if !errors.Is(err, tt.want) || e != nil {
				t.Errorf("FromNATS = %+v, %v; want an error wrapping %v", e, err, tt.want)
			}
		})
	}
}

func TestFromNATSStructured(t *testing.T) {
	h := map[string][]string{"Content-Type": {MediaTypeStructuredJSON}}
	e, err := FromNATS(h, []byte(structuredExample))
	if err != nil {
		t.Fatalf("FromNATS: %v", err)
	}
	checkAccepted(t, e)
}

// FuzzFromNATS decodes NATS messages whose ce-* header values, content-type and payload are fuzzed
// (mode%2: 0 binary, 1 only a content-type header).
//
// Invariants: FromNATS never panics; every error wraps ErrInvalid or ErrUnsupportedMediaType; every
// accepted event keeps checkAccepted's invariants and survives ToNATS → FromNATS unchanged (unless its
// datacontenttype is a CloudEvents media type, which binary mode cannot carry).
func FuzzFromNATS(f *testing.F) {
	f.Add(uint8(0), "1.0", "1234", "/mycontext", "tenant-1", "application/avro", []byte("payload"))
	f.Add(uint8(0), "1.0", "a%20b", "https://example.com", "caf%C3%A9", "", []byte(nil))
	f.Add(uint8(0), "1.0", "", "/s", "%ZZ", "text/plain", []byte{0xff})
	f.Add(uint8(1), "", "", "", "", MediaTypeStructuredJSON, []byte(structuredExample))
	f.Add(uint8(1), "", "", "", "", "application/cloudevents+avro", []byte("x"))
	f.Fuzz(func(t *testing.T, mode uint8, specversion, id, source, key, contentType string, data []byte) {
		h := map[string][]string{}
		if mode%2 == 0 {
			h["ce-specversion"] = []string{specversion}
			h["ce-id"] = []string{id}
			h["ce-source"] = []string{source}
			h["ce-type"] = []string{"com.example.fuzz"}
			h["ce-partitionkey"] = []string{key}
		}
		if contentType != "" {
			h["content-type"] = []string{contentType}
		}
		e, err := FromNATS(h, data)
		if err != nil {
			if e != nil {
				t.Fatalf("event and error together: %v", err)
			}
			checkRejected(t, err)
			return
		}
		checkAccepted(t, e.Clone())
		if isCloudEventsMediaType(e.DataContentType) {
			return
		}
		out := map[string][]string{}
		ToNATS(e, out)
		again, err := FromNATS(out, e.Data)
		if err != nil || !again.Equal(e) {
			t.Fatalf("NATS round trip of %+v via %v: %+v, %v", e, out, again, err)
		}
	})
}
