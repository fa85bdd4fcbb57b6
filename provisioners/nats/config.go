package nats

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/eventgate/eventgate/gateway/config/check"
	"github.com/eventgate/eventgate/gateway/config/clienttls"
	"github.com/eventgate/eventgate/gateway/config/nametemplate"
)

// Config configures a Backend; it is the `nats` section of eventgate's configuration (the koanf tags
// are its keys). Start from DefaultConfig.
type Config struct {
	// Servers are the NATS server URLs (nats://host:port, tls://host:port). Default
	// nats://127.0.0.1:4222. The backend connects on first use, so a gateway with no NATS channel never
	// dials them.
	Servers []string `koanf:"servers"`
	// StreamTemplate names a channel's stream; a text/template over {{.Namespace}} and {{.Name}} (the
	// channel). Characters a stream name cannot hold ('.', '*', '>', space, slashes) become '_'.
	// Default "EVENTGATE_{{.Namespace}}_{{.Name}}".
	StreamTemplate string `koanf:"streamTemplate"`
	// SubjectTemplate names the subject prefix of a channel's stream: partition i is the subject
	// PREFIX.pI, and the stream holds PREFIX.*. Default "eventgate.{{.Namespace}}.{{.Name}}".
	SubjectTemplate string `koanf:"subjectTemplate"`
	// ConsumerTemplate names a subscription's durable consumers, one per partition (NAME-pI); a
	// text/template over {{.Namespace}}, {{.Name}} (the subscription) and {{.Channel}}. Default
	// "{{.Name}}".
	ConsumerTemplate string `koanf:"consumerTemplate"`
	// DefaultPartitions is the partition count of a channel whose spec gives none. Default 3.
	DefaultPartitions int32 `koanf:"defaultPartitions"`
	// Replicas is the stream replica count of a channel whose spec gives no replication factor
	// (a JetStream cluster needs 3 to survive a server loss). Default 1.
	Replicas int `koanf:"replicas"`
	// Storage is where streams keep events: file (survives a server restart) or memory. Default file.
	Storage string `koanf:"storage"`
	// DuplicateWindow is how long the stream remembers published event identities (Nats-Msg-Id) to
	// drop a repeated publish of the same event. Default 2m.
	DuplicateWindow time.Duration `koanf:"duplicateWindow"`
	// DeleteStreamsOnRemove makes Remove delete the channel's stream (and its events). Default false.
	DeleteStreamsOnRemove bool `koanf:"deleteStreamsOnRemove"`
	// PublishTimeout bounds one Publish call: after it Publish returns an error wrapping
	// channel.ErrUnavailable. Default 10s.
	PublishTimeout time.Duration `koanf:"publishTimeout"`
	// RequestTimeout bounds one JetStream API request (stream and consumer management). Default 5s.
	RequestTimeout time.Duration `koanf:"requestTimeout"`
	// AckWait is how long the server waits for an acknowledgement before it delivers an event again.
	// Claims send progress acknowledgements for every event they hold (every AckWait/3), so it only
	// bounds how soon the events of a gateway that died are delivered again. It must be longer than
	// the delivery timeout (dispatch.timeout). Default 1m.
	AckWait time.Duration `koanf:"ackWait"`
	// MaxDeliver bounds how often the server delivers one event to one subscription (so an event that
	// kills the gateway cannot loop forever). Retries within one delivery do not count; a delivery ends
	// with the claim that held it (a gateway stopping, a rebalance). eventgate hands the last delivery
	// to the dispatcher as any other, and logs an error if it is abandoned: the server will not deliver
	// that event to the subscription again. Default 100.
	MaxDeliver int `koanf:"maxDeliver"`
	// MaxAckPending bounds the events of one partition a subscription holds unacknowledged (in flight,
	// or done behind one that is not: acknowledgements follow the partition's contiguous done prefix).
	// Default 1000.
	MaxAckPending int `koanf:"maxAckPending"`
	// FetchBatch is how many events a claim pulls at once, and how many pulled events it keeps ready
	// for the dispatcher, so that the next pull goes out while the dispatcher takes the last one: per
	// partition at most 2×FetchBatch events are fetched but not yet taken. Default 32.
	FetchBatch int `koanf:"fetchBatch"`
	// PullWait is how long one pull waits on the server for events; it bounds how long revoking a
	// claim waits for its last pull. Default 1s.
	PullWait time.Duration `koanf:"pullWait"`
	// LeaseBucket is the JetStream key-value bucket in which the gateways subscribed to an ordered
	// subscription agree on one owner per partition (see lease.go); it is created on first use.
	// Default "eventgate-leases".
	LeaseBucket string `koanf:"leaseBucket"`
	// LeaseTTL is how long a partition lease of an ordered subscription lives unless its owner renews
	// it (every LeaseTTL/4): a gateway that died gives its partitions up after it. An owner that could
	// not renew for LeaseTTL/2 stops delivering them itself, before another gateway may take them.
	// Keep it the same on every gateway. At least 1s; default 10s.
	LeaseTTL time.Duration `koanf:"leaseTTL"`
	// Username and Password authenticate with a user and password.
	Username string `koanf:"username"`
	Password string `koanf:"password"`
	// Token authenticates with a token.
	Token string `koanf:"token"`
	// NKeySeedFile is a file holding an NKey seed to authenticate with.
	NKeySeedFile string `koanf:"nkeySeedFile"`
	// CredsFile is a NATS credentials file (a user JWT and its NKey seed).
	CredsFile string `koanf:"credsFile"`
	// TLS, when enabled, makes the connection use TLS.
	TLS TLS `koanf:"tls"`
}

