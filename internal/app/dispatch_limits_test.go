package app

import (
	"testing"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/resources"
)

// The concurrency bounds a dispatcher runs with come from config, overridden per subscription by the
// eventgate.dev/min-concurrency and max-concurrency annotations (decoded into Min/MaxConcurrency).
func TestDispatchSubscriptionConcurrencyBounds(t *testing.T) {
	for _, tc := range []struct {
		name             string
		cfg              func(*dispatch.Config)
		annMin, annMax   int
		wantMin, wantMax int
		wantAdaptive     bool
	}{
		{"config defaults", nil, 0, 0, 1, 64, true},
		{"annotations win", nil, 2, 8, 2, 8, true},
		{"annotated max below the configured min lowers the min", func(d *dispatch.Config) { d.MinInFlight = 8 }, 0, 4, 4, 4, true},
		{"configured bounds", func(d *dispatch.Config) { d.MinInFlight, d.MaxInFlight = 3, 30 }, 0, 0, 3, 30, true},
		{"adaptive off", func(d *dispatch.Config) { d.Adaptive = false }, 0, 16, 1, 16, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(&cfg.Dispatch)
			}
			a := &App{cfg: cfg, resolver: &resources.Resolver{AddressBook: cfg.AddressBook, IngressURL: cfg.IngressURL()}}
			s := &resources.Subscription{
				Meta:           resources.Meta{Kind: "Subscription", Name: "s", Namespace: "default"},
				Subscriber:     &resources.Destination{URI: "http://127.0.0.1:9/sink"},
				MinConcurrency: tc.annMin, MaxConcurrency: tc.annMax,
			}
			ds, err := a.dispatchSubscription(&resources.Set{}, s)
			if err != nil {
				t.Fatal(err)
			}
			if ds.MinInFlight != tc.wantMin || ds.MaxInFlight != tc.wantMax || ds.Adaptive != tc.wantAdaptive {
				t.Errorf("bounds [%d, %d] adaptive %v, want [%d, %d] adaptive %v",
					ds.MinInFlight, ds.MaxInFlight, ds.Adaptive, tc.wantMin, tc.wantMax, tc.wantAdaptive)
			}
		})
	}
}
