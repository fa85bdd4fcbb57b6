package dispatch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/selfsigned"
)

// scriptedServer accepts connections on loopback and serves each with serve(n, conn, r), n counting
// connections from 1. It records every request it reads through readReq.
type scriptedServer struct {
	ln    net.Listener
	url   string
	mu    sync.Mutex
	conns int
	reqs  []string // "conn N: METHOD PATH BODY"
	wg    sync.WaitGroup
}

func newScriptedServer(t *testing.T, serve func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader)) *scriptedServer {
	return newScriptedTLSServer(t, nil, serve)
}

// newScriptedTLSServer is newScriptedServer serving TLS with cfg (an https URL) when cfg is not nil.
func newScriptedTLSServer(t *testing.T, cfg *tls.Config, serve func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader)) *scriptedServer {
	t.Helper()
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if cfg != nil {
		ln, scheme = tls.NewListener(ln, cfg), "https"
	}
	s := &scriptedServer{ln: ln, url: scheme + "://" + ln.Addr().String() + "/sink"}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			n := s.conns
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				serve(s, n, conn, bufio.NewReader(conn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// readReq reads one request on connection n and records it; false when there was none.
func (s *scriptedServer) readReq(n int, r *bufio.Reader) bool {
	req, err := http.ReadRequest(r)
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(req.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, fmt.Sprintf("conn %d: %s %s %s", n, req.Method, req.URL.Path, body))
	s.mu.Unlock()
	return true
}

func (s *scriptedServer) seen() (conns int, reqs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, append([]string(nil), s.reqs...)
}

// testCert is a self-signed certificate for 127.0.0.1 and localhost, its key, and a pool that
// trusts it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c, err := selfsigned.New("eventgate test subscriber", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return c.TLS, c.Pool
}

// schemes runs f over plain HTTP and over TLS: a server config (nil for plain) and a transport
// that trusts its certificate.
func schemes(t *testing.T, f func(t *testing.T, srvTLS *tls.Config, tr func() *http.Transport)) {
	t.Run("http", func(t *testing.T) {
		f(t, nil, func() *http.Transport { return &http.Transport{} })
	})
	t.Run("https", func(t *testing.T) {
		cert, pool := testCert(t)
		f(t, &tls.Config{Certificates: []tls.Certificate{cert}},
			func() *http.Transport { return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}} })
	})
}

// ok202 is an answer without a body; okBody one with a three-byte body.
const (
	ok202  = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
	okBody = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
)

// ownExchange sends one POST of body on scope s as a delivery does: the answer's body read to its
// end and closed. It returns the status and body.
func ownExchange(ctx context.Context, s *attemptScope, tr *http.Transport, u, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := s.roundTrip(tr, req, ownRequest{head: ownHead(req), body: []byte(body)})
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), nil
}

// TestOwnConnectionCarriesEveryRequest checks that a scope's requests go one after another on one
// connection, with and without answer bodies (chunked too), and that the subscriber gets each
// request whole.
func TestOwnConnectionCarriesEveryRequest(t *testing.T) {
	schemes(t, func(t *testing.T, srvTLS *tls.Config, newTr func() *http.Transport) {
		answers := []string{ok202, okBody,
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n", ok202}
		srv := newScriptedTLSServer(t, srvTLS, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
			for i := 0; s.readReq(n, r); i++ {
				io.WriteString(conn, answers[i%len(answers)])
			}
		})
		scope := newAttemptScope(context.Background())
		defer scope.end()
		tr := newTr()
		wantBodies := []string{"", "abc", "def", ""}
		for i := range 8 {
			code, body, err := ownExchange(scope, scope, tr, srv.url, fmt.Sprintf("event %d", i))
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if want := wantBodies[i%4]; body != want || code/100 != 2 {
				t.Errorf("request %d: %d %q; want 2xx %q", i, code, body, want)
			}
		}
		conns, reqs := srv.seen()
		if conns != 1 || len(reqs) != 8 {
			t.Fatalf("%d connections, requests %q; want 1 connection, 8 requests", conns, reqs)
		}
		for i, r := range reqs {
			if want := fmt.Sprintf("conn 1: POST /sink event %d", i); r != want {
				t.Errorf("request %d arrived as %q; want %q", i, r, want)
			}
		}
	})
}

