package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

const (
	// commitInterval is how often done offsets are committed while consuming (also on revoke and close).
	commitInterval = time.Second
	// commitTimeout bounds one commit request.
	commitTimeout = 10 * time.Second
	// fetchMaxWait is how long a broker holds a fetch with no new data, for a subscription read by a
	// client of its own (an ordered subscription, and a member moved off a shared read because it fell
	// behind). A fetch returns as soon as any of its partitions has a record, so this costs new events
	// nothing; it sets how often an idle client asks again, and what a resumed partition waits:
	// franz-go keeps one fetch in flight per broker and neither ResumeFetchPartitions nor a new
	// assignment from the group ends it, so a resumed or newly assigned partition is fetched only when
	// the fetch in flight returns. Such a client pauses partitions (a stuck claim, an ordered claim
	// whose fetched records would hold polling back), so the wait is kept short: at 5 s an ordered
	// drain of three partitions fell to a quarter of its rate, every pause costing seconds. What
	// makes many idle subscriptions cheap is the shared read (sharedFetchMaxWait), not this.
	fetchMaxWait = 500 * time.Millisecond
	// sharedFetchMaxWait is fetchMaxWait for a shared read (fanout.go). One shared read serves every
	// channel of its Share key, so its idle fetches cost next to nothing (one per broker per wait,
	// whatever the number of channels); what the wait delays is a topic joining the read (a new
	// channel's first subscription) and partitions gained in a rebalance: they are added to the
	// next fetch, not the one in flight, so they start up to this much later. At 10 s a new channel's
	// first events waited 10 s on an idle gateway.
	sharedFetchMaxWait = time.Second
	// stallTimeout is how long the poll loop waits for a claim's buffer to make room before it pauses
	// fetching of that partition, so that one stuck partition does not hold up the others. Pausing
	// throws away what the client has fetched for the partition, so it is kept for claims that are
	// stuck rather than merely busy.
	stallTimeout = 250 * time.Millisecond
	// stallLimit is the longest a claim's pending records hold polling back while it still takes
	// records (see pollSize): a slow partition is paused then, so that it does not hold up the others.
	stallLimit = 4 * stallTimeout
	// errorBackoff is the pause after a poll that returned only errors.
	errorBackoff = 250 * time.Millisecond
	// consumerMetadataMaxAge bounds how long a consumer takes to notice partitions added to its topic.
	consumerMetadataMaxAge = 30 * time.Second
)

var _ channel.Subscription = (*subscription)(nil)

// Subscribe joins the channel's consumer group with a client of its own and runs h in a goroutine per
// assigned partition. An unknown (never Ensured) channel wraps channel.ErrNotFound.
//
// A group with no committed offset on the channel's topic gets its start committed before Subscribe
// returns (see fixStart): the end of each partition for channel.Latest, its start for
// channel.Earliest. Every event published after Subscribe returns is delivered, though joining and
// assignment happen in the background. A group with commits resumes from them. Partitions without a
// commit in a group that has some (added to the topic later), and committed offsets the log no longer
// holds, start at the beginning of the partition, so nothing written there is skipped.
//
// It blocks on admin requests until the start is committed (at most adminWaitTimeout) or ctx is
// done; errors committing it wrap channel.ErrUnavailable.
func (b *Backend) Subscribe(ctx context.Context, g channel.Group, h channel.ClaimHandler) (channel.Subscription, error) {
	if h == nil {
		return nil, errors.New("kafka: subscribe: nil claim handler")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	topic, err := b.topicOf(g.Channel)
	if err != nil {
		return nil, err
	}
	groupName, err := b.GroupName(g)
	if err != nil {
		return nil, err
	}
	if g.Share != "" {
		return b.subscribeShared(ctx, g, h, topic, groupName)
	}
	return b.subscribeOwn(ctx, g, h, topic, groupName)
}

// subscribeOwn is Subscribe for a group read by a client of its own.
func (b *Backend) subscribeOwn(ctx context.Context, g channel.Group, h channel.ClaimHandler, topic, groupName string) (*subscription, error) {
	if _, err := b.fixStart(ctx, groupName, topic, g.Start); err != nil {
		return nil, err
	}
	s := &subscription{
		b:         b,
		group:     g,
		groupName: groupName,
		topic:     topic,
		handler:   h,
		maxBuf:    b.cfg.MaxBufferedPerPartition,
		log:       b.log.With("channel", g.Channel.String(), "subscription", g.Name, "group", groupName),
		claims:    make(map[int32]*claim),
		room:      make(chan struct{}, 1),
		clReady:   make(chan struct{}),
		loopDone:  make(chan struct{}),
	}
	opts := append(b.groupOpts(groupName, s, fetchMaxWait, topic), kgo.WithHooks(fetchCounter{&s.fetched}))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer for %s: %w", groupName, err)
	}
	s.cl = cl
	close(s.clReady)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cl.Close()
		return nil, fmt.Errorf("kafka: subscribe after Close: %w", channel.ErrUnavailable)
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	var loopCtx context.Context
	loopCtx, s.stop = context.WithCancel(context.Background())
	go s.loop(loopCtx)
	s.log.Info("kafka subscription started", "topic", topic)
	return s, nil
}

