package main

import (
	"time"

	"github.com/eventgate/eventgate/internal/selfsigned"
)

// sinkTLS is the certificate and key (PEM files) a sink serves HTTPS with: `bench sink --tls-cert
// --tls-key`, HTTP/1.1 only. A nil *sinkTLS is a sink on plain HTTP.
type sinkTLS struct {
	cert, key string
}

// sinkArgs are the sink's flags to serve HTTPS (none for plain HTTP).
func (t *sinkTLS) sinkArgs() []string {
	if t == nil {
		return nil
	}
	return []string{"--tls-cert", t.cert, "--tls-key", t.key}
}

// scheme is the sink's URL scheme with "://".
func (t *sinkTLS) scheme() string {
	if t == nil {
		return "http://"
	}
	return "https://"
}

// trust is the environment that makes a Go process (the gateway, a baseline) trust the sink's
// certificate: SSL_CERT_FILE replaces the system roots with it on Linux. Nil for plain HTTP.
func (t *sinkTLS) trust() []string {
	if t == nil {
		return nil
	}
	return []string{"SSL_CERT_FILE=" + t.cert}
}

// writeSelfSigned writes a self-signed certificate for the sink on loopback (ECDSA P-256; IP SAN
// 127.0.0.1, DNS SAN localhost; its own root; valid from a minute before now for a day) and its key
// to dir, as tls.crt and tls.key (PEM), and returns them.
func writeSelfSigned(dir string, now time.Time) (*sinkTLS, error) {
	c, err := selfsigned.New("eventgate bench sink", now.Add(-time.Minute), now.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	cert, key, err := c.WriteFiles(dir)
	if err != nil {
		return nil, err
	}
	return &sinkTLS{cert: cert, key: key}, nil
}
