package resources

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// The field shapes several kinds share: references, destinations, delivery specs, secret key
// references and annotations, each with its decoding and its checks.

// decodeRef reads a reference {apiVersion, kind, name, namespace}; nil when absent.
func decodeRef(v val, namespace string) *Reference {
	if !v.isMap() {
		return nil
	}
	r := &Reference{
		APIVersion: v.field("apiVersion").str(),
		Kind:       v.field("kind").str(),
		Name:       v.field("name").str(),
		Namespace:  v.field("namespace").str(),
	}
	if r.Namespace == "" {
		r.Namespace = namespace
	}
	return r
}

// decodeDest reads a destination: {uri}, {ref: {...}}, the seed's inline {apiVersion, kind, name},
// v1alpha1's {dnsName} and reply {channel: {...}}. Nil when absent.
func decodeDest(v val, namespace string) *Destination {
	if !v.isMap() {
		return nil
	}
	m := v.p.m
	d := &Destination{URI: v.field("uri").str(), CACerts: v.field("CACerts").str()}
	if d.URI == "" && v.has("dnsName") {
		d.URI = v.field("dnsName").str()
		m.alias(joinPath(v.path, "uri"), joinPath(v.path, "dnsName"))
	}
	switch {
	case v.has("ref"):
		d.Ref = decodeRef(v.field("ref"), namespace)
	case v.has("channel"):
		d.Ref = decodeRef(v.field("channel"), namespace)
		m.alias(joinPath(v.path, "ref"), joinPath(v.path, "channel"))
	case v.has("kind") || v.has("name") || v.has("apiVersion"):
		d.Ref = decodeRef(v, namespace)
		m.alias(joinPath(v.path, "ref"), v.path)
	}
	return d
}

// decodeDelivery reads a DeliverySpec; nil when absent.
func decodeDelivery(v val, namespace string) *Delivery {
	if !v.isMap() {
		return nil
	}
	d := &Delivery{BackoffPolicy: BackoffPolicy(v.field("backoffPolicy").str())}
	if n, ok := v.field("retry").integer(0, math.MaxInt32); ok {
		r := int32(n)
		d.Retry = &r
	}
	d.BackoffDelay = v.field("backoffDelay").duration()
	d.BackoffMax = v.field("backoffMax").duration()
	d.Timeout = v.field("timeout").duration()
	d.RetryAfterMax = v.field("retryAfterMax").duration()
	d.Format = DeliveryFormat(v.field("format").str())
	d.DeadLetterSink = decodeDest(v.field("deadLetterSink"), namespace)
	return d
}

// decodeSecretKeyRef reads {name, key}; nil when absent.
func decodeSecretKeyRef(v val) *SecretKeyRef {
	if !v.isMap() {
		return nil
	}
	return &SecretKeyRef{Name: v.field("name").str(), Key: v.field("key").str()}
}

func annotationPath(key string) string { return fmt.Sprintf("metadata.annotations[%q]", key) }

// annotationInt parses an integer annotation of at least 1; 0 when absent or invalid (a problem).
func annotationInt(p *problems, m *Meta, key string) int {
	v, ok := m.Annotations[key]
	if !ok {
		return 0
	}
	n := 0
	for _, r := range v {
		if r < '0' || r > '9' || n > 1<<20 {
			p.invalid(annotationPath(key), "%q is not a positive integer", truncate(v, 40))
			return 0
		}
		n = n*10 + int(r-'0')
	}
	if n < 1 {
		p.invalid(annotationPath(key), "%q is not a positive integer", truncate(v, 40))
		return 0
	}
	return n
}

// annotationBool parses a "true" or "false" annotation; false when absent or invalid (a problem).
func annotationBool(p *problems, m *Meta, key string) bool {
	v, ok := m.Annotations[key]
	if !ok {
		return false
	}
	switch v {
	case "true":
		return true
	case "false":
	default:
		p.invalid(annotationPath(key), "%q is not true or false", truncate(v, 40))
	}
	return false
}

