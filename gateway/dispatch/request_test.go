package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eventgate/eventgate/gateway/event"
)

type requestTestKey struct{}

// TestNewRequestMatchesParsingEachTime checks that a request built from a URL parsed once at Start is
// the request http.NewRequestWithContext builds from the URL string: method, URL, host, protocol,
// context, body, length and GetBody, with and without a body; and that building one changes nothing
// the next one is built from.
func TestNewRequestMatchesParsingEachTime(t *testing.T) {
	urls := []string{
		"http://127.0.0.1:8081",
		"http://sub.default.svc.cluster.local/path/to?x=1&y=%2F#frag",
		"https://user:p%40ss@example.com:8443/hook",
		"http://[::1]:9000/v6",
		"http://example.com:/empty-port",
	}
	d := &Dispatcher{}
	dests := make([]*Destination, len(urls))
	for i, u := range urls {
		dests[i] = &Destination{URL: u}
	}
	d.urls = d.parseURLs(append(dests, nil, &Destination{URL: "http://bad host/"})...)
	if _, ok := d.urls["http://bad host/"]; ok {
		t.Error("an unparseable URL was kept")
	}
	ctx := context.WithValue(context.Background(), requestTestKey{}, "attempt")
	for _, u := range urls {
		for _, body := range [][]byte{[]byte("body"), nil, {}} {
			for range 2 { // the second from the template the first may have changed
				want, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got, err := d.newRequest(ctx, u, body, 3)
				if err != nil {
					t.Fatalf("newRequest(%s): %v", u, err)
				}
				compareRequests(t, u, got, want)
				if got.URL == d.urls[u].url || got.URL == d.urls[u].tmpl.URL {
					t.Errorf("newRequest(%s) shares the parsed URL; a request may modify its own", u)
				}
				got.URL.Path, got.Host = "/changed", "changed"
				got.Header.Set("Ce-Id", "changed")
			}
		}
	}
	// Not parsed at Start: parsed per request, errors included.
	if _, err := d.newRequest(ctx, "http://bad host/", nil, 3); err == nil {
		t.Error("newRequest accepted an unparseable URL")
	}
	got, err := d.newRequest(ctx, "http://127.0.0.1:9/not-parsed", []byte("body"), 3)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:9/not-parsed", bytes.NewReader([]byte("body")))
	compareRequests(t, "not parsed at Start", got, want)
}

// compareRequests reports where got differs from want in what a client sends.
func compareRequests(t *testing.T, name string, got, want *http.Request) {
	t.Helper()
	if got.Method != want.Method || got.URL.String() != want.URL.String() || got.Host != want.Host ||
		got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor {
		t.Errorf("%s: %s %s host %q %s; want %s %s host %q %s", name, got.Method, got.URL, got.Host, got.Proto,
			want.Method, want.URL, want.Host, want.Proto)
	}
	if got.Context() != want.Context() {
		t.Errorf("%s: the request does not carry the attempt's context", name)
	}
	if len(got.Header) != 0 {
		t.Errorf("%s: headers %v before any is set", name, got.Header)
	}
	if got.ContentLength != want.ContentLength || (got.Body == http.NoBody) != (want.Body == http.NoBody) ||
		(got.GetBody == nil) != (want.GetBody == nil) {
		t.Errorf("%s: length %d, no body %v, GetBody set %v; want %d, %v, %v", name, got.ContentLength,
			got.Body == http.NoBody, got.GetBody != nil, want.ContentLength, want.Body == http.NoBody, want.GetBody != nil)
	}
	wantBody, _ := io.ReadAll(want.Body)
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, wantBody) {
		t.Errorf("%s: body %q; want %q", name, b, wantBody)
	}
	for range 2 { // GetBody gives the whole body each time, also after Body was read
		rc, err := got.GetBody()
		if err != nil {
			t.Fatalf("%s: GetBody: %v", name, err)
		}
		if b, _ := io.ReadAll(rc); !bytes.Equal(b, wantBody) {
			t.Errorf("%s: GetBody gave %q; want %q", name, b, wantBody)
		}
	}
}

// TestRequestHeadersCountsWhatADeliverySets checks the size newRequest makes the header map for
// against the headers a delivery writes (WriteHTTPBinary, Prefer).
func TestRequestHeadersCountsWhatADeliverySets(t *testing.T) {
	full := testEvent("full")
	full.DataSchema, full.Subject, full.Time = "http://schema", "subject", "2026-11-28T12:00:00Z"
	full.SetExtension("partitionkey", "k")
	full.SetExtension("knativeerrorcode", "500")
	bare := testEvent("bare")
	bare.DataContentType = "" // Content-Type counted all the same: an upper bound is enough
	d := &Dispatcher{}
	for _, ev := range []*event.Event{testEvent("plain"), full, bare} {
		h := http.Header{}
		event.WriteHTTPBinary(ev, h)
		h["Prefer"] = preferReply
		if n := d.requestHeaders(ev); n < len(h) || n > len(h)+1 {
			t.Errorf("event %s: requestHeaders %d, a delivery sets %d: %v", ev.ID, n, len(h), h)
		}
	}
}

