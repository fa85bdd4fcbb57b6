package event_test

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/eventgate/eventgate/gateway/event"
)

// A binary-mode request: attributes in ce-* headers (percent-encoded), data in the body.
func ExampleParseHTTP() {
	h := http.Header{}
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", "1234-1234-1234")
	h.Set("Ce-Source", "/mycontext")
	h.Set("Ce-Type", "com.example.someevent")
	h.Set("Ce-Subject", "caf%C3%A9%20menu")
	h.Set("Content-Type", "application/json")
	es, err := event.ParseHTTP(h, []byte(`{"open":true}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(es[0].ID, es[0].Subject, es[0].DataContentType, string(es[0].Data))
	// Output: 1234-1234-1234 café menu application/json {"open":true}
}

// Errors carry their kind and name the attribute at fault.
func ExampleParseHTTP_invalid() {
	h := http.Header{"Content-Type": {"application/cloudevents+json"}}
	_, err := event.ParseHTTP(h, []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"noon"}`))
	var ae *event.AttributeError
	fmt.Println(errors.Is(err, event.ErrInvalid), errors.As(err, &ae) && ae.Attribute == "time")
	fmt.Println(err)
	// Output:
	// true true
	// attribute "time": not an RFC 3339 timestamp
}

// The partitionkey extension becomes the Kafka record key and stays a header.
func ExampleToKafka() {
	e := &event.Event{ID: "1", Source: "/s", SpecVersion: "1.0", Type: "t", DataContentType: "text/plain",
		Data: []byte("hello")}
	e.SetExtension(event.PartitionKeyExtension, "tenant-7")
	key, headers, value := event.ToKafka(e)
	fmt.Printf("key=%s value=%s\n", key, value)
	for _, h := range headers {
		fmt.Printf("%s: %s\n", h.Key, h.Value)
	}
	back, err := event.FromKafka(key, headers, value)
	fmt.Println(back.Equal(e), err)
	// Output:
	// key=tenant-7 value=hello
	// ce_specversion: 1.0
	// ce_id: 1
	// ce_source: /s
	// ce_type: t
	// ce_partitionkey: tenant-7
	// content-type: text/plain
	// true <nil>
}
