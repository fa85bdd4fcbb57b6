package redrive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// Source is what a job reads its channel through.
type Source interface {
	channel.Tailer
	channel.Spanner
}

// Sender sends a redriven event. dest is the knativeerrordest the dead letter carried ("" when it
// had none); the event sent (ev) no longer carries it. Send returns nil once the event was accepted
// where it went (for a subscription: delivered to its subscriber). It blocks until then or until
// ctx is done. Safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, to *channel.Ref, dest string, ev *event.Event) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, to *channel.Ref, dest string, ev *event.Event) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, to *channel.Ref, dest string, ev *event.Event) error {
	return f(ctx, to, dest, ev)
}

// Deps is what a Manager runs on.
type Deps struct {
	// Source reads the dead-letter channels. Required.
	Source Source
	// Sender sends the events. Required.
	Sender Sender
	// Store keeps jobs across restarts; nil keeps them in the process only.
	Store Store
	// Durable reports whether ch keeps its events across a restart; nil means none does.
	Durable func(ch channel.Ref) bool
	// Log receives structured logs; nil discards them.
	Log *slog.Logger
}

// ErrNotFound: no job with that id.
var ErrNotFound = errors.New("no such redrive job")

// Manager runs redrive jobs. Its methods are safe for concurrent use.
type Manager struct {
	d   Deps
	log *slog.Logger

	// stopCtx ends at Close: jobs stop taking events. abandonCtx ends when Close gives up waiting:
	// the send in progress is abandoned (and repeated after a restart).
	stopCtx    context.Context
	stop       context.CancelFunc
	abandonCtx context.Context
	abandon    context.CancelFunc

	mu     sync.Mutex
	jobs   map[string]*job
	closed bool
	wg     sync.WaitGroup
}

// job is one job. Its status is guarded by mu; only its goroutine changes Positions and counters.
type job struct {
	p      parsed
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine ends (already closed for a job that is not running)

	mu           sync.Mutex
	st           Status
	cancelled    bool
	lastSaved    time.Time
	savedCounter int64
}

// NewManager returns a Manager on d.
func NewManager(d Deps) *Manager {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{d: d, log: d.Log, jobs: make(map[string]*job)}
	m.stopCtx, m.stop = context.WithCancel(context.Background())
	m.abandonCtx, m.abandon = context.WithCancel(context.Background())
	return m
}

// Start validates r, fixes the job's end (the end of each partition of r.From now) and starts the
// job in the background. It returns the new job's status as it starts, at once. Errors: ErrInvalid for a bad
// request, channel.ErrNotFound for an unknown channel, others for a backend that cannot answer.
func (m *Manager) Start(ctx context.Context, r Request) (Status, error) {
	p, err := r.parse()
	if err != nil {
		return Status{}, err
	}
	start := channel.TailStart{Earliest: r.Since.IsZero(), Time: r.Since}
	spans, err := m.d.Source.Spans(ctx, p.from, start)
	if _, isBroker := p.from.Broker(); errors.Is(err, channel.ErrNotFound) && !isBroker {
		// NAMESPACE/NAME may name a broker: its dead letters are its channel's. The job keeps the
		// channel's own name, so that a resumed job reads the same.
		b := channel.BrokerRef(p.from.Namespace, p.from.Name)
		if bs, berr := m.d.Source.Spans(ctx, b, start); berr == nil {
			spans, err, p.from, r.From = bs, nil, b, b.String()
		}
	}
	if err != nil {
		return Status{}, err
	}
	st := Status{ID: newID(), Request: r, State: Running, Created: time.Now().UTC()}
	for _, s := range spans {
		st.Positions = append(st.Positions, Position{Partition: s.Partition, Next: s.From, End: s.End})
	}
	st.Remaining = st.remaining()
	if err := m.save(st); err != nil {
		return Status{}, err
	}
	j := &job{p: p, st: st}
	st.Positions = slices.Clone(st.Positions)
	if err := m.run(j); err != nil {
		j.finish(Failed, err.Error()) // not to be resumed: whoever asked was told it did not start
		m.save(j.status())
		return Status{}, err
	}
	m.log.Info("redrive started", "job", st.ID, "from", r.From, "to", r.To, "dry_run", r.DryRun,
		"remaining", st.Remaining)
	return st, nil // as it started: the job may be further already
}

