package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/app"
)

// Issue 11 item 2, through the binary: a subscriber that fails once per event, then accepts it, shows
// in GET /status as a last error with its time and then a delivery; a GitHubSource shows its last
// event; `eventgate status` prints both as a table and as the endpoint's JSON; /readyz is 200.
func TestStatusThroughTheGateway(t *testing.T) {
	sub := newSubscriber(t)
	sub.on("/audit", func(w http.ResponseWriter, n int) {
		if n == 1 {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	secrets := t.TempDir()
	os.MkdirAll(filepath.Join(secrets, "gh-secret"), 0o755)
	writeFile(t, filepath.Join(secrets, "gh-secret"), "token", "s3cret\n")
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: audit}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "%s/audit"}
  delivery: {retry: 3, backoffDelay: PT0.05S}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: repo}
spec:
  ownerAndRepository: eventgate/eventgate
  eventTypes: [push]
  secretToken: {secretKeyRef: {name: gh-secret, key: token}}
  sink: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}}
`, sub.url))
	g := startGateway(t, "-f", dir, "--secrets-dir", secrets)
	eventually(t, 20*time.Second, func() bool { code, _ := adminGet(t, g.admin+"/readyz"); return code == http.StatusOK },
		"/readyz to answer 200")

	if resp, body := post(t, g.ingress+"/default/orders", binaryEvent("o-1"), "hello"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST to the channel: %d %s", resp.StatusCode, body)
	}
	payload := `{"ref":"refs/heads/main"}`
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(payload))
	hook := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "Content-Type": "application/json",
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}
	if resp, body := post(t, g.ingress+"/sources/default/repo", hook, payload); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("GitHub push: %d %s", resp.StatusCode, body)
	}

	// The first attempt of each event fails; the retry delivers it. Status shows both, in that order.
	var st app.Status
	eventually(t, 20*time.Second, func() bool {
		st = fetchStatus(t, g.admin)
		if len(st.Subscriptions) != 1 || len(st.Sources) != 1 {
			return false
		}
		s := st.Subscriptions[0]
		return s.LastError != "" && !s.LastErrorTime.IsZero() && s.LastDeliveryTime.After(s.LastErrorTime) &&
			!st.Sources[0].LastEventTime.IsZero()
	}, "/status to show the subscription's failed attempt, then its delivery, and the source's event")
	sub.waitFor(t, "/audit", 4) // two events, each failed once then delivered

	if !st.Ready || len(st.NotReady) != 0 {
		t.Errorf("status: ready %v, notReady %q; want ready", st.Ready, st.NotReady)
	}
	if len(st.Channels) != 1 {
		t.Fatalf("channels = %+v, want orders", st.Channels)
	}
	ch := st.Channels[0]
	if ch.Namespace != "default" || ch.Name != "orders" || ch.Kind != "InMemoryChannel" || ch.Backend != "inmemory" ||
		!strings.HasSuffix(ch.Address, "/default/orders") || ch.Partitions < 1 || !ch.Ready {
		t.Errorf("channel = %+v", ch)
	}
	s := st.Subscriptions[0]
	if s.Namespace != "default" || s.Name != "audit" || s.Channel != "default/orders" || s.Subscriber != sub.url+"/audit" ||
		!s.Ready || s.LastError != "answered 500 Internal Server Error" || s.ConcurrencyLimit < 1 || s.Lag == nil {
		t.Errorf("subscription = %+v", s)
	}
	src := st.Sources[0]
	if src.Kind != "GitHubSource" || src.Namespace != "default" || src.Name != "repo" || !src.Running ||
		src.Sink != "channel default/orders" || src.LastError != "" {
		t.Errorf("source = %+v", src)
	}
	t.Logf("status: subscription lag %d, limit %d, last error %q, delivered %s after it",
		*s.Lag, s.ConcurrencyLimit, s.LastError, s.LastDeliveryTime.Sub(s.LastErrorTime))

	// eventgate status: the table.
	table := runEventgate(t, "status", "--admin", g.admin)
	t.Logf("eventgate status:\n%s", table)
	for _, want := range [][]string{
		{"default/orders", "True", "inmemory", "/default/orders"},
		{"default/audit", "True", "default/orders", "answered 500 Internal Server Error"},
		{"default/repo", "True", "GitHubSource", "true", "ago"},
	} {
		if !hasRow(table, want...) {
			t.Errorf("no table row with %q", want)
		}
	}
	for _, section := range []string{"CHANNELS", "SUBSCRIPTIONS", "SOURCES"} {
		if !strings.Contains(table, section+"\n") {
			t.Errorf("no %s section", section)
		}
	}
	// eventgate status --output json: the endpoint's document.
	var fromCLI app.Status
	if err := json.Unmarshal([]byte(runEventgate(t, "status", "--admin", g.admin, "--output", "json")), &fromCLI); err != nil {
		t.Fatalf("--output json is not the status document: %v", err)
	}
	if len(fromCLI.Subscriptions) != 1 || fromCLI.Subscriptions[0].LastError == "" || fromCLI.Sources[0].LastEventTime.IsZero() {
		t.Errorf("--output json = %+v", fromCLI)
	}
	if code, body := adminGet(t, g.admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %s, want 200", code, body)
	}
}

// adminGet fetches url and returns the status code and body.
func adminGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fetchStatus(t *testing.T, admin string) app.Status {
	t.Helper()
	code, body := adminGet(t, admin+"/status")
	if code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", code, body)
	}
	var st app.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET /status: %v\n%s", err, body)
	}
	return st
}

// runEventgate runs the binary with args and returns its standard output, failing on a non-zero exit.
func runEventgate(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eventgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// hasRow reports whether some line of table contains every one of cells, in order.
func hasRow(table string, cells ...string) bool {
	for _, line := range strings.Split(table, "\n") {
		rest, ok := line, true
		for _, c := range cells {
			i := strings.Index(rest, c)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(c):]
		}
		if ok {
			return true
		}
	}
	return false
}

// Issue 11 item 2 on the real broker: a Kafka subscription's lag in /status is the events of its
// channel the group has not committed. With the subscriber holding every request, 40 events are
// all lag; once it answers, the lag falls to 0 as the group commits.
func TestStatusKafkaSubscriptionLag(t *testing.T) {
	broker := kafkaBroker(t)
	sub := newSubscriber(t)
	hold := make(chan struct{})
	sub.on("/held", func(w http.ResponseWriter, _ int) {
		select {
		case <-hold:
		case <-sub.release:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	ch := uniqueName("lag")
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", kafkaManifests(ch, "held", sub.url+"/held", ""))
	g := kafkaGateway(t, broker, "-f", dir)
	eventually(t, 60*time.Second, func() bool { code, _ := adminGet(t, g.admin+"/readyz"); return code == http.StatusOK },
		"/readyz to answer 200")

	const n = 40
	for i := range n {
		h := binaryEvent(fmt.Sprintf("lag-%02d", i))
		h["Ce-Partitionkey"] = fmt.Sprintf("k%d", i) // spread over the partitions
		if resp, body := post(t, g.ingress+"/e2e/"+ch, h, "x"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %d: %d %s", i, resp.StatusCode, body)
		}
	}
	lagOf := func(st app.Status) (int64, bool) {
		if len(st.Subscriptions) != 1 || st.Subscriptions[0].Lag == nil {
			return 0, false
		}
		return *st.Subscriptions[0].Lag, true
	}
	// Nothing is done while the subscriber holds the requests: all 40 are lag, and stay so.
	sub.waitFor(t, "/held", 1)
	st := fetchStatus(t, g.admin)
	if lag, ok := lagOf(st); !ok || lag != n {
		t.Fatalf("lag with every delivery held = %v (reported %v), want %d; status %+v", lag, ok, n, st.Subscriptions)
	}
	if len(st.Channels) != 1 || st.Channels[0].Backend != "kafka" || st.Channels[0].Partitions != 4 || !st.Channels[0].Ready ||
		st.Channels[0].Address != g.ingress+"/e2e/"+ch {
		t.Errorf("channel = %+v, want the Kafka channel with 4 partitions at %s", st.Channels, g.ingress+"/e2e/"+ch)
	}
	if s := st.Subscriptions[0]; !s.Ready || s.ConcurrencyLimit < 1 {
		t.Errorf("subscription = %+v, want ready with a concurrency limit", s)
	}
	t.Logf("status on Kafka: lag %d with every delivery held (limit %d)", n, st.Subscriptions[0].ConcurrencyLimit)
	if table := runEventgate(t, "status", "--admin", g.admin); !hasRow(table, "e2e/held", "True", "e2e/"+ch, fmt.Sprint(n)) {
		t.Errorf("eventgate status shows no row for the subscription with lag %d:\n%s", n, table)
	}

	close(hold)
	sub.waitFor(t, "/held", n)
	eventually(t, 30*time.Second, func() bool { lag, ok := lagOf(fetchStatus(t, g.admin)); return ok && lag == 0 },
		"the lag to fall to 0 once every event is delivered and committed")
}
