package kafka

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// clientLogRepeat is how often the Kafka clients may log one message again. While a broker is down
// the client logs each connection attempt; the gateway logs the state change itself (a channel
// waiting, then ready), so the client's repeats add nothing but noise.
const clientLogRepeat = time.Minute

// clientLog is the slog.Handler of the Kafka clients: it drops records below warn and lets each
// message through at most once per repeat. The next one after that carries `repeated`, how many
// were dropped meanwhile. Handlers derived with WithAttrs or WithGroup share the counts.
type clientLog struct {
	h     slog.Handler
	state *repeats
}

type repeats struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	seen  map[string]*seenMsg // by message
}

type seenMsg struct {
	last    time.Time // when it was last let through
	dropped int
}

func newClientLog(h slog.Handler, every time.Duration, now func() time.Time) *clientLog {
	return &clientLog{h: h, state: &repeats{every: every, now: now, seen: map[string]*seenMsg{}}}
}

func (c *clientLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && c.h.Enabled(ctx, l)
}

func (c *clientLog) Handle(ctx context.Context, r slog.Record) error {
	dropped, pass := c.state.admit(r.Message)
	if !pass {
		return nil
	}
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("repeated", dropped))
	}
	return c.h.Handle(ctx, r)
}

// admit reports whether msg may be logged now and how many of it were dropped since it last was.
func (s *repeats) admit(msg string) (dropped int, pass bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.seen[msg]
	if !ok {
		if len(s.seen) >= 1024 { // client messages are a small fixed set; bound it anyway
			clear(s.seen)
		}
		s.seen[msg] = &seenMsg{last: now}
		return 0, true
	}
	if now.Sub(m.last) < s.every {
		m.dropped++
		return 0, false
	}
	dropped, m.last, m.dropped = m.dropped, now, 0
	return dropped, true
}

func (c *clientLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &clientLog{h: c.h.WithAttrs(as), state: c.state}
}

func (c *clientLog) WithGroup(name string) slog.Handler {
	return &clientLog{h: c.h.WithGroup(name), state: c.state}
}
