package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cluster is the three-node Kafka cluster named by EVENTGATE_TEST_KAFKA_CLUSTER, driven through
// scripts/kafka: node N of the script is the broker with node.id N. Nodes a test kills or stops are
// started again at cleanup, so the next test finds three nodes.
type cluster struct {
	t       *testing.T
	brokers []string // as EVENTGATE_TEST_KAFKA_CLUSTER lists them
	script  string
	adm     *kadm.Client
	addr    map[int32]string // node id → host:port, from the cluster's metadata
	mu      sync.Mutex
	down    map[int32]bool // nodes this test killed or stopped and has not started again
}

// kafkaCluster returns the cluster named by EVENTGATE_TEST_KAFKA_CLUSTER (host:port of each node,
// comma-separated). Without it the test is skipped, unless EVENTGATE_REQUIRE_KAFKA_CLUSTER=1: then a
// missing cluster fails the test.
func kafkaCluster(t *testing.T) *cluster {
	t.Helper()
	env := os.Getenv("EVENTGATE_TEST_KAFKA_CLUSTER")
	if env == "" {
		if os.Getenv("EVENTGATE_REQUIRE_KAFKA_CLUSTER") == "1" {
			t.Fatal("EVENTGATE_REQUIRE_KAFKA_CLUSTER=1 but EVENTGATE_TEST_KAFKA_CLUSTER names no cluster (run scripts/kafka up --nodes 3)")
		}
		t.Skip("no three-node Kafka cluster: set EVENTGATE_TEST_KAFKA_CLUSTER=127.0.0.1:9192,127.0.0.1:9292,127.0.0.1:9392 (scripts/kafka up --nodes 3)")
	}
	script, err := filepath.Abs("../../scripts/kafka")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, brokers: strings.Split(env, ","), script: script, addr: map[int32]string{}, down: map[int32]bool{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	c.adm = kadm.NewClient(cl)
	t.Cleanup(func() {
		c.mu.Lock()
		down := c.down
		c.mu.Unlock()
		for n := range down {
			if out, err := exec.Command(script, "start", fmt.Sprint(n)).CombinedOutput(); err != nil {
				t.Errorf("cleanup: scripts/kafka start %d: %v\n%s", n, err, out)
			}
		}
		c.adm.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := c.adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("cluster metadata from %s: %v", env, err)
	}
	for _, b := range md.Brokers {
		c.addr[b.NodeID] = fmt.Sprintf("%s:%d", b.Host, b.Port)
	}
	if len(c.addr) != 3 {
		t.Fatalf("the cluster lists %d brokers (%v), want 3: is every node up? (scripts/kafka status --nodes 3)", len(c.addr), c.addr)
	}
	return c
}

// node runs `scripts/kafka VERB N` (kill, stop or start) and returns how long it took. start waits
// until the node is registered again and no partition is under-replicated.
func (c *cluster) node(verb string, n int32) time.Duration {
	c.t.Helper()
	begin := time.Now()
	out, err := exec.Command(c.script, verb, fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		c.t.Fatalf("scripts/kafka %s %d: %v\n%s", verb, n, err, out)
	}
	c.mu.Lock()
	if verb == "start" {
		delete(c.down, n)
	} else {
		c.down[n] = true
	}
	c.mu.Unlock()
	return time.Since(begin)
}

// partitions returns the current partition details of topic, as the cluster's metadata has them.
func (c *cluster) partitions(topic string) (kadm.PartitionDetails, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td, err := c.adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		return nil, fmt.Errorf("topic %s: %v", topic, d.Err)
	}
	return d.Partitions, nil
}

// leader returns the node leading partition p of topic.
func (c *cluster) leader(topic string, p int32) int32 {
	c.t.Helper()
	var leader int32 = -1
	eventually(c.t, 30*time.Second, func() bool {
		ps, err := c.partitions(topic)
		if err != nil {
			return false
		}
		leader = ps[p].Leader
		return leader >= 0
	}, "a leader for %s/%d", topic, p)
	return leader
}

// waitLeadersWithout polls until every partition of topic is led by a node other than n (after n
// died, the controller moves its leaderships once it fences it) and returns how long that took.
func (c *cluster) waitLeadersWithout(topic string, n int32, within time.Duration) time.Duration {
	c.t.Helper()
	begin := time.Now()
	eventually(c.t, within, func() bool {
		ps, err := c.partitions(topic)
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.Leader < 0 || p.Leader == n {
				return false
			}
		}
		return true
	}, "every partition of %s led by a node other than %d", topic, n)
	return time.Since(begin)
}

