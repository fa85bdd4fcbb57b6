package kafka

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eventgate/eventgate/gateway/config/check"
	"github.com/eventgate/eventgate/gateway/config/clienttls"
	"github.com/eventgate/eventgate/gateway/config/nametemplate"
)

// Config configures a Backend; it is the `kafka` section of eventgate's configuration (the koanf
// tags are its keys). Start from DefaultConfig: every field's zero value other than Brokers, TLS,
// SASL and DeleteTopicsOnRemove is invalid.
type Config struct {
	// Brokers are the seed brokers, host:port. Empty turns the Kafka provisioner off; New needs one.
	Brokers []string `koanf:"brokers"`
	// TopicTemplate names a channel's topic; a text/template over {{.Namespace}} and {{.Name}} (the
	// channel). Default "eventgate.{{.Namespace}}.{{.Name}}".
	TopicTemplate string `koanf:"topicTemplate"`
	// GroupTemplate names a subscription's consumer group; a text/template over {{.Namespace}},
	// {{.Name}} (the subscription) and {{.Channel}} (the channel name).
	// Default "eventgate.{{.Namespace}}.{{.Name}}".
	GroupTemplate string `koanf:"groupTemplate"`
	// SharedReadGroup names the consumer groups of the shared reads: SHAREDREADGROUP.subscriptions
	// reads every channel that has unordered subscriptions, SHAREDREADGROUP.triggers every broker
	// that has triggers, and only splits their partitions among the gateway's replicas. Replicas of
	// one gateway must have the same; gateways that are not replicas of each other on one Kafka
	// cluster should not (they would share rebalances, and a killed one would hold up the others'
	// new channels for a session timeout). Default empty: GroupTemplate's name for the subscription
	// "_SHARE" in the namespace "_shared" (eventgate._shared._subscriptions), which no subscription's
	// group can have, Kubernetes names holding no underscore.
	SharedReadGroup string `koanf:"sharedReadGroup"`
	// ProduceTimeout bounds one Publish call: after it, Publish returns an error wrapping
	// channel.ErrUnavailable. Default 10s.
	ProduceTimeout time.Duration `koanf:"produceTimeout"`
	// DefaultPartitions is used when a channel spec gives no partition count. Default 3.
	DefaultPartitions int32 `koanf:"defaultPartitions"`
	// DefaultReplicationFactor is used when a channel spec gives none. Default 1.
	DefaultReplicationFactor int16 `koanf:"defaultReplicationFactor"`
	// DeleteTopicsOnRemove makes Remove delete the channel's topic (and its events). Default false:
	// the topic is kept.
	DeleteTopicsOnRemove bool `koanf:"deleteTopicsOnRemove"`
	// SessionTimeout is how long the group coordinator waits for a consumer's heartbeat before it
	// gives the consumer's partitions to the other members (Kafka's session.timeout.ms); it bounds how
	// long a killed gateway's partitions go undelivered. Consumers heartbeat every third of it (at most
	// every 5s). The broker only accepts values between its group.min.session.timeout.ms and
	// group.max.session.timeout.ms (6s and 30m by default). Default 15s.
	SessionTimeout time.Duration `koanf:"sessionTimeout"`
	// TLS, when enabled, makes every connection use TLS.
	TLS TLS `koanf:"tls"`
	// SASL authenticates connections when Mechanism is set.
	SASL SASL `koanf:"sasl"`
	// Compression is the codec record batches are produced with: none, snappy, lz4, zstd or gzip.
	// Consumers read every codec. Default snappy (see docs/performance.md for the measurements).
	Compression string `koanf:"compression"`
	// FetchMaxBytes bounds one fetch response from one broker (Kafka's fetch.max.bytes, counted
	// compressed), and so what a subscription's client holds fetched but not yet taken by the claims:
	// about this much per broker, times the compression ratio. A single batch larger than it is still
	// fetched. At most 100 MiB. Default 4 MiB.
	FetchMaxBytes int32 `koanf:"fetchMaxBytes"`
	// FetchMaxPartitionBytes bounds one partition's share of a fetch response (Kafka's
	// max.partition.fetch.bytes). Default 256 KiB: enough to keep a drain at full speed, small enough
	// that many subscriptions do not add up to much memory (docs/performance.md).
	FetchMaxPartitionBytes int32 `koanf:"fetchMaxPartitionBytes"`
	// MaxBufferedPerPartition bounds the records fetched for one claim and queued for its handler.
	// A poll takes everything the client has fetched; what a claim's buffer has no room for waits
	// pending, at most two fetches' shares of its partition (FetchMaxPartitionBytes each): more than
	// one holds the next poll back until the handler has taken it down to one (the client meanwhile
	// keeps at most one fetch, up to FetchMaxBytes). If a partition so holds the others back for a
	// while, its fetching pauses until the handler drains its buffer and pending records to a quarter
	// of the buffer. Default 256.
	MaxBufferedPerPartition int `koanf:"maxBufferedPerPartition"`
}

// TLS is the client's TLS settings (tls.*).
type TLS = clienttls.TLS

