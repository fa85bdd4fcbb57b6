package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// A fanout reads, once for all the groups of one Share key in this process, every topic those groups
// are on: the unordered subscriptions of every channel (Share key "subscriptions") in one reader, the
// triggers of every broker ("triggers") in another. So N groups on M channels cost one client (one
// group membership, one heartbeat, one fetch in flight per broker, one metadata refresh) and one fetch
// and one decode per record, not N clients and N decodes.
//
//   - The reader is a consumer group of its own (the Share key's group, see shareGroupName) that only
//     splits the partitions of its topics among the gateway replicas; it never commits. A topic joins
//     the read with its first member (AddConsumeTopics) and leaves it topicLeaveDelay after its last
//     (a channel deleted, its last subscription removed: PurgeTopicsFromConsuming); with
//     cooperative-sticky balancing neither takes the other topics' partitions away from the reader.
//   - Each group attached to it (a member) keeps its own position: a claim per assigned partition
//     of its channel's topic, with its own OffsetTracker, committed to the member's own consumer
//     group every second with a plain offset commit (the group has no members of its own while
//     attached). Its Filter runs on the reader's goroutine, so a record a member does not want costs
//     it no queue, no goroutine and no handler call.
//   - A member that cannot keep up and holds back another that could (a claim short of room for
//     stallTimeout while another member has room) is detached: its claims stop, what it finished is
//     committed, and from then on it runs as an ordinary subscription of its own group (subscribe),
//     resuming from those commits. The others never wait for it long. So is a slow member alone on
//     the read (a read of its own drains a backlog faster, and the shared read stops with it).
//     Members all as far behind hold nobody back and stay: the read waits for room in their claims,
//     as a read of their own would, instead of making a client for each.
//   - A member that joins while the reader has already passed its start reads on its own too, and so
//     does one whose group turns out to have members elsewhere (another replica detached it):
//     commits to such a group fail, and it joins them instead.
type fanout struct {
	b         *Backend
	share     string
	groupName string
	log       *slog.Logger
	cl        *kgo.Client
	// adm is cl as an admin client: members commit through it, so that the commits of different
	// fanouts travel on their own connections instead of queueing on the backend's one.
	adm      *kadm.Client
	clReady  chan struct{}
	stop     context.CancelFunc
	loopDone chan struct{}

	// topicsMu orders the changes of the client's topics (syncTopics); consumed is what the client
	// was last told to read. Never taken under mu.
	topicsMu sync.Mutex
	consumed map[string]bool
	// leaving is the pending syncTopics of topics that lost their last member (see leave); guarded by
	// mu.
	leaving *time.Timer

	mu         sync.Mutex
	members    map[*member]struct{}
	topics     map[string]*readTopic // the topics read: with members, or with none until purged
	closing    bool
	pollCancel context.CancelFunc

	room    chan struct{}
	headers []event.Header // scratch of route, owned by the loop
}

// readTopic is one topic a fanout reads: its members (none while the purge of a topic that lost its
// last member is pending) and, per assigned partition, the offset the reader routes next (-1 from the
// partition's start, nextUnknown from its end).
type readTopic struct {
	members map[*member]struct{}
	next    map[int32]int64
}

// nextUnknown is readTopic.next for a partition read from its end before its first record: past any
// member's start, so that a member attaching then reads on its own.
const nextUnknown = math.MaxInt64

// member is one group served by a fanout. It is the channel.Subscription its Subscribe returned.
type member struct {
	f         *fanout
	group     channel.Group
	groupName string
	topic     string // the topic of the member's channel
	handler   channel.ClaimHandler
	log       *slog.Logger

	// Guarded by f.mu.
	claims   map[int32]*claim
	attached bool

	// life ends when the member is closed: a detach starting its own read (which may retry for a
	// while when the brokers do not answer) gives up then, rather than holding Close up.
	life    context.Context
	endLife context.CancelFunc

	// own is the subscription the member runs as once detached; ownErr why it could not start.
	ownMu  sync.Mutex
	own    channel.Subscription
	ownErr error
	closed bool

	closeOnce sync.Once
	closeErr  error
}

var _ channel.Subscription = (*member)(nil)