// groupHandler is what a group member's client calls back: a subscription, or a fanout's reader.
type groupHandler interface {
	onAssigned(context.Context, map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error)
	onRevoked(context.Context, *kgo.Client, map[string][]int32)
	onLost(context.Context, *kgo.Client, map[string][]int32)
}

// groupOpts are the options of a client that joins consumer group groupName on topics (none: it
// joins once AddConsumeTopics gives it one), with h's callbacks: cooperative-sticky, commits only
// when the member says so, rebalances only between polls, fetches held by the broker up to maxWait.
func (b *Backend) groupOpts(groupName string, h groupHandler, maxWait time.Duration, topics ...string) []kgo.Opt {
	return append(b.commonOpts(),
		kgo.ConsumerGroup(groupName),
		kgo.ConsumeTopics(topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// After fixStart, a partition without a commit was added to the topic later: read it from its
		// beginning. So is a committed offset the log no longer holds (retention passed it).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(h.onAssigned),
		kgo.OnPartitionsRevoked(h.onRevoked),
		kgo.OnPartitionsLost(h.onLost),
		kgo.FetchMaxWait(maxWait),
		kgo.FetchMaxBytes(b.cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(b.cfg.FetchMaxPartitionBytes),
		kgo.SessionTimeout(b.cfg.SessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval(b.cfg.SessionTimeout)),
		kgo.MetadataMaxAge(consumerMetadataMaxAge),
	)
}

// subscription is one consumer-group member: a client, a poll loop and one claim per assigned
// partition.
type subscription struct {
	b         *Backend
	group     channel.Group
	groupName string
	topic     string
	handler   channel.ClaimHandler
	maxBuf    int
	log       *slog.Logger
	cl        *kgo.Client
	// clReady is closed once cl is set: the client may call onAssigned before NewClient returns.
	clReady chan struct{}

	stop     context.CancelFunc // ends the poll loop
	loopDone chan struct{}

	mu         sync.Mutex
	claims     map[int32]*claim
	closing    bool
	pollCancel context.CancelFunc // cancels the poll in progress (to resume a drained partition)

	room chan struct{} // a claim has room again (buffered 1; see signalRoom)
	// Scratch space of pollSize, owned by the poll loop.
	behind []*claim
	// Scratch space of route, owned by the poll loop.
	headers []event.Header
	batch   []channel.Record

	maxQueued atomic.Int64 // high-water mark of any claim's buffer, for tests and diagnostics
	pauses    atomic.Int64 // times a partition's fetching was paused because its buffer filled
	fetched   atomic.Int64 // records the client decoded from fetch responses (re-fetches count again)

	closeOnce sync.Once
	closeErr  error
}

// Close stops the poll loop, revokes every claim (waiting for its handler), commits what is done and
// leaves the group. It returns the final commit's error (wrapping channel.ErrUnavailable), if any. Safe
// to call more than once and concurrently; later calls return the first result.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.loopDone
		s.cl.CloseAllowingRebalance()
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
		// Fetched records beyond those handed out were fetched again after a pause (see pollSize).
		s.log.Info("kafka subscription closed", "records_fetched", s.fetched.Load(), "pauses", s.pauses.Load())
	})
	return s.closeErr
}