// TestOwnConnectionReplaced checks when a scope gives up its connection for a new one: the answer
// asked for a close (Connection: close, HTTP/1.0), its body was not read to the end, the peer
// closed it while it idled, it idled past the transport's IdleConnTimeout, the next request is to
// another address; and that the scope's end closes it.
func TestOwnConnectionReplaced(t *testing.T) {
	schemes(t, func(t *testing.T, srvTLS *tls.Config, newTr func() *http.Transport) {
		big := "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000)
		cases := []struct {
			name    string
			answer  string        // the first request's
			partial bool          // read the first answer's body only in part
			idle    time.Duration // the transport's IdleConnTimeout
			wait    time.Duration // between the two requests
			close   bool          // the server closes after the first answer
		}{
			{name: "Connection: close", answer: "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"},
			{name: "HTTP/1.0", answer: "HTTP/1.0 202 Accepted\r\nContent-Length: 0\r\n\r\n"},
			{name: "body not read to its end", answer: big, partial: true},
			{name: "closed by the peer while idle", answer: ok202, close: true, wait: 2 * ownPeekAfter},
			{name: "idle for IdleConnTimeout", answer: ok202, idle: 20 * time.Millisecond, close: true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				closed := make(chan struct{})
				srv := newScriptedTLSServer(t, srvTLS, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
					if n == 1 {
						s.readReq(n, r)
						io.WriteString(conn, c.answer)
						if c.idle > 0 { // the client closes it: no request comes
							if s.readReq(n, r) {
								t.Error("a request on a connection that should have been closed idle")
							}
							close(closed)
							return
						}
						if c.close {
							conn.Close()
							close(closed)
							return
						}
						// a second request here would be an error: the connection should not be reused
						if s.readReq(n, r) {
							io.WriteString(conn, ok202)
						}
						return
					}
					for s.readReq(n, r) {
						io.WriteString(conn, ok202)
					}
				})
				tr := newTr()
				tr.IdleConnTimeout = c.idle
				scope := newAttemptScope(context.Background())
				defer scope.end()
				req, _ := http.NewRequest(http.MethodPost, srv.url, nil)
				resp, err := scope.roundTrip(tr, req, ownRequest{head: ownHead(req), body: []byte("first")})
				if err != nil {
					t.Fatal(err)
				}
				if c.partial {
					io.CopyN(io.Discard, resp.Body, 10)
				} else {
					io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
				if c.close {
					select {
					case <-closed:
					case <-time.After(10 * time.Second):
						t.Fatal("the first connection was not closed")
					}
				}
				if c.wait > 0 {
					time.Sleep(c.wait) // idling is the behaviour under test
				}
				if _, _, err := ownExchange(context.Background(), scope, tr, srv.url, "second"); err != nil {
					t.Fatal(err)
				}
				conns, reqs := srv.seen()
				want := []string{"conn 1: POST /sink first", "conn 2: POST /sink second"}
				if conns != 2 || fmt.Sprint(reqs) != fmt.Sprint(want) {
					t.Errorf("%d connections, requests %q; want 2, %q", conns, reqs, want)
				}
			})
		}

		t.Run("another address, and the scope's end", func(t *testing.T) {
			var mu sync.Mutex
			ended := 0
			serve := func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
				for s.readReq(n, r) {
					io.WriteString(conn, ok202)
				}
				mu.Lock()
				ended++
				mu.Unlock()
			}
			a, b := newScriptedTLSServer(t, srvTLS, serve), newScriptedTLSServer(t, srvTLS, serve)
			scope, tr := newAttemptScope(context.Background()), newTr()
			for _, u := range []string{a.url, b.url, b.url} {
				if _, _, err := ownExchange(context.Background(), scope, tr, u, "x"); err != nil {
					t.Fatal(err)
				}
			}
			scope.end()
			deadline := time.Now().Add(10 * time.Second)
			for {
				mu.Lock()
				n := ended
				mu.Unlock()
				if n == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of 2 connections closed after the scope's end", n)
				}
				time.Sleep(time.Millisecond)
			}
			if ca, _ := a.seen(); ca != 1 {
				t.Errorf("first address: %d connections; want 1", ca)
			}
			if cb, reqs := b.seen(); cb != 1 || len(reqs) != 2 {
				t.Errorf("second address: %d connections, %d requests; want 1, 2", cb, len(reqs))
			}
		})
	})
}

