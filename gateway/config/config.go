// Package config loads eventgate's configuration with koanf, in layers where later wins:
// built-in defaults (Default) → a YAML file → EVENTGATE_ environment variables (`__` nests, e.g.
// EVENTGATE_KAFKA__BROKERS=127.0.0.1:9092) → command-line `--set key=value` flags.
//
// A section's keys, defaults and rules belong to the component that owns the section: the `kafka`
// section is kafka.Config with kafka.DefaultConfig and its Validate, and so for `inmemory`,
// `dispatch` and `ingress`. Default composes the sections' defaults, and Validate their rules (each
// problem naming its key, the section in front) plus the rules that span sections.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/structs"
	"github.com/knadh/koanf/v2"

	"github.com/eventgate/eventgate/gateway/config/check"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/ingress"
	"github.com/eventgate/eventgate/gateway/kube"
	"github.com/eventgate/eventgate/gateway/redrive"
	"github.com/eventgate/eventgate/gateway/tracing"
	"github.com/eventgate/eventgate/provisioners/inmemory"
	"github.com/eventgate/eventgate/provisioners/kafka"
	"github.com/eventgate/eventgate/provisioners/nats"
	"github.com/eventgate/eventgate/provisioners/pubsub"
)

// Config is the whole gateway configuration. Keys are the koanf tags, nested with ".".
type Config struct {
	Ingress  ingress.Config  `koanf:"ingress"`
	Admin    Admin           `koanf:"admin"`
	Channels Channels        `koanf:"channels"`
	InMemory inmemory.Config `koanf:"inmemory"`
	Kafka    kafka.Config    `koanf:"kafka"`
	PubSub   pubsub.Config   `koanf:"pubsub"`
	NATS     nats.Config     `koanf:"nats"`
	Dispatch dispatch.Config `koanf:"dispatch"`
	Redrive  redrive.Config  `koanf:"redrive"`
	Tracing  tracing.Config  `koanf:"tracing"`
	// Resources says where resources come from besides the -f files.
	Resources Resources `koanf:"resources"`
	// Kubernetes is the Kubernetes-native mode's section: which namespaces, which resources, the
	// status writer's Lease.
	Kubernetes kube.Config `koanf:"kubernetes"`
	// AddressBook maps references that are not channels to URLs. Keys are "NAMESPACE/NAME" or
	// "KIND/NAMESPACE/NAME" (the more specific wins). Unlisted references resolve to the in-cluster
	// Knative address http://NAME.NAMESPACE.svc.cluster.local.
	AddressBook map[string]string `koanf:"addressBook"`
	// SecretsDir holds secrets laid out as Kubernetes mounts them: SecretsDir/NAME/KEY.
	SecretsDir string   `koanf:"secretsDir"`
	Shutdown   Shutdown `koanf:"shutdown"`
	Log        Log      `koanf:"log"`
}

// Admin is the HTTP server with /metrics, /livez, /readyz, /status and /tail.
type Admin struct {
	Address string    `koanf:"address"` // default ":9090"
	Auth    AdminAuth `koanf:"auth"`
	// Pprof serves Go's runtime profiles under /debug/pprof/ (net/http/pprof) when true; they need the
	// admin token when one is configured. Default false: a profile shows the process's internals and a
	// CPU profile costs CPU while it runs.
	Pprof bool `koanf:"pprof"`
}

// AdminAuth guards the admin endpoints that show events or change state (/tail): with a secret
// configured they need one of its bearer tokens. /metrics, /livez, /readyz and /status stay open.
type AdminAuth struct {
	// Secret names a directory under secretsDir (a mounted Kubernetes Secret) whose key "token" holds
	// the admin tokens, one per line. Empty: no token is asked for.
	Secret string `koanf:"secret"`
}

// Channels holds choices that apply to every channel.
type Channels struct {
	// DefaultProvisioner backs channels whose manifest does not name one: "inmemory" (default), "kafka"
	// "pubsub" or "nats".
	DefaultProvisioner string `koanf:"defaultProvisioner"`
}

