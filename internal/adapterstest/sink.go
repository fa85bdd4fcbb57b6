// Package adapterstest holds test helpers shared by the source adapters' tests.
package adapterstest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/event"
)

// Sink is an adapters.Sink that records what it accepts. Set Fail before the adapter runs to refuse
// some events (a non-nil error refuses). Safe for concurrent use.
type Sink struct {
	Fail func(e *event.Event) error

	mu       sync.Mutex
	accepted []*event.Event
	got      chan *event.Event
}

// NewSink returns a Sink that accepts everything.
func NewSink() *Sink { return &Sink{got: make(chan *event.Event, 100)} }

// Send accepts e unless Fail refuses it.
func (s *Sink) Send(_ context.Context, e *event.Event) error {
	if s.Fail != nil {
		if err := s.Fail(e); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.accepted = append(s.accepted, e)
	s.mu.Unlock()
	s.got <- e
	return nil
}

// Next waits (up to 20 s) for the next accepted event.
func (s *Sink) Next(t *testing.T) *event.Event {
	t.Helper()
	select {
	case e := <-s.got:
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event reached the sink")
		return nil
	}
}

// IDs returns the ids of every accepted event, in order.
func (s *Sink) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.accepted))
	for _, e := range s.accepted {
		out = append(out, e.ID)
	}
	return out
}
