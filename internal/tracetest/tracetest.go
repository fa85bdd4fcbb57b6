// Package tracetest is an in-process OpenTelemetry collector for tests: it implements the OTLP trace
// service over gRPC and over HTTP (protobuf, POST /v1/traces), keeps every span it receives, and
// lets a test wait for the spans it expects. Only tests import it.
package tracetest

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened for assertions. IDs are lower-case hex; attribute values are
// their string form (ints in decimal).
type Span struct {
	TraceID, SpanID, ParentSpanID string
	Name                          string
	// Kind is "internal", "server", "client", "producer" or "consumer".
	Kind    string
	Attrs   map[string]string
	Links   []Link
	Error   bool   // the span's status is Error
	Service string // service.name of its resource
}

// Link is a span's link to another span.
type Link struct{ TraceID, SpanID string }

// Receiver is a running in-process collector. Safe for concurrent use.
type Receiver struct {
	// GRPCEndpoint and HTTPEndpoint are the URLs to export to (http://127.0.0.1:PORT).
	GRPCEndpoint, HTTPEndpoint string

	keep    bool
	mu      sync.Mutex
	spans   []Span
	count   int
	exports int           // HTTP exports a discarding Receiver did not decode
	changed chan struct{} // closed and replaced when spans arrive
}

// Start runs a Receiver that keeps every span, until the test ends.
func Start(t testing.TB) *Receiver { return start(t, true) }

// StartDiscarding runs a Receiver for benchmarks: over gRPC it decodes and counts the spans but
// keeps none; over HTTP it reads each export and answers it without decoding (counted in Exports),
// as a collector in another process would cost the exporter nothing more.
func StartDiscarding(t testing.TB) *Receiver { return start(t, false) }

func start(t testing.TB, keep bool) *Receiver {
	t.Helper()
	r := &Receiver{keep: keep, changed: make(chan struct{})}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, grpcService{r: r})
	go gs.Serve(gln)
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(r.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(hln)
	r.GRPCEndpoint, r.HTTPEndpoint = "http://"+gln.Addr().String(), "http://"+hln.Addr().String()
	t.Cleanup(func() {
		gs.Stop()
		hs.Close()
	})
	return r
}

type grpcService struct {
	collectortrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	g.r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err == nil && !r.keep {
		r.mu.Lock()
		r.exports++
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		return // an empty ExportTraceServiceResponse is zero bytes
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *Receiver) add(req *collectortrace.ExportTraceServiceRequest) {
	var got []Span
	n := 0
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				n++
				if !r.keep {
					continue
				}
				sp := Span{TraceID: hexID(s.GetTraceId()), SpanID: hexID(s.GetSpanId()),
					ParentSpanID: hexID(s.GetParentSpanId()), Name: s.GetName(), Kind: kind(s.GetKind()),
					Attrs: attrs(s.GetAttributes()), Service: service,
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hexID(l.GetTraceId()), SpanID: hexID(l.GetSpanId())})
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.count += n
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Spans returns every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Count is how many spans were received (kept or not).
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Exports is how many HTTP exports a discarding Receiver took without decoding them.
func (r *Receiver) Exports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports
}

// WaitFor waits until done holds for the spans received, failing the test after within; it
// returns those spans.
func (r *Receiver) WaitFor(t testing.TB, within time.Duration, what string, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := slices.Clone(r.spans), r.changed
		r.mu.Unlock()
		if done(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waited %s for %s; received %d spans:\n%s", within, what, len(spans), Describe(spans))
			return nil
		}
	}
}

// Describe lists spans one per line, for failure messages.
func Describe(spans []Span) string {
	var b []byte
	for _, s := range spans {
		b = append(b, s.Kind+" "+s.Name+" trace="+s.TraceID+" span="+s.SpanID+" parent="+s.ParentSpanID+"\n"...)
	}
	return string(b)
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

func kind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "internal"
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return v.String()
}
