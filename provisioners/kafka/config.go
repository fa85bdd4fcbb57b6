package kafka

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"text/template"
	"time"
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
	// handler; when a claim's buffer is full, fetching that partition pauses until the handler drains
	// it. Default 256.
	MaxBufferedPerPartition int
}

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
