package dispatch

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// TestNewRequestMatchesParsingEachTime checks that a request built from a URL parsed once at Start is
// the request http.NewRequest builds from the URL string.
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
	d.urls = parseURLs(append(dests, nil, &Destination{URL: "http://bad host/"})...)
	if _, ok := d.urls["http://bad host/"]; ok {
		t.Error("an unparseable URL was kept")
	}
	for _, u := range urls {
		want, err := http.NewRequest(http.MethodPost, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.newRequest(context.Background(), u, []byte("body"))
		if err != nil {
			t.Fatalf("newRequest(%s): %v", u, err)
		}
		if got.URL.String() != want.URL.String() || got.Host != want.Host || got.Method != http.MethodPost {
			t.Errorf("newRequest(%s) = %s %s host %q; want POST %s host %q", u, got.Method, got.URL, got.Host, want.URL, want.Host)
		}
		if got.URL == d.urls[u].url {
			t.Errorf("newRequest(%s) shares the parsed URL; a request may modify its own", u)
		}
		if b, _ := io.ReadAll(got.Body); string(b) != "body" || got.ContentLength != 4 {
			t.Errorf("newRequest(%s) body %q, length %d", u, b, got.ContentLength)
		}
	}
	// Not parsed at Start: parsed per request, errors included.
	if _, err := d.newRequest(context.Background(), "http://bad host/", nil); err == nil {
		t.Error("newRequest accepted an unparseable URL")
	}
}