func (m *member) channelRef() channel.Ref { return m.group.Channel }
func (m *member) handle(cl channel.Claim) { m.handler(cl) }
func (m *member) bufSize() int            { return m.f.b.cfg.MaxBufferedPerPartition }
func (m *member) wake()                   { m.f.wake() }
func (m *member) signalRoom()             { m.f.signalRoom() }

// Without Config.SharedReadGroup, reader groups are named by the group template as if for a group
// named "_SHARE" in the namespace "_shared" (eventgate._shared._subscriptions,
// eventgate._shared._triggers by default): one per Share key for every channel and namespace, and,
// since Kubernetes names and namespaces cannot hold an underscore, never a subscription's or a
// trigger's group.
const (
	readerNamespace  = "_shared"
	readerNamePrefix = "_"
)

// shareGroupName is the reader's consumer group for Share key share: SHAREDREADGROUP.SHARE, else
// see readerNamespace.
func (b *Backend) shareGroupName(share string) (string, error) {
	if g := b.cfg.SharedReadGroup; g != "" {
		name := g + "." + share
		if err := validName(name); err != nil {
			return "", fmt.Errorf("kafka: shared read group for %s: %w", share, err)
		}
		return name, nil
	}
	return b.GroupName(channel.Group{Channel: channel.Ref{Namespace: readerNamespace, Name: readerNamespace},
		Name: readerNamePrefix + share})
}

// subscribeShared is Subscribe for a group with a Share key: it attaches the group to the key's
// fanout (started on first use, and reading the group's topic from then on), or runs it on its own
// when the group has live members (another replica reads it on its own, or one was killed and its
// session has not yet timed out: a plain commit to it would be refused, so what the shared read
// delivered would be delivered again) or when the fanout has already read past the group's start.
// The group's start is fixed before, as for any group.
func (b *Backend) subscribeShared(ctx context.Context, g channel.Group, h channel.ClaimHandler, topic, groupName string) (channel.Subscription, error) {
	if _, err := b.fixStart(ctx, groupName, topic, g.Start); err != nil {
		return nil, err
	}
	busy, err := b.groupHasMembers(ctx, groupName)
	if err != nil {
		return nil, err
	}
	commits, err := b.groupCommits(ctx, groupName, topic)
	if err != nil {
		return nil, err
	}
	f, err := b.fanoutFor(g.Share)
	if err != nil {
		return nil, err
	}
	m := newMember(f, g, h, topic, groupName)
	var own string
	switch {
	case busy:
		own = "kafka subscription's group has members on another replica (or one whose session has not timed out yet); the group reads on its own with them"
	case !f.attach(m, commits):
		own = "kafka shared read is past the group's start; the group reads on its own"
	}
	if own != "" {
		m.log.Info(own)
		err := m.runOwn(ctx)
		f.closeIfIdle() // it may have been started for m alone
		if err != nil {
			return nil, err
		}
	} else {
		f.syncTopics()
		m.log.Info("kafka subscription attached to the shared read", "topic", topic)
	}
	b.mu.Lock()
	b.members[m] = struct{}{}
	b.mu.Unlock()
	return m, nil
}

// newMember returns group g's member of fanout f, not attached yet.
func newMember(f *fanout, g channel.Group, h channel.ClaimHandler, topic, groupName string) *member {
	m := &member{f: f, group: g, groupName: groupName, topic: topic, handler: h, claims: map[int32]*claim{},
		log: f.b.log.With("channel", g.Channel.String(), "subscription", g.Name, "group", groupName, "share", g.Share)}
	m.life, m.endLife = context.WithCancel(context.Background())
	return m
}

// groupHasMembers reports whether group has members now (a group unknown to the broker has none).
func (b *Backend) groupHasMembers(ctx context.Context, group string) (bool, error) {
	described, err := b.admin.DescribeGroups(ctx, group)
	if err == nil {
		err = described.Error()
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return false, fmt.Errorf("kafka: describe group %s: %w: %w", group, channel.ErrUnavailable, err)
	}
	return len(described[group].Members) > 0, nil
}

// groupCommits returns group's committed offsets on topic (-1 for a partition without one is not
// listed: the caller treats a missing partition as "from its start").
func (b *Backend) groupCommits(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resp, err := b.admin.FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: fetch commits of group %s: %w: %w", group, channel.ErrUnavailable, err)
	}
	return commitsOn(resp, topic), nil
}

