package dispatch

import (
	"reflect"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/resources"
)

// Each delivery field, in turn: from the configured defaults when no spec says it, from the
// channel's spec, from the subscription's own spec, and — Knative's rule — from the defaults when the
// subscription has a spec that leaves the field out, even though its channel's spec sets it (the
// subscription's spec replaces the channel's whole).
func TestOverlayPrecedence(t *testing.T) {
	const (
		fromConfig = iota
		fromChannel
		fromSubscription
	)
	layers := []string{"the configured default", "the channel", "the subscription"}
	// A configuration whose every field is told apart from the manifests' values below. Overlay
	// copies, never checks: the backoff policy may be a marker.
	cfg := Config{Retry: 7, BackoffPolicy: "configured", BackoffDelay: 7, BackoffMax: 7, Timeout: 7, RetryAfterMax: 7}
	dur := func(v int) *time.Duration { d := time.Duration(v); return &d }
	for _, f := range []struct {
		field string
		// set sets the field of d to the value of layer l (fromChannel or fromSubscription).
		set func(d *resources.Delivery, l int)
		// got is the field's value in s, and want the value of layer l.
		got  func(s Settings) any
		want func(l int) any
	}{
		{"retry", func(d *resources.Delivery, l int) { r := int32(l); d.Retry = &r },
			func(s Settings) any { return s.Policy.Retry }, func(l int) any { return []int{7, 1, 2}[l] }},
		{"backoffPolicy", func(d *resources.Delivery, l int) {
			d.BackoffPolicy = []BackoffPolicy{"", BackoffLinear, BackoffExponential}[l]
		},
			func(s Settings) any { return s.Policy.Backoff },
			func(l int) any { return []BackoffPolicy{"configured", BackoffLinear, BackoffExponential}[l] }},
		{"backoffDelay", func(d *resources.Delivery, l int) { d.BackoffDelay = dur(l) },
			func(s Settings) any { return s.Policy.BackoffDelay }, func(l int) any { return *dur([]int{7, 1, 2}[l]) }},
		{"backoffMax", func(d *resources.Delivery, l int) { d.BackoffMax = dur(l) },
			func(s Settings) any { return s.Policy.BackoffMax }, func(l int) any { return *dur([]int{7, 1, 2}[l]) }},
		{"timeout", func(d *resources.Delivery, l int) { d.Timeout = dur(l) },
			func(s Settings) any { return s.Policy.Timeout }, func(l int) any { return *dur([]int{7, 1, 2}[l]) }},
		{"retryAfterMax", func(d *resources.Delivery, l int) { d.RetryAfterMax = dur(l) },
			func(s Settings) any { return s.Policy.RetryAfterMax }, func(l int) any { return *dur([]int{7, 1, 2}[l]) }},
		{"format", func(d *resources.Delivery, l int) {
			d.Format = []resources.DeliveryFormat{"", resources.FormatJSON, resources.FormatBinary}[l]
		},
			func(s Settings) any { return s.Policy.Format },
			func(l int) any {
				return []resources.DeliveryFormat{"", resources.FormatJSON, resources.FormatBinary}[l]
			}}, // binary by default
		{"deadLetterSink", func(d *resources.Delivery, l int) {
			d.DeadLetterSink = &resources.Destination{URI: []string{"", "http://ch", "http://sub"}[l]}
		},
			func(s Settings) any {
				if s.DeadLetterSink == nil {
					return "none"
				}
				return s.DeadLetterSink.URI
			},
			func(l int) any { return []string{"none", "http://ch", "http://sub"}[l] }}, // no configured default
	} {
		spec := func(l int) *resources.Delivery { d := &resources.Delivery{}; f.set(d, l); return d }
		for _, tc := range []struct {
			name         string
			channel, sub *resources.Delivery
			want         int
		}{
			{"no spec", nil, nil, fromConfig},
			{"the channel's spec", spec(fromChannel), nil, fromChannel},
			{"the subscription's spec over the channel's", spec(fromChannel), spec(fromSubscription), fromSubscription},
			{"the subscription's spec without the field", spec(fromChannel), &resources.Delivery{}, fromConfig},
			{"the subscription's spec, no channel spec", nil, spec(fromSubscription), fromSubscription},
		} {
			t.Run(f.field+"/"+tc.name, func(t *testing.T) {
				set, sub := subscriptionOn(tc.channel, tc.sub)
				if got, want := f.got(Overlay(cfg, set, sub)), f.want(tc.want); got != want {
					t.Errorf("%s = %v, want %v (from %s)", f.field, got, want, layers[tc.want])
				}
			})
		}
	}
}

// subscriptionOn returns a set with a channel whose spec.delivery is channel and a subscription to it
// whose spec.delivery is sub.
func subscriptionOn(channel, sub *resources.Delivery) (*resources.Set, *resources.Subscription) {
	ch := &resources.Channel{Meta: resources.Meta{Kind: "InMemoryChannel", Name: "c", Namespace: "default"}, Delivery: channel}
	s := &resources.Subscription{
		Meta:     resources.Meta{Kind: "Subscription", Name: "s", Namespace: "default"},
		Channel:  resources.Reference{Kind: "InMemoryChannel", Name: "c", Namespace: "default"},
		Delivery: sub,
	}
	return &resources.Set{Channels: []*resources.Channel{ch}, Subscriptions: []*resources.Subscription{s}}, s
}

// The concurrency bounds: annotations over config, with the floor lowered to an annotated ceiling
// below it. Adaptive is the configured value whatever the manifests say.
func TestOverlayConcurrencyBounds(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cfg              func(*Config)
		annMin, annMax   int
		wantMin, wantMax int
		wantAdaptive     bool
	}{
		{"config defaults", nil, 0, 0, 1, 64, true},
		{"annotations win", nil, 2, 8, 2, 8, true},
		{"annotated min only", nil, 5, 0, 5, 64, true},
		{"annotated max below the configured min lowers the min", func(c *Config) { c.MinInFlight = 8 }, 0, 4, 4, 4, true},
		{"configured bounds", func(c *Config) { c.MinInFlight, c.MaxInFlight = 3, 30 }, 0, 0, 3, 30, true},
		{"adaptive off", func(c *Config) { c.Adaptive = false }, 0, 16, 1, 16, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			set, sub := subscriptionOn(nil, nil)
			sub.MinConcurrency, sub.MaxConcurrency = tc.annMin, tc.annMax
			got := Overlay(cfg, set, sub)
			want := Settings{Policy: got.Policy, MinInFlight: tc.wantMin, MaxInFlight: tc.wantMax, Adaptive: tc.wantAdaptive}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got bounds [%d, %d] adaptive %v, want [%d, %d] adaptive %v",
					got.MinInFlight, got.MaxInFlight, got.Adaptive, tc.wantMin, tc.wantMax, tc.wantAdaptive)
			}
		})
	}
}

// With no spec anywhere the policy is the configured one, field for field.
func TestOverlayDefaultsArePolicy(t *testing.T) {
	cfg := DefaultConfig()
	set, sub := subscriptionOn(nil, nil)
	want := Policy{Retry: cfg.Retry, Backoff: cfg.BackoffPolicy, BackoffDelay: cfg.BackoffDelay,
		BackoffMax: cfg.BackoffMax, Timeout: cfg.Timeout, RetryAfterMax: cfg.RetryAfterMax}
	if got := Overlay(cfg, set, sub).Policy; got != want {
		t.Errorf("policy %+v, want %+v", got, want)
	}
}