// SASL holds SASL credentials. Mechanism is one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; empty means no
// SASL.
type SASL struct {
	Mechanism string `koanf:"mechanism"`
	Username  string `koanf:"username"`
	Password  string `koanf:"password"`
}

// DefaultConfig returns the configuration defaults; Brokers is left empty.
func DefaultConfig() Config {
	return Config{
		TopicTemplate:            "eventgate.{{.Namespace}}.{{.Name}}",
		GroupTemplate:            "eventgate.{{.Namespace}}.{{.Name}}",
		ProduceTimeout:           10 * time.Second,
		DefaultPartitions:        3,
		DefaultReplicationFactor: 1,
		SessionTimeout:           15 * time.Second,
		Compression:              "snappy",
		FetchMaxBytes:            4 << 20,
		FetchMaxPartitionBytes:   256 << 10,
		MaxBufferedPerPartition:  256,
	}
}

// minSessionTimeout is the least SessionTimeout the client accepts (brokers usually require 6s).
const minSessionTimeout = 100 * time.Millisecond

// codecs maps Config.Compression to the producer's codec.
var codecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
	"gzip":   kgo.GzipCompression(),
}

// saslMechanisms are the values of SASL.Mechanism besides "" (no SASL).
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// maxFetchMaxBytes is the largest FetchMaxBytes: the client reads no larger response (100 MiB).
const maxFetchMaxBytes = 100 << 20

// maxHeartbeatInterval caps the consumers' heartbeat interval: a heartbeat's answer is how a member
// learns that its group rebalances, so this bounds how late a member joins a rebalance.
const maxHeartbeatInterval = 5 * time.Second

// heartbeatInterval is how often a consumer heartbeats for session timeout t: a third of it (Kafka's
// advice: at most a third, so that two heartbeats may be lost before the session ends), at most
// maxHeartbeatInterval. Every heartbeat is a request per consumer group client: at 1,000 of them on
// one gateway, a fifth of the default 15s cost a few percent of a core more than a third does.
func heartbeatInterval(t time.Duration) time.Duration { return min(t/3, maxHeartbeatInterval) }

// ErrInvalidConfig is wrapped by every configuration problem New reports.
var ErrInvalidConfig = errors.New("invalid kafka config")

// Validate returns every problem with c, joined, each naming its key (relative to the kafka
// section). An empty Brokers is valid here (the provisioner is off); New refuses it.
func (c Config) Validate() error {
	var p check.Problems
	for i, b := range c.Brokers {
		p.HostPort(fmt.Sprintf("brokers[%d]", i), b)
	}
	if _, err := parseNameTemplate("topicTemplate", c.TopicTemplate); err != nil {
		p.Add("topicTemplate", "%v", err)
	}
	if _, err := parseNameTemplate("groupTemplate", c.GroupTemplate); err != nil {
		p.Add("groupTemplate", "%v", err)
	}
	if c.SharedReadGroup != "" {
		if err := validName(c.SharedReadGroup + ".subscriptions"); err != nil {
			p.Add("sharedReadGroup", "%v", err)
		}
	}
	p.PositiveDuration("produceTimeout", c.ProduceTimeout)
	p.Positive("defaultPartitions", int64(c.DefaultPartitions))
	p.Positive("defaultReplicationFactor", int64(c.DefaultReplicationFactor))
	if c.SessionTimeout < minSessionTimeout {
		p.Add("sessionTimeout", "must be at least %s, got %s", minSessionTimeout, c.SessionTimeout)
	}
	c.TLS.Check(&p)
	if c.SASL.Mechanism != "" {
		p.OneOf("sasl.mechanism", c.SASL.Mechanism, saslMechanisms...)
		if c.SASL.Username == "" {
			p.Add("sasl.username", "required when kafka.sasl.mechanism is set")
		}
	}
	p.OneOf("compression", c.Compression, slices.Sorted(maps.Keys(codecs))...)
	if c.FetchMaxBytes <= 0 || c.FetchMaxBytes > maxFetchMaxBytes {
		p.Add("fetchMaxBytes", "must be between 1 and %d, got %d", maxFetchMaxBytes, c.FetchMaxBytes)
	}
	p.Positive("fetchMaxPartitionBytes", int64(c.FetchMaxPartitionBytes))
	p.Positive("maxBufferedPerPartition", int64(c.MaxBufferedPerPartition))
	return p.Err()
}

// parseNameTemplate parses a topic or group template; its names must be legal Kafka names.
func parseNameTemplate(key, text string) (*nametemplate.Template, error) {
	return nametemplate.Parse(key, text, func(name string) (string, error) { return name, validName(name) })
}

// validName reports whether name is a legal Kafka topic name: 1 to 249 characters of [a-zA-Z0-9._-],
// and not "." or "..". Group names are held to the same rule so that both are safe in logs and metrics.
func validName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if len(name) > 249 {
		return fmt.Errorf("name %.40q... is longer than 249 characters", name)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q has a character outside [a-zA-Z0-9._-]", name)
		}
	}
	return nil
}
