package ingress

import (
	"time"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// Config is the ingress: the HTTP server that takes events. It is the `ingress` section of
// eventgate's configuration (the koanf tags are its keys). Start from DefaultConfig.
type Config struct {
	// Address is where the server listens, host:port. Default ":8080".
	Address string `koanf:"address"`
	// MaxBodyBytes bounds a request body; larger bodies are answered 413. Default 1 MiB.
	MaxBodyBytes int64 `koanf:"maxBodyBytes"`
	// ReadHeaderTimeout, ReadTimeout (the whole request), WriteTimeout and IdleTimeout bound slow
	// clients. Defaults 10s, 30s, 30s, 120s.
	ReadHeaderTimeout time.Duration `koanf:"readHeaderTimeout"`
	ReadTimeout       time.Duration `koanf:"readTimeout"`
	WriteTimeout      time.Duration `koanf:"writeTimeout"`
	IdleTimeout       time.Duration `koanf:"idleTimeout"`
	// MaxHeaderBytes bounds a request's headers. Default 64 KiB.
	MaxHeaderBytes int `koanf:"maxHeaderBytes"`
	// MaxConcurrentRequests bounds requests in progress; beyond it the ingress answers 503 at once.
	// Default 4096; 0 means unbounded.
	MaxConcurrentRequests int `koanf:"maxConcurrentRequests"`
	// TLS serves the ingress over TLS (see CertReloader).
	TLS TLS `koanf:"tls"`
	// Auth turns on bearer tokens per channel.
	Auth Auth `koanf:"auth"`
	// ExternalURL is the base URL others use to reach the ingress (what `validate` prints and what
	// ContainerSources get as K_SINK). Default: http://127.0.0.1 with the port of Address.
	ExternalURL string `koanf:"externalURL"`
}

// TLS serves the ingress over TLS from PEM files, reloaded when they change. Both empty: plain HTTP.
type TLS struct {
	CertFile string `koanf:"certFile"`
	KeyFile  string `koanf:"keyFile"`
}

// Auth configures bearer-token authentication.
type Auth struct {
	// Secret names a directory under secretsDir (a mounted Kubernetes Secret) with one key per channel,
	// NAMESPACE.CHANNEL, holding that channel's tokens one per line (see LoadTokens). Empty: no
	// authentication.
	Secret string `koanf:"secret"`
}

// DefaultConfig returns the ingress defaults.
func DefaultConfig() Config {
	return Config{
		Address:               ":8080",
		MaxBodyBytes:          1 << 20,
		ReadHeaderTimeout:     10 * time.Second,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		MaxHeaderBytes:        64 << 10,
		MaxConcurrentRequests: 4096,
	}
}

// Validate returns every problem with c, joined, each naming its key (relative to the ingress
// section).
func (c Config) Validate() error {
	var p check.Problems
	p.HostPort("address", c.Address)
	p.Positive("maxBodyBytes", c.MaxBodyBytes)
	p.PositiveDuration("readHeaderTimeout", c.ReadHeaderTimeout)
	p.PositiveDuration("readTimeout", c.ReadTimeout)
	p.PositiveDuration("writeTimeout", c.WriteTimeout)
	p.PositiveDuration("idleTimeout", c.IdleTimeout)
	p.Positive("maxHeaderBytes", int64(c.MaxHeaderBytes))
	p.NotNegative("maxConcurrentRequests", int64(c.MaxConcurrentRequests))
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		p.Add("tls.certFile", "certFile and keyFile go together")
	}
	return p.Err()
}
