package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecretsAndPayloadsNeverLogged runs the gateway at debug level through acceptance, refusal,
// retries and dead letters, with bearer tokens on, and checks that no payload, token or webhook
// secret appears in its log.
func TestSecretsAndPayloadsNeverLogged(t *testing.T) {
	const (
		payload = "PAYLOAD-MARKER-7f3a"
		token   = "TOKEN-MARKER-91bc"
		other   = "TOKEN-MARKER-other-55"
		secret  = "SECRET-MARKER-c0de"
	)
	sub := newSubscriber(t)
	sub.on("/refuse", func(w http.ResponseWriter, _ int) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "subscriber says "+payload)
	})
	secrets := t.TempDir()
	os.MkdirAll(filepath.Join(secrets, "tokens"), 0o755)
	writeFile(t, filepath.Join(secrets, "tokens"), "default.demo", token+"\n")
	writeFile(t, filepath.Join(secrets, "tokens"), "default.other", other+"\n")
	os.MkdirAll(filepath.Join(secrets, "gh"), 0o755)
	writeFile(t, filepath.Join(secrets, "gh"), "secret", secret)
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: demo}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: other}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: refused}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%[1]s/refuse"}
  delivery: {retry: 1, backoffDelay: PT0.01S, deadLetterSink: {uri: "%[1]s/dls"}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: gh}
spec:
  ownerAndRepository: o/r
  eventTypes: [push]
  secretToken: {secretKeyRef: {name: gh, key: secret}}
  sink: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}}
`, sub.url))
	g := startGateway(t, "-f", dir, "--secrets-dir", secrets, "--set", "ingress.auth.secret=tokens")

	h := binaryEvent("logged-1")
	if resp, _ := post(t, g.ingress+"/default/demo", h, payload); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", resp.StatusCode)
	}
	h["Authorization"] = "Bearer " + other
	if resp, _ := post(t, g.ingress+"/default/demo", h, payload); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("other channel's token: %d, want 403", resp.StatusCode)
	}
	h["Authorization"] = "Bearer " + token
	if resp, body := post(t, g.ingress+"/default/demo", h, payload); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("with token: %d %s", resp.StatusCode, body)
	}
	bad := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "x", "X-Hub-Signature-256": "sha256=" + secret,
		"Content-Type": "application/json"}
	if resp, _ := post(t, g.ingress+"/sources/default/gh", bad, `{"p":"`+payload+`"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad webhook signature: %d", resp.StatusCode)
	}
	sub.waitFor(t, "/dls", 1)
	if err := g.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	log := g.stderr.String()
	for _, marker := range []string{payload, token, other, secret} {
		if strings.Contains(log, marker) {
			t.Errorf("the log contains %q", marker)
		}
	}
	if !strings.Contains(log, "logged-1") {
		t.Errorf("the log does not even mention the event id: is debug logging on?")
	}
}
