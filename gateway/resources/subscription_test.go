package resources

import (
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/internal/selfsigned"
)

func TestDecodeSubscriptions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Subscription
	}{
		{"seed v1alpha1", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
  subscriber:
    ref: {apiVersion: serving.knative.dev/v1alpha1, kind: Service, name: svc}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
			Channel:       Reference{"eventing.knative.dev/v1alpha1", "Channel", "ch", "default"},
			Subscriber:    &Destination{Ref: &Reference{"serving.knative.dev/v1alpha1", "Service", "svc", "default"}},
			Order:         Unordered,
			InitialOffset: channel.Latest}},
		{"v1alpha1 reply channel, dnsName subscriber, referrer namespace", `
apiVersion: eventing.knative.dev/v1alpha1
kind: Subscription
metadata: {name: s, namespace: team}
spec:
  channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: ch}
  subscriber: {dnsName: "http://svc.team.example"}
  reply:
    channel: {apiVersion: eventing.knative.dev/v1alpha1, kind: Channel, name: out, namespace: other}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "team", Name: "s"},
			Channel:    Reference{"eventing.knative.dev/v1alpha1", "Channel", "ch", "team"},
			Subscriber: &Destination{URI: "http://svc.team.example"},
			Reply:      &Destination{Ref: &Reference{"eventing.knative.dev/v1alpha1", "Channel", "out", "other"}},
			Order:      Unordered}},
		{"v1 with everything", `
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
    eventgate.dev/initial-offset: earliest
    eventgate.dev/min-concurrency: "2"
    eventgate.dev/max-concurrency: 8
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: KafkaChannel, name: ch}
  subscriber: {uri: "https://example.com/hook"}
  reply:
    ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: out}
  delivery:
    retry: 4
    backoffPolicy: linear
    backoffDelay: PT0.2S
    backoffMax: PT5S
    timeout: PT30S
    retryAfterMax: PT1M
    format: json
    deadLetterSink:
      ref: {apiVersion: v1, kind: Service, name: dls, namespace: ops}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
			Channel:    Reference{"messaging.knative.dev/v1", "KafkaChannel", "ch", "default"},
			Subscriber: &Destination{URI: "https://example.com/hook"},
			Reply:      &Destination{Ref: &Reference{"messaging.knative.dev/v1", "InMemoryChannel", "out", "default"}},
			Delivery: &Delivery{Retry: int32p(4), BackoffPolicy: BackoffLinear, BackoffDelay: durp(200 * time.Millisecond),
				BackoffMax: durp(5 * time.Second), Timeout: durp(30 * time.Second), RetryAfterMax: durp(time.Minute),
				Format:         FormatJSON,
				DeadLetterSink: &Destination{Ref: &Reference{"v1", "Service", "dls", "ops"}}},
			Order: Ordered, InitialOffset: channel.Earliest, MinConcurrency: 2, MaxConcurrency: 8}},
		{"reply only, explicit unordered and latest", `
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: s
  annotations:
    kafka.eventing.knative.dev/delivery.order: unordered
    eventgate.dev/initial-offset: latest
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: Channel, name: ch}
  reply: {uri: "http://r.example"}
`, Subscription{Meta: Meta{Kind: "Subscription", Namespace: "default", Name: "s"},
			Channel: Reference{"messaging.knative.dev/v1", "Channel", "ch", "default"},
			Reply:   &Destination{URI: "http://r.example"}, Order: Unordered, InitialOffset: channel.Latest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := decodeOK(t, tt.src, Options{})
			if len(s.Subscriptions) != 1 {
				t.Fatalf("got %d subscriptions, want 1", len(s.Subscriptions))
			}
			got := s.Subscriptions[0]
			if !got.Equal(&tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
			if got.ChannelRef() != (channel.Ref{Namespace: tt.want.Channel.Namespace, Name: tt.want.Channel.Name}) {
				t.Errorf("ChannelRef() = %v", got.ChannelRef())
			}
		})
	}
}

// A destination's CACerts (Knative's field, PEM) are read as written, beside a uri or a ref.
func TestDecodeCACerts(t *testing.T) {
	ca, err := selfsigned.New("private CA", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(ca.CertPEM) + string(ca.CertPEM) // two blocks, as a bundle
	indented := "      " + strings.ReplaceAll(strings.TrimSuffix(pemText, "\n"), "\n", "\n      ")
	src := `
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: s}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: ch}
  subscriber:
    uri: https://orders.example/in
    CACerts: |
` + indented + `
  delivery:
    format: json
    deadLetterSink:
      ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: dls}
      uri: /dead
      CACerts: |
  ` + strings.ReplaceAll(indented, "\n", "\n  ") + "\n"
	set, err := Decode("t.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := set.Subscriptions[0]
	if s.Subscriber.CACerts != pemText || s.Delivery.DeadLetterSink.CACerts != pemText {
		t.Errorf("CACerts %q and %q, want %q", s.Subscriber.CACerts, s.Delivery.DeadLetterSink.CACerts, pemText)
	}
	certs, err := ParseCACerts(pemText)
	if err != nil || len(certs) != 2 || certs[0].Subject.CommonName != "private CA" {
		t.Errorf("ParseCACerts: %d certificates, %v", len(certs), err)
	}
	r := &Resolver{}
	want := "Subscription default/s → subscriber https://orders.example/in (CACerts: 2 certificates) (channel default/ch, " +
		"dead letter http://dls.default.svc.cluster.local/dead (CACerts: 2 certificates), structured mode)"
	if got := Describe(set, r); len(got) != 1 || got[0] != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if tg, err := r.Resolve(*s.Delivery.DeadLetterSink); err != nil || tg.CACerts != pemText ||
		tg.URL != "http://dls.default.svc.cluster.local/dead" {
		t.Errorf("Resolve = %+v, %v; want the CACerts with the URL", tg, err)
	}
	// An addressable's own CACerts (its status.address, through Lookup) come first, the
	// destination's are added to them.
	r.Lookup = func(Reference) (Address, bool) {
		return Address{URL: "https://dls.ops.example", CACerts: strings.TrimSuffix(string(ca.CertPEM), "\n")}, true
	}
	tg, err := r.Resolve(*s.Delivery.DeadLetterSink)
	if err != nil {
		t.Fatal(err)
	}
	if certs, err := ParseCACerts(tg.CACerts); err != nil || len(certs) != 3 || tg.URL != "https://dls.ops.example/dead" {
		t.Errorf("Resolve with the addressable's CACerts: %s, %d certificates (%v); want its URL and 3", tg.URL, len(certs), err)
	}
}