// Resources says where resources come from besides the files given with -f.
type Resources struct {
	// Kubernetes makes the cluster a source of resources (`serve --kubernetes`): the managed kinds
	// are watched in the API server, run as files are, and their status written back. Default false.
	Kubernetes bool `koanf:"kubernetes"`
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
		Ingress:     ingress.DefaultConfig(),
		Admin:       Admin{Address: ":9090"},
		Channels:    Channels{DefaultProvisioner: "inmemory"},
		InMemory:    inmemory.DefaultConfig(),
		Kafka:       kafka.DefaultConfig(),
		PubSub:      pubsub.DefaultConfig(),
		NATS:        nats.DefaultConfig(),
		Dispatch:    dispatch.DefaultConfig(),
		Redrive:     redrive.DefaultConfig(),
		Tracing:     tracing.DefaultConfig(),
		Kubernetes:  kube.DefaultConfig(),
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
	k, err := defaults()
	if err != nil {
		return Config{}, nil, err
	}
	known := map[string]string{} // lower-case key → key as spelled in Config
	for _, key := range k.Keys() {
		known[strings.ToLower(key)] = key
	}

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

	c, err := decode(k)
	if err != nil {
		return Config{}, warnings, err
	}
	c.PubSub = c.PubSub.WithEnvironment(getenv(src.Environ))
	return c, warnings, c.Validate()
}

// defaults returns Default loaded into koanf: its keys are every configuration key but the entries
// of addressBook.
func defaults() (*koanf.Koanf, error) {
	k := koanf.New(".")
	if err := k.Load(structs.Provider(Default(), "koanf"), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	return k, nil
}

// decode reads k into a Config: values may be strings from files, the environment or flags
// (durations as "10s", lists comma-separated).
func decode(k *koanf.Koanf) (Config, error) {
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
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// isKnown reports whether key is a configuration key (addressBook entries are free-form).
func isKnown(known map[string]string, key string) bool {
	if _, ok := known[strings.ToLower(key)]; ok {
		return true
	}
	return strings.HasPrefix(key, "addressBook.")
}

// Validate returns every problem with the configuration, joined, each naming its key: each section's
// own rules (the component that owns the section checks them, and its keys get the section in front)
// and the rules that span sections.
func (c Config) Validate() error {
	var p check.Problems
	p.Within("ingress", c.Ingress.Validate())
	if c.Ingress.Auth.Secret != "" && c.SecretsDir == "" {
		p.Add("ingress.auth.secret", "needs secretsDir (or --secrets-dir) to find the secret %q", c.Ingress.Auth.Secret)
	}
	p.HostPort("admin.address", c.Admin.Address)
	p.OneOf("channels.defaultProvisioner", c.Channels.DefaultProvisioner, "inmemory", "kafka", "pubsub", "nats")
	p.Within("kafka", c.Kafka.Validate())
	if c.Channels.DefaultProvisioner == "kafka" && len(c.Kafka.Brokers) == 0 {
		p.Add("kafka.brokers", "required when channels.defaultProvisioner is kafka")
	}
	p.Within("inmemory", c.InMemory.Validate())
	p.Within("pubsub", c.PubSub.Validate())
	if c.Channels.DefaultProvisioner == "pubsub" && c.PubSub.Project == "" {
		p.Add("pubsub.project", "required when channels.defaultProvisioner is pubsub (or set %s)", pubsub.EnvProject)
	}
	p.Within("nats", c.NATS.Validate())
	if c.Channels.DefaultProvisioner == "nats" && c.NATS.AckWait <= c.Dispatch.Timeout {
		p.Add("nats.ackWait", "must be longer than dispatch.timeout (%s), got %s", c.Dispatch.Timeout, c.NATS.AckWait)
	}
	p.Within("dispatch", c.Dispatch.Validate())
	p.Within("redrive", c.Redrive.Validate())
	p.Within("tracing", c.Tracing.Validate())
	p.Within("kubernetes", c.Kubernetes.Validate())
	p.PositiveDuration("shutdown.grace", c.Shutdown.Grace)
	p.OneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.OneOf("log.format", c.Log.Format, "auto", "text", "json")
	for name, u := range c.AddressBook {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			p.Add("addressBook."+name, "%q is not an http(s) URL", u)
		}
	}
	if c.SecretsDir != "" {
		if st, err := os.Stat(c.SecretsDir); err != nil || !st.IsDir() {
			p.Add("secretsDir", "%q is not a readable directory", c.SecretsDir)
		}
	}
	return p.Err()
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

// getenv looks a variable up in environ (os.Environ() form); nil environ has none.
func getenv(environ []string) func(string) string {
	return func(name string) string {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && k == name {
				return v
			}
		}
		return ""
	}
}
