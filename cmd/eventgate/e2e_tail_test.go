package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/app"
)

// tailLines runs `eventgate tail ARGS...` and returns its first n lines of output (each a JSON
// event with --output json), stopping it then.
func tailLines(t *testing.T, n int, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"tail"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	var lines []string
	sc := bufio.NewScanner(out)
	for len(lines) < n && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < n {
		t.Fatalf("eventgate tail %s: %d of %d lines before it ended: %v\n%s", strings.Join(args, " "), len(lines), n, sc.Err(), stderr.String())
	}
	return lines
}

// Issue 15 item 1 through the binary: `eventgate tail` shows what a channel holds without taking it
// from its subscription, in memory and on Kafka; the text form is a block per event.
func TestTailThroughTheGateway(t *testing.T) {
	t.Run("inmemory", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "m.yaml", `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders, namespace: e2e}
`)
		g := startGateway(t, "-f", dir)
		testTail(t, g, "e2e/orders", nil)
	})
	t.Run("kafka", func(t *testing.T) {
		broker := kafkaBroker(t)
		sub := newSubscriber(t)
		ch := uniqueName("tail")
		dir := t.TempDir()
		writeFile(t, dir, "m.yaml", kafkaManifests(ch, "s", sub.url+"/s", ""))
		g := kafkaGateway(t, broker, "-f", dir)
		testTail(t, g, "e2e/"+ch, sub)
	})
}

// testTail posts five events to channel (NAMESPACE/NAME) and reads them back with `eventgate tail
// --from earliest`, as JSON and as text. With sub (a subscription on the channel at /s), it checks
// the tail took nothing from it: every event delivered once, and its lag back to 0.
func testTail(t *testing.T, g *gateway, channel string, sub *subscriber) {
	eventually(t, 60*time.Second, func() bool { code, _ := adminGet(t, g.admin+"/readyz"); return code == http.StatusOK },
		"/readyz to answer 200")
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("tail-%d", i)
		h := binaryEvent(id)
		h["Ce-Type"] = "dev.eventgate.tail"
		h["Ce-Flavour"] = "plain"
		h["Content-Type"] = "text/plain"
		if resp, body := post(t, g.ingress+"/"+channel, h, "event "+id); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %d %s", resp.StatusCode, body)
		}
		ids = append(ids, id)
	}
	if sub != nil {
		sub.waitFor(t, "/s", len(ids))
		eventually(t, 30*time.Second, func() bool {
			st := fetchStatus(t, g.admin)
			return len(st.Subscriptions) == 1 && st.Subscriptions[0].Lag != nil && *st.Subscriptions[0].Lag == 0
		}, "the subscription to commit everything")
	}

	lines := tailLines(t, len(ids), channel, "--admin", g.admin, "--from", "earliest", "--output", "json")
	seen := map[string]bool{}
	for _, l := range lines {
		var te app.TailEvent
		if err := json.Unmarshal([]byte(l), &te); err != nil {
			t.Fatalf("tail --output json printed %q: %v", l, err)
		}
		if te.Channel != channel || te.Attributes["type"] != "dev.eventgate.tail" || te.Extensions["flavour"] != "plain" ||
			te.Data != "event "+te.Attributes["id"] {
			t.Errorf("tailed event = %+v", te)
		}
		seen[te.Attributes["id"]] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("tail did not show %s", id)
		}
	}
	// Text: a block per event, its heading with the channel, type and id.
	text := tailLines(t, 4, channel, "--admin", g.admin, "--from", "earliest")
	if !strings.HasPrefix(text[0], channel+" ") || !strings.Contains(text[0], "dev.eventgate.tail") ||
		!strings.Contains(strings.Join(text, "\n"), "flavour") {
		t.Errorf("tail's text block:\n%s", strings.Join(text, "\n"))
	}
	t.Logf("eventgate tail on %s:\n%s", channel, strings.Join(text, "\n"))

	if sub != nil {
		// The tails took nothing from the subscription: no event again, and nothing left uncommitted.
		if got := len(sub.at("/s")); got != len(ids) {
			t.Errorf("the subscriber got %d deliveries, want %d (one per event)", got, len(ids))
		}
		if st := fetchStatus(t, g.admin); st.Subscriptions[0].Lag == nil || *st.Subscriptions[0].Lag != 0 {
			t.Errorf("lag after the tails = %v, want 0", st.Subscriptions[0].Lag)
		}
	}
	// A channel that does not exist.
	cmd := exec.Command(binPath, "tail", "e2e/no-such-channel", "--admin", g.admin)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "404") {
		t.Errorf("tail of an unknown channel: %v\n%s", err, out)
	}
}