// TestOwnConnectionSendsAgainOnlyWhenNothingCame checks the one case where a request is sent twice:
// a reused connection closed with not one byte of answer (the peer closed it as the request went
// out). A new connection that closes so, or an answer cut short, is the attempt's error.
func TestOwnConnectionSendsAgainOnlyWhenNothingCame(t *testing.T) {
	t.Run("reused, closed without an answer", func(t *testing.T) {
		srv := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
			for i := 0; s.readReq(n, r); i++ {
				if n == 1 && i == 1 {
					return // the second request on the first connection: closed unanswered
				}
				io.WriteString(conn, ok202)
			}
		})
		scope := newAttemptScope(context.Background())
		defer scope.end()
		tr := &http.Transport{}
		for _, body := range []string{"one", "two"} {
			if _, _, err := ownExchange(context.Background(), scope, tr, srv.url, body); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
		}
		_, reqs := srv.seen()
		want := []string{"conn 1: POST /sink one", "conn 1: POST /sink two", "conn 2: POST /sink two"}
		if fmt.Sprint(reqs) != fmt.Sprint(want) {
			t.Errorf("requests %q; want %q", reqs, want)
		}
	})
	for _, c := range []struct{ name, first, second string }{
		{"new connection, closed without an answer", "", ""},
		{"reused, answer cut short", ok202, "HTTP/1.1 200 OK\r\nContent-Le"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
				if s.readReq(n, r) && c.first != "" {
					io.WriteString(conn, c.first)
					if s.readReq(n, r) {
						io.WriteString(conn, c.second)
					}
				}
			})
			scope := newAttemptScope(context.Background())
			defer scope.end()
			tr := &http.Transport{}
			if c.first != "" {
				if _, _, err := ownExchange(context.Background(), scope, tr, srv.url, "one"); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := ownExchange(context.Background(), scope, tr, srv.url, "two")
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, errNoAnswer) && c.first == "" {
				t.Errorf("a new connection's failure is marked as a close while idle: %v", err)
			}
			if conns, reqs := srv.seen(); conns != 1 {
				t.Errorf("%d connections, requests %q; want 1: sent once", conns, reqs)
			}
		})
	}
}

// TestOwnConnectionAnswers checks what is read of an answer: informational answers skipped (up to
// five), a header over MaxResponseHeaderBytes refused with the limit named, a 101 ends the
// connection.
func TestOwnConnectionAnswers(t *testing.T) {
	early := "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
	cases := []struct {
		name, answer string
		max          int64
		code         int
		err          string
	}{
		{name: "two 1xx first", answer: early + "HTTP/1.1 100 Continue\r\n\r\n" + okBody, code: 200},
		{name: "five 1xx first", answer: strings.Repeat(early, 5) + okBody, code: 200},
		{name: "six 1xx first", answer: strings.Repeat(early, 6) + okBody, err: "too many informational"},
		{name: "header within the limit", answer: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 900) + "\r\nContent-Length: 3\r\n\r\nabc", max: 1024, code: 200},
		{name: "header over the limit", answer: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2000) + "\r\nContent-Length: 3\r\n\r\nabc", max: 1024, err: "longer than 1024 bytes"},
		{name: "not HTTP", answer: "SSH-2.0-OpenSSH\r\n\r\n", err: "malformed HTTP"},
		{name: "101", answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n", code: 101},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
				if n == 1 && s.readReq(n, r) {
					io.WriteString(conn, c.answer)
					if c.code != 200 {
						io.Copy(io.Discard, r) // until the client closes
						return
					}
				}
				for s.readReq(n, r) {
					io.WriteString(conn, ok202)
				}
			})
			scope := newAttemptScope(context.Background())
			defer scope.end()
			tr := &http.Transport{MaxResponseHeaderBytes: c.max}
			code, _, err := ownExchange(context.Background(), scope, tr, srv.url, "one")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v; want one saying %q", err, c.err)
				}
			} else if err != nil || code != c.code {
				t.Fatalf("%d, %v; want %d", code, err, c.code)
			}
			// whatever the first answer was, the next request is answered (on a new connection
			// after an error or a 101)
			if code, _, err := ownExchange(context.Background(), scope, tr, srv.url, "two"); err != nil || code != 202 {
				t.Fatalf("the next request: %d, %v", code, err)
			}
			if conns, _ := srv.seen(); c.code != 200 && conns != 2 {
				t.Errorf("%d connections; want 2 (the first one ended)", conns)
			}
		})
	}
}

