// Package config loads eventgate's configuration with koanf, in layers where later wins:
// built-in defaults (Default) → a YAML file → EVENTGATE_ environment variables (`__` nests, e.g.
// EVENTGATE_KAFKA__BROKERS=127.0.0.1:9092) → command-line `--set key=value` flags.
//
// Defaults live in one place (Default) and rules in one place (Validate), which reports every problem,
// each naming its key.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"
)

// Config is the whole gateway configuration. Keys are the koanf tags, nested with ".".
type Config struct {
	Ingress  Ingress  `koanf:"ingress"`
	Admin    Admin    `koanf:"admin"`
	Channels Channels `koanf:"channels"`
	InMemory InMemory `koanf:"inmemory"`
	Kafka    Kafka    `koanf:"kafka"`
	Dispatch Dispatch `koanf:"dispatch"`
	// AddressBook maps references that are not channels to URLs. Keys are "NAMESPACE/NAME" or
	// "KIND/NAMESPACE/NAME" (the more specific wins). Unlisted references resolve to the in-cluster
	// Knative address http://NAME.NAMESPACE.svc.cluster.local.
	AddressBook map[string]string `koanf:"addressBook"`
	// SecretsDir holds secrets laid out as Kubernetes mounts them: SecretsDir/NAME/KEY.
	SecretsDir string   `koanf:"secretsDir"`
	Shutdown   Shutdown `koanf:"shutdown"`
	Log        Log      `koanf:"log"`
}

// Ingress is the HTTP server that takes events.
type Ingress struct {
	Address           string        `koanf:"address"`           // default ":8080"
	MaxBodyBytes      int64         `koanf:"maxBodyBytes"`      // default 1 MiB; larger bodies get 413
	ReadHeaderTimeout time.Duration `koanf:"readHeaderTimeout"` // default 10s
	ReadTimeout       time.Duration `koanf:"readTimeout"`       // default 30s (whole request)
	WriteTimeout      time.Duration `koanf:"writeTimeout"`      // default 30s
	IdleTimeout       time.Duration `koanf:"idleTimeout"`       // default 120s
	MaxHeaderBytes    int           `koanf:"maxHeaderBytes"`    // default 64 KiB
	// MaxConcurrentRequests bounds requests in progress; beyond it the ingress answers 503 at once.
	// Default 4096; 0 means unbounded.
	MaxConcurrentRequests int         `koanf:"maxConcurrentRequests"`
	TLS                   IngressTLS  `koanf:"tls"`
	Auth                  IngressAuth `koanf:"auth"`
	// ExternalURL is the base URL others use to reach the ingress (what `validate` prints and what
	// ContainerSources get as K_SINK). Default: http://127.0.0.1 with the port of Address.
	ExternalURL string `koanf:"externalURL"`
}

// IngressTLS serves the ingress over TLS from PEM files, reloaded when they change.
type IngressTLS struct {
	CertFile string `koanf:"certFile"`
	KeyFile  string `koanf:"keyFile"`
}

// IngressAuth turns on bearer tokens per channel.
type IngressAuth struct {
	// Secret names a directory under secretsDir (a mounted Kubernetes Secret) with one key per channel,
	// NAMESPACE.CHANNEL, holding that channel's tokens one per line. Empty: no authentication.
	Secret string `koanf:"secret"`
}

// Admin is the HTTP server with /metrics, /livez and /readyz.
type Admin struct {
	Address string `koanf:"address"` // default ":9090"
}

// Channels holds choices that apply to every channel.
type Channels struct {
	// DefaultProvisioner backs channels whose manifest does not name one: "inmemory" (default) or "kafka".
	DefaultProvisioner string `koanf:"defaultProvisioner"`
}

// InMemory configures the in-memory provisioner (development; events live in the process).
type InMemory struct {
	BytesPerChannel int64         `koanf:"bytesPerChannel"` // default 64 MiB; full → ingress answers 429
	Partitions      int32         `koanf:"partitions"`      // default 4
	RetryAfter      time.Duration `koanf:"retryAfter"`      // Retry-After sent with 429; default 1s
}

// Kafka configures the Kafka provisioner.
type Kafka struct {
	Brokers                  []string      `koanf:"brokers"`                  // host:port, comma-separated in env
	TopicTemplate            string        `koanf:"topicTemplate"`            // default "eventgate.{{.Namespace}}.{{.Name}}"
	GroupTemplate            string        `koanf:"groupTemplate"`            // default "eventgate.{{.Namespace}}.{{.Name}}"
	ProduceTimeout           time.Duration `koanf:"produceTimeout"`           // default 10s, then 503
	DefaultPartitions        int32         `koanf:"defaultPartitions"`        // default 3
	DefaultReplicationFactor int16         `koanf:"defaultReplicationFactor"` // default 1
	DeleteTopicsOnRemove     bool          `koanf:"deleteTopicsOnRemove"`     // default false
	SessionTimeout           time.Duration `koanf:"sessionTimeout"`           // default 15s: a dead gateway's partitions move after it
	TLS                      TLS           `koanf:"tls"`
	SASL                     SASL          `koanf:"sasl"`
}