// TLS is the client's TLS settings (tls.*).
type TLS = clienttls.TLS

// DefaultConfig returns the NATS provisioner's defaults.
func DefaultConfig() Config {
	return Config{
		Servers:           []string{"nats://127.0.0.1:4222"},
		StreamTemplate:    "EVENTGATE_{{.Namespace}}_{{.Name}}",
		SubjectTemplate:   "eventgate.{{.Namespace}}.{{.Name}}",
		ConsumerTemplate:  "{{.Name}}",
		DefaultPartitions: 3,
		Replicas:          1,
		Storage:           "file",
		DuplicateWindow:   2 * time.Minute,
		PublishTimeout:    10 * time.Second,
		RequestTimeout:    5 * time.Second,
		AckWait:           time.Minute,
		MaxDeliver:        100,
		MaxAckPending:     1000,
		FetchBatch:        32,
		PullWait:          time.Second,
		LeaseBucket:       "eventgate-leases",
		LeaseTTL:          10 * time.Second,
	}
}

// ErrInvalidConfig is wrapped by every configuration problem New reports.
var ErrInvalidConfig = errors.New("invalid nats config")

// Validate returns every problem with c, joined, each naming its key (relative to the nats section).
func (c Config) Validate() error {
	var p check.Problems
	if len(c.Servers) == 0 {
		p.Add("servers", "at least one server URL is required")
	}
	for i, s := range c.Servers {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || !(u.Scheme == "nats" || u.Scheme == "tls" || u.Scheme == "ws" || u.Scheme == "wss") {
			p.Add(fmt.Sprintf("servers[%d]", i), "must be a URL nats://HOST:PORT (or tls://, ws://, wss://), got %q", s)
		}
	}
	for key, text := range map[string]string{"streamTemplate": c.StreamTemplate, "subjectTemplate": c.SubjectTemplate,
		"consumerTemplate": c.ConsumerTemplate} {
		if _, err := parseNameTemplate(key, text); err != nil {
			p.Add(key, "%v", err)
		}
	}
	p.Positive("defaultPartitions", int64(c.DefaultPartitions))
	p.Positive("replicas", int64(c.Replicas))
	p.OneOf("storage", c.Storage, "file", "memory")
	p.PositiveDuration("duplicateWindow", c.DuplicateWindow)
	p.PositiveDuration("publishTimeout", c.PublishTimeout)
	p.PositiveDuration("requestTimeout", c.RequestTimeout)
	if c.AckWait < time.Second {
		p.Add("ackWait", "must be at least 1s, got %s", c.AckWait)
	}
	p.Positive("maxDeliver", int64(c.MaxDeliver))
	p.Positive("maxAckPending", int64(c.MaxAckPending))
	p.Positive("fetchBatch", int64(c.FetchBatch))
	if c.PullWait < 10*time.Millisecond {
		p.Add("pullWait", "must be at least 10ms, got %s", c.PullWait)
	}
	if !bucketNameRe.MatchString(c.LeaseBucket) {
		p.Add("leaseBucket", "must be letters, digits, '-' and '_', got %q", c.LeaseBucket)
	}
	if c.LeaseTTL < time.Second {
		p.Add("leaseTTL", "must be at least 1s, got %s", c.LeaseTTL)
	}
	auth := 0
	for _, set := range []bool{c.Username != "", c.Token != "", c.NKeySeedFile != "", c.CredsFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		p.Add("username", "use one of username/password, token, nkeySeedFile or credsFile")
	}
	if c.Password != "" && c.Username == "" {
		p.Add("password", "requires nats.username")
	}
	c.TLS.Check(&p)
	return p.Err()
}

// bucketNameRe is what JetStream accepts as a key-value bucket name.
var bucketNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// parseNameTemplate parses the template named key: the subject template's names must be subjects,
// the stream and consumer templates' names become tokens (see tokenName).
func parseNameTemplate(key, text string) (*nametemplate.Template, error) {
	if key == "subjectTemplate" {
		return nametemplate.Parse(key, text, subjectName)
	}
	return nametemplate.Parse(key, text, tokenName)
}

// tokenName makes name a legal stream or consumer name: blanks, control characters and . * > / \
// become _, and it must stay within 200 characters.
func tokenName(name string) (string, error) {
	if name == "" {
		return "", errors.New("name is empty")
	}
	name = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return '_'
		}
		return r
	}, name)
	if len(name) > 200 {
		return "", fmt.Errorf("name %.40q... is longer than 200 characters", name)
	}
	return name, nil
}

// subjectName checks that name is a subject without wildcards: dot-separated tokens, none empty,
// "*" or ">", none with a blank or control character.
func subjectName(name string) (string, error) {
	if name == "" {
		return "", errors.New("name is empty")
	}
	for _, tok := range strings.Split(name, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return "", fmt.Errorf("subject %q has an empty, wildcard or blank token", name)
		}
	}
	return name, nil
}
