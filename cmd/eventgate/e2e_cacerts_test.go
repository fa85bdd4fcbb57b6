package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/selfsigned"
)

// privateCAServer is an HTTPS server whose certificate only its own CA (caPEM) vouches for. It
// records the Ce-Id of each request by path and answers 400 on paths ending in /reject, else 202.
type privateCAServer struct {
	url   string
	caPEM string
	mu    sync.Mutex
	got   map[string][]string
}

func newPrivateCAServer(t *testing.T, name string) *privateCAServer {
	t.Helper()
	c, err := selfsigned.New(name, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s := &privateCAServer{caPEM: string(c.CertPEM), got: map[string][]string{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], r.Header.Get("Ce-Id"))
		s.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/reject") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *privateCAServer) at(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got[path]...)
}

// yamlBlock indents text for a YAML block scalar at the given depth.
func yamlBlock(text string, indent int) string {
	pad := strings.Repeat(" ", indent)
	return pad + strings.ReplaceAll(strings.TrimSuffix(text, "\n"), "\n", "\n"+pad)
}

// TestPrivateCADestinations: destinations with Knative's CACerts are reached over HTTPS with
// certificates of a private CA -- a subscriber, a dead-letter sink of another CA, a source's sink --
// and a subscriber whose CA is not given is refused (its events go nowhere but the dead letter).
func TestPrivateCADestinations(t *testing.T) {
	a := newPrivateCAServer(t, "private CA a")
	b := newPrivateCAServer(t, "private CA b")
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: trusted}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber:
    uri: %[1]s/in
    CACerts: |
%[2]s
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: rejected}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber:
    uri: %[1]s/reject
    CACerts: |
%[2]s
  delivery:
    deadLetterSink:
      uri: %[3]s/dead
      CACerts: |
%[4]s
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: untrusted}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: %[3]s/untrusted}
  delivery:
    deadLetterSink:
      uri: %[1]s/untrusted-dead
      CACerts: |
%[5]s
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata:
  name: repo
  annotations: {eventgate.dev/unauthenticated: "true"}
spec:
  ownerAndRepository: eventgate/eventgate
  eventTypes: [push]
  sink:
    uri: %[3]s/github
    CACerts: |
%[4]s
`, a.url, yamlBlock(a.caPEM, 6), b.url, yamlBlock(b.caPEM, 8), yamlBlock(a.caPEM, 8)))
	g := startGateway(t, "-f", dir)
	if resp, body := post(t, g.ingress+"/default/orders", binaryEvent("ca-1"), "hi"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	hdr := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "gh-1", "Content-Type": "application/json"}
	if resp, body := post(t, g.ingress+"/sources/default/repo", hdr, `{"ref":"refs/heads/main"}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", resp.StatusCode, body)
	}
	for _, w := range []struct {
		s    *privateCAServer
		path string
		id   string
	}{{a, "/in", "ca-1"}, {a, "/reject", "ca-1"}, {b, "/dead", "ca-1"}, {a, "/untrusted-dead", "ca-1"}, {b, "/github", "gh-1"}} {
		eventually(t, 20*time.Second, func() bool { return len(w.s.at(w.path)) > 0 }, "an event at %s", w.path)
		if got := w.s.at(w.path); got[0] != w.id {
			t.Errorf("%s got %v, want %s", w.path, got, w.id)
		}
	}
	if got := b.at("/untrusted"); len(got) != 0 {
		t.Errorf("the subscriber whose CA was not given got %v: its certificate was trusted", got)
	}
	if logs := g.stderr.String(); !strings.Contains(logs, "certificate signed by unknown authority") {
		t.Errorf("no certificate error in the log:\n%s", tail(logs, 20))
	}
}