// commitsOn picks topic's valid committed offsets out of a fetch of a group's offsets.
func commitsOn(fetched kadm.OffsetResponses, topic string) map[int32]int64 {
	out := map[int32]int64{}
	for p, o := range fetched[topic] {
		if o.Err == nil && o.At >= 0 {
			out[p] = o.At
		}
	}
	return out
}

// fanoutFor returns the running fanout of share, starting it first when there is none. A new fanout's
// client reads no topic until syncTopics gives it its members' topics.
func (b *Backend) fanoutFor(share string) (*fanout, error) {
	b.mu.Lock()
	f, closed := b.fanouts[share], b.closed
	b.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("kafka: subscribe after Close: %w", channel.ErrUnavailable)
	case f != nil:
		return f, nil
	}
	groupName, err := b.shareGroupName(share)
	if err != nil {
		return nil, err
	}
	f = &fanout{b: b, share: share, groupName: groupName,
		log:     b.log.With("share", share, "group", groupName),
		clReady: make(chan struct{}), loopDone: make(chan struct{}), consumed: map[string]bool{},
		members: map[*member]struct{}{}, topics: map[string]*readTopic{}, room: make(chan struct{}, 1)}
	cl, err := kgo.NewClient(b.groupOpts(groupName, f, sharedFetchMaxWait)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: shared reader for %s: %w", groupName, err)
	}
	f.cl, f.adm = cl, kadm.NewClient(cl)
	close(f.clReady)
	b.mu.Lock()
	if other := b.fanouts[share]; other != nil || b.closed { // started meanwhile, or closing
		b.mu.Unlock()
		cl.Close()
		if other == nil {
			return nil, fmt.Errorf("kafka: subscribe after Close: %w", channel.ErrUnavailable)
		}
		return other, nil
	}
	var loopCtx context.Context
	loopCtx, f.stop = context.WithCancel(context.Background())
	go f.loop(loopCtx)
	b.fanouts[share] = f
	b.mu.Unlock()
	f.log.Info("kafka shared read started")
	return f, nil
}

// reads reports whether the fanout reads topic now.
func (f *fanout) reads(topic string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.topics[topic]
	return ok
}

// topicLeaveDelay is how long a topic that lost its last member stays in a shared read before it is
// purged. Leaves that come together (a reload removing channels, a gateway shutting down) then make
// one purge and one rebalance, or none when the read stops meanwhile with its last member; and a
// topic whose subscription is replaced (one removed, the next added) never leaves.
const topicLeaveDelay = time.Second

// leave schedules the purge of topics that lost their last member (see topicLeaveDelay).
func (f *fanout) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaving == nil && !f.closing {
		f.leaving = time.AfterFunc(topicLeaveDelay, f.syncTopics)
	}
}

// syncTopics brings the client's topics to those that have members: a topic's first member adds it
// (the client asks for metadata at once and rejoins the group with it), its last one's leaving
// purges it (the client forgets it and rejoins without it; cooperative-sticky revokes only its
// partitions). Calls are ordered, and each applies the state as it is when it runs, so concurrent
// attaches and leaves end with the client reading exactly the topics with members. A fanout with no
// member left is about to stop: its topics stay until it does.
func (f *fanout) syncTopics() {
	f.topicsMu.Lock()
	defer f.topicsMu.Unlock()
	f.mu.Lock()
	if f.leaving != nil {
		f.leaving.Stop()
		f.leaving = nil
	}
	closing := f.closing || len(f.members) == 0
	var add, drop []string
	for t, rt := range f.topics {
		switch {
		case len(rt.members) > 0 && !f.consumed[t]:
			add = append(add, t)
		case len(rt.members) == 0 && !closing:
			drop = append(drop, t)
			delete(f.topics, t) // routed no more; its partitions go with the purge's rebalance
		}
	}
	f.mu.Unlock()
	if closing {
		return
	}
	if len(drop) > 0 {
		var purge []string
		for _, t := range drop {
			if f.consumed[t] {
				purge = append(purge, t)
				delete(f.consumed, t)
			}
		}
		f.cl.PurgeTopicsFromConsuming(purge...)
		f.log.Info("kafka shared read: topics left", "topics", drop)
	}
	if len(add) > 0 {
		f.cl.AddConsumeTopics(add...)
		for _, t := range add {
			f.consumed[t] = true
		}
		f.log.Debug("kafka shared read: topics joined", "topics", add)
	}
}