// TLS configures a TLS client or server from PEM files.
type TLS struct {
	Enabled            bool   `koanf:"enabled"`
	CAFile             string `koanf:"caFile"`
	CertFile           string `koanf:"certFile"`
	KeyFile            string `koanf:"keyFile"`
	InsecureSkipVerify bool   `koanf:"insecureSkipVerify"`
}

// SASL configures Kafka authentication.
type SASL struct {
	Mechanism string `koanf:"mechanism"` // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username  string `koanf:"username"`
	Password  string `koanf:"password"`
}

// Dispatch holds delivery defaults; a Subscription's spec.delivery overrides them field by field.
type Dispatch struct {
	// MaxInFlight bounds in-flight deliveries per subscription (the adaptive limit's ceiling); default 64.
	MaxInFlight int `koanf:"maxInFlight"`
	// MinInFlight is the adaptive limit's floor; default 1.
	MinInFlight int `koanf:"minInFlight"`
	// Adaptive lets each subscription's limit follow its subscriber's latency and overload answers
	// between minInFlight and maxInFlight (AIMD with a latency gradient, see dispatch.Adaptive);
	// false fixes it at maxInFlight. Default true.
	Adaptive      bool          `koanf:"adaptive"`
	Retry         int           `koanf:"retry"`         // attempts after the first; default 3
	BackoffPolicy string        `koanf:"backoffPolicy"` // "exponential" (default) or "linear"
	BackoffDelay  time.Duration `koanf:"backoffDelay"`  // default 200ms
	BackoffMax    time.Duration `koanf:"backoffMax"`    // default 30s
	Timeout       time.Duration `koanf:"timeout"`       // per attempt; default 30s
	RetryAfterMax time.Duration `koanf:"retryAfterMax"` // cap on honoured Retry-After; default 60s, 0 ignores it
}

// Shutdown bounds the SIGTERM drain.
type Shutdown struct {
	Grace time.Duration `koanf:"grace"` // default 25s
}

// Log configures the structured logger.
type Log struct {
	Level  string `koanf:"level"`  // debug, info (default), warn, error
	Format string `koanf:"format"` // auto (default: text on a terminal, JSON otherwise), text, json
}

// Default returns the built-in configuration: `eventgate serve` with nothing else runs on it.
func Default() Config {
	return Config{
		Ingress: Ingress{
			Address:               ":8080",
			MaxBodyBytes:          1 << 20,
			ReadHeaderTimeout:     10 * time.Second,
			ReadTimeout:           30 * time.Second,
			WriteTimeout:          30 * time.Second,
			IdleTimeout:           120 * time.Second,
			MaxHeaderBytes:        64 << 10,
			MaxConcurrentRequests: 4096,
		},
		Admin:    Admin{Address: ":9090"},
		Channels: Channels{DefaultProvisioner: "inmemory"},
		InMemory: InMemory{BytesPerChannel: 64 << 20, Partitions: 4, RetryAfter: time.Second},
		Kafka: Kafka{
			TopicTemplate:            "eventgate.{{.Namespace}}.{{.Name}}",
			GroupTemplate:            "eventgate.{{.Namespace}}.{{.Name}}",
			ProduceTimeout:           10 * time.Second,
			DefaultPartitions:        3,
			DefaultReplicationFactor: 1,
			SessionTimeout:           15 * time.Second,
		},
		Dispatch: Dispatch{
			MaxInFlight:   64,
			MinInFlight:   1,
			Adaptive:      true,
			Retry:         3,
			BackoffPolicy: "exponential",
			BackoffDelay:  200 * time.Millisecond,
			BackoffMax:    30 * time.Second,
			Timeout:       30 * time.Second,
			RetryAfterMax: 60 * time.Second,
		},
		AddressBook: map[string]string{},
		Shutdown:    Shutdown{Grace: 25 * time.Second},
		Log:         Log{Level: "info", Format: "auto"},
	}
}

// EnvPrefix starts every environment variable eventgate reads as configuration.
const EnvPrefix = "EVENTGATE_"

