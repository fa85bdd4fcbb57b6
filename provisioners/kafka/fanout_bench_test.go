package kafka

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// countingFilter passes one type and counts every event it is asked about; the call that brings the
// count to want closes done.
type countingFilter struct {
	typ  string
	seen *atomic.Int64
	want int64
	done chan struct{}
}

func (f countingFilter) Pass(e *event.Event) bool {
	if f.seen.Add(1) == f.want {
		close(f.done)
	}
	return e.Type == f.typ
}

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGroupsOnOneTopic reads b.N events with 1, 10 and 100 groups, each passing 1% of them (a
// broker's triggers), once with a read per group and once with one shared read (Share), and reports
// the consuming side's CPU per event (µs-cpu/event; the producer's share is measured apart and left
// out). Run it on the real broker for figures that mean something:
//
//	EVENTGATE_TEST_KAFKA=127.0.0.1:9092 go test -run '^$' -bench GroupsOnOneTopic -benchtime 30000x ./provisioners/kafka/
func BenchmarkGroupsOnOneTopic(b *testing.B) {
	types := make([]string, 100)
	for i := range types {
		types[i] = fmt.Sprintf("t%d", i)
	}
	for _, share := range []string{"", "triggers"} {
		for _, groups := range []int{1, 10, 100} {
			mode := map[string]string{"": "own", "triggers": "shared"}[share]
			b.Run(fmt.Sprintf("%s/%d", mode, groups), func(b *testing.B) {
				brokers := testBrokers(b)
				be := newBackend(b, brokers, nil)
				ref, topic := ensureChannel(b, be, channel.Spec{Partitions: 3})
				var seen atomic.Int64
				done := make(chan struct{})
				for i := range groups {
					g := channel.Group{Channel: ref, Name: fmt.Sprintf("bench-%d-%s-%d", time.Now().UnixNano(), mode, i),
						Start: channel.Latest, Share: share, Filter: countingFilter{typ: types[i], seen: &seen, want: int64(groups * b.N), done: done}}
					s, err := be.Subscribe(b.Context(), g, func(cl channel.Claim) {
						for r := range cl.Records() {
							cl.MarkDone(r.Offset)
						}
					})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { s.Close() })
				}
				evs := typedEvents("b", b.N, types...)
				b.ResetTimer()
				cpu0 := processCPU()
				produceTo(b, brokers, topic, evs, 0, 1, 2)
				produced := processCPU() - cpu0
				select {
				case <-done:
				case <-time.After(5 * time.Minute):
					b.Fatalf("the groups saw %d of %d events", seen.Load(), groups*b.N)
				}
				cpu := processCPU() - cpu0 - produced
				b.StopTimer()
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "µs-cpu/event")
			})
		}
	}
}