// TestOwnConnectionDeadlineAndCancel checks that an unanswered request ends at the attempt's
// deadline with context.DeadlineExceeded, and at once with context.Canceled when the scope's
// context ends.
func TestOwnConnectionDeadlineAndCancel(t *testing.T) {
	got := make(chan struct{}, 4)
	srv := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
		for s.readReq(n, r) {
			got <- struct{}{} // and never answer
		}
	})
	tr := &http.Transport{}

	scope := newAttemptScope(context.Background())
	defer scope.end()
	actx := scope.attempt(50 * time.Millisecond)
	if _, _, err := ownExchange(actx, scope, tr, srv.url, "late"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past the deadline: %v; want context.DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	scope2 := newAttemptScope(ctx)
	defer scope2.end()
	errc := make(chan error, 1)
	go func() {
		_, _, err := ownExchange(scope2.attempt(time.Hour), scope2, tr, srv.url, "canceled")
		errc <- err
	}()
	<-got
	<-got // both requests arrived; the second is waiting
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("after the scope's context ended: %v; want context.Canceled", err)
	}
	if _, _, err := ownExchange(context.Background(), scope2, tr, srv.url, "after"); !errors.Is(err, context.Canceled) {
		t.Errorf("a request after the scope's context ended: %v; want context.Canceled", err)
	}
}