// Sources says where configuration comes from, besides the defaults.
type Sources struct {
	File    string            // YAML file; "" for none
	Environ []string          // os.Environ() form; nil for none
	Set     map[string]string // key=value overrides from flags
}

// Load builds the configuration from its layers and validates it. Unknown keys in the file or in
// flags are errors naming the key; unknown EVENTGATE_ variables are returned as warnings (the
// environment is shared with other tools).
func Load(src Sources) (Config, []string, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return Config{}, nil, fmt.Errorf("config: defaults: %w", err)
	}
	known := map[string]string{} // lower-case key → key as spelled in Config
	for _, key := range k.Keys() {
		known[strings.ToLower(key)] = key
	}
	known["addressbook"] = "addressBook"

	var problems []error
	if src.File != "" {
		fk := koanf.New(".")
		if err := fk.Load(file.Provider(src.File), yaml.Parser()); err != nil {
			return Config{}, nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
		for _, key := range fk.Keys() {
			if !isKnown(known, key) {
				problems = append(problems, fmt.Errorf("config file %s: %s: unknown key", src.File, key))
			}
		}
		if err := k.Merge(fk); err != nil {
			return Config{}, nil, fmt.Errorf("config file %s: %w", src.File, err)
		}
	}

	var warnings []string
	if src.Environ != nil {
		envK := koanf.New(".")
		err := envK.Load(env.Provider(".", env.Opt{
			Prefix:      EnvPrefix,
			EnvironFunc: func() []string { return src.Environ },
			TransformFunc: func(name, value string) (string, any) {
				path := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "__", "."))
				key, ok := known[path]
				if !ok {
					warnings = append(warnings, fmt.Sprintf("environment variable %s is not a configuration key; ignored", name))
					return "", nil
				}
				return key, value
			},
		}), nil)
		if err != nil {
			return Config{}, nil, fmt.Errorf("config: environment: %w", err)
		}
		if err := k.Merge(envK); err != nil {
			return Config{}, nil, fmt.Errorf("config: environment: %w", err)
		}
	}

	if len(src.Set) > 0 {
		flat := map[string]any{}
		for key, v := range src.Set {
			canon, ok := known[strings.ToLower(key)]
			if !ok && !isKnown(known, key) {
				problems = append(problems, fmt.Errorf("--set %s: unknown key", key))
				continue
			}
			if !ok {
				canon = key // an addressBook entry
			}
			flat[canon] = v
		}
		if err := k.Load(confmap.Provider(flat, "."), nil); err != nil {
			return Config{}, nil, fmt.Errorf("config: flags: %w", err)
		}
	}
	if len(problems) > 0 {
		return Config{}, warnings, errors.Join(problems...)
	}

	var c Config
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
		WeaklyTypedInput: true,
		Result:           &c,
		TagName:          "koanf",
	}
	if err := k.UnmarshalWithConf("", &c, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		return Config{}, warnings, fmt.Errorf("config: %w", err)
	}
	return c, warnings, c.Validate()
}

// isKnown reports whether key is a configuration key (addressBook entries are free-form).
func isKnown(known map[string]string, key string) bool {
	if _, ok := known[strings.ToLower(key)]; ok {
		return true
	}
	return strings.HasPrefix(key, "addressBook.")
}

