package ingress

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/metrics"
)

// refRecorder keeps the channel each Publish went to.
type refRecorder struct {
	mu   sync.Mutex
	refs []channel.Ref
}

func (r *refRecorder) Publish(_ context.Context, ref channel.Ref, _ []*event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return nil
}

func TestBrokerAddressing(t *testing.T) {
	events := channel.BrokerRef("shop", "events")
	tests := []struct {
		name, host, target string
		code               int
		want               channel.Ref // the channel published to, when 202
	}{
		{"broker by path", "", "/shop/events", http.StatusAccepted, events},
		{"channel by path", "", "/shop/orders", http.StatusAccepted, channel.Ref{Namespace: "shop", Name: "orders"}},
		{"broker ingress host", channel.BrokerIngressHost, "/shop/events", http.StatusAccepted, events},
		{"kafka broker ingress host with port", "Kafka-Broker-Ingress.knative-eventing.svc.cluster.local:80", "/shop/events", http.StatusAccepted, events},
		{"broker host names a channel", channel.BrokerIngressHost, "/shop/orders", http.StatusNotFound, channel.Ref{}},
		{"unknown broker", channel.BrokerIngressHost, "/shop/nope", http.StatusNotFound, channel.Ref{}},
		{"broker host without a name", channel.BrokerIngressHost, "/shop", http.StatusNotFound, channel.Ref{}},
		{"the backing channel's own name is not a path", "", "/shop/broker.events", http.StatusNotFound, channel.Ref{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &refRecorder{}
			m := metrics.New(metrics.Build{})
			h := New(DefaultConfig(), Deps{Metrics: m})
			h.SetChannels(Table{events: pub, {Namespace: "shop", Name: "orders"}: pub})
			w := do(h, http.MethodPost, tt.target, tt.host, binary, "x")
			if w.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if tt.code != http.StatusAccepted {
				return
			}
			if len(pub.refs) != 1 || pub.refs[0] != tt.want {
				t.Fatalf("published to %v, want %v", pub.refs, tt.want)
			}
			if got := testutil.ToFloat64(m.IngressEvents.WithLabelValues("shop", tt.want.Public().Name)); got != 1 {
				t.Errorf("ingress events of %s = %v, want 1 (labelled with the broker's name)", tt.want.Public(), got)
			}
		})
	}
}

// A broker's bearer tokens are those of its name (NAMESPACE.BROKER), whichever address form is used.
func TestBrokerTokens(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.events"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadTokens(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := New(DefaultConfig(), Deps{})
	h.SetChannels(Table{channel.BrokerRef("shop", "events"): &refRecorder{}})
	h.SetTokens(tokens)
	withToken := map[string]string{"Authorization": "Bearer s3cret"}
	for k, v := range binary {
		withToken[k] = v
	}
	for _, host := range []string{"", channel.BrokerIngressHost} {
		if w := do(h, http.MethodPost, "/shop/events", host, binary, "x"); w.Code != http.StatusUnauthorized {
			t.Errorf("host %q without a token: %d, want 401", host, w.Code)
		}
		if w := do(h, http.MethodPost, "/shop/events", host, withToken, "x"); w.Code != http.StatusAccepted {
			t.Errorf("host %q with the broker's token: %d, want 202: %s", host, w.Code, w.Body)
		}
	}
}
