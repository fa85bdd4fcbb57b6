package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestGitHubSourceThroughTheGateway(t *testing.T) {
	sub := newSubscriber(t)
	secrets := t.TempDir()
	os.MkdirAll(filepath.Join(secrets, "gh-secret"), 0o755)
	writeFile(t, filepath.Join(secrets, "gh-secret"), "token", "s3cret\n")
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: github}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: repo}
spec:
  ownerAndRepository: eventgate/eventgate
  eventTypes: [push]
  secretToken: {secretKeyRef: {name: gh-secret, key: token}}
  sink: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: github}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: gh}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: github}
  subscriber: {uri: "%s/gh"}
`, sub.url))
	g := startGateway(t, "-f", dir, "--secrets-dir", secrets)
	payload, err := os.ReadFile("../../testdata/github/push.json")
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(payload)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	url := g.ingress + "/sources/default/repo"
	hdr := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "Content-Type": "application/json"}

	bad := map[string]string{"X-Hub-Signature-256": "sha256=00"}
	for k, v := range hdr {
		bad[k] = v
	}
	if resp, _ := post(t, url, bad, string(payload)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d, want 401", resp.StatusCode)
	}
	hdr["X-Hub-Signature-256"] = sig
	if resp, body := post(t, url, hdr, string(payload)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("signed push: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(t, url, hdr, string(payload)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("redelivery: %d, want 202", resp.StatusCode)
	}
	d := sub.waitFor(t, "/gh", 1)[0]
	if d.header.Get("Ce-Type") != "dev.knative.source.github.push" || d.header.Get("Ce-Id") != "d-1" ||
		d.header.Get("Ce-Source") != "https://github.com/eventgate/eventgate" {
		t.Fatalf("event attributes: %v", d.header)
	}
	if d.body != string(payload) {
		t.Fatalf("data is not the payload")
	}
	// The redelivery must not have produced a second event: a later event overtakes nothing.
	hdr["X-GitHub-Delivery"] = "d-2"
	post(t, url, hdr, string(payload))
	sub.waitFor(t, "/gh", 2)
	if n := len(sub.at("/gh")); n != 2 {
		t.Fatalf("%d deliveries, want 2 (d-1 once, d-2 once)", n)
	}
}
