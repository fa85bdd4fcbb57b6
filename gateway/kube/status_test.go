package kube

import (
	"encoding/json"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func object(kind string, generation int64, status map[string]any) *Object {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "messaging.knative.dev/v1", "kind": kind}}
	u.SetName("orders")
	u.SetNamespace("default")
	u.SetGeneration(generation)
	if status != nil {
		u.Object["status"] = status
	}
	return &Object{Obj: u}
}

func TestDesiredStatus(t *testing.T) {
	w := &StatusWriter{}
	since := time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC)
	o := object("InMemoryChannel", 3, nil)
	want := w.desired(o, &ResourceStatus{Kind: "InMemoryChannel", Known: true, Ready: true, Reason: "Ready", Since: since,
		Address: "http://gw/default/orders"})
	if want["observedGeneration"] != int64(3) || want["address"].(map[string]any)["url"] != "http://gw/default/orders" {
		t.Errorf("channel status %v", want)
	}
	conds := want["conditions"].([]any)
	ready := conds[0].(map[string]any)
	if ready["type"] != "Ready" || ready["status"] != "True" || ready["lastTransitionTime"] != "2026-11-28T01:02:03Z" {
		t.Errorf("Ready %v", ready)
	}
	if c := conds[1].(map[string]any); c["type"] != "Addressable" || c["status"] != "True" {
		t.Errorf("Addressable %v", c)
	}
	// Written once, it is the same: no second write.
	o.Obj.Object["status"] = roundTrip(t, want)
	if !sameStatus(want, o.Obj) {
		t.Errorf("a status just written differs from itself: %v", o.Obj.Object["status"])
	}
	// A new generation differs.
	o.Obj.SetGeneration(4)
	if sameStatus(w.desired(o, &ResourceStatus{Known: true, Ready: true, Since: since, Address: "http://gw/default/orders"}), o.Obj) {
		t.Error("a new generation was not seen as a change")
	}

	// A bad spec: Ready=False with the problem, and no address.
	bad := object("InMemoryChannel", 1, map[string]any{"address": map[string]any{"url": "http://old"}})
	bad.Problem = `spec.delivery.retry: must not be negative`
	got := w.desired(bad, nil)
	r := got["conditions"].([]any)[0].(map[string]any)
	if r["status"] != "False" || r["reason"] != ReasonInvalidSpec || r["message"] != bad.Problem {
		t.Errorf("bad spec's Ready %v", r)
	}
	if got["address"] != nil {
		t.Errorf("bad spec keeps an address: %v", got["address"])
	}
	if sameStatus(got, bad.Obj) {
		t.Error("an old address was not seen as a change")
	}

	// Not reported on yet: Unknown.
	p := w.desired(object("Subscription", 1, nil), nil)
	if r := p["conditions"].([]any)[0].(map[string]any); r["status"] != "Unknown" || r["reason"] != ReasonPending {
		t.Errorf("pending Ready %v", r)
	}
}

// roundTrip is want as the API server gives it back (JSON numbers, []any).
func roundTrip(t *testing.T, want map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(append(append([]byte(`{"apiVersion":"v1","kind":"X","status":`), b...), '}')); err != nil {
		t.Fatal(err)
	}
	return u.Object["status"].(map[string]any)
}
