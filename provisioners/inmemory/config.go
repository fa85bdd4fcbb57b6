package inmemory

import (
	"time"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// Config tunes the in-memory provisioner. It is the `inmemory` section of eventgate's configuration
// (the koanf tags are its keys). Start from DefaultConfig.
type Config struct {
	// BytesPerChannel bounds the bytes of events (event.Event.Size) one channel holds; a full channel
	// makes the ingress answer 429. Default 64 MiB.
	BytesPerChannel int64 `koanf:"bytesPerChannel"`
	// Partitions is the partition count of a channel whose Spec does not say. Default 4.
	Partitions int32 `koanf:"partitions"`
	// RetryAfter is the hint carried by the FullError a full channel answers with (the ingress's
	// Retry-After). Default 1s.
	RetryAfter time.Duration `koanf:"retryAfter"`
}

// DefaultConfig returns the in-memory provisioner's defaults.
func DefaultConfig() Config {
	return Config{BytesPerChannel: 64 << 20, Partitions: 4, RetryAfter: time.Second}
}

// Validate returns every problem with c, joined, each naming its key (relative to the inmemory
// section).
func (c Config) Validate() error {
	var p check.Problems
	p.Positive("bytesPerChannel", c.BytesPerChannel)
	p.Positive("partitions", int64(c.Partitions))
	p.PositiveDuration("retryAfter", c.RetryAfter)
	return p.Err()
}
