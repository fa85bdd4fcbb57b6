package dispatch

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// keyedRunner runs one ordered partition's deliveries in order per partition key: records with the
// same `partitionkey` run one at a time in offset order, records with different keys run
// concurrently, and a record without a key waits for everything before it and holds up everything
// after it — the partition's own order, as when no event has a key. The claim's intake goroutine is
// the only caller of submit, wait and close.
//
// A key's items run on a runner goroutine, which afterwards takes another key's items if one is
// handed to it within its idle period, as an unordered claim's workers take records (see
// Dispatcher.worker). A goroutine per key run, in a Kafka drain of events over 1,000 keys, spent
// 5.6% of the gateway's CPU growing fresh stacks to what an HTTP delivery needs and 7.3% making a
// timeout context per attempt (its attempt scope lived for one attempt), against 2.4% for the
// contexts and no stack growth with runners reused.
type keyedRunner struct {
	ctx     context.Context // the deliveries' context
	idle    time.Duration   // how long, at least, an idle runner waits for another key
	alive   *atomic.Int64   // counts the runner goroutines
	active  sync.WaitGroup  // one per key with work queued or running
	runners sync.WaitGroup  // one per runner goroutine
	handoff chan keyRun     // to an idle runner; closed by close
	mu      sync.Mutex
	queues  map[string][]func(context.Context) // work waiting behind the running item, per key; present while the key runs
}

// keyRun is a key and the first of its items to run.
type keyRun struct {
	key string
	f   func(context.Context)
}

// newKeyedRunner returns a runner whose items run under ctx, on goroutines that wait idle (at least,
// at most twice that) for another key before they exit, counted in alive.
func newKeyedRunner(ctx context.Context, idle time.Duration, alive *atomic.Int64) *keyedRunner {
	return &keyedRunner{ctx: ctx, idle: idle, alive: alive, handoff: make(chan keyRun),
		queues: map[string][]func(context.Context){}}
}

// submit runs f after every earlier item of key, concurrently with other keys. It does not block.
// f gets the runner's context as an attemptScope of the goroutine that runs it (one item at a
// time).
func (k *keyedRunner) submit(key string, f func(ctx context.Context)) {
	k.mu.Lock()
	if q, running := k.queues[key]; running {
		k.queues[key] = append(q, f)
		k.mu.Unlock()
		return
	}
	k.queues[key] = nil
	k.mu.Unlock()
	k.active.Add(1)
	select {
	case k.handoff <- keyRun{key, f}: // an idle runner takes it
	default:
		k.runners.Add(1)
		go k.runner(keyRun{key, f})
	}
}

// runner runs first's key, then the keys handed to it, until close or until its idle timer runs a
// whole period without a key taken (see idleTimer).
func (k *keyedRunner) runner(first keyRun) {
	defer k.runners.Done()
	k.alive.Add(1)
	defer k.alive.Add(-1)
	scope := newAttemptScope(k.ctx)
	defer scope.end()
	idle := newIdleTimer(k.idle)
	defer idle.stop()
	for run, ok := first, true; ok; run, ok = takeOrIdle(idle, k.handoff) {
		k.run(scope, run)
	}
}

// run runs r's item and then its key's queued items, in order, until the queue is empty.
func (k *keyedRunner) run(ctx context.Context, r keyRun) {
	for f := r.f; f != nil; {
		f(ctx)
		k.mu.Lock()
		if q := k.queues[r.key]; len(q) > 0 {
			f, k.queues[r.key] = q[0], q[1:]
		} else {
			delete(k.queues, r.key)
			f = nil
		}
		k.mu.Unlock()
	}
	k.active.Done()
}

// wait blocks until every submitted item has run.
func (k *keyedRunner) wait() { k.active.Wait() }

// close waits for every submitted item, then ends the runner goroutines and waits for them. Nothing
// may be submitted after it.
func (k *keyedRunner) close() {
	k.active.Wait()
	close(k.handoff)
	k.runners.Wait()
}

// partitionKey is the record's partitionkey extension, "" when it has none.
func partitionKey(rec channel.Record) string {
	if rec.Event == nil {
		return ""
	}
	return rec.Event.Extension(event.PartitionKeyExtension)
}