// Resume loads the stored jobs: a finished one is listed, a running one on a durable channel runs
// again from its saved positions, and one on a channel that lost its events is marked Interrupted.
// Call it once, before Start. Jobs that cannot be read are reported in the error; the others load.
func (m *Manager) Resume() error {
	if m.d.Store == nil {
		return nil
	}
	stored, loadErr := m.d.Store.Load()
	var errs []error
	for _, st := range stored {
		p, err := st.Request.parse()
		j := &job{p: p, st: st, done: make(chan struct{})}
		close(j.done)
		if st.State == Running {
			switch {
			case err != nil:
				j.finish(Failed, err.Error())
			case m.d.Durable == nil || !m.d.Durable(p.from):
				j.finish(Interrupted, "the gateway stopped while the job ran, and "+p.from.String()+
					" does not keep its events across a restart; redrive again what is left")
			default:
				if err := m.run(j); err != nil {
					errs = append(errs, err)
				} else {
					m.log.Info("redrive resumed", "job", st.ID, "from", st.Request.From, "remaining", st.Remaining)
				}
				continue
			}
			if err := m.save(j.status()); err != nil {
				errs = append(errs, err)
			}
			m.log.Warn("redrive interrupted by a restart", "job", st.ID, "state", j.st.State, "error", j.st.Error)
		}
		m.mu.Lock()
		m.jobs[st.ID] = j
		m.mu.Unlock()
	}
	return errors.Join(append([]error{loadErr}, errs...)...)
}

// run registers j and starts its goroutine.
func (m *Manager) run(j *job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("redrive: the gateway is stopping")
	}
	ctx, cancel := context.WithCancel(m.stopCtx)
	j.cancel, j.done = cancel, make(chan struct{})
	m.jobs[j.st.ID] = j
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(j.done)
		defer cancel()
		m.work(ctx, j)
	}()
	return nil
}

// Get returns job id's status.
func (m *Manager) Get(id string) (Status, error) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return j.status(), nil
}

// List returns every job, oldest first.
func (m *Manager) List() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.jobs))
	for _, j := range m.jobs {
		out = append(out, j.status())
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Cancel stops job id: it sends nothing more once Cancel returns. It waits for the event being
// sent, if any, to be sent (or until ctx is done). Cancelling a finished job changes nothing.
func (m *Manager) Cancel(ctx context.Context, id string) (Status, error) {
	m.mu.Lock()
	j, ok := m.jobs[id]
	m.mu.Unlock()
	if !ok {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	j.mu.Lock()
	if j.st.State == Running && j.cancel != nil {
		j.cancelled = true
		j.cancel()
		m.log.Info("redrive cancelling", "job", id)
	}
	j.mu.Unlock()
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.status(), ctx.Err()
	}
	return j.status(), nil
}

// Close stops every job, saving where each got: they stay Running in the Store and resume after a
// restart. It waits for the events being sent until ctx is done, then abandons them (they are sent
// again after a restart).
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	running := 0
	for _, j := range m.jobs {
		if j.status().State == Running {
			running++
		}
	}
	m.mu.Unlock()
	m.stop()
	if running > 0 {
		m.log.Info("redrive jobs stopping; they resume where they are after a restart when their state is kept",
			"running", running)
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		m.abandon()
		<-done
	}
	m.abandon()
}

func (m *Manager) save(st Status) error {
	if m.d.Store == nil {
		return nil
	}
	return m.d.Store.Save(st)
}

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.st
	st.Positions = slices.Clone(j.st.Positions)
	return st
}

// finish ends the job in state s.
func (j *job) finish(s State, why string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.st.State, j.st.Error = s, why
	now := time.Now().UTC()
	j.st.Finished = &now
	j.st.Remaining = j.st.remaining()
}

// retryWait is how long a job waits before reading again when its channel's backend cannot serve.
const retryWait = time.Second

// note records why the job's latest step did not succeed (Status.LastError).
func (j *job) note(why string) {
	j.mu.Lock()
	j.st.LastError = why
	j.mu.Unlock()
}

// saveEvery bounds how long progress over events that were not sent stays unsaved (after a
// restart they are read again, which sends nothing).
const saveEvery = time.Second

