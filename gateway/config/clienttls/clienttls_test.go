package clienttls

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// tls.* are file paths; Config turns them into the client's TLS configuration.
func TestConfigFromFiles(t *testing.T) {
	if tc, err := (TLS{CAFile: "/nonexistent"}).Config(); tc != nil || err != nil {
		t.Errorf("TLS off: %v, %v; want nil, nil (files are not read)", tc, err)
	}
	tc, err := TLS{Enabled: true, InsecureSkipVerify: true}.Config()
	if err != nil || tc.RootCAs != nil || tc.MinVersion != tls.VersionTLS12 || !tc.InsecureSkipVerify {
		t.Errorf("TLS on, no files: %+v, %v; want system roots, TLS 1.2, insecureSkipVerify", tc, err)
	}

	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tc, err = TLS{Enabled: true, CAFile: ca}.Config()
	if err != nil || tc.RootCAs == nil {
		t.Fatalf("TLS with caFile: %+v, %v", tc, err)
	}
	// The configuration trusts the server whose certificate caFile holds.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with the built TLS config: %v", err)
	}
	resp.Body.Close()

	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tt := range []struct {
		tls TLS
		key string
	}{
		{TLS{Enabled: true, CAFile: notPEM}, "tls.caFile:"},
		{TLS{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")}, "tls.caFile:"},
		{TLS{Enabled: true, CertFile: notPEM, KeyFile: notPEM}, "tls.certFile:"},
	} {
		if _, err := tt.tls.Config(); err == nil || !strings.HasPrefix(err.Error(), tt.key) {
			t.Errorf("%+v: err = %v, want one starting %q", tt.tls, err, tt.key)
		}
	}
}

func TestCheck(t *testing.T) {
	var p check.Problems
	TLS{CertFile: "cert.pem"}.Check(&p)
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "tls.certFile") {
		t.Errorf("a certificate without its key: %v, want a problem at tls.certFile", err)
	}
	p = nil
	TLS{CertFile: "cert.pem", KeyFile: "key.pem"}.Check(&p)
	if err := p.Err(); err != nil {
		t.Errorf("a certificate and its key: %v", err)
	}
}