// loop polls records and routes them to claims until ctx is done. It holds the rebalance gate
// (BlockRebalanceOnPoll) only while routing and committing, which never block on handlers: a poll
// takes no more records than every unpaused claim's buffer has room for (see pollSize). While a claim
// is short of room the loop waits outside the gate, leaving what the client has fetched buffered in
// the client.
func (s *subscription) loop(ctx context.Context) {
	defer close(s.loopDone)
	lastCommit := time.Now()
	for {
		n, wait := s.pollSize(time.Now())
		if n == 0 && ctx.Err() == nil {
			s.waitRoom(ctx, wait)
			continue
		}
		pollCtx, cancel := s.pollContext(ctx, lastCommit)
		s.mu.Lock()
		s.pollCancel = cancel
		s.mu.Unlock()
		fetches := s.cl.PollRecords(pollCtx, max(n, 1))
		s.mu.Lock()
		s.pollCancel = nil
		s.mu.Unlock()
		cancel()

		if fetches.IsClientClosed() {
			s.shutdown()
			return
		}
		failed := false
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			failed = true
			s.log.Warn("kafka fetch error", "topic", topic, "partition", p, "err", err)
		})
		got := fetches.NumRecords()
		fetches.EachPartition(s.route)

		if ctx.Err() != nil {
			s.shutdown()
			s.cl.AllowRebalance()
			return
		}
		if time.Since(lastCommit) >= commitInterval {
			_ = s.commit(ctx, s.snapshot()) // logged; retried at the next interval
			lastCommit = time.Now()
		}
		s.cl.AllowRebalance()
		if failed && got == 0 {
			// Errors and nothing else: back off a little rather than spin (outside the rebalance gate).
			t := time.NewTimer(errorBackoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// pollContext is the context of the next poll: it ends at the next commit when a claim has records
// handed out but not yet committed, and otherwise only with ctx or wake. An idle subscription's loop
// thus sleeps in PollRecords until a record arrives, instead of waking every commitInterval to find
// nothing to commit. Records are tracked only by route, which runs between polls, so a poll that
// starts with nothing outstanding cannot miss a commit.
func (s *subscription) pollContext(ctx context.Context, lastCommit time.Time) (context.Context, context.CancelFunc) {
	if !s.outstanding() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, lastCommit.Add(commitInterval))
}

// outstanding reports whether any claim has tracked records whose commit is still to be made.
func (s *subscription) outstanding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.claims {
		c.mu.Lock()
		busy := c.tracker.Pending() > 0 || c.tracker.Commit() > c.committed
		c.mu.Unlock()
		if busy {
			return true
		}
	}
	return false
}

// pollAll is the poll size that takes every record the client has fetched.
const pollAll = 1 << 30