// attach adds m with its group's commits, unless the reader has already routed past m's start on a
// partition it holds (m would miss those records): then it returns false and m runs on its own. The
// caller then calls syncTopics (m's topic may be new to the read).
func (f *fanout) attach(m *member, commits map[int32]int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	for other := range f.members {
		if other.groupName == m.groupName {
			// Two members of one group in one process split its partitions as members of the group
			// itself: both read on their own.
			if other.attached {
				other.attached = false
				go f.detach(other, "another member of its group started in this process")
			}
			return false
		}
	}
	rt := f.topics[m.topic]
	if rt != nil {
		for p, next := range rt.next {
			start, ok := commits[p]
			if next >= 0 && (!ok || start < next) {
				return false
			}
		}
	} else {
		rt = &readTopic{members: map[*member]struct{}{}, next: map[int32]int64{}}
		f.topics[m.topic] = rt
	}
	m.attached = true
	f.members[m] = struct{}{}
	rt.members[m] = struct{}{}
	for p := range rt.next {
		start := int64(-1)
		if o, ok := commits[p]; ok {
			start = o
		}
		m.startClaim(p, start)
	}
	return true
}

// remove takes m out of the fanout's members and its topic's (f.mu held), and returns its claims,
// taken from it. It reports whether m's topic has no member left (the caller then calls syncTopics).
func (f *fanout) remove(m *member) (claims []*claim, topicLeft bool) {
	m.attached = false
	claims = make([]*claim, 0, len(m.claims))
	for p, c := range m.claims {
		claims = append(claims, c)
		delete(m.claims, p)
	}
	delete(f.members, m)
	if rt := f.topics[m.topic]; rt != nil {
		delete(rt.members, m)
		topicLeft = len(rt.members) == 0
	}
	return claims, topicLeft
}

// startClaim starts m's claim of partition p from offset start (-1: from its first record). f.mu held.
func (m *member) startClaim(p int32, start int64) {
	c := newClaim(m, p, start, start)
	m.claims[p] = c
	c.start()
}

// onAssigned starts, for each assigned partition, a claim per attached member of its topic at the
// member's commit, and reads the partition from the lowest of them. The members' commits are fetched
// in one request per coordinator (FetchManyOffsets), again for any member that attached meanwhile.
// When ctx ends first (the session is revoked by the next rebalance, as each topic joining the read
// begins one) it starts nothing and returns ctx's error: the client then fetches these partitions'
// offsets again in its next session and calls onAssigned for them there.
func (f *fanout) onAssigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	<-f.clReady
	// Fetch the commits of every attached member of an assigned topic until none is missing; f.mu is
	// then held.
	commits := map[*member]map[int32]int64{}
	for {
		f.mu.Lock()
		var need []*member
		for t := range offsets {
			rt := f.topics[t]
			if rt == nil {
				continue
			}
			for m := range rt.members {
				if _, ok := commits[m]; m.attached && !ok {
					need = append(need, m)
				}
			}
		}
		if len(need) == 0 {
			break
		}
		f.mu.Unlock()
		groups := make([]string, 0, len(need))
		for _, m := range need {
			groups = append(groups, m.groupName)
		}
		fetched := f.b.admin.FetchManyOffsets(ctx, groups...)
		if err := ctx.Err(); err != nil {
			// The session ends (another rebalance began: a topic joined or left): the client fetches
			// these partitions' offsets again in the next session and calls back then.
			return nil, err
		}
		for _, m := range need {
			r, ok := fetched[m.groupName]
			if !ok || r.Err != nil {
				// Without its commits the member cannot be placed: it reads on its own.
				err := r.Err
				if !ok {
					err = errors.New("no answer")
				}
				f.log.Warn("kafka shared read: commits of a member unavailable; it reads on its own", "member", m.groupName, "err", err)
				go f.detach(m, "its commits could not be read")
				commits[m] = nil
				continue
			}
			commits[m] = commitsOn(r.Fetched, m.topic)
		}
	}
	defer f.mu.Unlock()
	if f.closing {
		return offsets, nil
	}
	out := make(map[string]map[int32]kgo.Offset, len(offsets))
	for t, parts := range offsets {
		rt := f.topics[t]
		if rt == nil {
			// Left meanwhile: its partitions go with the rebalance the purge began; until then the
			// reader reads them from their end, which is next to nothing.
			at := make(map[int32]kgo.Offset, len(parts))
			for p := range parts {
				at[p] = kgo.NewOffset().AtEnd()
			}
			out[t] = at
			continue
		}
		at := make(map[int32]kgo.Offset, len(parts))
		if len(rt.members) == 0 {
			// Its last member left and the purge is pending: read from the end, and let a member
			// that attaches meanwhile read on its own (the reader's position is not known yet).
			for p := range parts {
				at[p] = kgo.NewOffset().AtEnd()
				rt.next[p] = nextUnknown
			}
			out[t] = at
			continue
		}
		for p := range parts {
			low := int64(-1)
			first := true
			for m := range rt.members {
				c, ok := commits[m]
				if !m.attached || !ok || c == nil {
					continue
				}
				start, ok := c[p]
				if !ok {
					start = -1
				}
				if old := m.claims[p]; old != nil { // reassigned while still held: replace
					old.cancel()
				}
				m.startClaim(p, start)
				if first || start < low {
					low, first = start, false
				}
			}
			if first || low < 0 {
				at[p] = kgo.NewOffset().AtStart()
				low = -1
			} else {
				at[p] = kgo.NewOffset().At(low)
			}
			rt.next[p] = low
		}
		out[t] = at
	}
	return out, nil
}

