package channel

import (
	"context"
	"time"
)

// TailStart says where a tail starts: with Earliest at the oldest event the log holds, else at the
// first event published at or after Time, else (both zero) with the events published from now on.
type TailStart struct {
	Earliest bool
	Time     time.Time
}

// TailRecord is one event a tail read. Skipped counts the events of its partition that the log
// dropped after the tail started and before it read them (an in-memory channel keeps events only
// as long as its subscriptions need them); 0 on Kafka, whose retention a tail outruns.
type TailRecord struct {
	Record
	Skipped int64
}

// Tailer is implemented by provisioners that can show a channel's events to an observer: the
// admin port's /tail and `eventgate tail`. A tail is read-only: it joins no consumer group, commits
// no offset and holds nothing back.
type Tailer interface {
	// Tail opens a tail of channel ch. It returns once the tail's position is fixed: with a zero
	// start, every event published after Tail returns is read. Errors wrap ErrNotFound or
	// ErrUnavailable.
	Tail(ctx context.Context, ch Ref, start TailStart) (Tail, error)
}

// Tail is an open tail of one channel.
type Tail interface {
	// Next returns the next event, in offset order within a partition. It blocks until there is one
	// or ctx is done (then ctx's error). After the channel is removed it returns an error wrapping
	// ErrNotFound.
	Next(ctx context.Context) (TailRecord, error)
	// Close releases the tail. Safe to call more than once.
	Close() error
}

// Span is the part of one partition that a bounded read covers: the offsets from From (the first
// one a tail opened with the same TailStart reads) up to End (the offset the next published event
// takes). From >= End means there is nothing to read.
type Span struct {
	Partition int32
	From, End int64
}

// Spanner is implemented by provisioners whose channels can be read up to a fixed end: a dead-letter
// redrive reads what its channel held when it started, and stops there, so that an event it sends
// back and that fails again is not read again by the same redrive.
type Spanner interface {
	// Spans returns one Span per partition of ch, for a tail opened with start. Errors wrap
	// ErrNotFound or ErrUnavailable. Safe for concurrent use.
	Spans(ctx context.Context, ch Ref, start TailStart) ([]Span, error)
}