func validateRef(p *problems, path string, r *Reference) {
	if r.APIVersion == "" && r.Kind == "" && r.Name == "" {
		p.invalid(path, "missing")
		return
	}
	if r.APIVersion == "" {
		p.invalid(path+".apiVersion", "missing")
	}
	if r.Kind == "" {
		p.invalid(path+".kind", "missing")
	}
	if r.Name == "" {
		p.invalid(path+".name", "missing")
	}
	if r.Namespace != "" && !dnsLabelRE.MatchString(r.Namespace) {
		p.invalid(path+".namespace", "%q is not a valid namespace", truncate(r.Namespace, 80))
	}
}

func validateDest(p *problems, path string, d Destination) {
	if d.CACerts != "" {
		if _, err := ParseCACerts(d.CACerts); err != nil {
			p.invalid(path+".CACerts", "%s", err)
		}
	}
	switch {
	case d.URI != "" && d.Ref != nil:
		validateRef(p, path+".ref", d.Ref)
		if d.Ref.IsChannel() || d.Ref.IsBroker() {
			p.invalid(path+".uri", "not allowed with ref kind %s: events go to it inside the gateway, not to a URL", d.Ref.Kind)
		} else if err := checkRelativeURL(d.URI); err != nil {
			p.invalid(path+".uri", "%s", err)
		}
	case d.Ref != nil:
		validateRef(p, path+".ref", d.Ref)
	case d.URI != "":
		if err := checkURL(d.URI); err != nil {
			p.invalid(path+".uri", "%s", err)
		}
	default:
		p.invalid(path, "missing uri or ref")
	}
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", truncate(s, 80))
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", truncate(s, 80))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q is not an http or https URL", truncate(s, 80))
	}
	return nil
}

// ParseCACerts reads a destination's CACerts: one or more PEM "CERTIFICATE" blocks (RFC 7468), each
// an X.509 certificate; text around the blocks is ignored, as PEM allows. It is the one check of the
// field, for manifests and for whoever builds a client that trusts them.
func ParseCACerts(pemText string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := []byte(pemText)
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, truncate(b.Type, 40))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %v", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it (want -----BEGIN CERTIFICATE----- blocks)")
	}
	return certs, nil
}

// checkRelativeURL accepts what may follow a reference: a path, with query or fragment, that keeps
// the reference's scheme and host ("/events", "events?x=1"; not "http://x/events" or "//x/events").
func checkRelativeURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", truncate(s, 80))
	}
	if u.IsAbs() || u.Host != "" || strings.HasPrefix(s, "//") {
		return fmt.Errorf("%q: only a relative URL (a path) is allowed with ref; give either an absolute uri or a ref", truncate(s, 80))
	}
	return nil
}

func validateDelivery(p *problems, path string, d *Delivery) {
	if d == nil {
		return
	}
	if d.Retry != nil && *d.Retry < 0 {
		p.invalid(path+".retry", "must not be negative")
	}
	if d.BackoffPolicy != "" && !d.BackoffPolicy.Known() {
		p.invalid(path+".backoffPolicy", "%q is not linear or exponential", truncate(string(d.BackoffPolicy), 40))
	}
	if d.Format != "" && !d.Format.Known() {
		p.invalid(path+".format", "%q is not json (structured mode) or binary", truncate(string(d.Format), 40))
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"backoffDelay", d.BackoffDelay}, {"backoffMax", d.BackoffMax}, {"retryAfterMax", d.RetryAfterMax}} {
		if f.d != nil && *f.d < 0 {
			p.invalid(path+"."+f.name, "must not be negative")
		}
	}
	if d.Timeout != nil && *d.Timeout <= 0 {
		p.invalid(path+".timeout", "must be longer than zero")
	}
	if d.BackoffDelay != nil && d.BackoffMax != nil && *d.BackoffMax < *d.BackoffDelay {
		p.invalid(path+".backoffMax", "%v is less than backoffDelay %v", *d.BackoffMax, *d.BackoffDelay)
	}
	if d.DeadLetterSink != nil {
		validateDest(p, path+".deadLetterSink", *d.DeadLetterSink)
	}
}

func validateSecretRef(p *problems, path string, r *SecretKeyRef) {
	if r == nil {
		return
	}
	if err := checkSecretPart("name", r.Name); err != nil {
		p.invalid(path+".name", "%s", err)
	}
	if err := checkSecretPart("key", r.Key); err != nil {
		p.invalid(path+".key", "%s", err)
	}
}
