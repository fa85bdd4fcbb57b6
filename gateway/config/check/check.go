// Package check collects configuration problems for the Validate methods of the components that own
// settings (kafka.Config, inmemory.Config, dispatch.Config, ingress.Config) and of the config package
// that composes them. Each problem names its key relative to the component; the config package puts
// the section in front (Within), so that one rule reads the same wherever it is checked.
package check

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Problems is a list of configuration problems, each an error whose text starts with its key. The
// zero value is empty and ready to use. It is not safe for concurrent use.
type Problems []error

// Add records a problem with key.
func (p *Problems) Add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Positive records a problem unless n > 0.
func (p *Problems) Positive(key string, n int64) {
	if n <= 0 {
		p.Add(key, "must be positive, got %d", n)
	}
}

// NotNegative records a problem unless n >= 0.
func (p *Problems) NotNegative(key string, n int64) {
	if n < 0 {
		p.Add(key, "must not be negative, got %d", n)
	}
}

// PositiveDuration records a problem unless d > 0.
func (p *Problems) PositiveDuration(key string, d time.Duration) {
	if d <= 0 {
		p.Add(key, "must be a positive duration, got %v", d)
	}
}

// NotNegativeDuration records a problem unless d >= 0.
func (p *Problems) NotNegativeDuration(key string, d time.Duration) {
	if d < 0 {
		p.Add(key, "must not be negative, got %v", d)
	}
}

// OneOf records a problem unless v is one of allowed.
func (p *Problems) OneOf(key, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		p.Add(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

// HostPort records a problem unless addr is host:port (the host may be empty: ":8080").
func (p *Problems) HostPort(key, addr string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		p.Add(key, "%q is not host:port (%v)", addr, err)
	}
}

// Within records every problem err joins (as Err returns them), each with section and "." in front
// of its key. A nil err records nothing.
func (p *Problems) Within(section string, err error) {
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		*p = append(*p, fmt.Errorf("%s.%w", section, e))
	}
}

// Err returns every problem joined, one per line, or nil when there is none.
func (p Problems) Err() error { return errors.Join(p...) }
