// Package channel is the seam between eventgate's core and the systems that store events.
//
// A channel is a partitioned log with consumer groups. A provisioner (provisioners/inmemory,
// provisioners/kafka) implements the small interfaces below; ingress publishes through them and the
// dispatcher consumes through them, knowing nothing of the system behind. Every provisioner runs the
// shared conformance suite in internal/conformance.
package channel

import (
	"context"
	"errors"
	"time"

	"github.com/eventgate/eventgate/gateway/event"
)

// Ref names a channel.
type Ref struct {
	Namespace string
	Name      string
}

func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// Spec is what a provisioner needs to create or update a channel. Zero values mean "the provisioner's
// configured default".
type Spec struct {
	Ref
	Partitions        int32
	ReplicationFactor int16
	Retention         time.Duration
}

// StartOffset says where a consumer group with no committed position starts. The start is fixed when
// the group is first subscribed, before Subscribe returns; partitions added to the channel later are
// read from their beginning, whatever the StartOffset, so that nothing written to them is skipped.
type StartOffset int

const (
	// Latest starts at the end of the log as of the group's first Subscribe: every event published
	// after that Subscribe returned is delivered, none published before it.
	Latest StartOffset = iota
	// Earliest starts at the oldest event the log still holds.
	Earliest
)

// Group names one consumer group on one channel. Every group sees every event published to the
// channel; the members of one group share its partitions.
type Group struct {
	Channel Ref
	Name    string
	Start   StartOffset
	// Filter, when set, lets the provisioner skip the events it rejects: they are marked done without
	// reaching the handler. It is a hint (a provisioner may hand every event over), so the handler
	// applies the same filter; an event is rejected by the provisioner or by the handler, never both.
	// It is called from the provisioner's goroutines and must be safe for concurrent use.
	Filter EventFilter
	// Share, when set, lets the provisioner serve the groups that have the same Share (the triggers
	// of the brokers; the unordered subscriptions of the channels) from one read in this process, of
	// their channel or of many channels at once (Kafka: one client for every topic of the Share key).
	// Each group keeps its own position, and one that cannot keep up is served on its own, so it
	// never holds back the others.
	Share string
	// Ordered says the group's handler keeps events in order per partition (per partitionkey), so
	// each partition must have one owner at a time across every process, as a Kafka consumer group
	// gives. A provisioner whose processes would otherwise share a partition's events (NATS) then
	// arbitrates an owner per partition; the others ignore it.
	Ordered bool
}

// EventFilter says whether an event is for a group (see Group.Filter).
type EventFilter interface {
	Pass(e *event.Event) bool
}

// Record is one event read from a partition.
type Record struct {
	Partition int32
	Offset    int64
	Event     *event.Event
}

// Claim is one partition of a channel, assigned to one member of a group until it is revoked.
//
// Records arrive on Records in offset order. The claim handler marks each record done with MarkDone once
// it is delivered or dead-lettered; records may be marked in any order, and the provisioner commits
// only the contiguous prefix of done records (at-least-once). Records is closed when the partition is
// revoked or the subscription closes; Context is cancelled at the same moment.
type Claim interface {
	Channel() Ref
	Partition() int32
	Records() <-chan Record
	// MarkDone marks the record at offset done. Safe for concurrent use; marking an offset twice, or
	// an offset this claim never handed out, is a no-op.
	MarkDone(offset int64)
	// Context is cancelled when the claim is revoked; in-flight work should finish or give up promptly.
	Context() context.Context
}

// Puller is a Claim whose records can be taken by a call as well as received from Records. Next
// returns the next record in offset order, blocking until there is one; ok is false once the claim
// is revoked (as when Records closes: no record is handed out after that) or when ctx is done (the
// claim goes on; Next may be called again). A handler uses either Next or Records, never both, from
// one goroutine. Next saves the goroutine hand-off that a channel costs per record, which a handler
// delivering one record at a time pays in full; the dispatcher uses it where a backend offers it.
type Puller interface {
	Claim
	Next(ctx context.Context) (r Record, ok bool)
}

// ClaimHandler processes one claim. The provisioner calls it in a goroutine of its own for each
// assigned partition and waits for it to return before it commits and gives the partition up, so a
// handler must return once Records is closed and its in-flight records are finished or abandoned.
type ClaimHandler func(Claim)

// Publisher stores events.
type Publisher interface {
	// Publish stores events on the channel, all or none, and returns only once they are durably
	// stored (Kafka: acknowledged with acks=all). It blocks until then or until ctx is done.
	// Errors wrap ErrNotFound, ErrFull or ErrUnavailable.
	Publish(ctx context.Context, ch Ref, events []*event.Event) error
}

// Subscriber consumes a channel as a consumer group.
type Subscriber interface {
	// Subscribe joins group g and calls h for each partition assigned to this member, until the
	// returned Subscription is closed. It returns once the subscription is set up and the group's
	// position is fixed: a group with none gets its g.Start committed first, so every event published
	// after Subscribe returns is delivered to the group, however long assignment, which happens
	// asynchronously, then takes. A group that has a position keeps it (another member joining
	// changes nothing). It blocks until then or until ctx is done.
	Subscribe(ctx context.Context, g Group, h ClaimHandler) (Subscription, error)
}

// Subscription is a running group membership.
type Subscription interface {
	// Close revokes every claim (waiting for its handler to return), commits what is done and
	// leaves the group. The group's committed position is kept: subscribing again resumes there.
	Close() error
}

// Provisioner manages channels and is the Publisher and Subscriber for them.
type Provisioner interface {
	Publisher
	Subscriber
	// Ensure creates the channel, or updates it to spec, and returns once the channel can take and
	// serve events. Safe to call repeatedly, and concurrently for different channels (the gateway
	// ensures many at once, and calls Subscribe concurrently too). A provisioner whose channels
	// cannot gain partitions returns an error wrapping errors.ErrUnsupported when spec asks for more
	// than the channel has.
	Ensure(ctx context.Context, spec Spec) error
	// Remove forgets the channel. Whether stored events are deleted is the provisioner's choice
	// (Kafka keeps its topic unless configured otherwise).
	Remove(ctx context.Context, ch Ref) error
	// DeleteGroup forgets group g's position (the subscription is gone for good).
	DeleteGroup(ctx context.Context, g Group) error
	// Ready reports whether the backend can store events now (nil when it can).
	Ready(ctx context.Context) error
	// Close releases the provisioner; call it after every Subscription is closed.
	Close() error
}

// The error kinds a provisioner returns (wrapped). Ingress maps them to HTTP codes.
var (
	// ErrNotFound: no such channel.
	ErrNotFound = errors.New("channel not found")
	// ErrFull: the channel cannot take more now because its slowest group is behind; retry later.
	ErrFull = errors.New("channel full")
	// ErrUnavailable: the backend cannot store the event now (broker down, timeout).
	ErrUnavailable = errors.New("channel backend unavailable")
)

// FullError is ErrFull with a hint of when to retry.
type FullError struct {
	RetryAfter time.Duration
}

func (e *FullError) Error() string { return "channel full: slowest subscription has not caught up" }
func (e *FullError) Unwrap() error { return ErrFull }

// WaitingError is ErrUnavailable for a declared channel whose backend could not create it yet (a
// broker that is down at start): the gateway keeps trying, and Reason says why for people.
type WaitingError struct {
	Channel Ref
	// Reason is why the channel waits, e.g. "Kafka is unavailable: dial tcp …: connection refused".
	Reason string
}

func (e *WaitingError) Error() string { return e.Channel.Describe() + ": " + e.Reason }
func (e *WaitingError) Unwrap() error { return ErrUnavailable }