// TestOwnTransportAndURL checks which transports and URLs get own connections: plain http:// that
// the transport reaches directly over HTTP/1.
func TestOwnTransportAndURL(t *testing.T) {
	proxy := func(r *http.Request) (*url.URL, error) {
		if r.URL.Hostname() == "proxied" {
			return url.Parse("http://proxy:3128")
		}
		return nil, nil
	}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
		want bool
	}{
		{"default transport", http.DefaultTransport, true},
		{"keep-alives off", &http.Transport{DisableKeepAlives: true}, false},
		{"a header timeout of its own", &http.Transport{ResponseHeaderTimeout: time.Second}, false},
		{"the deprecated Dial", &http.Transport{Dial: net.Dial}, false},
		{"HTTP/2 without TLS only", &http.Transport{Protocols: &h2c}, false},
		{"not an *http.Transport", roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil }), false},
		{"none", nil, false},
	} {
		if got := ownTransport(c.rt) != nil; got != c.want {
			t.Errorf("%s: own connections %v; want %v", c.name, got, c.want)
		}
	}
	tr := &http.Transport{Proxy: proxy, DialContext: (&net.Dialer{}).DialContext}
	for u, want := range map[string]bool{
		"http://sub:8080/x":      true,
		"https://sub/x":          true,
		"ftp://sub/x":            false,
		"http://user:pw@sub/x":   false,
		"http://proxied:8080/x":  false,
		"https://proxied/x":      false,
		"http://bücher.test/x":   false,
		"https://[::1]:8443/x":   true,
		"http://xn--bcher-kva/x": true,
	} {
		req, _ := http.NewRequest(http.MethodPost, u, nil)
		if got := ownURL(tr, req); got != want {
			t.Errorf("%s: own connection %v; want %v", u, got, want)
		}
	}
	// https: only where the transport would set TLS up itself and speak HTTP/1 over it
	var h1, h2 http.Protocols
	h1.SetHTTP1(true)
	h2.SetHTTP1(true)
	h2.SetHTTP2(true)
	dial := (&net.Dialer{}).DialContext
	for _, c := range []struct {
		name string
		tr   *http.Transport
		want bool
	}{
		{"a dialer of its own (HTTP/2 off)", &http.Transport{DialContext: dial}, true},
		{"a TLS config of its own (HTTP/2 off)", &http.Transport{TLSClientConfig: &tls.Config{}}, true},
		{"nothing of its own (HTTP/2 on)", &http.Transport{}, false},
		{"ForceAttemptHTTP2", &http.Transport{DialContext: dial, ForceAttemptHTTP2: true}, false},
		{"Protocols HTTP/1", &http.Transport{Protocols: &h1}, true},
		{"Protocols HTTP/1 and 2", &http.Transport{DialContext: dial, Protocols: &h2}, false},
		{"TLSNextProto empty", &http.Transport{TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}, true},
		{"TLSNextProto h2", &http.Transport{DialContext: dial, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{"h2": nil}}, false},
		{"DialTLSContext", &http.Transport{DialContext: dial, DialTLSContext: dial}, false},
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://sub/x", nil)
		if got := ownURL(c.tr, req); got != c.want {
			t.Errorf("https, %s: own connection %v; want %v", c.name, got, c.want)
		}
	}
	// and for them, the transport agrees: it speaks HTTP/1 to a server that offers HTTP/2
	cert, pool := testCert(t)
	h2srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
	}))
	h2srv.EnableHTTP2 = true
	h2srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h2srv.StartTLS()
	defer h2srv.Close()
	for _, c := range []struct {
		name string
		tr   *http.Transport
	}{
		{"a dialer of its own", &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}}},
		{"a TLS config of its own", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		{"ForceAttemptHTTP2", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}},
	} {
		req, _ := http.NewRequest(http.MethodPost, h2srv.URL, nil)
		resp, err := c.tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		resp.Body.Close()
		c.tr.CloseIdleConnections()
		if h1 := resp.Header.Get("X-Proto") == "HTTP/1.1"; h1 != ownURL(c.tr, req) {
			t.Errorf("%s: the transport spoke %s, own connection %v", c.name, resp.Header.Get("X-Proto"), !h1)
		}
	}
	if req, _ := http.NewRequest(http.MethodPost, "http://proxied/x", nil); !ownURL(&http.Transport{}, req) {
		t.Error("a transport without Proxy: no own connection")
	}
	if got := hostPort(&url.URL{Scheme: "http", Host: "sub"}); got != "sub:80" {
		t.Errorf("hostPort without a port: %q", got)
	}
	if got := hostPort(&url.URL{Scheme: "https", Host: "[::1]"}); got != "[::1]:443" {
		t.Errorf("hostPort of https without a port: %q", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestOwnConnectionTLS checks TLS on an own connection as the transport sets it up: the
// transport's TLSClientConfig (its roots, its client certificate, its server name), the URL's host
// as the server name otherwise, the handshake bounded by TLSHandshakeTimeout, and a close by the
// subscriber seen while the connection idles.
func TestOwnConnectionTLS(t *testing.T) {
	cert, pool := testCert(t)
	type seen struct{ serverName, client string }
	got := make(chan seen, 16)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	srv := newScriptedTLSServer(t, srvTLS, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
		if !s.readReq(n, r) {
			return
		}
		st := conn.(*tls.Conn).ConnectionState()
		var client string
		if len(st.PeerCertificates) > 0 {
			client = st.PeerCertificates[0].Subject.CommonName
		}
		got <- seen{st.ServerName, client}
		io.WriteString(conn, "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	})
	port := srv.ln.Addr().(*net.TCPAddr).Port
	for _, c := range []struct {
		name string
		url  string
		cfg  *tls.Config
		want seen
	}{
		{"an address", srv.url, &tls.Config{RootCAs: pool}, seen{}}, // no server name is sent for an IP
		{"a host name", fmt.Sprintf("https://localhost:%d/sink", port), &tls.Config{RootCAs: pool}, seen{serverName: "localhost"}},
		{"the config's server name", srv.url, &tls.Config{RootCAs: pool, ServerName: "localhost"}, seen{serverName: "localhost"}},
		{"the config's client certificate", srv.url, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
			seen{client: "eventgate test subscriber"}},
	} {
		scope := newAttemptScope(context.Background())
		if code, _, err := ownExchange(context.Background(), scope, &http.Transport{TLSClientConfig: c.cfg}, c.url, c.name); err != nil || code != http.StatusAccepted {
			t.Errorf("%s: %d, %v; want 202", c.name, code, err)
		} else if g := <-got; g != c.want {
			t.Errorf("%s: the subscriber saw %+v; want %+v", c.name, g, c.want)
		}
		scope.end()
	}

	t.Run("roots without the subscriber's", func(t *testing.T) {
		scope := newAttemptScope(context.Background())
		defer scope.end()
		_, _, err := ownExchange(context.Background(), scope, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}, srv.url, "x")
		if !errors.As(err, new(x509.UnknownAuthorityError)) {
			t.Errorf("error %v; want an unknown authority", err)
		}
	})

	t.Run("a handshake that does not end", func(t *testing.T) {
		quiet := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
			io.Copy(io.Discard, r) // takes the ClientHello, never answers
		})
		scope := newAttemptScope(context.Background())
		defer scope.end()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, TLSHandshakeTimeout: 20 * time.Millisecond}
		_, _, err := ownExchange(ctx, scope, tr, "https"+strings.TrimPrefix(quiet.url, "http"), "x")
		if !errors.Is(err, errTLSHandshakeTimeout) {
			t.Errorf("error %v; want %v", err, errTLSHandshakeTimeout)
		}
	})

	t.Run("closed by the subscriber while idle", func(t *testing.T) {
		closed := make(chan struct{})
		idle := newScriptedTLSServer(t, srvTLS, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
			s.readReq(n, r)
			io.WriteString(conn, ok202)
			conn.Close() // close_notify, then FIN
			close(closed)
		})
		scope := newAttemptScope(context.Background())
		defer scope.end()
		if _, _, err := ownExchange(context.Background(), scope, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, idle.url, "x"); err != nil {
			t.Fatal(err)
		}
		<-closed
		c := scope.conn
		if c == nil {
			t.Fatal("no connection kept after a keep-alive answer")
		}
		c.idle = time.Now().Add(-ownPeekAfter) // as if it had idled long enough to be looked at
		fresh := c.fresh()
		for deadline := time.Now().Add(waitTimeout); fresh && time.Now().Before(deadline); fresh = c.fresh() {
			time.Sleep(time.Millisecond) // the close may take a moment to arrive
		}
		if fresh {
			t.Error("a TLS connection closed by the subscriber looks usable")
		}
	})
}