// waitFullISR polls until every partition of topic has all replicas (want of them) in its ISR.
func (c *cluster) waitFullISR(topic string, want int, within time.Duration) {
	c.t.Helper()
	eventually(c.t, within, func() bool {
		ps, err := c.partitions(topic)
		if err != nil || len(ps) == 0 {
			return false
		}
		for _, p := range ps {
			if len(p.Replicas) != want || len(p.ISR) != want {
				return false
			}
		}
		return true
	}, "every partition of %s with %d replicas in sync", topic, want)
}

// topicConfig returns the value of a topic's configuration key (its own or the broker default).
func (c *cluster) topicConfig(topic, key string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rcs, err := c.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		c.t.Fatalf("configs of %s: %v", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		c.t.Fatalf("configs of %s: %v", topic, err)
	}
	for _, cfg := range rc.Configs {
		if cfg.Key == key && cfg.Value != nil {
			return fmt.Sprintf("%s (%s)", *cfg.Value, strings.ReplaceAll(strings.ToLower(cfg.Source.String()), "_", " "))
		}
	}
	return "unset"
}

// coordinator returns the node coordinating a consumer group.
func (c *cluster) coordinator(group string) int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := c.adm.FindGroupCoordinators(ctx, group)[group]
	if r.Err != nil {
		return -1
	}
	return r.NodeID
}

// controller returns the node that is the active controller (-1 if unknown).
func (c *cluster) controller() int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := c.adm.BrokerMetadata(ctx)
	if err != nil {
		return -1
	}
	return md.Controller
}

// live returns the address of a node that is up.
func (c *cluster) live() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := int32(1); n <= 3; n++ {
		if !c.down[n] {
			return c.addr[n]
		}
	}
	return c.brokers[0]
}

// answer is one ingress request of a timedLoad.
type answer struct {
	id         string
	start, end time.Time
	code       int // 0 when the request failed without an answer
}

// timedLoad posts events with unique ids from a few workers and keeps every answer with its time, so
// that windows of 503s and stalls can be measured.
type timedLoad struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	answers []answer
}

// startTimedLoad posts binary-mode events to url from workers goroutines until halt.
func startTimedLoad(workers int, prefix, url string) *timedLoad {
	l := &timedLoad{stop: make(chan struct{})}
	client := &http.Client{Timeout: 30 * time.Second}
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				a := answer{id: fmt.Sprintf("%s-%d-%d", prefix, w, i), start: time.Now()}
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("payload of "+a.id))
				for k, v := range binaryEvent(a.id) {
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				a.end = time.Now()
				if err == nil {
					a.code = resp.StatusCode
					resp.Body.Close()
				}
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				if err != nil {
					select { // the gateway should not go away in these tests, but do not spin if it does
					case <-l.stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	return l
}

// halt stops the workers and waits for them.
func (l *timedLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *timedLoad) snapshot() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.answers)
}

// acked lists the ids answered 202.
func (l *timedLoad) acked() []string {
	var out []string
	for _, a := range l.snapshot() {
		if a.code == http.StatusAccepted {
			out = append(out, a.id)
		}
	}
	return out
}

// ackedCount counts the 202 answers so far.
func (l *timedLoad) ackedCount() int { return len(l.acked()) }

