package kafka

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/conformance"
)

// publishBacklog stores n events of size bytes of data on ref, in batches.
func publishBacklog(t *testing.T, b *Backend, ref channel.Ref, n, size int) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	const batch = 500
	for i := 0; i < n; i += batch {
		evs := conformance.Events("e", min(batch, n-i), nil)
		for j, e := range evs {
			e.ID = "e-" + strconv.Itoa(i+j)
			e.Data = data
			e.DataContentType = "text/plain"
		}
		if err := b.Publish(testCtx(t, 60*time.Second), ref, evs); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
}

// pacedHandler is a claim handler slower than fetching: every tick it lets `per` records through,
// shared by all claims, so the claims' buffers fill the way they do behind a subscriber that answers
// more slowly than Kafka serves. Its ticker goroutine stops at cleanup.
type pacedHandler struct {
	tokens chan struct{}
	mu     sync.Mutex
	seen   map[int32][]int64
	count  int
}

func newPacedHandler(t *testing.T, every time.Duration, per int) *pacedHandler {
	h := &pacedHandler{tokens: make(chan struct{}, per), seen: make(map[int32][]int64)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for range per {
				select {
				case h.tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return h
}

func (h *pacedHandler) handle(cl channel.Claim) {
	for {
		select {
		case <-h.tokens:
		case <-cl.Context().Done():
			return
		}
		r, ok := <-cl.Records()
		if !ok {
			return
		}
		h.mu.Lock()
		h.seen[r.Partition] = append(h.seen[r.Partition], r.Offset)
		h.count++
		h.mu.Unlock()
		cl.MarkDone(r.Offset)
	}
}

func (h *pacedHandler) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// TestDrainFetchesEachRecordOnce is the regression test for a drain that decoded the same batches over
// and over: the poll loop paused a partition whenever its buffer was half full, the client dropped that
// partition's already fetched records, and the resume fetched them again. Behind a handler slower than
// fetching, each record must now be fetched about once, and every record arrives once, in order.
func TestDrainFetchesEachRecordOnce(t *testing.T) {
	brokers := testBrokers(t)
	const backlog = 12000
	b := newBackend(t, brokers, nil)
	ref, _ := ensureChannel(t, b, channel.Spec{Partitions: 3})
	publishBacklog(t, b, ref, backlog, 512)

	// About 12,000 records/s: slower than fetching, so buffers fill.
	h := newPacedHandler(t, 4*time.Millisecond, 48)
	s := subscribe(t, b, channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}, h.handle)
	eventually(t, 120*time.Second, "the whole backlog", func() bool { return h.total() >= backlog })

	fetched, pauses := s.fetched.Load(), s.pauses.Load()
	t.Logf("%d records handed out, %d fetched (%.2f×), %d pauses, largest buffer %d",
		backlog, fetched, float64(fetched)/backlog, pauses, s.maxQueued.Load())
	if fetched > backlog*3/2 {
		t.Errorf("fetched %d records to hand out %d: batches are fetched again (%d pauses)", fetched, backlog, pauses)
	}
	if q := s.maxQueued.Load(); q > int64(b.cfg.MaxBufferedPerPartition) {
		t.Errorf("a claim buffered %d records, bound is %d", q, b.cfg.MaxBufferedPerPartition)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count != backlog {
		t.Errorf("handed out %d records, want %d (no duplicates without a rebalance)", h.count, backlog)
	}
	for p, offs := range h.seen {
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d; want every offset once, in order", p, i, o)
			}
		}
	}
}

// claimed returns the partitions s holds claims for.
func (s *subscription) claimed() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int32, 0, len(s.claims))
	for p := range s.claims {
		out = append(out, p)
	}
	return out
}

// TestSilentMemberLosesPartitionsAfterSessionTimeout stands for a gateway killed with kill -9: a group
// member that stops heartbeating without leaving. Its partitions must go to the other member after
// SessionTimeout, not after the client's default of 45s.
func TestSilentMemberLosesPartitionsAfterSessionTimeout(t *testing.T) {
	if realBrokers() != nil {
		t.Skip("needs the fake cluster: it silences one member's heartbeats")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	const session = time.Second
	b := newBackend(t, cluster.ListenAddrs(), func(c *Config) { c.SessionTimeout = session })
	ref, _ := ensureChannel(t, b, channel.Spec{Partitions: 2})
	g := channel.Group{Channel: ref, Name: conformance.UniqueName(t, "g-"), Start: channel.Earliest}

	// The member that goes silent is closed by hand: once evicted, its final commit fails, as it would.
	silentSub, err := b.Subscribe(testCtx(t, 30*time.Second), g, (&collect{}).handle)
	if err != nil {
		t.Fatal(err)
	}
	silent := silentSub.(*subscription)
	t.Cleanup(func() { _ = silent.Close() })
	eventually(t, 30*time.Second, "the first member to own both partitions", func() bool { return len(silent.claimed()) == 2 })
	memberID, _ := silent.cl.GroupMetadata()

	var mu sync.Mutex
	dropped := 0
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if hb, ok := req.(*kmsg.HeartbeatRequest); ok && hb.MemberID == memberID {
			mu.Lock()
			dropped++
			mu.Unlock()
			return nil, nil, true // never answered: the member is as good as dead
		}
		return nil, nil, false
	})

	start := time.Now()
	other := subscribe(t, b, g, (&collect{}).handle)
	eventually(t, 20*time.Second, "the other member to own both partitions", func() bool { return len(other.claimed()) == 2 })
	took := time.Since(start)
	mu.Lock()
	t.Logf("partitions moved after %v (session timeout %v, %d heartbeats dropped)", took.Round(time.Millisecond), session, dropped)
	mu.Unlock()
	if took > 10*session {
		t.Errorf("partitions moved after %v, want about the session timeout %v", took, session)
	}
}
