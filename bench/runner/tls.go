package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
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
// 127.0.0.1, DNS SAN localhost; a CA, so it is its own root; valid from a minute before now for a
// day) and its key to dir, as tls.crt and tls.key (PEM), and returns them.
func writeSelfSigned(dir string, now time.Time) (*sinkTLS, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "eventgate bench sink"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	t := &sinkTLS{cert: filepath.Join(dir, "tls.crt"), key: filepath.Join(dir, "tls.key")}
	err = errors.Join(
		os.WriteFile(t.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600),
		os.WriteFile(t.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	if err != nil {
		return nil, fmt.Errorf("writing the sink's certificate: %w", err)
	}
	return t, nil
}
