package nats

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/natstest"

	"github.com/eventgate/eventgate/gateway/channel"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		key  string
	}{
		{"no servers", func(c *Config) { c.Servers = nil }, "servers"},
		{"not a URL", func(c *Config) { c.Servers = []string{"127.0.0.1:4222"} }, "servers[0]"},
		{"http URL", func(c *Config) { c.Servers = []string{"nats://a:1", "http://b:2"} }, "servers[1]"},
		{"bad stream template", func(c *Config) { c.StreamTemplate = "{{.Nope}}" }, "streamTemplate"},
		{"wildcard subject", func(c *Config) { c.SubjectTemplate = "eventgate.*.{{.Name}}" }, "subjectTemplate"},
		{"empty subject token", func(c *Config) { c.SubjectTemplate = "eventgate..{{.Name}}" }, "subjectTemplate"},
		{"no partitions", func(c *Config) { c.DefaultPartitions = 0 }, "defaultPartitions"},
		{"storage", func(c *Config) { c.Storage = "tape" }, "storage"},
		{"ack wait", func(c *Config) { c.AckWait = 10 * time.Millisecond }, "ackWait"},
		{"max deliver", func(c *Config) { c.MaxDeliver = 0 }, "maxDeliver"},
		{"lease bucket", func(c *Config) { c.LeaseBucket = "a.b" }, "leaseBucket"},
		{"lease ttl", func(c *Config) { c.LeaseTTL = 500 * time.Millisecond }, "leaseTTL"},
		{"two credentials", func(c *Config) { c.Username, c.Token = "u", "t" }, "username"},
		{"password alone", func(c *Config) { c.Password = "p" }, "password"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls.certFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("Validate = %v, want a problem naming %s", err, tt.key)
			}
		})
	}
}

func TestNamesFromTemplates(t *testing.T) {
	b := newBackend(t, DefaultConfig())
	ref := channel.Ref{Namespace: "team-a", Name: "orders.v1"}
	if got, err := b.StreamName(ref); err != nil || got != "EVENTGATE_team-a_orders_v1" {
		t.Errorf("StreamName = %q, %v", got, err)
	}
	if got, err := b.subjectOf(ref); err != nil || got != "eventgate.team-a.orders.v1" {
		t.Errorf("subject = %q, %v", got, err)
	}
	if got, err := b.consumerBase(channel.Group{Channel: ref, Name: "eventgate.team-a.sub"}); err != nil || got != "eventgate_team-a_sub" {
		t.Errorf("consumer = %q, %v", got, err)
	}
}

// TestUnreachableServerIsUnavailable: with no server listening, Ensure, Subscribe's setup and Ready
// fail at once with errors wrapping channel.ErrUnavailable (the gateway keeps the channel waiting
// and retries), and Publish to a channel never ensured is ErrNotFound.
func TestUnreachableServerIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := newBackend(t, testConfig("nats://"+addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ref := channel.Ref{Namespace: "ns", Name: "c"}
	if err := b.Ensure(ctx, channel.Spec{Ref: ref}); !errors.Is(err, channel.ErrUnavailable) {
		t.Errorf("Ensure = %v, want ErrUnavailable", err)
	} else if !strings.Contains(err.Error(), addr) {
		t.Errorf("Ensure error %q does not name the server", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready with no NATS channel = %v, want nil", err)
	}
	if err := b.Publish(ctx, ref, nil); !errors.Is(err, channel.ErrNotFound) {
		t.Errorf("Publish = %v, want ErrNotFound", err)
	}
}

// TestConsumerSettingsFollowTheConfig: a subscription that exists keeps its position when the gateway
// comes back with another ackWait, maxDeliver and maxAckPending, and its consumers take them.
func TestConsumerSettingsFollowTheConfig(t *testing.T) {
	s := natstest.Server(t, natstest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref := channel.Ref{Namespace: "ns", Name: "settings"}
	g := channel.Group{Channel: ref, Name: "sub", Start: channel.Earliest}
	subscribe := func(cfg Config) *Backend {
		b := newBackend(t, cfg)
		if err := b.Ensure(ctx, channel.Spec{Ref: ref}); err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		sub, err := b.Subscribe(ctx, g, func(c channel.Claim) {
			for range c.Records() {
			}
		})
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		if err := sub.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		return b
	}
	subscribe(testConfig(s.ClientURL()))
	cfg := testConfig(s.ClientURL())
	cfg.AckWait, cfg.MaxDeliver, cfg.MaxAckPending = 90*time.Second, 7, 50
	b := subscribe(cfg)
	_, js, err := b.connected()
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < cfg.DefaultPartitions; p++ {
		cons, err := js.Consumer(ctx, "EVENTGATE_ns_settings", consumerName("sub", p))
		if err != nil {
			t.Fatalf("consumer of partition %d: %v", p, err)
		}
		cc := cons.CachedInfo().Config
		if cc.AckWait != cfg.AckWait || cc.MaxDeliver != 7 || cc.MaxAckPending != 50 {
			t.Errorf("partition %d: ackWait %v maxDeliver %d maxAckPending %d; want the new configuration", p, cc.AckWait, cc.MaxDeliver, cc.MaxAckPending)
		}
	}
}
