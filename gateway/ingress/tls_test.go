package ingress

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/selfsigned"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given common name.
func writeCert(t *testing.T, dir, cn string, notBefore time.Time) (certFile, keyFile string) {
	t.Helper()
	c, err := selfsigned.New(cn, notBefore, notBefore.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if certFile, keyFile, err = c.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
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