// TestDeliveryFollowsRedirectWithItsBody checks a request built from a URL parsed at Start against a
// subscriber that redirects (307, 308): the client follows with the whole body again (GetBody) and
// the CloudEvents headers, as with a request NewRequest builds.
func TestDeliveryFollowsRedirectWithItsBody(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		type got struct {
			id   string
			body string
		}
		arrived := make(chan got, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/from" {
				_, _ = io.Copy(io.Discard, r.Body)
				http.Redirect(w, r, "/to", code)
				return
			}
			b, _ := io.ReadAll(r.Body)
			arrived <- got{id: r.Header.Get("Ce-Id"), body: string(b)}
			w.WriteHeader(http.StatusOK)
		}))
		h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: srv.URL + "/from"}}, nil)
		ev := testEvent("redirected")
		off := h.p.claim(t, 0).push(t, ev)
		h.p.claim(t, 0).waitDone(t, off)
		select {
		case g := <-arrived:
			if g.id != "redirected" || g.body != string(ev.Data) {
				t.Errorf("%d: the redirected delivery arrived as id %q body %q; want %q %q", code, g.id, g.body, "redirected", ev.Data)
			}
		default:
			t.Errorf("%d: the delivery was marked done without reaching the redirect's target", code)
		}
		srv.Close()
	}
}

// TestDeliveryRedirectsAsTheClientDoes checks that a delivery sent straight to the client's
// transport (see Dispatcher.do) ends where http.Client.Do would have taken it, for every redirect
// the client follows (a 303, and a 301 or 302 of a POST, become a GET without body; a 307 or 308
// keeps the method and the body): the same method, body, CloudEvents id and Referer reach the
// target, the same status comes back, and the redirecting URL is asked once. A redirect without
// Location is not followed; one whose Location does not parse fails, retryably, as the client's
// request fails. After a redirect the dispatcher sends through the client.
func TestDeliveryRedirectsAsTheClientDoes(t *testing.T) {
	type arrival struct{ path, method, id, body, referer string }
	var (
		mu       sync.Mutex
		arrivals []arrival
	)
	take := func() []arrival {
		mu.Lock()
		defer mu.Unlock()
		a := arrivals
		arrivals = nil
		return a
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		arrivals = append(arrivals, arrival{r.URL.Path, r.Method, r.Header.Get("Ce-Id"), string(b), r.Referer()})
		mu.Unlock()
		switch code, _ := strconv.Atoi(r.URL.Query().Get("code")); {
		case code == 0:
			w.WriteHeader(http.StatusAccepted)
		case r.URL.Query().Get("location") == "none":
			w.WriteHeader(code)
		case r.URL.Query().Get("location") == "bad":
			w.Header().Set("Location", "/to%zz") // an escape that does not parse
			w.WriteHeader(code)
		default:
			http.Redirect(w, r, "/to", code)
		}
	}))
	defer srv.Close()
	ev := testEvent("redirected")
	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, location := range []string{"", "none", "bad"} {
			d := New(Subscription{Namespace: "ns", Name: "sub"}, Deps{Client: srv.Client()})
			if d.rt == nil {
				t.Fatal("a plain client's deliveries do not go to its transport: the test would not test it")
			}
			u := fmt.Sprintf("%s/from?code=%d&location=%s", srv.URL, code, location)
			res := d.attemptHTTP(context.Background(), u, ev, true)
			mine := take()
			if got := d.redirected.Load(); got != (location == "") {
				t.Errorf("%d %q: sending through the client from now on: %v, want %v", code, location, got, location == "")
			}

			req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(ev.Data))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Ce-Id", ev.ID)
			resp, err := srv.Client().Do(req)
			theirs := take()
			if location == "bad" {
				// The client fails the request; so does the delivery, retryably, naming the Location.
				if err == nil {
					resp.Body.Close()
					t.Fatalf("%d %q: the reference client followed or returned an unparseable Location", code, location)
				}
				var ue *url.Error
				if res.err == nil || !errors.As(res.err, &ue) || !strings.Contains(res.err.Error(), "/to%zz") || !res.retryable {
					t.Errorf("%d %q: the delivery ended with status %d, error %v (retryable %v); the client with %v", code, location, res.status, res.err, res.retryable, err)
				}
				if len(mine) != 1 || len(theirs) != 1 || mine[0] != theirs[0] {
					t.Errorf("%d %q: the delivery's requests %+v, the client's %+v: want the redirecting URL once each", code, location, mine, theirs)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%d %q: the reference client: %v", code, location, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			if res.err != nil || res.status != resp.StatusCode {
				t.Errorf("%d %q: the delivery ended with status %d, error %v; the client with %d", code, location, res.status, res.err, resp.StatusCode)
			}
			if len(mine) == 0 || len(theirs) == 0 {
				t.Errorf("%d %q: requests made: the delivery's %+v, the client's %+v", code, location, mine, theirs)
				continue
			}
			if mine[len(mine)-1] != theirs[len(theirs)-1] {
				t.Errorf("%d %q: the last request the delivery made was %+v, the client's %+v", code, location, mine, theirs)
			}
			if len(mine) != len(theirs) || mine[0].path != "/from" || (len(mine) > 1 && mine[1].path == "/from") {
				t.Errorf("%d %q: the delivery's requests %+v, the client's %+v: want the same, the redirecting URL once", code, location, mine, theirs)
			}
		}
	}
}

// TestDeliveryErrorIsAURLErrorAsTheClientMakesIt checks that a delivery sent straight to the
// transport fails as http.Client.Do fails: a *url.Error naming the method and the URL (what
// attemptError and the status conditions show).
func TestDeliveryErrorIsAURLErrorAsTheClientMakesIt(t *testing.T) {
	u := "http://127.0.0.1:0/gone" // nothing listens on port 0: the connection is refused
	d := New(Subscription{Namespace: "ns", Name: "sub"}, Deps{})
	res := d.attemptHTTP(context.Background(), u, testEvent("refused"), true)
	var ue *url.Error
	if !errors.As(res.err, &ue) || ue.Op != "Post" || ue.URL != u {
		t.Fatalf("error %#v, want a *url.Error for Post %s", res.err, u)
	}
	_, theirs := http.Post(u, "application/json", strings.NewReader("{}"))
	if res.err.Error() != theirs.Error() {
		t.Errorf("error %q, the client's %q", res.err, theirs)
	}
}