// onRevoked stops every member's claims of the revoked partitions and commits what they finished.
func (f *fanout) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	<-f.clReady
	for m, claims := range f.take(revoked) {
		stopAll(claims)
		_ = m.commit(ctx, claims)
	}
}

// onLost stops the lost partitions' claims without committing: another replica may read them now.
func (f *fanout) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	for _, claims := range f.take(lost) {
		stopAll(claims)
	}
}

// take removes partitions from the reader and returns each member's claims of them.
func (f *fanout) take(partitions map[string][]int32) map[*member][]*claim {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[*member][]*claim{}
	for t, ps := range partitions {
		rt := f.topics[t]
		if rt == nil {
			continue
		}
		for _, p := range ps {
			delete(rt.next, p)
			for m := range rt.members {
				if c := m.claims[p]; c != nil {
					out[m] = append(out[m], c)
					delete(m.claims, p)
				}
			}
		}
	}
	return out
}

// loop polls and routes like a subscription's loop, committing every member's progress every
// commitInterval, also while it waits for room. A poll takes no more records than every attached
// claim has room for (see pollSize for when a member short of room is detached instead).
//
// The commits run beside the loop, one round at a time: every member is a consumer group of its
// own, one OffsetCommit each, and the broker answers one connection's requests one after the other,
// so at 1,000 busy members a round takes most of a second, which held every channel's records back
// (p99 1 s at 1,000 events/s over 1,000 channels). A round still running when the next is due is
// not doubled: the interval stretches instead. A round may now overlap a revocation; it commits
// only what its members finished, so at worst an offset another replica has since moved on is
// committed again (records delivered again, never skipped).
func (f *fanout) loop(ctx context.Context) {
	defer close(f.loopDone)
	var commits sync.WaitGroup
	defer commits.Wait() // before loopDone: the client closes after it
	committing := make(chan struct{}, 1)
	lastCommit := time.Now()
	commitDue := func() {
		if time.Since(lastCommit) < commitInterval {
			return
		}
		select {
		case committing <- struct{}{}:
			commits.Go(func() {
				defer func() { <-committing }()
				f.commitAll(ctx)
			})
		default: // the last round is still committing
		}
		lastCommit = time.Now()
	}
	for {
		n, wait := f.pollSize(time.Now())
		if n == 0 && ctx.Err() == nil {
			// Waiting for room may now last as long as a slow member alone on the read takes to make
			// some: what its handler finished meanwhile is committed on time all the same.
			commitDue()
			t := time.NewTimer(wait)
			select {
			case <-f.room:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		pollCtx, cancel := f.pollContext(ctx, lastCommit)
		f.mu.Lock()
		f.pollCancel = cancel
		f.mu.Unlock()
		fetches := f.cl.PollRecords(pollCtx, max(n, 1))
		f.mu.Lock()
		f.pollCancel = nil
		f.mu.Unlock()
		cancel()
		if fetches.IsClientClosed() {
			return
		}
		failed := false
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			failed = true
			f.log.Warn("kafka fetch error", "topic", topic, "partition", p, "err", err)
		})
		got := fetches.NumRecords()
		fetches.EachPartition(f.route)
		if ctx.Err() != nil {
			f.cl.AllowRebalance()
			return
		}
		commitDue()
		f.cl.AllowRebalance()
		if failed && got == 0 && !sleepCtx(ctx, errorBackoff) {
			return
		}
	}
}