// TestPeerClosed checks the look at an idle connection: open and quiet is usable; closed by the
// peer, or with bytes nobody asked for, is not.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		name string
		peer func(net.Conn)
		want bool
	}{
		{"quiet", func(net.Conn) {}, false},
		{"closed", func(c net.Conn) { c.Close() }, true},
		{"sent something", func(c net.Conn) { io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\n\r\n") }, true},
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		peer, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.peer(peer)
		got := peerClosed(conn)
		if c.want && !got { // what the peer did may take a moment to arrive: look until it shows
			for deadline := time.Now().Add(10 * time.Second); !got && time.Now().Before(deadline); got = peerClosed(conn) {
				time.Sleep(time.Millisecond)
			}
		}
		if got != c.want {
			t.Errorf("%s: peerClosed %v; want %v", c.name, got, c.want)
		}
		conn.Close()
		peer.Close()
	}
}

// scriptedConn is a connection whose writes fail after writeOK bytes and whose reads give answer.
type scriptedConn struct {
	net.Conn // nil: only what an own connection calls is here
	answer   *strings.Reader
	writeOK  int
	closed   bool
}

func (c *scriptedConn) Write(p []byte) (int, error) {
	if len(p) > c.writeOK {
		n := c.writeOK
		c.writeOK = 0
		return n, errors.New("write: broken pipe")
	}
	c.writeOK -= len(p)
	return len(p), nil
}
func (c *scriptedConn) Read(p []byte) (int, error)       { return c.answer.Read(p) }
func (c *scriptedConn) Close() error                     { c.closed = true; return nil }
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

// TestOwnConnectionAnswerBeforeTheWholeRequest checks that an answer sent before the request was
// all written (a subscriber refusing a large body early, then closing) is the attempt's answer, and
// that the connection ends with it; without an answer the write's error is the attempt's.
func TestOwnConnectionAnswerBeforeTheWholeRequest(t *testing.T) {
	for _, c := range []struct {
		name, answer string
		code         int
	}{
		{"answered", "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 8\r\n\r\ntoo long", 413},
		{"not answered", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var conns []*scriptedConn
			tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
				sc := &scriptedConn{answer: strings.NewReader(c.answer), writeOK: 100}
				conns = append(conns, sc)
				return sc, nil
			}}
			scope := newAttemptScope(context.Background())
			defer scope.end()
			code, body, err := ownExchange(context.Background(), scope, tr, "http://sub/x", strings.Repeat("e", 1<<16))
			if c.code == 0 {
				if err == nil || !strings.Contains(err.Error(), "broken pipe") || errors.Is(err, errNoAnswer) {
					t.Fatalf("%d, %v; want the write's error", code, err)
				}
			} else if err != nil || code != c.code || body != "too long" {
				t.Fatalf("%d %q, %v; want %d %q", code, body, err, c.code, "too long")
			}
			if len(conns) != 1 || !conns[0].closed {
				t.Errorf("%d connections, the first closed: %v; want 1, closed", len(conns), len(conns) > 0 && conns[0].closed)
			}
		})
	}
}