// pollSize decides the next poll: n is 0 to wait (at most wait, or until a claim signals room), else
// pollAll. A poll takes everything the client has fetched, for every partition, because the client
// returns records partition by partition: a poll sized by the least room among the claims took only
// the first partition's records and starved the others until they were all taken (an ordered
// subscription, one delivery at a time per partition, drained at about two thirds of a bare loop's
// rate). What a claim's buffer has no room for waits in its pending list (see route).
//
// A poll is wanted once some unpaused claim without records pending has at least a quarter of its
// buffer free (or, before any claim is assigned, at once). It is made unless an unpaused claim has
// more records pending than the last poll gave it (lastFetch: its share of one fetch): a claim
// within one fetch of its pending list's end does not hold the others back, so a partition that
// drains its list first is fed while the others finish theirs. Memory stays bounded per partition:
// the buffer (maxBuffered) plus at most two fetches' shares pending (what was left of one when the
// next was polled), plus what the client holds fetched and not yet polled (one fetch response per
// broker, FetchMaxBytes).
//
// Pausing a partition makes the client drop what it has fetched for it and not yet returned (to
// fetch it again after the resume), so pausing is kept for a claim that is stuck or far behind:
//
//   - A paused claim is resumed once its buffer and pending list together have drained to a quarter.
//   - An unpaused claim with more than one fetch pending holds a wanted poll back (n == 0; wait says
//     how long until the first such claim's stall deadline).
//   - A claim that has held a wanted poll back and taken no record for stallTimeout, or held it
//     back for stallLimit, is paused, so that one stuck or slow partition (an ordered subscription
//     retrying an event) does not hold up the others; its pending records stay. A claim holds
//     nothing back while no poll is wanted, however long its list: a fetch's share of a partition
//     can be thousands of small records, and pausing a claim that is merely busy with them made the
//     client fetch again what it already held.
//
// A full claim without pending records holds nothing back.
func (s *subscription) pollSize(now time.Time) (n int, wait time.Duration) {
	low := s.lowWater()
	var pause, resume []int32
	claims, held, room := 0, false, false
	s.mu.Lock()
	// First pass: resume drained paused claims, and find whether a poll is wanted (room).
	behind := s.behind[:0] // claims with more than one fetch pending
	for p, c := range s.claims {
		c.mu.Lock()
		free := s.maxBuf - len(c.queue)
		switch {
		case c.paused:
			if len(c.queue)+len(c.pending) <= low {
				c.paused = false
				c.shortSince = time.Time{}
				resume = append(resume, p)
				claims++
				room = room || (len(c.pending) == 0 && free >= low)
			}
		case len(c.pending) == 0:
			claims++
			c.shortSince = time.Time{}
			room = room || free >= low
		case len(c.pending) <= c.lastFetch:
			claims++ // within one fetch of the end of its list: holds nothing back
			c.shortSince = time.Time{}
		default:
			claims++
			behind = append(behind, c)
		}
		c.mu.Unlock()
	}
	// Second pass: a claim far behind holds a wanted poll back; one that does so too long is paused.
	for _, c := range behind {
		c.mu.Lock()
		progressed := c.taken != c.takenSeen
		c.takenSeen = c.taken
		if !room {
			c.shortSince = time.Time{} // no poll wanted: holds nothing back
			c.mu.Unlock()
			continue
		}
		switch {
		case c.shortSince.IsZero():
			c.shortSince, c.progressAt = now, now
		case progressed:
			c.progressAt = now
		}
		left := min(stallTimeout-now.Sub(c.progressAt), stallLimit-now.Sub(c.shortSince))
		if left <= 0 {
			c.paused = true
			c.shortSince = time.Time{}
			pause = append(pause, c.partition)
		} else {
			if !held || left < wait {
				wait = left
			}
			held = true
		}
		c.mu.Unlock()
	}
	clear(behind)
	s.behind = behind[:0]
	s.mu.Unlock()
	if len(pause) > 0 {
		s.pauses.Add(int64(len(pause)))
		s.cl.PauseFetchPartitions(map[string][]int32{s.topic: pause})
	}
	if len(resume) > 0 {
		s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: resume})
	}
	switch {
	case held:
		return 0, wait
	case claims > 0 && !room:
		return 0, stallTimeout // woken sooner by signalRoom when a claim has room again
	}
	return pollAll, 0
}

// lowWater is a quarter of the buffer (at least 1): a paused claim resumes at or below it, and a poll
// waits until every unpaused claim has at least that much room.
func (s *subscription) lowWater() int { return lowWater(s.maxBuf) }

// waitRoom waits until a claim signals room, d passes or ctx is done.
func (s *subscription) waitRoom(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.room:
	case <-t.C:
	case <-ctx.Done():
	}
}

// signalRoom tells a waiting poll loop that a claim's buffer has room again. It never blocks.
func (s *subscription) signalRoom() {
	select {
	case s.room <- struct{}{}:
	default:
	}
}

// wake ends the poll in progress and any wait for room, so that the loop re-evaluates paused
// partitions.
func (s *subscription) wake() {
	s.mu.Lock()
	if s.pollCancel != nil {
		s.pollCancel()
	}
	s.mu.Unlock()
	s.signalRoom()
}