// pollContext is the context of the next poll, as for a subscription (see subscription.pollContext):
// it ends at the next commit while an attached member has records to commit, else only with ctx or
// wake.
func (f *fanout) pollContext(ctx context.Context, lastCommit time.Time) (context.Context, context.CancelFunc) {
	f.mu.Lock()
	busy := false
	for m := range f.members {
		if !m.attached {
			continue
		}
		for _, c := range m.claims {
			c.mu.Lock()
			busy = c.tracker.Pending() > 0 || c.tracker.Commit() > c.committed
			c.mu.Unlock()
			if busy {
				break
			}
		}
		if busy {
			break
		}
	}
	f.mu.Unlock()
	if !busy {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, lastCommit.Add(commitInterval))
}

// pollSize is the least room among attached claims (the whole buffer when there are none). A claim
// short of room makes the loop wait (n == 0) for room, a poll taking no more than every claim can
// hold (backpressure, as on a read of its own). Its member is detached when the wait holds back
// another attached member that has room: a claim that has been short for stallTimeout while one had
// room has its member detached, and the others go on.
//
// A member beside members as far behind as it is holds nobody back: when they all drain a backlog
// (their subscriber was down, say), their buffers are full all the time, and detaching each (as when
// any short claim was detached after stallTimeout) moved every one to a client of its own, one more
// connection and group join per member: with 1,000 subscriptions, 1,000 clients. They stay. Whether
// a member with room has records to read is not known while the read waits (the fetch that would
// tell is the one held back), so room alone counts.
//
// A member alone on the read is detached as before, after stallTimeout short of room: the shared
// read stops with it, so the move costs no client, and its own read drains a backlog faster (one
// subscription on a 3-partition backlog: 0.91× the bare consume-and-POST loop on its own read,
// 0.76-0.82× left on the shared read, at 1.2× the CPU per event).
//
// A member short of room in any of its claims is not held back by the others: the read waits for it
// as much as for them (members draining a backlog on different partitions of one topic are each
// short somewhere while each has room elsewhere).
func (f *fanout) pollSize(now time.Time) (n int, wait time.Duration) {
	size := f.b.cfg.MaxBufferedPerPartition
	low := lowWater(size)
	n = size
	// roomy counts the attached members with room in every claim (a member short of room anywhere
	// holds the read back itself: it is not held back by another); short lists the claims short of
	// room with their members.
	type shortClaim struct {
		c *claim
		m *member
	}
	roomy, attachedN := 0, 0
	var short []shortClaim
	f.mu.Lock()
	for m := range f.members {
		if !m.attached {
			continue
		}
		attachedN++
		first := len(short)
		for _, c := range m.claims {
			c.mu.Lock()
			free := size - len(c.queue)
			if free >= low {
				c.shortSince = time.Time{} // holds nothing back; short again later, it starts anew
			}
			c.mu.Unlock()
			if free >= low {
				n = min(n, free)
			} else {
				short = append(short, shortClaim{c: c, m: m})
			}
		}
		if len(short) == first {
			roomy++
		}
	}
	slow := map[*member]bool{}
	wait = stallTimeout // woken sooner by signalRoom when a claim has room again
	for _, s := range short {
		s.c.mu.Lock()
		switch {
		case roomy == 0 && attachedN > 1:
			s.c.shortSince = time.Time{} // holds nobody back: the read waits for its room
		case s.c.shortSince.IsZero():
			s.c.shortSince = now
		case now.Sub(s.c.shortSince) >= stallTimeout:
			slow[s.m] = true
		default:
			wait = min(wait, stallTimeout-now.Sub(s.c.shortSince))
		}
		s.c.mu.Unlock()
	}
	for m := range slow {
		m.attached = false // routed no more from now on; detach finishes the move
	}
	f.mu.Unlock()
	for m := range slow {
		why := "it could not keep up with the shared read, and held back others that could"
		if attachedN == 1 {
			why = "it could not keep up with the shared read, alone on it (its own read drains faster)"
		}
		go f.detach(m, why)
	}
	switch {
	case len(slow) > 0:
		return 0, 0 // look again without the slow members
	case len(short) > 0:
		return 0, wait
	}
	return max(n, 1), 0
}

