package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReloadOnConfigMapSwap updates manifests the way the kubelet updates a mounted ConfigMap: the
// files are links through ..data, and an update writes a new timestamped directory and swaps ..data
// to it with a rename. The gateway must notice and apply the new set.
func TestReloadOnConfigMapSwap(t *testing.T) {
	sub := newSubscriber(t)
	mount := t.TempDir()
	version := func(n int, body string) {
		t.Helper()
		dir := filepath.Join(mount, fmt.Sprintf("..2026_11_27_%d", n))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "manifests.yaml", body)
		tmp := filepath.Join(mount, "..data_tmp")
		if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	channelAndSub := func(path string) string {
		return fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: demo}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: demo}
  subscriber: {uri: "%s%s"}
`, sub.url, path)
	}
	version(1, channelAndSub("/first"))
	if err := os.Symlink("..data/manifests.yaml", filepath.Join(mount, "manifests.yaml")); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "-f", mount)
	post(t, g.ingress+"/default/demo", binaryEvent("before"), "x")
	sub.waitFor(t, "/first", 1)

	version(2, channelAndSub("/second"))
	g.waitLog(`"subscriber":"`+sub.url+`/second"`, 10*time.Second)
	if resp, _ := post(t, g.ingress+"/default/demo", binaryEvent("after"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post after the swap: %d", resp.StatusCode)
	}
	got := sub.waitFor(t, "/second", 1)
	if got[0].header.Get("Ce-Id") != "after" {
		t.Fatalf("the new subscriber got %q", got[0].header.Get("Ce-Id"))
	}
}
