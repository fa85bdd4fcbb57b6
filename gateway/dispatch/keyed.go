package dispatch

import (
	"context"
	"sync"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// keyedRunner runs one ordered partition's deliveries in order per partition key: records with the
// same `partitionkey` run one at a time in offset order, records with different keys run
// concurrently, and a record without a key waits for everything before it and holds up everything
// after it — the partition's own order, as when no event has a key. The claim's intake goroutine is
// the only caller of submit and wait.
type keyedRunner struct {
	ctx    context.Context // the deliveries' context
	active sync.WaitGroup  // one per key with work queued or running
	mu     sync.Mutex
	queues map[string][]func(context.Context) // work waiting behind the running item, per key; present while the key runs
}

// newKeyedRunner returns a runner whose items run under ctx.
func newKeyedRunner(ctx context.Context) *keyedRunner {
	return &keyedRunner{ctx: ctx, queues: map[string][]func(context.Context){}}
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
	go func() {
		defer k.active.Done()
		scope := newAttemptScope(k.ctx)
		defer scope.end()
		for f != nil {
			f(scope)
			k.mu.Lock()
			if q := k.queues[key]; len(q) > 0 {
				f, k.queues[key] = q[0], q[1:]
			} else {
				delete(k.queues, key)
				f = nil
			}
			k.mu.Unlock()
		}
	}()
}

// wait blocks until every submitted item has run.
func (k *keyedRunner) wait() { k.active.Wait() }

// partitionKey is the record's partitionkey extension, "" when it has none.
func partitionKey(rec channel.Record) string {
	if rec.Event == nil {
		return ""
	}
	return rec.Event.Extension(event.PartitionKeyExtension)
}
