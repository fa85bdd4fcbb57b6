// Package clienttls holds the TLS settings of a client of a backend (Kafka, NATS): the same keys in
// each backend's configuration section, and the one function that turns them into a tls.Config.
// Like gateway/config/check, it is a leaf that components may import.
package clienttls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// TLS is a client's TLS settings (keys tls.enabled, tls.caFile, tls.certFile, tls.keyFile,
// tls.insecureSkipVerify of a backend's section).
type TLS struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `koanf:"enabled"`
	// CAFile is a bundle of CA certificates to trust; empty trusts the system roots.
	CAFile string `koanf:"caFile"`
	// CertFile and KeyFile are a client certificate and its key, for servers that ask for one.
	CertFile string `koanf:"certFile"`
	KeyFile  string `koanf:"keyFile"`
	// InsecureSkipVerify accepts any server certificate (tests only).
	InsecureSkipVerify bool `koanf:"insecureSkipVerify"`
}

// Check adds t's problems to p, under the keys tls.*: a certificate and its key go together.
func (t TLS) Check(p *check.Problems) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.Add("tls.certFile", "certFile and keyFile go together")
	}
}

// Config builds the TLS client configuration t describes: nil when TLS is off, else TLS 1.2 or later
// trusting CAFile (the system roots when empty) and presenting CertFile when set. It reads the files;
// errors name the key of the file that failed.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.caFile: no PEM certificates found in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.certFile: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