// route hands one partition's fetched records to its claim. Undecodable records are logged (never
// their payload), counted and marked done, so they never block the partition; so are, silently, the
// events the group's Filter rejects. It runs on the poll
// loop only, which owns s.headers and s.batch.
func (s *subscription) route(p kgo.FetchTopicPartition) {
	if p.Topic != s.topic || len(p.Records) == 0 {
		return
	}
	s.mu.Lock()
	c := s.claims[p.Partition]
	s.mu.Unlock()
	if c == nil {
		// Not ours (any more): whoever owns the partition fetches it again from the committed offset.
		return
	}
	// Decode outside the claim's lock, so the feeder keeps handing out meanwhile.
	batch := s.batch[:0]
	for _, r := range p.Records {
		s.headers = s.headers[:0]
		for _, h := range r.Headers {
			s.headers = append(s.headers, event.Header{Key: h.Key, Value: h.Value})
		}
		e, err := event.FromKafka(r.Key, s.headers, r.Value)
		if err != nil {
			s.b.undecodable.Add(1)
			s.log.Warn("kafka record is not a CloudEvent; skipped", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "err", err)
		} else if f := s.group.Filter; f != nil && !f.Pass(e) {
			e = nil // not for this group: done without reaching the handler
		}
		batch = append(batch, channel.Record{Partition: r.Partition, Offset: r.Offset, Event: e})
	}
	c.mu.Lock()
	c.lastFetch = len(batch)
	for _, r := range batch {
		c.tracker.Track(r.Offset)
		if r.Event == nil {
			c.tracker.Done(r.Offset)
			continue
		}
		if len(c.pending) == 0 && len(c.queue) < s.maxBuf {
			c.queue = append(c.queue, r)
		} else {
			c.pending = append(c.pending, r) // beyond the buffer: moved in as the handler takes records
		}
	}
	queued := int64(len(c.queue))
	c.mu.Unlock()
	clear(batch)
	s.batch = batch[:0]
	if queued > s.maxQueued.Load() {
		s.maxQueued.Store(queued) // only the poll loop writes
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// onAssigned runs when partitions are assigned, after their committed offsets are fetched and before
// fetching starts. It starts one claim per partition. A partition without a commit (negative offset:
// the reset to its start) gets a claim whose commit point is set by its first record.
func (s *subscription) onAssigned(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	<-s.clReady
	parts := offsets[s.topic]
	var replaced []*claim
	assigned := make([]int32, 0, len(parts))
	defer func() {
		// Outside s.mu: a stopping feeder may need s.mu to wake the poll loop. A partition this member
		// paused before it was last revoked is still paused in the client: resume it for its new claim.
		stopAll(replaced)
		if len(assigned) > 0 {
			s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: assigned})
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return offsets, nil
	}
	for p, o := range parts {
		start := o.EpochOffset().Offset
		committed := start
		if start < 0 {
			committed = -1
		}
		if old := s.claims[p]; old != nil {
			old.cancel()
			replaced = append(replaced, old)
		}
		c := newClaim(s, p, start, committed)
		s.claims[p] = c
		assigned = append(assigned, p)
		c.start()
		s.log.Debug("kafka partition assigned", "partition", p, "start", start)
	}
	return offsets, nil
}

// onRevoked stops the revoked partitions' claims, waits for their handlers and commits what they
// finished. Revocation is gated with polling (BlockRebalanceOnPoll).
func (s *subscription) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	<-s.clReady
	claims := s.take(revoked[s.topic])
	stopAll(claims)
	_ = s.commit(ctx, claims) // logged; the next owner re-delivers what was not committed
}

// onLost stops the lost partitions' claims without committing: another member may own them already.
func (s *subscription) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	stopAll(s.take(lost[s.topic]))
}

// take removes and returns the claims of partitions.
func (s *subscription) take(partitions []int32) []*claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*claim, 0, len(partitions))
	for _, p := range partitions {
		if c := s.claims[p]; c != nil {
			out = append(out, c)
			delete(s.claims, p)
		}
	}
	return out
}

// shutdown stops every claim and commits what is done; later assignments start no claims.
func (s *subscription) shutdown() {
	s.mu.Lock()
	s.closing = true
	claims := make([]*claim, 0, len(s.claims))
	for p, c := range s.claims {
		claims = append(claims, c)
		delete(s.claims, p)
	}
	s.mu.Unlock()
	stopAll(claims)
	// The loop context is done by now; the final commit gets a context of its own (commit bounds it).
	// Close reports its error after the loop has exited.
	s.closeErr = s.commit(context.Background(), claims)
}

func (s *subscription) snapshot() []*claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*claim, 0, len(s.claims))
	for _, c := range s.claims {
		out = append(out, c)
	}
	return out
}

// commit commits the commit point of each claim that moved since its last commit. Failures are
// logged and returned: the next commit retries, and at worst records are delivered again
// (at-least-once).
func (s *subscription) commit(ctx context.Context, claims []*claim) error {
	offsets := make(map[int32]kgo.EpochOffset)
	for _, c := range claims {
		c.mu.Lock()
		if cp := c.tracker.Commit(); cp >= 0 && cp > c.committed {
			offsets[c.partition] = kgo.EpochOffset{Epoch: -1, Offset: cp}
		}
		c.mu.Unlock()
	}
	if len(offsets) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	var failed error
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				failed = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
						failed = perr
						delete(offsets, p.Partition)
					}
				}
			}
		})
	if failed != nil {
		s.log.Warn("kafka offset commit failed", "err", failed)
		failed = fmt.Errorf("kafka: commit offsets of group %s: %w: %w", s.groupName, channel.ErrUnavailable, failed)
	}
	for _, c := range claims {
		if o, ok := offsets[c.partition]; ok {
			c.mu.Lock()
			if o.Offset > c.committed {
				c.committed = o.Offset
			}
			c.mu.Unlock()
		}
	}
	return failed
}

