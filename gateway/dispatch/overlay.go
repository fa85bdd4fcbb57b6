package dispatch

import (
	"time"

	"github.com/eventgate/eventgate/gateway/resources"
)

// Settings is how one subscription's deliveries run: what Overlay resolves from its manifests and
// the configured defaults, to be copied into its Subscription.
type Settings struct {
	Policy Policy
	// MinInFlight and MaxInFlight bound in-flight deliveries, with MinInFlight ≤ MaxInFlight.
	MinInFlight, MaxInFlight int
	Adaptive                 bool
	// DeadLetterSink is the dead-letter sink as declared, for the caller to resolve into a
	// Destination; nil when none is declared.
	DeadLetterSink *resources.Destination
}

// Overlay returns the delivery settings of subscription sub of set: the manifests over the
// configured defaults, field by field.
//
//   - Retry, backoff policy, delay and max, timeout, retryAfterMax, format and the dead-letter sink
//     come from the delivery spec that applies (set.DeliveryFor: the subscription's own
//     spec.delivery whole, else its channel's); each field that spec leaves unset comes from
//     defaults (format: binary).
//   - The concurrency bounds come from the eventgate.dev/min-concurrency and max-concurrency
//     annotations, else from defaults; an annotated ceiling below the configured floor lowers the
//     floor (both annotated with min > max is refused by validation). Adaptive is always the
//     configured one.
//
// Pure; safe for concurrent use.
func Overlay(defaults Config, set *resources.Set, sub *resources.Subscription) Settings {
	s := Settings{
		Policy: Policy{
			Retry:         defaults.Retry,
			Backoff:       defaults.BackoffPolicy,
			BackoffDelay:  defaults.BackoffDelay,
			BackoffMax:    defaults.BackoffMax,
			Timeout:       defaults.Timeout,
			RetryAfterMax: defaults.RetryAfterMax,
		},
		MinInFlight: defaults.MinInFlight,
		MaxInFlight: defaults.MaxInFlight,
		Adaptive:    defaults.Adaptive,
	}
	if sub.MaxConcurrency > 0 {
		s.MaxInFlight = sub.MaxConcurrency
	}
	if sub.MinConcurrency > 0 {
		s.MinInFlight = sub.MinConcurrency
	}
	s.MinInFlight = min(s.MinInFlight, s.MaxInFlight)

	d := set.DeliveryFor(sub)
	if d == nil {
		return s
	}
	p := &s.Policy
	if d.Retry != nil {
		p.Retry = int(*d.Retry)
	}
	if d.BackoffPolicy != "" {
		p.Backoff = d.BackoffPolicy
	}
	setIf(&p.BackoffDelay, d.BackoffDelay)
	setIf(&p.BackoffMax, d.BackoffMax)
	setIf(&p.Timeout, d.Timeout)
	setIf(&p.RetryAfterMax, d.RetryAfterMax)
	p.Format = d.Format
	s.DeadLetterSink = d.DeadLetterSink
	return s
}

// setIf sets *dst to *v when v is set.
func setIf(dst *time.Duration, v *time.Duration) {
	if v != nil {
		*dst = *v
	}
}
