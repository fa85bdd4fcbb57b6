package ingress

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves a certificate from PEM files and picks up new files without a restart
// (cert-manager and Kubernetes Secret mounts replace them in place). It checks the files' modification
// times at most once per CheckEvery; a pair that fails to load is logged by the caller through
// Err and the last good certificate keeps serving.
type CertReloader struct {
	certFile, keyFile string
	checkEvery        time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time
	checked time.Time
	lastErr error
}

// NewCertReloader loads the pair once; an error here means the ingress cannot start with TLS.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, checkEvery: time.Second}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("ingress.tls: %w", err)
	}
	r.cert = &cert
	r.modTime = r.newestModTime()
	return nil
}

func (r *CertReloader) newestModTime() time.Time {
	var newest time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest
}

// GetCertificate is a tls.Config.GetCertificate. Safe for concurrent use.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.checkEvery {
		r.checked = now
		if mt := r.newestModTime(); !mt.Equal(r.modTime) {
			if err := r.load(); err != nil {
				r.lastErr = err
				r.modTime = mt // do not retry a broken pair on every handshake; retry when it changes again
			} else {
				r.lastErr = nil
			}
		}
	}
	return r.cert, nil
}

// Err returns the error of the last failed reload, or nil.
func (r *CertReloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// TLSConfig returns a server configuration that serves r's certificate (TLS 1.2 and later).
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
