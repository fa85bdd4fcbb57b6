package pubsub

import (
	"errors"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/event"
)

func TestCodecRoundTrip(t *testing.T) {
	long := strings.Repeat("x", maxAttrValueBytes+1)
	tests := []struct {
		name       string
		e          *event.Event
		structured bool
	}{
		{"minimal", &event.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t"}, false},
		{"all attributes", &event.Event{ID: "2", Source: "/s", SpecVersion: "1.0", Type: "t",
			DataContentType: "application/json", DataSchema: "https://example.com/s", Subject: "sub",
			Time: "2026-11-27T10:00:00Z", Extensions: map[string]string{"partitionkey": "k", "traceparent": "00-x"},
			Data: []byte(`{"a":1}`)}, false},
		// knativeerrordata is base64 of up to 1024 bytes: longer than an attribute value may be.
		{"long extension goes structured", &event.Event{ID: "3", Source: "/s", SpecVersion: "1.0", Type: "t",
			DataContentType: "text/plain", Extensions: map[string]string{"knativeerrordata": long, "partitionkey": "k"},
			Data: []byte("body")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := toMessage(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Attributes[attrContentType] == event.MediaTypeStructuredJSON; got != tt.structured {
				t.Errorf("structured = %v, want %v (attributes %v)", got, tt.structured, m.Attributes)
			}
			if m.OrderingKey != orderingKey(tt.e.Extension("partitionkey")) {
				t.Errorf("ordering key %q, want the partitionkey %q", m.OrderingKey, tt.e.Extension("partitionkey"))
			}
			for k, v := range m.Attributes {
				if len(k) > maxAttrKeyBytes || len(v) > maxAttrValueBytes {
					t.Errorf("attribute %.20s… is over Pub/Sub's limits", k)
				}
			}
			got, err := fromMessage(m.Data, m.Attributes)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.e) {
				t.Errorf("round trip: got %+v, want %+v", got, tt.e)
			}
		})
	}
}

func TestFromMessageRejects(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]string
		data  string
		want  error
	}{
		{"no attributes", nil, "x", event.ErrInvalid},
		{"missing type", map[string]string{"ce-id": "1", "ce-source": "/s", "ce-specversion": "1.0"}, "", event.ErrInvalid},
		{"structured not JSON", map[string]string{"content-type": "application/cloudevents+json"}, "{", event.ErrInvalid},
		{"avro", map[string]string{"content-type": "application/cloudevents+avro"}, "", event.ErrUnsupportedMediaType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fromMessage([]byte(tt.data), tt.attrs); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFromMessageIgnoresForeignAttributes(t *testing.T) {
	attrs := map[string]string{"ce-id": "1", "ce-source": "/s", "CE-SpecVersion": "1.0", "ce-type": "t",
		"googclient_schemaencoding": "JSON", "origin": "elsewhere"}
	e, err := fromMessage(nil, attrs)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "1" || e.SpecVersion != "1.0" || len(e.Extensions) != 0 {
		t.Errorf("got %+v", e)
	}
}

func TestOrderingKeyFitsPubSub(t *testing.T) {
	long := strings.Repeat("k", maxOrderingKeyBytes+1)
	if got := orderingKey("customer-7"); got != "customer-7" {
		t.Errorf("short key changed to %q", got)
	}
	got := orderingKey(long)
	if len(got) > maxOrderingKeyBytes || got != orderingKey(long) || got == orderingKey(long+"x") {
		t.Errorf("long key gives %q: want a stable, distinct key within %d bytes", got, maxOrderingKeyBytes)
	}
}
