package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 11 item 1: a new subscription (start "latest", the default) gets every event accepted once
// the gateway says it is ready, or once the hot reload that added it was applied. Its consumer group
// used to resolve "latest" when its partitions were assigned, after the first events were written,
// which were then skipped for good.

const (
	startRounds = 20 // fresh channel and subscription each
	startEvents = 50 // posted per round, the instant the subscription counts as ready
)

// startManifests: a KafkaChannel with 4 partitions and a subscription to it with the default start
// (latest), delivering to subURL.
func startManifests(ch, sub, subURL string) string {
	return fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: %[1]s, namespace: e2e}
spec: {numPartitions: 4, replicationFactor: 1}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: %[2]s, namespace: e2e}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: %[1]s}
  subscriber: {uri: "%[3]s"}
`, ch, sub, subURL)
}

// startTally adds up the rounds' figures.
type startTally struct {
	rounds, acked, found, lost, dupes int
	lossyRounds                       []string
}

func (s *startTally) add(round int, acked []string, seen map[string]int) {
	lost := missing(acked, seen)
	s.rounds++
	s.acked += len(acked)
	s.found += len(acked) - len(lost)
	s.lost += len(lost)
	s.dupes += duplicates(seen)
	if len(lost) > 0 {
		s.lossyRounds = append(s.lossyRounds, fmt.Sprintf("round %d lost %d (first %v)", round, len(lost), lost[:min(3, len(lost))]))
	}
}

func (s *startTally) report(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %d rounds of %d events: acked %d, found %d, lost %d, duplicates %d", what, s.rounds, startEvents,
		s.acked, s.found, s.lost, s.dupes)
	if s.lost > 0 {
		t.Errorf("%d of %d accepted events never reached the new subscription: %s", s.lost, s.acked,
			strings.Join(s.lossyRounds, "; "))
	}
}

// postBurst posts n events (ids prefix-0 …) to url from 10 goroutines at once and returns the ids
// answered 202; any other answer fails the test.
func postBurst(t *testing.T, url, prefix string, n int) []string {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var (
		mu       sync.Mutex
		acked    []string
		failures []string
		wg       sync.WaitGroup
	)
	ids := make(chan string, n)
	for i := range n {
		ids <- fmt.Sprintf("%s-%d", prefix, i)
	}
	close(ids)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("payload of "+id))
				for k, v := range binaryEvent(id) {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, id+": "+err.Error())
				case resp.StatusCode != http.StatusAccepted:
					failures = append(failures, fmt.Sprintf("%s: %d", id, resp.StatusCode))
				default:
					acked = append(acked, id)
				}
				mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d posts not accepted: %v", len(failures), n, failures[:min(3, len(failures))])
	}
	return acked
}

// awaitDeliveries waits until every id of want was delivered at path and returns what was seen. When
// some never come it gives up after deliveries at path have stopped for a few seconds (lost events
// do not come later: the subscription is past them), at most after a minute.
func (s *subscriber) awaitDeliveries(path string, want []string) map[string]int {
	const quiet, limit = 5 * time.Second, 60 * time.Second
	start := time.Now()
	lastChange, lastCount := start, -1
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ids := s.deliveredIDs(path)
		seen := countIDs(ids)
		if len(missing(want, seen)) == 0 {
			return seen
		}
		now := time.Now()
		if len(ids) != lastCount {
			lastChange, lastCount = now, len(ids)
		}
		if now.Sub(lastChange) > quiet || now.Sub(start) > limit {
			return seen
		}
		<-tick.C
	}
}

// awaitReady polls /readyz every few milliseconds and returns at its first 200.
func (g *gateway) awaitReady(within time.Duration) {
	g.t.Helper()
	client := &http.Client{Timeout: time.Second}
	eventually(g.t, within, func() bool {
		resp, err := client.Get(g.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "/readyz to answer 200")
}

// awaitWatching returns once the gateway reloads on a change of dir/name: its file watch starts just
// after it reports where it serves, and a change made before that is seen only with the next one. It
// appends a comment to the file until a reload follows (a poll with a deadline).
func (g *gateway) awaitWatching(dir, name string) {
	g.t.Helper()
	const reloaded = `"msg":"resources reloaded"`
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; time.Now().Before(deadline); i++ {
		before := strings.Count(g.stderr.String(), reloaded)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			g.t.Fatal(err)
		}
		fmt.Fprintf(f, "# touch %d\n", i)
		f.Close()
		for wait := time.Now().Add(time.Second); time.Now().Before(wait); <-tick.C {
			if strings.Count(g.stderr.String(), reloaded) > before {
				return
			}
		}
	}
	g.t.Fatalf("the gateway did not reload on changes to %s within 30s", name)
}

// TestKafkaNewSubscriptionGetsEventsPostedWhenReady: a gateway started with a new KafkaChannel and
// Subscription; 50 events POSTed the instant /readyz answers 200 all reach the subscriber. Each
// round is a fresh gateway (readiness comes once per process), channel and subscription.
func TestKafkaNewSubscriptionGetsEventsPostedWhenReady(t *testing.T) {
	broker := kafkaBroker(t)
	sub := newSubscriber(t)
	var tally startTally
	for round := range startRounds {
		ch, name, path := uniqueName("start"), uniqueName("s"), fmt.Sprintf("/ready%d", round)
		dir := t.TempDir()
		writeFile(t, dir, "m.yaml", startManifests(ch, name, sub.url+path))
		g := kafkaGateway(t, broker, "-f", dir)
		g.awaitReady(30 * time.Second)
		acked := postBurst(t, g.ingress+"/e2e/"+ch, fmt.Sprintf("r%d", round), startEvents)
		tally.add(round, acked, sub.awaitDeliveries(path, acked))
		if err := g.stop(30 * time.Second); err != nil {
			t.Errorf("round %d: gateway exit: %v", round, err)
		}
	}
	tally.report(t, "new subscription, events posted when /readyz says 200")
}

// TestKafkaSubscriptionAddedByHotReloadGetsEvents: one gateway; each round a hot reload replaces the
// manifest with a new KafkaChannel and Subscription, and 50 events are POSTed the instant the log
// says the subscription started (what the hot-reload tests wait on): all reach the subscriber.
func TestKafkaSubscriptionAddedByHotReloadGetsEvents(t *testing.T) {
	broker := kafkaBroker(t)
	sub := newSubscriber(t)
	dir := t.TempDir()
	writeFile(t, dir, "round.yaml", `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: placeholder, namespace: e2e}
`)
	g := kafkaGateway(t, broker, "-f", dir)
	g.awaitWatching(dir, "round.yaml")
	var tally startTally
	for round := range startRounds {
		ch, name, path := uniqueName("reload-start"), uniqueName("s"), fmt.Sprintf("/reload%d", round)
		writeFile(t, dir, "round.yaml", startManifests(ch, name, sub.url+path))
		g.waitLog(fmt.Sprintf(`"subscription started","subscription":"e2e/%s"`, name), 60*time.Second)
		acked := postBurst(t, g.ingress+"/e2e/"+ch, fmt.Sprintf("h%d", round), startEvents)
		tally.add(round, acked, sub.awaitDeliveries(path, acked))
	}
	tally.report(t, "subscription added by hot reload, events posted once it started")
}
