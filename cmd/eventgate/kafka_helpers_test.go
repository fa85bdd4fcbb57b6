package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	segkafka "github.com/segmentio/kafka-go"
)

// kafkaBroker returns the real broker named by EVENTGATE_TEST_KAFKA. Without it the test is skipped,
// unless EVENTGATE_REQUIRE_KAFKA=1 (scripts/test sets it): then a missing broker fails the test.
func kafkaBroker(t *testing.T) string {
	t.Helper()
	b := os.Getenv("EVENTGATE_TEST_KAFKA")
	if b == "" {
		if os.Getenv("EVENTGATE_REQUIRE_KAFKA") == "1" {
			t.Fatal("EVENTGATE_REQUIRE_KAFKA=1 but EVENTGATE_TEST_KAFKA names no broker (run scripts/kafka up)")
		}
		t.Skip("no real Kafka broker: set EVENTGATE_TEST_KAFKA=127.0.0.1:9092 (scripts/kafka up)")
	}
	return b
}

// uniqueName gives each run its own channel, so topics left by an earlier run do not interfere.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%04d", prefix, time.Now().Unix()%100000, rand.IntN(10000))
}

// kafkaGateway starts a gateway whose channels default to Kafka on broker.
func kafkaGateway(t *testing.T, broker string, args ...string) *gateway {
	t.Helper()
	return startGateway(t, append([]string{"--set", "kafka.brokers=" + broker, "--set", "channels.defaultProvisioner=kafka"}, args...)...)
}

// topicRecords reads every record of topic with an independent client (segmentio/kafka-go), up to
// each partition's end as of the call.
func topicRecords(t *testing.T, broker, topic string) []segkafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := segkafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []segkafka.Message
	for _, p := range parts {
		pc, err := segkafka.DialLeader(ctx, "tcp", broker, topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		last, err := pc.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		first, err := pc.ReadFirstOffset()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Seek(first, segkafka.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		for off := first; off < last; {
			pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := pc.ReadMessage(10 << 20)
			if err != nil {
				t.Fatalf("reading %s/%d at %d: %v", topic, p.ID, off, err)
			}
			out = append(out, m)
			off = m.Offset + 1
		}
		pc.Close()
	}
	return out
}

func header(m segkafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// loadResult is what a load run saw.
type loadResult struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	accepted []string // ids answered 202
	codes    map[int]int
	errors   int
}

func (r *loadResult) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.accepted...)
}

// postLoad posts events with unique ids from workers goroutines until stop is closed, to whichever
// URL target() returns at the time. It returns once every worker has stopped.
func postLoad(workers int, prefix string, target func() string, stop <-chan struct{}) *loadResult {
	res := &loadResult{codes: map[int]int{}}
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < workers; w++ {
		res.wg.Add(1)
		go func() {
			defer res.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				req, _ := http.NewRequest(http.MethodPost, target(), strings.NewReader("payload of "+id))
				for k, v := range binaryEvent(id) {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				res.mu.Lock()
				if err != nil {
					res.errors++
				} else {
					res.codes[resp.StatusCode]++
					if resp.StatusCode == http.StatusAccepted {
						res.accepted = append(res.accepted, id)
					}
				}
				res.mu.Unlock()
				if err != nil {
					// The gateway may be gone on purpose; do not spin.
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				} else {
					resp.Body.Close()
				}
			}
		}()
	}
	return res
}

// wait blocks until the load's workers have stopped.
func (r *loadResult) wait() { r.wg.Wait() }

func (r *loadResult) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("accepted %d, answers %v, connection errors %d", len(r.accepted), r.codes, r.errors)
}

// idsOnTopic counts, by ce_id header, the records on topic (read with the independent client).
func idsOnTopic(t *testing.T, broker, topic string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, r := range topicRecords(t, broker, topic) {
		m[header(r, "ce_id")]++
	}
	return m
}

// duplicates counts the occurrences beyond the first of every id.
func duplicates(seen map[string]int) int {
	n := 0
	for _, c := range seen {
		n += c - 1
	}
	return n
}

// countIDs counts how often each id occurs.
func countIDs(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}

// deliveredIDs lists the Ce-Id of every delivery at path.
func (s *subscriber) deliveredIDs(path string) []string {
	var out []string
	for _, d := range s.at(path) {
		out = append(out, d.header.Get("Ce-Id"))
	}
	return out
}

// missing returns the ids of want that have not been seen.
func missing(want []string, seen map[string]int) []string {
	var out []string
	for _, id := range want {
		if seen[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// waitAllDelivered polls until every id in want was delivered at path.
func (s *subscriber) waitAllDelivered(t *testing.T, path string, want []string, within time.Duration) map[string]int {
	t.Helper()
	var seen map[string]int
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		seen = countIDs(s.deliveredIDs(path))
		m := missing(want, seen)
		if len(m) == 0 {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never delivered at %s (first: %v)", len(m), len(want), path, m[:min(5, len(m))])
		}
		<-tick.C
	}
}