// route decodes one partition's records once and hands each to every attached member of its topic
// whose claim wants it: at or past the member's start and passed by its Filter. Records a member
// skips are done for it at once.
func (f *fanout) route(p kgo.FetchTopicPartition) {
	if len(p.Records) == 0 {
		return
	}
	f.mu.Lock()
	_, reading := f.topics[p.Topic]
	f.mu.Unlock()
	if !reading {
		return // left the read meanwhile
	}
	recs := make([]channel.Record, 0, len(p.Records))
	for _, r := range p.Records {
		f.headers = f.headers[:0]
		for _, h := range r.Headers {
			f.headers = append(f.headers, event.Header{Key: h.Key, Value: h.Value})
		}
		e, err := event.FromKafka(r.Key, f.headers, r.Value)
		if err != nil {
			f.b.undecodable.Add(1)
			f.log.Warn("kafka record is not a CloudEvent; skipped", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "err", err)
		}
		recs = append(recs, channel.Record{Partition: r.Partition, Offset: r.Offset, Event: e})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rt := f.topics[p.Topic]
	if rt == nil {
		return // left meanwhile
	}
	if _, ok := rt.next[p.Partition]; !ok {
		return // revoked meanwhile
	}
	rt.next[p.Partition] = recs[len(recs)-1].Offset + 1
	for m := range rt.members {
		c := m.claims[p.Partition]
		if !m.attached || c == nil {
			continue
		}
		filter := m.group.Filter
		queued := false
		c.mu.Lock()
		for _, r := range recs {
			if c.committed >= 0 && r.Offset < c.committed {
				continue // before the member's start
			}
			c.tracker.Track(r.Offset)
			if r.Event == nil || (filter != nil && !filter.Pass(r.Event)) {
				c.tracker.Done(r.Offset)
				continue
			}
			c.queue = append(c.queue, r)
			queued = true
		}
		c.mu.Unlock()
		if queued {
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}
}

// commitAll commits every attached member's progress; a member whose commit its group refuses (it
// has members elsewhere) is detached to join them.
func (f *fanout) commitAll(ctx context.Context) {
	f.mu.Lock()
	work := map[*member][]*claim{}
	for m := range f.members {
		if !m.attached {
			continue
		}
		for _, c := range m.claims {
			work[m] = append(work[m], c)
		}
	}
	f.mu.Unlock()
	// Concurrently: one after the other, 1,000 members' commits held the read for a second.
	sem := make(chan struct{}, commitParallel)
	var wg sync.WaitGroup
	for m, claims := range work {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := m.commit(ctx, claims); errors.Is(err, errGroupHasMembers) {
				f.mu.Lock()
				m.attached = false
				f.mu.Unlock()
				go f.detach(m, "its group has members on another replica")
			}
		})
	}
	wg.Wait()
}

// commitParallel bounds the member commits commitAll has in flight at once.
const commitParallel = 32

// errGroupHasMembers marks a plain commit refused because the group has active members.
var errGroupHasMembers = errors.New("the group has active members")

// commit commits the commit point of each claim that moved since its last commit, with a plain
// offset commit to the member's group.
func (m *member) commit(ctx context.Context, claims []*claim) error {
	offsets := kadm.Offsets{}
	for _, c := range claims {
		c.mu.Lock()
		if cp := c.tracker.Commit(); cp >= 0 && cp > c.committed {
			offsets.Add(kadm.Offset{Topic: m.topic, Partition: c.partition, At: cp, LeaderEpoch: -1})
		}
		c.mu.Unlock()
	}
	if len(offsets) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	resp, err := m.f.adm.CommitOffsets(ctx, m.groupName, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
			err = fmt.Errorf("%w: %w", errGroupHasMembers, err)
		}
		m.log.Warn("kafka offset commit failed", "err", err)
		return fmt.Errorf("kafka: commit offsets of group %s: %w: %w", m.groupName, channel.ErrUnavailable, err)
	}
	resp.Each(func(o kadm.OffsetResponse) {
		for _, c := range claims {
			if c.partition == o.Partition && o.Err == nil {
				c.mu.Lock()
				if o.At > c.committed {
					c.committed = o.At
				}
				c.mu.Unlock()
			}
		}
	})
	return nil
}

