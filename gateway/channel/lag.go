package channel

import "context"

// LagSample is how far one consumer group is behind on one partition of its channel: the number of
// records between the group's committed offset and the end of the partition.
type LagSample struct {
	Group     Group
	Partition int32
	Lag       int64
}

// LagReporter is implemented by provisioners that can report consumer lag (the metrics package asks
// for it with a type assertion; a provisioner without it simply has no lag gauge).
type LagReporter interface {
	// Lag returns one sample per group and partition the provisioner knows of. It may block on the
	// backend (Kafka: an admin request) until ctx is done, in which case it returns what it has.
	// Safe for concurrent use.
	Lag(ctx context.Context) []LagSample
}