// claim is one assigned partition. The poll loop appends to queue; the handler takes queued records
// with Next (channel.Puller), or, once it asks for Records, a feeder goroutine hands them to it through
// the unbuffered records channel. Either way a revoked claim stops handing out at once.
type claim struct {
	s         claimOwner
	partition int32
	records   chan channel.Record
	ctx       context.Context
	cancel    context.CancelFunc
	notify    chan struct{} // the queue has grown

	mu    sync.Mutex
	queue []channel.Record // fetched, not yet handed out; at most maxBuf
	// pending holds, in offset order after queue, what a poll returned for the partition beyond the
	// buffer's room; it moves into queue as records are taken (see pollSize). Always empty in a fanout.
	pending    []channel.Record
	paused     bool      // fetching is paused; owned by the poll loop
	shortSince time.Time // since when records pending have held polling back; owned by the poll loop
	progressAt time.Time // when the poll loop last saw records taken while some were pending; owned by it
	takenSeen  uint64    // taken as the poll loop last saw it; owned by the poll loop
	lastFetch  int       // records the last poll that had any for the partition routed here; set by route
	taken      uint64    // records handed out
	tracker    *channel.OffsetTracker
	committed  int64 // last committed offset; -1 when none is known
	// finishing: the claim hands out no more records (see finish); finished is closed, and then
	// nil, once every record handed out is done.
	finishing bool
	finished  chan struct{}

	// feeding starts the feeder when the handler asks for Records, or, when the handler returns
	// without having asked, closes records and feederDone in its place.
	feeding     sync.Once
	feederDone  chan struct{}
	handlerDone chan struct{}
}

var _ channel.Puller = (*claim)(nil)

// claimOwner is what a claim needs of whoever feeds it: a subscription, or a member of a fanout.
type claimOwner interface {
	channelRef() channel.Ref
	handle(channel.Claim)
	bufSize() int
	// wake ends the poll in progress, so that paused partitions are looked at again.
	wake()
	// signalRoom tells a poll loop waiting for room that a claim has some again.
	signalRoom()
}

func (s *subscription) channelRef() channel.Ref { return s.group.Channel }
func (s *subscription) handle(cl channel.Claim) { s.handler(cl) }
func (s *subscription) bufSize() int            { return s.maxBuf }

// lowWater is a quarter of a claim buffer of size n (at least 1).
func lowWater(n int) int { return max(n/4, 1) }

func newClaim(s claimOwner, partition int32, start, committed int64) *claim {
	ctx, cancel := context.WithCancel(context.Background())
	return &claim{
		s:           s,
		partition:   partition,
		records:     make(chan channel.Record),
		ctx:         ctx,
		cancel:      cancel,
		notify:      make(chan struct{}, 1),
		tracker:     channel.NewOffsetTracker(start),
		committed:   committed,
		feederDone:  make(chan struct{}),
		handlerDone: make(chan struct{}),
	}
}

func (c *claim) Channel() channel.Ref     { return c.s.channelRef() }
func (c *claim) Partition() int32         { return c.partition }
func (c *claim) Context() context.Context { return c.ctx }

// Records starts the feeder (see feed) on its first call and returns the channel it feeds.
func (c *claim) Records() <-chan channel.Record {
	c.feeding.Do(func() { go c.feed() })
	return c.records
}

// MarkDone marks the record at offset done. Safe for concurrent use; unknown or repeated offsets are
// ignored.
func (c *claim) MarkDone(offset int64) {
	c.mu.Lock()
	c.tracker.Done(offset)
	if c.finishing {
		c.checkFinished()
	}
	c.mu.Unlock()
}