// work runs job j until it has read up to its end, is cancelled, or the Manager closes.
func (m *Manager) work(ctx context.Context, j *job) {
	log := m.log.With("job", j.st.ID)
	st := j.status()
	next := make(map[int32]*Position, len(st.Positions))
	open := 0
	for i := range st.Positions {
		next[st.Positions[i].Partition] = &st.Positions[i]
		if st.Positions[i].Next < st.Positions[i].End {
			open++
		}
	}
	var tail channel.Tail
	defer func() {
		if tail != nil {
			tail.Close()
		}
	}()
	start := channel.TailStart{Earliest: st.Request.Since.IsZero(), Time: st.Request.Since}
	var interval time.Duration
	if r := st.Request.Rate; r > 0 {
		interval = time.Duration(float64(time.Second) / r)
	}
	var lastSend time.Time
	// unavailable handles a read error: the backend cannot serve now (a broker restarting, a
	// channel waiting for its backend), so the job waits and reads again from where it is; any
	// other error fails the job. It reports whether to go on.
	unavailable := func(err error) bool {
		if m.stopping(ctx, j) {
			return false
		}
		if !errors.Is(err, channel.ErrUnavailable) {
			m.end(j, Failed, "reading "+j.p.from.String()+": "+err.Error(), log)
			return false
		}
		j.note("reading " + j.p.from.String() + " (retrying): " + err.Error())
		log.Warn("redrive waits for its channel", "error", err.Error())
		if tail != nil {
			tail.Close()
			tail = nil
		}
		if sleepCtx(ctx, retryWait) != nil {
			m.stopping(ctx, j)
			return false
		}
		return true
	}
	for open > 0 {
		if tail == nil {
			t, err := m.d.Source.Tail(ctx, j.p.from, start)
			if err != nil {
				if unavailable(err) {
					continue
				}
				return
			}
			tail = t
		}
		rec, err := tail.Next(ctx)
		if err != nil {
			if unavailable(err) {
				continue
			}
			return
		}
		pos := next[rec.Partition]
		if pos == nil || rec.Offset < pos.Next || pos.Next >= pos.End {
			continue // a partition added after the job started, or already read
		}
		if rec.Offset >= pos.End {
			// The log dropped the rest of this partition's part before it was read (in memory).
			j.advance(rec.Partition, pos.End, nil)
			pos.Next = pos.End
			open--
			continue
		}
		var outcome *outcome
		if j.p.match(st.Request, rec.Event) {
			o := m.handle(ctx, j, rec.Event, interval, &lastSend)
			if o == nil {
				m.stopping(ctx, j) // stopped before it was sent: not advanced
				return
			}
			outcome = o
		}
		pos.Next = rec.Offset + 1
		if pos.Next >= pos.End {
			open--
		}
		if j.advance(rec.Partition, pos.Next, outcome) || open == 0 {
			continue // saved below, when done, or now when it sent
		}
		if err := m.save(j.status()); err != nil {
			log.Error("redrive progress not saved", "error", err.Error())
		}
	}
	m.end(j, Done, "", log)
}

// outcome is what became of one matched event.
type outcome struct {
	sent bool
	err  string
}

// handle sends one matched event (unless a dry run), waiting for the rate first. It returns nil
// when the job was stopped before the event was sent.
func (m *Manager) handle(ctx context.Context, j *job, ev *event.Event, interval time.Duration, last *time.Time) *outcome {
	if j.st.Request.DryRun {
		return &outcome{}
	}
	if interval > 0 && !last.IsZero() {
		if sleepCtx(ctx, time.Until(last.Add(interval))) != nil {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	*last = time.Now()
	err := m.d.Sender.Send(m.abandonCtx, j.p.to, ev.Extension(ExtErrorDest), Redriven(ev))
	if err != nil && m.abandonCtx.Err() != nil {
		return nil // abandoned at shutdown: sent again after a restart
	}
	if err != nil {
		return &outcome{err: err.Error()}
	}
	return &outcome{sent: true}
}

// advance records that partition p is read up to next, with the outcome of the event just read
// when it was matched. It reports whether the status still needs saving (it saves at once when an
// event was sent or failed, and at most every saveEvery otherwise).
func (j *job) advance(p int32, next int64, o *outcome) (skipSave bool) {
	j.mu.Lock()
	for i := range j.st.Positions {
		if j.st.Positions[i].Partition == p {
			j.st.Positions[i].Next = next
		}
	}
	if o != nil {
		j.st.Matched++
		switch {
		case o.sent:
			j.st.Sent++
		case o.err != "":
			j.st.Failed++
			j.st.LastError = o.err
		}
	}
	j.st.Remaining = j.st.remaining()
	sent := o != nil && (o.sent || o.err != "")
	now := time.Now()
	save := sent || now.Sub(j.lastSaved) >= saveEvery
	if save {
		j.lastSaved = now
	}
	j.mu.Unlock()
	return !save
}

// stopping reports whether ctx ended because the job was cancelled or the Manager is closing, and
// records the cancellation.
func (m *Manager) stopping(ctx context.Context, j *job) bool {
	if ctx.Err() == nil {
		return false
	}
	j.mu.Lock()
	cancelled := j.cancelled
	j.mu.Unlock()
	if cancelled {
		m.end(j, Cancelled, "", m.log.With("job", j.st.ID))
		return true
	}
	// Closing: keep the job Running in the store, with its positions, to resume after a restart.
	if err := m.save(j.status()); err != nil {
		m.log.Error("redrive progress not saved", "job", j.st.ID, "error", err.Error())
	}
	return true
}

func (m *Manager) end(j *job, s State, why string, log *slog.Logger) {
	j.finish(s, why)
	st := j.status()
	if err := m.save(st); err != nil {
		log.Error("redrive state not saved", "error", err.Error())
	}
	log.Info("redrive ended", "state", string(s), "error", why, "matched", st.Matched, "sent", st.Sent,
		"failed", st.Failed, "remaining", st.Remaining)
}
