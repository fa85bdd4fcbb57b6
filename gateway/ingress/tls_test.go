package ingress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given common name.
func writeCert(t *testing.T, dir, cn string, notBefore time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore, NotAfter: notBefore.Add(time.Hour),
		IPAddresses: nil,
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func servedCN(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}} //nolint:gosec // test
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

func TestCertReloaderPicksUpNewFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, "first", time.Now().Add(-time.Minute))
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: time.Second}
	go srv.Serve(tls.NewListener(ln, r.TLSConfig()))
	defer srv.Close()
	url := "https://" + ln.Addr().String()
	if cn := servedCN(t, url); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	writeCert(t, dir, "second", time.Now().Add(-time.Minute))
	future := time.Now().Add(time.Minute) // make sure the modification time moves
	os.Chtimes(certFile, future, future)
	if cn := servedCN(t, url); cn != "second" {
		t.Fatalf("after replacing the files, served %q", cn)
	}
	// A broken pair keeps the last good certificate.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	later := future.Add(time.Minute)
	os.Chtimes(keyFile, later, later)
	if cn := servedCN(t, url); cn != "second" {
		t.Fatalf("after a broken update, served %q", cn)
	}
	if r.Err() == nil {
		t.Fatal("broken update not reported")
	}
}

func TestCertReloaderRefusesBadFiles(t *testing.T) {
	if _, err := NewCertReloader("/nonexistent/tls.crt", "/nonexistent/tls.key"); err == nil {
		t.Fatal("no error")
	}
}
