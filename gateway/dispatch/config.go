package dispatch

import (
	"time"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// Config is the delivery defaults: what a subscription gets where neither its manifest's
// spec.delivery nor its concurrency annotations say otherwise. It is the `dispatch` section of
// eventgate's configuration (the koanf tags are its keys). Start from DefaultConfig.
type Config struct {
	// MaxInFlight bounds in-flight deliveries per subscription (the adaptive limit's ceiling). Default 64.
	MaxInFlight int `koanf:"maxInFlight"`
	// MinInFlight is the adaptive limit's floor. Default 1.
	MinInFlight int `koanf:"minInFlight"`
	// Adaptive lets each subscription's limit follow its subscriber's latency and overload answers
	// between MinInFlight and MaxInFlight (a latency gradient that finds the knee, see Adaptive); false fixes it
	// at MaxInFlight. Default true.
	Adaptive bool `koanf:"adaptive"`
	// Retry is how many times a failed attempt is repeated. Default 3.
	Retry int `koanf:"retry"`
	// BackoffPolicy is how the delay between retries grows. Default exponential.
	BackoffPolicy BackoffPolicy `koanf:"backoffPolicy"`
	// BackoffDelay is the base delay between retries. Default 200ms.
	BackoffDelay time.Duration `koanf:"backoffDelay"`
	// BackoffMax caps every delay between retries. Default 30s.
	BackoffMax time.Duration `koanf:"backoffMax"`
	// Timeout bounds one attempt. Default 30s.
	Timeout time.Duration `koanf:"timeout"`
	// RetryAfterMax is the longest Retry-After honoured; 0 ignores Retry-After. Default 60s.
	RetryAfterMax time.Duration `koanf:"retryAfterMax"`
}

// DefaultConfig returns the delivery defaults.
func DefaultConfig() Config {
	return Config{
		MaxInFlight:   64,
		MinInFlight:   1,
		Adaptive:      true,
		Retry:         3,
		BackoffPolicy: BackoffExponential,
		BackoffDelay:  200 * time.Millisecond,
		BackoffMax:    30 * time.Second,
		Timeout:       30 * time.Second,
		RetryAfterMax: 60 * time.Second,
	}
}

// Validate returns every problem with c, joined, each naming its key (relative to the dispatch
// section).
func (c Config) Validate() error {
	var p check.Problems
	p.Positive("maxInFlight", int64(c.MaxInFlight))
	if c.MinInFlight <= 0 {
		p.Add("minInFlight", "must be positive, got %d", c.MinInFlight)
	} else if c.MaxInFlight > 0 && c.MinInFlight > c.MaxInFlight {
		p.Add("minInFlight", "%d is more than dispatch.maxInFlight %d", c.MinInFlight, c.MaxInFlight)
	}
	p.NotNegative("retry", int64(c.Retry))
	if !c.BackoffPolicy.Known() {
		p.Add("backoffPolicy", "%q is not linear or exponential", c.BackoffPolicy)
	}
	p.NotNegativeDuration("backoffDelay", c.BackoffDelay)
	p.NotNegativeDuration("backoffMax", c.BackoffMax)
	p.PositiveDuration("timeout", c.Timeout)
	p.NotNegativeDuration("retryAfterMax", c.RetryAfterMax)
	return p.Err()
}
