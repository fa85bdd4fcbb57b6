package kafka

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"text/template"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Backend. Zero values take the defaults listed on each field (see Default).
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// TopicTemplate names a channel's topic; a text/template over {{.Namespace}} and {{.Name}} (the
	// channel). Default "eventgate.{{.Namespace}}.{{.Name}}".
	TopicTemplate string
	// GroupTemplate names a subscription's consumer group; a text/template over {{.Namespace}},
	// {{.Name}} (the subscription) and {{.Channel}} (the channel name).
	// Default "eventgate.{{.Namespace}}.{{.Name}}".
	GroupTemplate string
	// ProduceTimeout bounds one Publish call: after it, Publish returns an error wrapping
	// channel.ErrUnavailable. Default 10s.
	ProduceTimeout time.Duration
	// DefaultPartitions is used when a channel spec gives no partition count. Default 3.
	DefaultPartitions int32
	// DefaultReplicationFactor is used when a channel spec gives none. Default 1.
	DefaultReplicationFactor int16
	// DeleteTopicsOnRemove makes Remove delete the channel's topic (and its events). Default false:
	// the topic is kept.
	DeleteTopicsOnRemove bool
	// TLS, when set, makes every connection use TLS with this configuration.
	TLS *tls.Config
	// SASL authenticates connections when Mechanism is set.
	SASL SASL
	// MaxBufferedPerPartition bounds the records fetched for one claim but not yet taken by its
	// handler. While a claim's buffer is nearly full, polling waits for it (the client keeps what it
	// fetched, up to FetchMaxBytes); if it stays full for a while, that partition's fetching pauses
	// until the handler drains a quarter of it. Default 256.
	MaxBufferedPerPartition int
	// FetchMaxBytes bounds one fetch response from one broker (Kafka's fetch.max.bytes, counted
	// compressed), and so what a subscription's client holds fetched but not yet taken by the claims:
	// about this much per broker, times the compression ratio. A single batch larger than it is still
	// fetched. Default 4 MiB.
	FetchMaxBytes int32
	// FetchMaxPartitionBytes bounds one partition's share of a fetch response (Kafka's
	// max.partition.fetch.bytes). Default 256 KiB: enough to keep a drain at full speed, small enough
	// that many subscriptions do not add up to much memory (docs/performance.md).
	FetchMaxPartitionBytes int32
	// Compression is the codec record batches are produced with: none, snappy, lz4, zstd or gzip.
	// Consumers read every codec. Default snappy (see docs/performance.md for the measurements).
	Compression string
	// SessionTimeout is how long the group coordinator waits for a consumer's heartbeat before it
	// gives the consumer's partitions to the other members (Kafka's session.timeout.ms); it bounds how
	// long a killed gateway's partitions go undelivered. Consumers heartbeat every fifth of it (at most
	// every 3s). The broker only accepts values between its group.min.session.timeout.ms and
	// group.max.session.timeout.ms (6s and 30m by default). Default 15s.
	SessionTimeout time.Duration
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

// maxFetchMaxBytes is the largest FetchMaxBytes: the client reads no larger response (100 MiB).
const maxFetchMaxBytes = 100 << 20

// maxHeartbeatInterval caps the consumers' heartbeat interval.
const maxHeartbeatInterval = 3 * time.Second

// heartbeatInterval is how often a consumer heartbeats for session timeout t: a fifth of it, at most
// maxHeartbeatInterval.
func heartbeatInterval(t time.Duration) time.Duration { return min(t/5, maxHeartbeatInterval) }

// SASL holds SASL credentials. Mechanism is one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; empty means no
// SASL.
type SASL struct {
	Mechanism string
	User      string
	Password  string
}

// Default returns the configuration defaults; Brokers is left empty.
func Default() Config {
	return Config{
		TopicTemplate:            "eventgate.{{.Namespace}}.{{.Name}}",
		GroupTemplate:            "eventgate.{{.Namespace}}.{{.Name}}",
		ProduceTimeout:           10 * time.Second,
		DefaultPartitions:        3,
		DefaultReplicationFactor: 1,
		MaxBufferedPerPartition:  256,
		Compression:              "snappy",
		FetchMaxBytes:            4 << 20,
		FetchMaxPartitionBytes:   256 << 10,
		SessionTimeout:           15 * time.Second,
	}
}

