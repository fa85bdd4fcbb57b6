package loadgen

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzSink feeds the sink arbitrary bodies, content types and ce-time headers.
//
// Invariants: the sink never panics; it answers 202 or 400 (a POST within the body limit); a 202
// adds at least one event when the request is binary mode, and the events it counts as timed plus
// untimed equal the events it counts.
func FuzzSink(f *testing.F) {
	f.Add("", "2026-01-02T03:04:05Z", "data")
	f.Add("application/cloudevents+json", "", `{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"2026-01-02T03:04:05Z"}`)
	f.Add("application/cloudevents-batch+json", "", `[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t","time":"x"}]`)
	f.Add("application/cloudevents-batch+json", "", `[`)
	f.Add("text/plain", "not a time", "")
	f.Fuzz(func(t *testing.T, contentType, ceTime, body string) {
		s := mustSink(t, SinkOptions{Now: func() time.Time { return time.Unix(1e9, 0) }})
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		if contentType != "" {
			req.Header["Content-Type"] = []string{contentType}
		}
		if ceTime != "" {
			req.Header["Ce-Time"] = []string{ceTime}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		r := s.Result()
		switch w.Code {
		case http.StatusAccepted:
			if ceTime != "" && r.Events != 1 {
				t.Fatalf("binary request accepted but %d events counted", r.Events)
			}
		case http.StatusBadRequest:
			if r.Events != 0 {
				t.Fatalf("rejected request counted %d events", r.Events)
			}
		default:
			t.Fatalf("answered %d", w.Code)
		}
		if uint64(r.Events-r.Untimed) != r.Latency.Count {
			t.Fatalf("events %d untimed %d but %d latencies", r.Events, r.Untimed, r.Latency.Count)
		}
	})
}