// finishAll stops claims handing out records (Next answers none, Records is closed) and waits, at
// most wait, until every record each handed out is done or its handler has returned. A claim given
// up by choice (its member detached from a shared read) so lets its deliveries in flight end rather
// than abandoning them, which would have them delivered again. The caller stops the claims after
// (stopAll); whatever is still in flight then is abandoned, as on a revoke.
func finishAll(claims []*claim, wait time.Duration) {
	for _, c := range claims {
		c.mu.Lock()
		c.finishing = true
		c.finished = make(chan struct{})
		c.checkFinished()
		c.mu.Unlock()
		select { // wakes a Next or a feeder waiting for records
		case c.notify <- struct{}{}:
		default:
		}
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for _, c := range claims {
		c.mu.Lock()
		finished := c.finished
		c.mu.Unlock()
		if finished == nil {
			continue
		}
		select {
		case <-finished:
		case <-c.handlerDone:
		case <-c.ctx.Done():
		case <-deadline.C:
			return
		}
	}
}

// checkFinished closes c.finished once every record handed out is done: what the tracker still
// waits for is only what is queued or pending, never handed out (c.mu held).
func (c *claim) checkFinished() {
	if c.finished != nil && c.tracker.Pending() <= len(c.queue)+len(c.pending) {
		close(c.finished)
		c.finished = nil
	}
}

// start runs the handler (which starts the feeder if it asks for Records).
func (c *claim) start() {
	go func() {
		defer close(c.handlerDone)
		c.s.handle(c)
		c.feeding.Do(func() {
			close(c.records)
			close(c.feederDone)
		})
	}()
}

// stopAll cancels every claim first (closing Records and cancelling Context at once for all of them),
// then waits for each handler to return, so that handlers wind down concurrently.
func stopAll(claims []*claim) {
	for _, c := range claims {
		c.cancel()
	}
	for _, c := range claims {
		<-c.feederDone
		<-c.handlerDone
	}
}

// Next takes the next queued record, waiting for the poll loop to queue one when there is none (see
// channel.Puller). It tells the poll loop about room as the feeder does (see took).
func (c *claim) Next(ctx context.Context) (channel.Record, bool) {
	for {
		c.mu.Lock()
		if c.ctx.Err() != nil || c.finishing {
			c.mu.Unlock()
			return channel.Record{}, false
		}
		if len(c.queue) > 0 {
			r := c.queue[0]
			c.took()
			return r, true
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.ctx.Done():
			return channel.Record{}, false
		case <-ctx.Done():
			return channel.Record{}, false
		}
	}
}

// took removes the first queued record, which has been handed out, and unlocks c.mu (held on entry).
// Whenever the buffer has room for a poll again, or its pending list stops holding polls back, it
// tells the poll loop (which may be waiting for that); when it drains to a quarter while fetching is paused, it also ends the poll in progress, so
// that fetching resumes.
func (c *claim) took() {
	c.taken++
	c.queue[0] = channel.Record{}
	c.queue = c.queue[1:]
	// drained: the last pending record moved into the queue, or the pending list has just come
	// within one fetch (see pollSize); either may let a held poll go.
	drained := false
	if len(c.pending) > 0 {
		c.queue = append(c.queue, c.pending[0])
		c.pending[0] = channel.Record{}
		c.pending = c.pending[1:]
		drained = len(c.pending) == c.lastFetch
		if len(c.pending) == 0 {
			drained, c.pending = true, nil
		}
	}
	buffered, paused := len(c.queue)+len(c.pending), c.paused
	c.mu.Unlock()
	low := lowWater(c.s.bufSize())
	switch {
	case paused && buffered <= low:
		c.s.wake()
	case !paused && (drained || buffered == c.s.bufSize()-low):
		c.s.signalRoom()
	}
}

// feed hands queued records to the handler in offset order through Records until the claim is
// cancelled or finishing, then closes Records.
func (c *claim) feed() {
	defer close(c.feederDone)
	defer close(c.records)
	for {
		c.mu.Lock()
		if c.finishing {
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.notify:
				continue
			case <-c.ctx.Done():
				return
			}
		}
		r := c.queue[0]
		c.mu.Unlock()
		select {
		case c.records <- r:
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		c.took()
	}
}

// fetchCounter counts the records the client decodes from fetch responses. Compared with the records
// handed out it shows how much was fetched more than once (a paused partition's buffered records are
// dropped by the client and fetched again after the resume).
type fetchCounter struct{ n *atomic.Int64 }

var _ kgo.HookFetchBatchRead = fetchCounter{}

func (f fetchCounter) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	f.n.Add(int64(m.NumRecords))
}
