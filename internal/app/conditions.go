package app

import (
	"sort"
	"sync"
	"time"
)

// Categories of resources whose Ready condition the gateway tracks.
const (
	CategoryChannel      = "channel"
	CategorySubscription = "subscription"
	CategorySource       = "source"
	CategoryBroker       = "broker"
	CategoryTrigger      = "trigger"
)

// Condition is one resource's Ready state, as Knative reports conditions: ready or not, a reason (one
// CamelCase word, e.g. BackendUnavailable) and a message for people. Since is when Ready or Reason
// last changed.
type Condition struct {
	Ready   bool      `json:"ready"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
}

// ResourceKey names one tracked resource. Name is NAMESPACE/NAME for channels, subscriptions, brokers
// and triggers and KIND/NAMESPACE/NAME for sources (the keys the reconciler already uses).
type ResourceKey struct {
	Category string
	Name     string
}

// conditions holds the Ready condition of every resource the gateway runs. The reconciler writes it
// (set when a step succeeds, fails or waits; drop when a resource goes); /readyz and /status read it.
// Safe for concurrent use.
type conditions struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[ResourceKey]Condition
}

func newConditions() *conditions {
	return &conditions{now: time.Now, m: map[ResourceKey]Condition{}}
}

// set records k's condition and reports whether Ready or Reason changed (callers log only changes,
// never every retry).
func (c *conditions) set(k ResourceKey, ready bool, reason, message string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[k]
	changed := !ok || old.Ready != ready || old.Reason != reason
	since := old.Since
	if changed {
		since = c.now()
	}
	c.m[k] = Condition{Ready: ready, Reason: reason, Message: message, Since: since}
	return changed
}

// get returns k's condition.
func (c *conditions) get(k ResourceKey) (Condition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cond, ok := c.m[k]
	return cond, ok
}

// drop forgets k (the resource was removed).
func (c *conditions) drop(k ResourceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// notReady returns the keys of the resources that are not ready, sorted by category and name, with
// their conditions.
func (c *conditions) notReady() []KeyedCondition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []KeyedCondition
	for k, cond := range c.m {
		if !cond.Ready {
			out = append(out, KeyedCondition{Key: k, Condition: cond})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key.Category != out[j].Key.Category {
			return out[i].Key.Category < out[j].Key.Category
		}
		return out[i].Key.Name < out[j].Key.Name
	})
	return out
}

// KeyedCondition is a condition with the resource it belongs to.
type KeyedCondition struct {
	Key ResourceKey
	Condition
}
