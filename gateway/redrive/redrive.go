// Package redrive sends dead letters back: a job reads a dead-letter channel (one of ours, so each
// event still carries the knativeerrordest, knativeerrorcode and knativeerrordata extensions the
// dispatcher gave it) and sends the events it selects to where they failed to go, or to the
// subscriber of a named subscription.
//
// A job never deletes or acknowledges what it reads: it reads the channel with a tail (no consumer
// group, nothing committed, nothing trimmed) and keeps its own position per partition. It reads up
// to the end the channel had when the job started (its Span), so an event it sends back that fails
// and is dead-lettered again is not read again by the same job. Its position, counters and
// definition are one Status, saved to a Store after each event it sends: a gateway that restarts
// resumes a job on a durable channel (Kafka) where the saved position says, so the part it had
// finished is neither lost nor sent again; an in-memory channel loses its events in a restart, so
// such a job is reported interrupted instead.
//
// What is sent: the event as it was before it failed — same id, source, type, data — without the
// knativeerror* extensions, and with the eventgateredrives extension counting the redrives it went
// through (1 the first time).
package redrive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/filter"
)

// The extensions a redrive reads and writes.
const (
	// ExtRedrives counts the redrives an event went through: 1 after the first.
	ExtRedrives = "eventgateredrives"
	// ExtErrorDest, ExtErrorCode and ExtErrorData are the dead-letter extensions (the dispatcher's
	// names); ExtErrorDest says where the event goes back to by default. All three are removed from
	// what is sent.
	ExtErrorDest = "knativeerrordest"
	ExtErrorCode = "knativeerrorcode"
	ExtErrorData = "knativeerrordata"
)

// Request is what a job is asked to do: the body of POST /redrives. Field names are part of the
// interface: add, never rename.
type Request struct {
	// From is the dead-letter channel or broker, NAMESPACE/NAME (a job started on a broker reports
	// its channel, NAMESPACE/broker.NAME).
	From string `json:"from"`
	// To, NAMESPACE/SUBSCRIPTION, sends every event to that subscription's subscriber as the
	// subscription delivers (its retries, its reply, and its dead letter when it fails again).
	// Empty: each event goes back to its knativeerrordest.
	To string `json:"to,omitempty"`
	// Filter is a CESQL expression; Type an exact event type. An event is sent when it passes both
	// (an empty one passes all).
	Filter string `json:"filter,omitempty"`
	Type   string `json:"type,omitempty"`
	// Since reads only the dead letters stored at or after this time; zero reads them all.
	Since time.Time `json:"since,omitzero"`
	// Rate caps the events sent per second; 0 is no cap.
	Rate float64 `json:"rate,omitempty"`
	// DryRun counts what would be sent and sends nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// minRate is the lowest rate a job takes (one event every 1000 s): below it the wait between
// events would not be a useful duration.
const minRate = 0.001

// parsed is a validated Request.
type parsed struct {
	from   channel.Ref
	to     *channel.Ref
	filter *filter.Filter
}

// ErrInvalid marks a request that cannot run (400).
var ErrInvalid = errors.New("invalid redrive request")

// ParseRef reads NAMESPACE/NAME.
func ParseRef(s string) (channel.Ref, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return channel.Ref{}, fmt.Errorf("%q is not NAMESPACE/NAME", s)
	}
	return channel.Ref{Namespace: ns, Name: name}, nil
}

func (r Request) parse() (parsed, error) {
	var p parsed
	var errs []error
	var err error
	if p.from, err = ParseRef(r.From); err != nil {
		errs = append(errs, fmt.Errorf("from: %w", err))
	}
	if r.To != "" {
		to, err := ParseRef(r.To)
		if err != nil {
			errs = append(errs, fmt.Errorf("to: %w", err))
		}
		p.to = &to
	}
	if r.Filter != "" {
		if p.filter, err = filter.Compile(nil, []filter.Spec{{CESQL: r.Filter}}); err != nil {
			errs = append(errs, fmt.Errorf("filter: %w", err))
		}
	}
	if r.Rate < 0 || (r.Rate > 0 && r.Rate < minRate) {
		errs = append(errs, fmt.Errorf("rate: must be 0 (no cap) or at least %v events per second, got %v", minRate, r.Rate))
	}
	if err := errors.Join(errs...); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return p, nil
}

// match reports whether the job sends e.
func (p parsed) match(r Request, e *event.Event) bool {
	return (r.Type == "" || e.Type == r.Type) && p.filter.Pass(e)
}

// State is where a job is in its life.
type State string

const (
	// Running: reading and sending (or, stored, to be resumed).
	Running State = "running"
	// Done: read up to its end.
	Done State = "done"
	// Cancelled: stopped by DELETE /redrives/ID.
	Cancelled State = "cancelled"
	// Failed: stopped by an error (Status.Error), e.g. the channel is gone.
	Failed State = "failed"
	// Interrupted: the gateway stopped while it ran and its channel did not keep its events (in
	// memory), so it cannot resume.
	Interrupted State = "interrupted"
)

// Position is how far a job got in one partition: Next is the first offset it has not handled,
// End the offset it stops at.
type Position struct {
	Partition int32 `json:"partition"`
	Next      int64 `json:"next"`
	End       int64 `json:"end"`
}

// Progress counts a job's work. Matched counts the events read that the filter selected; Sent and
// Failed those of them sent and not (Sent+Failed = Matched but for a dry run, which sends none);
// Remaining the dead letters not read yet, up to the job's end.
type Progress struct {
	Matched   int64 `json:"matched"`
	Sent      int64 `json:"sent"`
	Failed    int64 `json:"failed"`
	Remaining int64 `json:"remaining"`
}

// Status is a job as GET /redrives/ID shows it and as it is stored. Field names are part of the
// interface: add, never rename.
type Status struct {
	ID      string  `json:"id"`
	Request Request `json:"request"`
	State   State   `json:"state"`
	// Error says why a job failed or was interrupted, and LastError why its latest event was not
	// sent.
	Error     string `json:"error,omitempty"`
	LastError string `json:"lastError,omitempty"`
	Progress
	Created  time.Time  `json:"created"`
	Finished *time.Time `json:"finished,omitempty"`
	// Positions is how far the job got in each partition.
	Positions []Position `json:"positions"`
}

func (s *Status) remaining() int64 {
	var n int64
	for _, p := range s.Positions {
		if p.End > p.Next {
			n += p.End - p.Next
		}
	}
	return n
}

// Redriven returns the copy of dead letter e that a redrive sends: the knativeerror* extensions
// removed and eventgateredrives one more than e had (1 when it had none or an unreadable one).
func Redriven(e *event.Event) *event.Event {
	c := e.Clone()
	delete(c.Extensions, ExtErrorDest)
	delete(c.Extensions, ExtErrorCode)
	delete(c.Extensions, ExtErrorData)
	n, err := strconv.ParseInt(c.Extension(ExtRedrives), 10, 64)
	if err != nil || n < 0 {
		n = 0
	}
	c.SetExtension(ExtRedrives, strconv.FormatInt(n+1, 10))
	return c
}

// newID returns a job id: "rd-" and 12 hex digits.
func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return "rd-" + hex.EncodeToString(b[:])
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