// TestDeliveriesOutliveASubscribersIdleTimeout checks a subscriber that closes idle connections
// (as Node's keep-alive timeout does, here net/http's IdleTimeout): an ordered subscription's
// next event after each close is delivered at its first attempt, once, on a new connection.
func TestDeliveriesOutliveASubscribersIdleTimeout(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	closed := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("Ce-Id"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.URL + "/sink"}, Ordered: true}, nil)
	c := h.p.claim(t, 0)
	const events = 4
	for i := range events {
		c.waitDone(t, c.push(t, testEvent(fmt.Sprintf("e-%d", i))))
		select { // the subscriber closes the connection once it idles
		case <-closed:
		case <-time.After(waitTimeout):
			t.Fatalf("event %d: the subscriber did not close the idle connection", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"e-0", "e-1", "e-2", "e-3"}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("the subscriber got %v; want %v, each once", ids, want)
	}
	if ok, failed := h.attempts("2xx"), h.attempts("error"); ok != events || failed != 0 {
		t.Errorf("attempts: %v 2xx, %v errors; want %d, 0", ok, failed, events)
	}
}

// TestDeliveriesToAnHTTPSSubscriber checks a subscription to an https:// subscriber whose client
// transport speaks HTTP/1 over TLS (as the gateway's does): its deliveries go on the worker's own
// connection, each event once, all on one TLS connection.
func TestDeliveriesToAnHTTPSSubscriber(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get("Ce-Id"))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext:     (&net.Dialer{}).DialContext,
		TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig,
	}}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.URL + "/sink"}, Ordered: true}, func(d *Dispatcher) {
		d.client, d.rt = client, client.Transport
		d.own = ownTransport(d.rt)
	})
	if h.d.urls[srv.URL+"/sink"].head == nil {
		t.Fatal("the https subscriber is not sent to on own connections")
	}
	c := h.p.claim(t, 0)
	const events = 4
	for i := range events {
		c.waitDone(t, c.push(t, testEvent(fmt.Sprintf("e-%d", i))))
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"e-0", "e-1", "e-2", "e-3"}; fmt.Sprint(ids) != fmt.Sprint(want) || conns != 1 {
		t.Errorf("the subscriber got %v on %d connections; want %v, each once, on 1", ids, conns, want)
	}
	if ok := h.attempts("2xx"); ok != events {
		t.Errorf("attempts: %v 2xx; want %d", ok, events)
	}
}

// TestLargeEventsToASubscriberThatAnswersEarly checks an event larger than ownMaxBody to a
// subscriber that answers before reading the body and then neither reads nor closes: the answer
// is the attempt's (through the transport, which reads while it writes), not a timeout. Events up
// to ownMaxBody go on the own connection and are written whole first.
func TestLargeEventsToASubscriberThatAnswersEarly(t *testing.T) {
	release := make(chan struct{})
	srv := newScriptedServer(t, func(s *scriptedServer, n int, conn net.Conn, r *bufio.Reader) {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n")
		if req.ContentLength <= ownMaxBody {
			io.Copy(io.Discard, req.Body)
			for s.readReq(n, r) {
				io.WriteString(conn, ok202)
			}
			return
		}
		<-release // neither read nor close
	})
	defer close(release)
	for _, size := range []int{ownMaxBody, 4 << 20} {
		h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.url},
			Policy: Policy{Timeout: waitTimeout}}, nil)
		c := h.p.claim(t, 0)
		ev := testEvent(fmt.Sprintf("size-%d", size))
		ev.Data = bytes.Repeat([]byte("x"), size)
		c.waitDone(t, c.push(t, ev))
		if got := h.attempts("4xx"); got != 1 {
			t.Errorf("%d bytes: attempts{4xx} = %v, want 1 (timeouts %v, errors %v)", size, got,
				h.attempts("timeout"), h.attempts("error"))
		}
	}
}
