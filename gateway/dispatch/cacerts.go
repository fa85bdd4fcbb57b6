package dispatch

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/eventgate/eventgate/gateway/resources"
)

// TrustingCAs returns c, or where pems name CA certificates (PEM, as a destination's CACerts gives
// them; empty strings are skipped) a copy of c whose transport trusts them besides its own roots:
// those of its TLSClientConfig, else the system's (which SSL_CERT_FILE and SSL_CERT_DIR extend).
// The copy's transport is a Clone of c's, so it keeps every other setting but has connections of
// its own; close its idle ones when done with it. c's transport must be an *http.Transport (nil:
// http.DefaultTransport) for certificates to be added; another RoundTripper is an error.
func TrustingCAs(c *http.Client, pems ...string) (*http.Client, error) {
	var certs []*x509.Certificate
	for _, p := range pems {
		if p == "" {
			continue
		}
		cs, err := resources.ParseCACerts(p)
		if err != nil {
			return nil, fmt.Errorf("CACerts: %w", err)
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return c, nil
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	base, ok := rt.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("CACerts: the HTTP client's transport (%T) cannot be given CA certificates", rt)
	}
	tr := base.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	roots := tr.TLSClientConfig.RootCAs
	if roots != nil {
		roots = roots.Clone()
	} else if roots, _ = x509.SystemCertPool(); roots == nil { // no system roots here: only the given ones
		roots = x509.NewCertPool()
	}
	for _, cert := range certs {
		roots.AddCert(cert)
	}
	tr.TLSClientConfig.RootCAs = roots
	out := *c
	out.Transport = tr
	return &out, nil
}
