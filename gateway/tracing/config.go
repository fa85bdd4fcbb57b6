package tracing

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Config is the `tracing` section of eventgate's configuration (the koanf tags are its keys). Tracing
// is off unless an OTLP endpoint is named: here, or by the standard OpenTelemetry environment
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, or OTEL_TRACES_EXPORTER=otlp
// for the exporter's default endpoint). OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true keep it
// off whatever else says. A field left empty takes the standard environment's value, then the
// default; a field set here wins over the environment. Start from DefaultConfig.
type Config struct {
	// Endpoint is the OTLP collector's URL, e.g. http://otel-collector:4317 (gRPC) or
	// http://otel-collector:4318 (HTTP; /v1/traces is added when the URL has no path). https://
	// uses TLS. Default "": OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT,
	// else tracing is off.
	Endpoint string `koanf:"endpoint"`
	// Protocol is grpc or http/protobuf. Default "": OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
	// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
	Protocol string `koanf:"protocol"`
	// Sampling is the share of new traces recorded, from 0 to 1. A trace that comes with its parent
	// (a traceparent header or extension) follows the parent's decision. Default 1: every trace.
	Sampling float64 `koanf:"sampling"`
	// ServiceName is the service.name of the spans. Default "": OTEL_SERVICE_NAME, else "eventgate".
	ServiceName string `koanf:"serviceName"`
}

// DefaultConfig returns the defaults: no endpoint (off unless the environment names one), every
// trace sampled.
func DefaultConfig() Config { return Config{Sampling: 1} }

// Validate returns every problem with c, joined, each naming its key (relative to the section).
func (c Config) Validate() error {
	var p check.Problems
	if c.Endpoint != "" {
		if err := checkEndpoint(c.Endpoint); err != nil {
			p.Add("endpoint", "%v", err)
		}
	}
	if c.Protocol != "" {
		p.OneOf("protocol", c.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if c.Sampling < 0 || c.Sampling > 1 || c.Sampling != c.Sampling {
		p.Add("sampling", "must be between 0 and 1, got %v", c.Sampling)
	}
	return p.Err()
}

// checkEndpoint accepts an absolute http(s) URL with a host.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL such as http://otel-collector:4317", s)
	}
	return nil
}

// settings is Config resolved against the environment: what Start builds.
type settings struct {
	on          bool
	endpoint    string // "" lets the exporter read the OTEL_EXPORTER_OTLP_* environment itself
	protocol    string
	sampling    float64
	serviceName string
}

// resolve applies the standard OpenTelemetry environment (getenv) to c. It fails on an environment
// value eventgate cannot honour (another exporter, another protocol), naming the variable.
func (c Config) resolve(getenv func(string) string) (settings, error) {
	s := settings{endpoint: c.Endpoint, protocol: c.Protocol, sampling: c.Sampling, serviceName: c.ServiceName}
	exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") || exporter == "none" {
		return settings{}, nil
	}
	if exporter != "" && exporter != "otlp" {
		return settings{}, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: eventgate exports traces with otlp only (or none)", exporter)
	}
	envEndpoint := firstOf(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	s.on = s.endpoint != "" || envEndpoint != "" || exporter == "otlp"
	if !s.on {
		return settings{}, nil
	}
	if s.protocol == "" {
		s.protocol = firstOf(getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
		if s.protocol != "" && s.protocol != ProtocolGRPC && s.protocol != ProtocolHTTP {
			return settings{}, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: eventgate exports with %s or %s", s.protocol, ProtocolGRPC, ProtocolHTTP)
		}
	}
	if s.protocol == "" {
		s.protocol = ProtocolGRPC
	}
	if s.serviceName == "" {
		s.serviceName = getenv("OTEL_SERVICE_NAME")
	}
	if s.serviceName == "" {
		s.serviceName = "eventgate"
	}
	return s, nil
}

func firstOf(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return v
		}
	}
	return ""
}