// Validate checks rules that span the configuration and returns every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	checkAddr := func(key, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port (%v)", addr, err)
		}
	}
	checkAddr("ingress.address", c.Ingress.Address)
	checkAddr("admin.address", c.Admin.Address)
	if c.Ingress.MaxBodyBytes <= 0 {
		bad("ingress.maxBodyBytes", "must be positive, got %d", c.Ingress.MaxBodyBytes)
	}
	if c.Ingress.MaxConcurrentRequests < 0 {
		bad("ingress.maxConcurrentRequests", "must not be negative, got %d", c.Ingress.MaxConcurrentRequests)
	}
	if (c.Ingress.TLS.CertFile == "") != (c.Ingress.TLS.KeyFile == "") {
		bad("ingress.tls.certFile", "certFile and keyFile go together")
	}
	if c.Ingress.Auth.Secret != "" && c.SecretsDir == "" {
		bad("ingress.auth.secret", "needs secretsDir (or --secrets-dir) to find the secret %q", c.Ingress.Auth.Secret)
	}
	if c.Ingress.MaxHeaderBytes <= 0 {
		bad("ingress.maxHeaderBytes", "must be positive, got %d", c.Ingress.MaxHeaderBytes)
	}
	for key, d := range map[string]time.Duration{
		"ingress.readHeaderTimeout": c.Ingress.ReadHeaderTimeout, "ingress.readTimeout": c.Ingress.ReadTimeout,
		"ingress.writeTimeout": c.Ingress.WriteTimeout, "ingress.idleTimeout": c.Ingress.IdleTimeout,
		"kafka.produceTimeout": c.Kafka.ProduceTimeout, "kafka.sessionTimeout": c.Kafka.SessionTimeout,
		"dispatch.timeout": c.Dispatch.Timeout, "shutdown.grace": c.Shutdown.Grace,
		"inmemory.retryAfter": c.InMemory.RetryAfter,
	} {
		if d <= 0 {
			bad(key, "must be a positive duration, got %v", d)
		}
	}
	if !slices.Contains([]string{"inmemory", "kafka"}, c.Channels.DefaultProvisioner) {
		bad("channels.defaultProvisioner", "%q is not one of inmemory, kafka", c.Channels.DefaultProvisioner)
	}
	if c.Channels.DefaultProvisioner == "kafka" && len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "required when channels.defaultProvisioner is kafka")
	}
	for i, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad(fmt.Sprintf("kafka.brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if c.InMemory.BytesPerChannel <= 0 {
		bad("inmemory.bytesPerChannel", "must be positive, got %d", c.InMemory.BytesPerChannel)
	}
	if c.InMemory.Partitions <= 0 {
		bad("inmemory.partitions", "must be positive, got %d", c.InMemory.Partitions)
	}
	if c.Kafka.DefaultPartitions <= 0 {
		bad("kafka.defaultPartitions", "must be positive, got %d", c.Kafka.DefaultPartitions)
	}
	if c.Kafka.DefaultReplicationFactor <= 0 {
		bad("kafka.defaultReplicationFactor", "must be positive, got %d", c.Kafka.DefaultReplicationFactor)
	}
	if m := c.Kafka.SASL.Mechanism; m != "" && !slices.Contains([]string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, m) {
		bad("kafka.sasl.mechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", m)
	}
	if c.Kafka.SASL.Mechanism != "" && c.Kafka.SASL.Username == "" {
		bad("kafka.sasl.username", "required when kafka.sasl.mechanism is set")
	}
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		bad("kafka.tls.certFile", "certFile and keyFile go together")
	}
	if c.Dispatch.MaxInFlight <= 0 {
		bad("dispatch.maxInFlight", "must be positive, got %d", c.Dispatch.MaxInFlight)
	}
	if c.Dispatch.MinInFlight <= 0 {
		bad("dispatch.minInFlight", "must be positive, got %d", c.Dispatch.MinInFlight)
	} else if c.Dispatch.MaxInFlight > 0 && c.Dispatch.MinInFlight > c.Dispatch.MaxInFlight {
		bad("dispatch.minInFlight", "%d is more than dispatch.maxInFlight %d", c.Dispatch.MinInFlight, c.Dispatch.MaxInFlight)
	}
	if c.Dispatch.Retry < 0 {
		bad("dispatch.retry", "must not be negative, got %d", c.Dispatch.Retry)
	}
	if !slices.Contains([]string{"linear", "exponential"}, c.Dispatch.BackoffPolicy) {
		bad("dispatch.backoffPolicy", "%q is not one of linear, exponential", c.Dispatch.BackoffPolicy)
	}
	if c.Dispatch.BackoffDelay < 0 || c.Dispatch.BackoffMax < 0 || c.Dispatch.RetryAfterMax < 0 {
		bad("dispatch", "backoffDelay, backoffMax and retryAfterMax must not be negative")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"auto", "text", "json"}, c.Log.Format) {
		bad("log.format", "%q is not one of auto, text, json", c.Log.Format)
	}
	for name, u := range c.AddressBook {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			bad("addressBook."+name, "%q is not an http(s) URL", u)
		}
	}
	if c.SecretsDir != "" {
		if st, err := os.Stat(c.SecretsDir); err != nil || !st.IsDir() {
			bad("secretsDir", "%q is not a readable directory", c.SecretsDir)
		}
	}
	return errors.Join(errs...)
}

// IngressURL is the base URL of the ingress as others should use it.
func (c Config) IngressURL() string {
	if c.Ingress.ExternalURL != "" {
		return strings.TrimSuffix(c.Ingress.ExternalURL, "/")
	}
	host, port, err := net.SplitHostPort(c.Ingress.Address)
	if err != nil {
		return "http://127.0.0.1:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Keys lists every configuration key with its default, for documentation and --help.
func Keys() []string {
	k := koanf.New(".")
	_ = k.Load(structs.Provider(Default(), "koanf"), nil)
	var out []string
	for _, key := range k.Keys() {
		out = append(out, fmt.Sprintf("%s=%v", key, k.Get(key)))
	}
	return out
}
