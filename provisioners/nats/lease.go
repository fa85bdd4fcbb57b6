package nats

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ordered groups: one owner per partition across gateways.
//
// The gateways subscribed to one unordered group all pull each partition's consumer, and the server
// spreads its events over them. An ordered group (channel.Group.Ordered) cannot allow that: two
// gateways would deliver events of one key at the same time. Its partitions are owned one at a time,
// as in a Kafka consumer group, through leases in a JetStream key-value bucket (Config.LeaseBucket,
// created on first use, whose MaxAge is Config.LeaseTTL):
//
//   - Each gateway process subscribed to the group runs one leaser. It announces itself with a member
//     key (PREFIX.m.ID, written every LeaseTTL/4, so it disappears LeaseTTL after the process
//     stopped writing it) and watches the group's keys.
//   - Partitions are assigned round robin over the sorted member ids the leaser sees. It takes a
//     partition assigned to it by creating the partition's lease key (PREFIX.p.N), which fails while
//     another member holds it, and renews what it holds (an update at the revision it last wrote)
//     every LeaseTTL/4. Inside the process, the partitions it holds go round robin to the group's
//     local members, as for unordered groups.
//   - Before it hands a partition it took to a claim, it resets the partition's consumer to its
//     acknowledgement floor (JetStream's consumer reset, nats-server 2.14 or later): what the
//     previous owner had delivered and not acknowledged comes again first, in stream order, instead
//     of after AckWait behind newer events. This is Kafka's "resume from the committed offset".
//   - A partition now assigned to another member (one joined) is handed over: its claim is revoked,
//     and once the handler returned and the claim's acknowledgements reached the server, the lease
//     is deleted, which the other member sees at once through its watch.
//   - A lease its holder could not renew for LeaseTTL/2 is given up by the holder itself (the claim
//     is revoked), before it can expire on the server and another member take it; so a gateway cut
//     off from NATS stops delivering before anyone else starts. A gateway that died holds its
//     partitions until its leases expire (LeaseTTL); the server then writes an expiry marker, the
//     others see it and take them.
//
// What it does not cover, as Kafka does not: a process that stops running altogether (a debugger,
// a VM paused) for longer than LeaseTTL/2 and then resumes may finish the delivery it was making
// while another gateway already took the partition over.
//
// Keys are PREFIX = "g" + the first 32 hex digits of SHA-256(stream, consumer prefix), since stream
// and consumer names may hold characters keys cannot; each value names the stream, the consumer
// prefix, the member and its host, for people reading the bucket.

// leaseValue is the JSON value of a member or lease key.
type leaseValue struct {
	Member   string `json:"member"`
	Host     string `json:"host"`
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
}

// lease is a partition lease this process holds, or is giving up.
type lease struct {
	rev       uint64    // revision of our last write
	renewed   time.Time // when that write was sent: the server keeps the key at least LeaseTTL after
	releasing bool      // being given up: no claim may start on it
	claim     *claim    // the claim revoked when releasing began (nil: none ran)
}

// leaser keeps the leases of one ordered group in this process (see above). Its leases map is
// written only by its goroutine, under Backend.mu; assignment reads it under Backend.mu.
type leaser struct {
	b      *Backend
	g      *group
	id     string
	prefix string
	value  []byte
	stop   chan struct{} // closed by detachLocked
	wake   chan struct{} // one slot: something changed, step again

	leases  map[int32]*lease
	members map[string]time.Time // member id → when the watch last showed its key written (the run goroutine's own)
	joined  time.Time            // when the member key was last written
}

// groupKeyPrefix is the key prefix of group base's keys on stream.
func groupKeyPrefix(stream, base string) string {
	sum := sha256.Sum256([]byte(stream + "\x00" + base))
	return "g" + hex.EncodeToString(sum[:16])
}

// startLeaserLocked starts g's leaser. b.mu held; g.leaser is nil.
func (b *Backend) startLeaserLocked(g *group) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	l := &leaser{
		b: b, g: g,
		id:      hex.EncodeToString(rnd[:]),
		prefix:  groupKeyPrefix(g.cs.stream, g.base),
		stop:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		leases:  map[int32]*lease{},
		members: map[string]time.Time{},
	}
	host, _ := os.Hostname()
	l.value, _ = json.Marshal(leaseValue{Member: l.id, Host: host + ":" + strconv.Itoa(os.Getpid()), Stream: g.cs.stream, Consumer: g.base})
	g.leaser = l
	b.wg.Add(1)
	go l.run()
}

