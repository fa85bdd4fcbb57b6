package pubsub

import (
	"errors"
	"fmt"
	"time"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// Config configures a Backend; it is the `pubsub` section of eventgate's configuration (the koanf tags
// are its keys). Start from DefaultConfig.
type Config struct {
	// Project is the Google Cloud project that holds the topics and subscriptions. Empty turns the
	// Pub/Sub provisioner off; WithEnvironment fills it from GOOGLE_CLOUD_PROJECT.
	Project string `koanf:"project"`
	// CredentialsFile is a service account key (JSON). Empty uses Application Default Credentials.
	// Ignored when EmulatorHost is set.
	CredentialsFile string `koanf:"credentialsFile"`
	// EmulatorHost, host:port, makes the client talk plaintext and without credentials to a Pub/Sub
	// emulator (pstest, `eventgate pubsub-emulator`, gcloud's). WithEnvironment fills it from
	// PUBSUB_EMULATOR_HOST.
	EmulatorHost string `koanf:"emulatorHost"`
	// TopicTemplate names a channel's topic; a text/template over {{.Namespace}} and {{.Name}} (the
	// channel). The result is fitted to Pub/Sub's name rules (see fitName). Default
	// "eventgate.{{.Namespace}}.{{.Name}}".
	TopicTemplate string `koanf:"topicTemplate"`
	// SubscriptionTemplate names a subscription's Pub/Sub subscription; a text/template over
	// {{.Namespace}}, {{.Name}} (the subscription) and {{.Channel}} (the channel name). Default
	// "eventgate.{{.Namespace}}.{{.Name}}".
	SubscriptionTemplate string `koanf:"subscriptionTemplate"`
	// Partitions is the number of claims (lanes) a subscription's events are spread over, by
	// partitionkey, when the channel spec gives none. Pub/Sub has no partitions: they only shape
	// dispatch inside the gateway. Default 4.
	Partitions int32 `koanf:"partitions"`
	// PublishTimeout bounds one Publish call: after it, Publish returns an error wrapping
	// channel.ErrUnavailable. Default 10s.
	PublishTimeout time.Duration `koanf:"publishTimeout"`
	// AdminTimeout bounds one administrative call (create a topic or subscription, readiness).
	// Default 10s.
	AdminTimeout time.Duration `koanf:"adminTimeout"`
	// AckDeadline is the ack deadline of the subscriptions eventgate creates, between 10s and 600s:
	// how soon Pub/Sub redelivers a message whose gateway died. Default 30s.
	AckDeadline time.Duration `koanf:"ackDeadline"`
	// MaxExtension is how long the client keeps extending the ack deadline of a message that is not
	// done yet (a delivery still retrying); after it, Pub/Sub redelivers the message. Default 60m.
	MaxExtension time.Duration `koanf:"maxExtension"`
	// MaxOutstandingMessages bounds the messages a subscription holds received and not yet acked
	// (Pub/Sub flow control); while it is reached, no more are pulled. Default 1000.
	MaxOutstandingMessages int `koanf:"maxOutstandingMessages"`
	// MaxOutstandingBytes bounds the bytes of those messages, so that a backlog of large events
	// cannot grow the heap without limit. Default 64 MiB.
	MaxOutstandingBytes int `koanf:"maxOutstandingBytes"`
	// DeleteTopicsOnRemove makes Remove delete the channel's topic. Default false: the topic is kept.
	DeleteTopicsOnRemove bool `koanf:"deleteTopicsOnRemove"`
}

// DefaultConfig returns the configuration defaults; Project is left empty.
func DefaultConfig() Config {
	return Config{
		TopicTemplate:          "eventgate.{{.Namespace}}.{{.Name}}",
		SubscriptionTemplate:   "eventgate.{{.Namespace}}.{{.Name}}",
		Partitions:             4,
		PublishTimeout:         10 * time.Second,
		AdminTimeout:           10 * time.Second,
		AckDeadline:            30 * time.Second,
		MaxExtension:           60 * time.Minute,
		MaxOutstandingMessages: 1000,
		MaxOutstandingBytes:    64 << 20,
	}
}

// Environment variables WithEnvironment reads.
const (
	EnvProject      = "GOOGLE_CLOUD_PROJECT"
	EnvEmulatorHost = "PUBSUB_EMULATOR_HOST"
)

// WithEnvironment returns c with Project and EmulatorHost taken from GOOGLE_CLOUD_PROJECT and
// PUBSUB_EMULATOR_HOST (through getenv) where c leaves them empty: configuration wins over them.
func (c Config) WithEnvironment(getenv func(string) string) Config {
	if c.Project == "" {
		c.Project = getenv(EnvProject)
	}
	if c.EmulatorHost == "" {
		c.EmulatorHost = getenv(EnvEmulatorHost)
	}
	return c
}

// Pub/Sub's bounds on a subscription's ack deadline.
const (
	minAckDeadline = 10 * time.Second
	maxAckDeadline = 600 * time.Second
)

// ErrInvalidConfig is wrapped by every configuration problem New reports.
var ErrInvalidConfig = errors.New("invalid pubsub config")

// Validate returns every problem with c, joined, each naming its key (relative to the pubsub section).
// An empty Project is valid here (the provisioner is off); New refuses it.
func (c Config) Validate() error {
	var p check.Problems
	if c.Project != "" {
		if err := validProjectID(c.Project); err != nil {
			p.Add("project", "%v", err)
		}
	}
	if c.EmulatorHost != "" {
		p.HostPort("emulatorHost", c.EmulatorHost)
	}
	if _, err := parseNameTemplate("topicTemplate", c.TopicTemplate); err != nil {
		p.Add("topicTemplate", "%v", err)
	}
	if _, err := parseNameTemplate("subscriptionTemplate", c.SubscriptionTemplate); err != nil {
		p.Add("subscriptionTemplate", "%v", err)
	}
	p.Positive("partitions", int64(c.Partitions))
	p.PositiveDuration("publishTimeout", c.PublishTimeout)
	p.PositiveDuration("adminTimeout", c.AdminTimeout)
	if c.AckDeadline < minAckDeadline || c.AckDeadline > maxAckDeadline {
		p.Add("ackDeadline", "must be between %s and %s, got %s", minAckDeadline, maxAckDeadline, c.AckDeadline)
	}
	p.PositiveDuration("maxExtension", c.MaxExtension)
	p.Positive("maxOutstandingMessages", int64(c.MaxOutstandingMessages))
	p.Positive("maxOutstandingBytes", int64(c.MaxOutstandingBytes))
	return p.Err()
}

// validProjectID checks the shape of a project ID (6 to 30 of [a-z0-9-], starting with a letter) or
// of a legacy domain-scoped one ("example.com:proj"), loosely: enough to catch a pasted name or URL.
func validProjectID(id string) error {
	if len(id) > 100 {
		return fmt.Errorf("%.40q... is not a project ID", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return fmt.Errorf("%q is not a project ID (lower-case letters, digits and '-')", id)
		}
	}
	return nil
}
