package event

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// benchBinaryRequest is a typical binary-mode ingress request: required attributes, time, one extension,
// a JSON body.
func benchBinaryRequest() (http.Header, []byte) {
	h := http.Header{
		"Ce-Specversion":          {"1.0"},
		"Ce-Id":                   {"8f1c2a9e-6c1d-4b1e-9d7a-2f0e5c3b7a11"},
		"Ce-Source":               {"https://github.com/eventgate/eventgate"},
		"Ce-Type":                 {"com.github.pull_request.opened"},
		"Ce-Time":                 {"2024-05-01T12:34:56.789Z"},
		"Ce-Subject":              {"pulls/42"},
		"Ce-Comexampleextension1": {"value"},
		"Content-Type":            {"application/json"},
		"Accept-Encoding":         {"gzip"},
		"User-Agent":              {"bench"},
	}
	return h, []byte(`{"action":"opened","number":42,"pull_request":{"title":"codec"}}`)
}

func BenchmarkBaselineNoop(b *testing.B) {
	h, body := benchBinaryRequest()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for k, v := range h {
			n += len(k) + len(v[0])
		}
		n += len(body)
	}
	if n == 0 {
		b.Fatal("nothing read")
	}
}

func BenchmarkParseHTTPBinary(b *testing.B) {
	h, body := benchBinaryRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHTTP(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineSDKBinary(b *testing.B) {
	h, body := benchBinaryRequest()
	b.ReportAllocs()
	for b.Loop() {
		msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
		if _, err := binding.ToEvent(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHTTPStructured(b *testing.B) {
	h := http.Header{"Content-Type": {MediaTypeStructuredJSON}}
	body := []byte(structuredExample)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHTTP(h, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineSDKStructured(b *testing.B) {
	h := http.Header{"Content-Type": {MediaTypeStructuredJSON}}
	body := []byte(structuredExample)
	b.ReportAllocs()
	for b.Loop() {
		msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
		if _, err := binding.ToEvent(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToKafka(b *testing.B) {
	h, body := benchBinaryRequest()
	es, err := ParseHTTP(h, body)
	if err != nil {
		b.Fatal(err)
	}
	e := es[0]
	e.SetExtension(PartitionKeyExtension, "tenant-7")
	b.ReportAllocs()
	for b.Loop() {
		key, headers, _ := ToKafka(e)
		if len(key) == 0 || len(headers) == 0 {
			b.Fatal("empty record")
		}
	}
}

func BenchmarkFromKafka(b *testing.B) {
	h, body := benchBinaryRequest()
	es, err := ParseHTTP(h, body)
	if err != nil {
		b.Fatal(err)
	}
	e := es[0]
	e.SetExtension(PartitionKeyExtension, "tenant-7")
	key, headers, value := ToKafka(e)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromKafka(key, headers, value); err != nil {
			b.Fatal(err)
		}
	}
}