// detachLocked stops l: from now on it holds nothing for its group (assignment ignores it), and its
// goroutine revokes the claims on the partitions it held, waits for them, deletes its keys and
// returns. b.mu held.
func (l *leaser) detachLocked() {
	if l.g.leaser == l {
		l.g.leaser = nil
		close(l.stop)
	}
}

// holds reports whether l holds partition p for claims. b.mu held; l may be nil.
func (l *leaser) holds(p int32) bool {
	if l == nil {
		return false
	}
	ls := l.leases[p]
	return ls != nil && !ls.releasing
}

// poke makes l step again soon. Safe for concurrent use; l may be nil.
func (l *leaser) poke() {
	if l == nil {
		return
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *leaser) ttl() time.Duration { return l.b.cfg.LeaseTTL }

// renewAfter is the age at which a step writes a lease or the member key again. Steps run every
// LeaseTTL/4 (and more often when the watch shows changes); renewing anything older than half that
// renews at every tick, however late the tick is, so a lease is only two missed ticks from being
// given up (LeaseTTL/2), never one tick and a bit.
func (l *leaser) renewAfter() time.Duration { return l.ttl() / 8 }

func (l *leaser) memberKey(id string) string { return l.prefix + ".m." + id }

func (l *leaser) leaseKey(p int32) string { return l.prefix + ".p." + strconv.Itoa(int(p)) }

// run steps l every LeaseTTL/4 and whenever the watch reports a change, until it is detached.
func (l *leaser) run() {
	defer l.b.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-l.stop
		cancel()
	}()
	tick := time.NewTicker(l.ttl() / 4)
	defer tick.Stop()
	var kv jetstream.KeyValue
	var w jetstream.KeyWatcher
	synced := false // the watch delivered the keys there were: the member list is known
	for {
		if kv == nil {
			var err error
			if kv, err = l.b.leaseBucket(ctx); err != nil {
				l.b.log.Debug("nats lease bucket not available; retrying", "bucket", l.b.cfg.LeaseBucket, "err", err)
			}
		}
		if kv != nil && w == nil {
			var err error
			if w, err = kv.Watch(ctx, l.prefix+".>"); err != nil {
				l.b.log.Debug("nats lease watch failed; retrying", "bucket", l.b.cfg.LeaseBucket, "err", err)
				w = nil
			}
		}
		if kv != nil && (synced || w == nil) {
			l.step(ctx, kv)
		}
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-l.stop:
			if w != nil {
				_ = w.Stop()
			}
			l.release(kv)
			return
		case <-tick.C:
		case <-l.wake:
		case e, ok := <-updates:
			if !ok {
				w = nil
				continue
			}
			synced = synced || e == nil
			l.observe(e)
			for more := true; more; { // take what else is there before stepping
				select {
				case e, ok := <-updates:
					if !ok {
						w, more = nil, false
						break
					}
					synced = synced || e == nil
					l.observe(e)
				default:
					more = false
				}
			}
		}
	}
}

// observe records a member key's change; the end-of-initial-values marker (nil) and lease keys only
// make the loop step again. Members write their key every LeaseTTL/4, so the watch shows each one
// alive that often; one not shown for LeaseTTL is taken for gone even if its key's deletion or
// expiry never came through (a watch that stalled), so its partitions are not left unowned.
func (l *leaser) observe(e jetstream.KeyValueEntry) {
	if e == nil {
		return
	}
	id, ok := strings.CutPrefix(e.Key(), l.prefix+".m.")
	if !ok {
		return
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		l.members[id] = time.Now()
	default: // deleted, or expired (the server's MaxAge marker)
		delete(l.members, id)
	}
}

