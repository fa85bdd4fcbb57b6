package channel

import "testing"

func TestBrokerRef(t *testing.T) {
	b := BrokerRef("shop", "events")
	if name, ok := b.Broker(); !ok || name != "events" {
		t.Fatalf("Broker() = %q, %v", name, ok)
	}
	if got := b.Public(); got != (Ref{Namespace: "shop", Name: "events"}) {
		t.Errorf("Public() = %v", got)
	}
	if got := b.Describe(); got != "broker shop/events" {
		t.Errorf("Describe() = %q", got)
	}
	c := Ref{Namespace: "shop", Name: "events"}
	if _, ok := c.Broker(); ok || c.Public() != c || c.Describe() != "channel shop/events" {
		t.Errorf("a channel's ref: %v %q", c.Public(), c.Describe())
	}
	if _, ok := (Ref{Namespace: "shop", Name: "broker."}).Broker(); ok {
		t.Error(`"broker." names no broker`)
	}
	if b == c {
		t.Error("a broker's channel must not share its name with a channel of the broker's name")
	}
}