// detachGrace bounds how long a member leaving the shared read waits for its deliveries in flight.
const detachGrace = 5 * time.Second

// detach moves m off the shared read: its claims hand out no more records, its deliveries in flight
// end (for detachGrace at most, see finishAll), what it finished is committed, and it runs as an
// ordinary subscription of its own group from there. Its records the reader routes meanwhile are
// not its any more (m.attached is false).
func (f *fanout) detach(m *member, why string) {
	f.mu.Lock()
	if _, ok := f.members[m]; !ok { // detached or closed already
		f.mu.Unlock()
		return
	}
	claims, topicLeft := f.remove(m)
	f.mu.Unlock()
	if topicLeft {
		f.leave()
	}
	finishAll(claims, detachGrace)
	stopAll(claims)
	_ = m.commit(context.Background(), claims) // what is not committed is delivered again
	m.log.Info("kafka subscription detached from the shared read; it reads on its own", "why", why)
	// Its own read must start, or the subscription delivers nothing until the next restart: the
	// start is retried while the brokers do not answer (it already waits adminWaitTimeout each time),
	// until the member is closed.
	for wait := time.Second; ; wait = min(2*wait, ownRetryMax) {
		err := m.runOwn(m.life)
		if err == nil || m.life.Err() != nil {
			break
		}
		m.log.Error("kafka subscription could not start on its own; retrying", "err", err, "retry_in", wait)
		if !sleepCtx(m.life, wait) {
			break
		}
	}
	f.closeIfIdle()
}

// ownRetryMax bounds the pause between a detached member's attempts to start its own read.
const ownRetryMax = 30 * time.Second

// runOwn starts m's own subscription, unless m is closed.
func (m *member) runOwn(ctx context.Context) error {
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	if m.closed {
		return nil
	}
	s, err := m.f.b.subscribeOwn(ctx, m.group, m.handler, m.topic, m.groupName)
	if err != nil {
		// Not s: a nil *subscription in m.own is a non-nil interface, which Close then called (a
		// panic, for a member whose own read could not start, at its removal or the shutdown).
		m.ownErr = err
		return err
	}
	m.own = s
	return nil
}

// Close stops m: attached, its claims (waiting for their handlers) with a final commit, and, when m
// was its topic's last member, the topic's read; detached, its own subscription. The fanout stops
// with its last member.
func (m *member) Close() error {
	m.closeOnce.Do(func() {
		m.endLife() // a detach starting the member's own read gives up (see runOwn)
		f := m.f
		f.mu.Lock()
		var claims []*claim
		topicLeft := false
		if _, ok := f.members[m]; ok {
			claims, topicLeft = f.remove(m)
		}
		f.mu.Unlock()
		stopAll(claims)
		errs := []error{m.commit(context.Background(), claims)}
		if topicLeft {
			f.leave()
		}
		m.ownMu.Lock()
		m.closed = true
		own := m.own
		m.ownMu.Unlock()
		if own != nil {
			errs = append(errs, own.Close())
		}
		f.b.mu.Lock()
		delete(f.b.members, m)
		f.b.mu.Unlock()
		f.closeIfIdle()
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// closeIfIdle stops the fanout when it has no member left.
func (f *fanout) closeIfIdle() {
	f.mu.Lock()
	if len(f.members) > 0 || f.closing {
		f.mu.Unlock()
		return
	}
	f.closing = true
	if f.leaving != nil {
		f.leaving.Stop()
		f.leaving = nil
	}
	f.mu.Unlock()
	f.topicsMu.Lock() // a syncTopics under way finishes before the client closes
	f.topicsMu.Unlock()
	f.b.mu.Lock()
	if f.b.fanouts[f.share] == f {
		delete(f.b.fanouts, f.share)
	}
	f.b.mu.Unlock()
	f.stop()
	<-f.loopDone
	f.cl.CloseAllowingRebalance()
	f.log.Info("kafka shared read stopped")
}

// wake ends the poll in progress.
func (f *fanout) wake() {
	f.mu.Lock()
	if f.pollCancel != nil {
		f.pollCancel()
	}
	f.mu.Unlock()
	f.signalRoom()
}

func (f *fanout) signalRoom() {
	select {
	case f.room <- struct{}{}:
	default:
	}
}