// loadFigures summarises a timedLoad.
type loadFigures struct {
	accepted   int
	codes      map[int]int // answers by status; 0 = no answer
	window503  time.Duration
	stall      time.Duration // longest time with no 202 answered
	slowest202 time.Duration
}

func (f loadFigures) String() string {
	return fmt.Sprintf("accepted %d, answers %v, longest 503 window %d ms, longest stretch without a 202 %d ms, slowest 202 %d ms",
		f.accepted, f.codes, f.window503.Milliseconds(), f.stall.Milliseconds(), f.slowest202.Milliseconds())
}

func (l *timedLoad) figures() loadFigures {
	as := l.snapshot()
	f := loadFigures{codes: map[int]int{}}
	for _, a := range as {
		f.codes[a.code]++
		if a.code == http.StatusAccepted {
			f.accepted++
			f.slowest202 = max(f.slowest202, a.end.Sub(a.start))
		}
	}
	f.window503, f.stall = windows(as)
	return f
}

// windows measures answers in the order they were received: window503 is the longest span from the
// first to the last 503 with no 202 received in between (a lone 503 among 202s spans 0); stall is the
// longest time between two 202s.
func windows(as []answer) (window503, stall time.Duration) {
	as = slices.Clone(as)
	slices.SortFunc(as, func(a, b answer) int { return a.end.Compare(b.end) })
	var first503, last202 time.Time
	for _, a := range as {
		switch a.code {
		case http.StatusAccepted:
			if !last202.IsZero() {
				stall = max(stall, a.end.Sub(last202))
			}
			last202, first503 = a.end, time.Time{}
		case http.StatusServiceUnavailable:
			if first503.IsZero() {
				first503 = a.end
			}
			window503 = max(window503, a.end.Sub(first503))
		}
	}
	return window503, stall
}

// TestClusterFigureWindows checks the window arithmetic the cluster tests report (no cluster needed).
func TestClusterFigureWindows(t *testing.T) {
	t0 := time.Unix(0, 0)
	// at lists answers as code@millisecond.
	at := func(codes ...[2]int) []answer {
		var as []answer
		for _, c := range codes {
			as = append(as, answer{code: c[0], end: t0.Add(time.Duration(c[1]) * time.Millisecond)})
		}
		return as
	}
	const ok, unavailable = http.StatusAccepted, http.StatusServiceUnavailable
	for _, tc := range []struct {
		name          string
		as            []answer
		window, stall time.Duration
	}{
		{"none", nil, 0, 0},
		{"only 202s", at([2]int{ok, 0}, [2]int{ok, 300}, [2]int{ok, 400}), 0, 300 * time.Millisecond},
		{"a lone 503", at([2]int{ok, 0}, [2]int{unavailable, 100}, [2]int{ok, 200}), 0, 200 * time.Millisecond},
		{"503s in bursts with no 202 between", at([2]int{ok, 0}, [2]int{unavailable, 2000}, [2]int{unavailable, 2010},
			[2]int{unavailable, 4000}, [2]int{0, 5000}, [2]int{unavailable, 6000}, [2]int{ok, 7000}), 4000 * time.Millisecond, 7000 * time.Millisecond},
		{"a 202 splits two windows", at([2]int{unavailable, 0}, [2]int{unavailable, 500}, [2]int{ok, 600},
			[2]int{unavailable, 700}, [2]int{unavailable, 1500}), 800 * time.Millisecond, 0},
		{"out of order", at([2]int{ok, 900}, [2]int{unavailable, 300}, [2]int{ok, 0}, [2]int{unavailable, 100}), 200 * time.Millisecond, 900 * time.Millisecond},
	} {
		window, stall := windows(tc.as)
		if window != tc.window || stall != tc.stall {
			t.Errorf("%s: windows = %v, %v; want %v, %v", tc.name, window, stall, tc.window, tc.stall)
		}
	}
}