// step does what is due: give up leases not renewed in time, write the member key, then for each
// partition take it (assigned here, free), renew it, or give it up (assigned elsewhere). Every
// request of one step shares a deadline of LeaseTTL/4, so a server that does not answer cannot
// hold up the check of the next step.
func (l *leaser) step(parent context.Context, kv jetstream.KeyValue) {
	b := l.b
	for p, ls := range l.snapshot() {
		if !ls.releasing && time.Since(ls.renewed) >= l.ttl()/2 {
			b.log.Warn("nats: partition lease not renewed in time; giving the partition up", "stream", l.g.cs.stream,
				"group", l.g.key.name, "partition", p, "since", time.Since(ls.renewed).Round(time.Millisecond))
			l.startRelease(p)
		}
	}
	ctx, cancel := context.WithTimeout(parent, l.ttl()/4)
	defer cancel()
	if time.Since(l.joined) >= l.renewAfter() {
		sent := time.Now()
		if _, err := kv.Put(ctx, l.memberKey(l.id), l.value); err != nil {
			b.log.Debug("nats lease member key not written", "group", l.g.key.name, "err", err)
		} else {
			l.joined = sent
		}
	}
	ids := []string{l.id}
	for id, seen := range l.members {
		if time.Since(seen) > l.ttl() {
			delete(l.members, id)
		} else if id != l.id {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	b.mu.Lock()
	parts := l.g.cs.partitions
	b.mu.Unlock()
	leases := l.snapshot()
	for p := int32(0); p < parts; p++ {
		if ctx.Err() != nil {
			return
		}
		mine := ids[int(p)%len(ids)] == l.id
		ls := leases[p]
		switch {
		case ls == nil && mine:
			l.acquire(ctx, kv, p)
		case ls == nil:
		case ls.releasing:
			l.finishRelease(ctx, kv, p, ls)
		case !mine:
			b.log.Debug("nats partition lease handed over", "group", l.g.key.name, "partition", p)
			l.startRelease(p)
			l.finishRelease(ctx, kv, p, ls)
		case time.Since(ls.renewed) >= l.renewAfter():
			l.renew(ctx, kv, p, ls)
		}
	}
}

// snapshot copies the leases map. Only l's goroutine writes it, so it can read without the lock,
// but writes hold b.mu; a copy keeps the loop simple.
func (l *leaser) snapshot() map[int32]*lease {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	out := make(map[int32]*lease, len(l.leases))
	for p, ls := range l.leases {
		out[p] = ls
	}
	return out
}

// acquire takes partition p if its lease is free: it creates the lease key, resets the consumer to
// its acknowledgement floor and lets claims start on it.
func (l *leaser) acquire(ctx context.Context, kv jetstream.KeyValue, p int32) {
	b := l.b
	sent := time.Now()
	rev, err := kv.Create(ctx, l.leaseKey(p), l.value)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			b.log.Debug("nats partition lease not created", "group", l.g.key.name, "partition", p, "err", err)
		}
		return
	}
	if err := b.resetConsumer(ctx, l.g, p); err != nil {
		b.log.Warn("nats: cannot reset the consumer of a partition taken over (ordered subscriptions need nats-server 2.14 or later); retrying",
			"stream", l.g.cs.stream, "group", l.g.key.name, "partition", p, "err", err)
		l.deleteKey(ctx, kv, p, rev)
		return
	}
	b.mu.Lock()
	attached := l.g.leaser == l
	if attached {
		l.leases[p] = &lease{rev: rev, renewed: sent}
		b.rebalanceLocked(l.g)
	}
	b.mu.Unlock()
	if !attached {
		l.deleteKey(ctx, kv, p, rev)
		return
	}
	b.log.Debug("nats partition lease taken", "group", l.g.key.name, "partition", p)
}

// renew writes p's lease again at the revision l last wrote. A revision that moved on means the
// lease is no longer l's, and the partition is given up at once, unless the key still holds l's own
// value (an earlier renewal that timed out had in fact been written): l then goes on from that
// revision, its renewal time unchanged.
func (l *leaser) renew(ctx context.Context, kv jetstream.KeyValue, p int32, ls *lease) {
	sent := time.Now()
	rev, err := kv.Update(ctx, l.leaseKey(p), l.value, ls.rev)
	switch {
	case err == nil:
		l.b.mu.Lock()
		ls.rev, ls.renewed = rev, sent
		l.b.mu.Unlock()
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		if e, gerr := kv.Get(ctx, l.leaseKey(p)); gerr == nil && bytes.Equal(e.Value(), l.value) {
			l.b.mu.Lock()
			ls.rev = e.Revision()
			l.b.mu.Unlock()
			return
		}
		l.b.log.Warn("nats: partition lease lost; giving the partition up", "stream", l.g.cs.stream,
			"group", l.g.key.name, "partition", p)
		l.startRelease(p)
	default:
		l.b.log.Debug("nats partition lease not renewed", "group", l.g.key.name, "partition", p, "err", err)
	}
}

