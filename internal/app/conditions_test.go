package app

import (
	"testing"
	"time"
)

func TestConditionsReportChangesOnlyAndListNotReady(t *testing.T) {
	c := newConditions()
	tick := time.Unix(0, 0)
	c.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	ch := ResourceKey{Category: CategoryChannel, Name: "default/orders"}
	sub := ResourceKey{Category: CategorySubscription, Name: "default/audit"}

	if !c.set(ch, false, "BackendUnavailable", "no broker answers") {
		t.Fatal("first set: want changed")
	}
	if c.set(ch, false, "BackendUnavailable", "no broker answers (attempt 2)") {
		t.Fatal("same ready and reason: want unchanged (one log line per state change)")
	}
	first, _ := c.get(ch)
	if first.Message != "no broker answers (attempt 2)" || first.Since != time.Unix(1, 0) {
		t.Fatalf("message is updated, since is kept: got %+v", first)
	}
	c.set(sub, false, "ChannelNotReady", "channel default/orders is not ready")
	got := c.notReady()
	if len(got) != 2 || got[0].Key != ch || got[1].Key != sub {
		t.Fatalf("notReady = %+v, want channel then subscription", got)
	}
	if !c.set(ch, true, "Ready", "") {
		t.Fatal("not ready → ready: want changed")
	}
	c.drop(sub)
	if got := c.notReady(); len(got) != 0 {
		t.Fatalf("notReady after ready and drop = %+v, want none", got)
	}
}
