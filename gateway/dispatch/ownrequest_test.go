package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestOwnRequestWritesWhatNetHTTPWrites checks ownRequest.write against http.Request.Write for the
// same POST: the same request line, header lines (in any order) and body, over URLs that make net/http
// rewrite the Host (an international name, IPv6, an empty port) and headers it treats apart.
func TestOwnRequestWritesWhatNetHTTPWrites(t *testing.T) {
	urls := []string{
		"http://127.0.0.1:8081/sink",
		"http://sub.default.svc.cluster.local/path/to?x=1&y=%2F#frag",
		"http://[::1]:9000/v6",
		"http://[fe80::1%25eth0]:9000/zone",
		"http://example.com:/empty-port",
		"http://bücher.example/ünïcode?q=ä",
		"http://sub",
	}
	headers := []http.Header{
		{},
		{"Ce-Id": {"e-1"}, "Ce-Specversion": {"1.0"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"},
			"Content-Type": {"application/json"}, "Prefer": {"reply"}, "Traceparent": {"00-abc-def-01"}},
		{"User-Agent": {"eventgate-test/1"}, "X-Many": {"a", " b ", "c\t"}},
		{"User-Agent": {}, "Host": {"ignored"}, "Content-Length": {"999"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}},
	}
	bodies := [][]byte{nil, []byte("{}"), bytes.Repeat([]byte("x"), 512)}
	for _, u := range urls {
		tmpl, err := http.NewRequest(http.MethodPost, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		head := ownHead(tmpl)
		if head == nil {
			t.Fatalf("%s: no head", u)
		}
		for hi, h := range headers {
			for _, body := range bodies {
				want, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				want.Header = h.Clone()
				var wb bytes.Buffer
				if err := want.Write(&wb); err != nil {
					t.Fatal(err)
				}
				var gb bytes.Buffer
				w := bufio.NewWriter(&gb)
				if err := (ownRequest{head: head, body: body}).write(w, h); err != nil {
					t.Fatalf("%s, header %d: %v", u, hi, err)
				}
				w.Flush()
				gotLines, gotBody := splitRequest(t, gb.String())
				wantLines, wantBody := splitRequest(t, wb.String())
				if gotLines[0] != wantLines[0] || !slices.Equal(sorted(gotLines[1:]), sorted(wantLines[1:])) || gotBody != wantBody {
					t.Errorf("%s, header %d, %d-byte body:\ngot  %q\nwant %q", u, hi, len(body), gb.String(), wb.String())
				}
			}
		}
	}
}

// TestOwnRequestRefusesWhatTheTransportRefuses checks header names and values the transport
// refuses: refused alike, in its words, at once, and nothing sent.
func TestOwnRequestRefusesWhatTheTransportRefuses(t *testing.T) {
	sent := make(chan struct{}, 8)
	srv := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
		for s.readReq(n, r) {
			sent <- struct{}{} // and never answer: a refused request must not wait for one
		}
	})
	scope := newAttemptScope(context.Background())
	defer scope.end()
	tmpl, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/x", nil)
	for _, h := range []http.Header{
		{"Bad Name": {"v"}},
		{"": {"v"}},
		{"Ce-Id": {"a\r\nX-Injected: 1"}},
		{"Ce-Id": {"nul\x00"}},
		{"Ce-Id": {"del\x7f"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, tmpl.URL.String(), nil)
		req.Header = h
		_, want := (&http.Transport{}).RoundTrip(req)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, srv.url, nil)
		req.Header = h
		_, err := scope.roundTrip(&http.Transport{}, req, ownRequest{head: ownHead(req), body: []byte("x")})
		cancel()
		if err == nil || want == nil || err.Error() != want.Error() ||
			errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%q: error %v; the transport's %v", h, err, want)
		}
	}
	if len(sent) != 0 {
		t.Errorf("%d refused requests reached the subscriber", len(sent))
	}
	for _, h := range []http.Header{{"Ok": {"tab\tand spaces, ünïcode"}}, {"X-!#$%&'*+-.^_`|~": {"v"}}} {
		if err := checkHeader(h); err != nil {
			t.Errorf("%q refused: %v", h, err)
		}
	}
}

// splitRequest is a written request's lines before the blank line, and what follows it.
func splitRequest(t *testing.T, s string) ([]string, string) {
	t.Helper()
	head, body, ok := strings.Cut(s, "\r\n\r\n")
	if !ok {
		t.Fatalf("no end of header in %q", s)
	}
	return strings.Split(head, "\r\n"), body
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