// startRelease stops claims on p: the lease is marked releasing and the claim running on it is
// revoked.
func (l *leaser) startRelease(p int32) {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	ls := l.leases[p]
	if ls == nil || ls.releasing {
		return
	}
	ls.releasing = true
	if c := l.g.claims[p]; c != nil {
		c.cancel()
		ls.claim = c
	}
	b.rebalanceLocked(l.g)
}

// finishRelease deletes p's lease once the claim revoked on it has finished (its acknowledgements
// reached the server), and forgets it. Until then it does nothing: the claim's end pokes l.
func (l *leaser) finishRelease(ctx context.Context, kv jetstream.KeyValue, p int32, ls *lease) {
	if ls.claim != nil {
		select {
		case <-ls.claim.finished:
		default:
			return
		}
	}
	l.deleteKey(ctx, kv, p, ls.rev)
	l.b.mu.Lock()
	delete(l.leases, p)
	l.b.mu.Unlock()
}

// deleteKey deletes p's lease key if it is still at rev (else it is someone else's now).
func (l *leaser) deleteKey(ctx context.Context, kv jetstream.KeyValue, p int32, rev uint64) {
	if err := kv.Delete(ctx, l.leaseKey(p), jetstream.LastRevision(rev)); err != nil {
		l.b.log.Debug("nats partition lease not deleted", "group", l.g.key.name, "partition", p, "err", err)
	}
}

// release runs once l is detached: it revokes the claims on the partitions it held, waits for them
// to finish, then deletes its lease keys and its member key, so that the other members take the
// partitions at once.
func (l *leaser) release(kv jetstream.KeyValue) {
	b := l.b
	b.mu.Lock()
	leases := l.leases
	l.leases = map[int32]*lease{}
	var waits []*claim
	for p, ls := range leases {
		if ls.claim != nil {
			waits = append(waits, ls.claim)
		} else if c := l.g.claims[p]; c != nil && !ls.releasing {
			c.cancel()
			waits = append(waits, c)
		}
	}
	b.mu.Unlock()
	for _, c := range waits {
		<-c.finished
	}
	if kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.RequestTimeout)
	defer cancel()
	for p, ls := range leases {
		l.deleteKey(ctx, kv, p, ls.rev)
	}
	if err := kv.Delete(ctx, l.memberKey(l.id)); err != nil {
		b.log.Debug("nats lease member key not deleted", "group", l.g.key.name, "err", err)
	}
}

// leaseBucket returns the lease bucket, creating it, or bringing it to the configuration, on first
// use.
func (b *Backend) leaseBucket(ctx context.Context) (jetstream.KeyValue, error) {
	b.leaseMu.Lock()
	defer b.leaseMu.Unlock()
	if b.leaseKV != nil {
		return b.leaseKV, nil
	}
	_, js, err := b.connected()
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	storage := jetstream.FileStorage
	if b.cfg.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	kv, err := js.CreateOrUpdateKeyValue(rctx, jetstream.KeyValueConfig{
		Bucket:         b.cfg.LeaseBucket,
		Description:    "eventgate: one owner per partition of each ordered subscription",
		History:        1,
		TTL:            b.cfg.LeaseTTL,
		LimitMarkerTTL: b.cfg.LeaseTTL,
		Storage:        storage,
		Replicas:       b.cfg.Replicas,
	})
	if err != nil {
		return nil, classify("lease bucket "+b.cfg.LeaseBucket, err)
	}
	b.leaseKV = kv
	return kv, nil
}

// resetConsumer resets partition p's consumer of g to its acknowledgement floor: every event not
// acknowledged is delivered again, in order, and before any later one. A consumer that does not
// exist yet (a partition added later) has nothing to reset; it is looked up first, since the
// server does not answer a reset of a consumer it does not have.
func (b *Backend) resetConsumer(ctx context.Context, g *group, p int32) error {
	_, js, err := b.connected()
	if err != nil {
		return err
	}
	name := consumerName(g.base, p)
	if _, err := js.Consumer(ctx, g.cs.stream, name); errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	} else if err != nil {
		return classify("consumer "+name+" of "+g.cs.stream, err)
	}
	if _, err := js.ResetConsumer(ctx, g.cs.stream, name); err != nil {
		return classify("reset consumer "+name+" of "+g.cs.stream, err)
	}
	return nil
}