// withDefaults fills the zero fields of c from Default.
func (c Config) withDefaults() Config {
	d := Default()
	if c.TopicTemplate == "" {
		c.TopicTemplate = d.TopicTemplate
	}
	if c.GroupTemplate == "" {
		c.GroupTemplate = d.GroupTemplate
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = d.ProduceTimeout
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = d.DefaultPartitions
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = d.DefaultReplicationFactor
	}
	if c.MaxBufferedPerPartition == 0 {
		c.MaxBufferedPerPartition = d.MaxBufferedPerPartition
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = d.FetchMaxBytes
	}
	if c.Compression == "" {
		c.Compression = d.Compression
	}
	if c.FetchMaxPartitionBytes == 0 {
		c.FetchMaxPartitionBytes = d.FetchMaxPartitionBytes
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = d.SessionTimeout
	}
	return c
}

// ErrInvalidConfig is wrapped by every configuration problem New reports.
var ErrInvalidConfig = errors.New("invalid kafka config")

// validate returns every problem with c (after defaults), joined; each names its key.
func (c Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, key, fmt.Sprintf(format, args...)))
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one broker is required")
	}
	for i, b := range c.Brokers {
		if b == "" {
			bad(fmt.Sprintf("brokers[%d]", i), "empty address")
		}
	}
	if _, err := parseNameTemplate("topicTemplate", c.TopicTemplate); err != nil {
		bad("topicTemplate", "%v", err)
	}
	if _, err := parseNameTemplate("groupTemplate", c.GroupTemplate); err != nil {
		bad("groupTemplate", "%v", err)
	}
	if c.ProduceTimeout < 0 {
		bad("produceTimeout", "must not be negative, got %s", c.ProduceTimeout)
	}
	if c.DefaultPartitions < 0 {
		bad("defaultPartitions", "must not be negative, got %d", c.DefaultPartitions)
	}
	if c.DefaultReplicationFactor < 0 {
		bad("defaultReplicationFactor", "must not be negative, got %d", c.DefaultReplicationFactor)
	}
	if c.MaxBufferedPerPartition < 0 {
		bad("maxBufferedPerPartition", "must not be negative, got %d", c.MaxBufferedPerPartition)
	}
	if c.FetchMaxBytes < 0 || c.FetchMaxBytes > maxFetchMaxBytes {
		bad("fetchMaxBytes", "must be between 0 and %d, got %d", maxFetchMaxBytes, c.FetchMaxBytes)
	}
	if _, ok := codecs[c.Compression]; !ok {
		bad("compression", "want none, snappy, lz4, zstd or gzip, got %q", c.Compression)
	}
	if c.FetchMaxPartitionBytes < 0 {
		bad("fetchMaxPartitionBytes", "must not be negative, got %d", c.FetchMaxPartitionBytes)
	}
	if c.SessionTimeout < 0 || (c.SessionTimeout > 0 && c.SessionTimeout < minSessionTimeout) {
		bad("sessionTimeout", "must be at least %s, got %s", minSessionTimeout, c.SessionTimeout)
	}
	switch c.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		bad("sasl.mechanism", "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", c.SASL.Mechanism)
	}
	if c.SASL.Mechanism != "" && c.SASL.User == "" {
		bad("sasl.user", "required when sasl.mechanism is set")
	}
	return errors.Join(errs...)
}

// nameData is what the topic and group templates see.
type nameData struct {
	Namespace string
	Name      string
	Channel   string
}

func parseNameTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	// Render a sample so that templates referring to unknown fields fail at start, not later.
	if _, err := render(t, nameData{Namespace: "ns", Name: "name", Channel: "channel"}); err != nil {
		return nil, err
	}
	return t, nil
}

// render executes t and checks that the result is a legal Kafka topic or group name.
func render(t *template.Template, d nameData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	name := b.String()
	if err := validName(name); err != nil {
		return "", err
	}
	return name, nil
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
