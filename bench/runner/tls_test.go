package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSignedPool writes the sink's certificate to a temporary directory and returns it, the parsed
// certificate and a pool holding only that certificate.
func selfSignedPool(t *testing.T) (*sinkTLS, *x509.Certificate, *x509.CertPool) {
	t.Helper()
	st, err := writeSelfSigned(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(st.cert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", st.cert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return st, cert, pool
}

// The sink's certificate is its own root: with a pool of only itself it verifies for 127.0.0.1 and
// localhost, for a day, and for no other name; the key file is its key.
func TestSelfSignedVerifiesForLoopback(t *testing.T) {
	st, cert, pool := selfSignedPool(t)
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.com"}); err == nil {
		t.Error("verifies for example.com")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1", CurrentTime: time.Now().Add(25 * time.Hour)}); err == nil {
		t.Error("still valid after 25 hours")
	}
	if _, err := tls.LoadX509KeyPair(st.cert, st.key); err != nil {
		t.Fatalf("certificate and key do not pair: %v", err)
	}
	if got := st.trust(); len(got) != 1 || got[0] != "SSL_CERT_FILE="+st.cert {
		t.Errorf("trust %q", got)
	}
	var plain *sinkTLS
	if plain.sinkArgs() != nil || plain.trust() != nil || plain.scheme() != "http://" {
		t.Error("a nil sinkTLS is not plain HTTP")
	}
}

// A sink started as drain runs start it, with the certificate, answers https POSTs from clients that
// trust only that certificate over HTTP/1.1: one that tries HTTP/2 first (as the consume baseline's
// transport does) and one that does not (as the gateway's). Only one of --tls-cert and --tls-key is
// refused with exit code 2.
func TestSinkOverTLSAnswersHTTP1(t *testing.T) {
	if testing.Short() {
		t.Skip("builds eventgate")
	}
	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(bin, "eventgate"), "github.com/eventgate/eventgate/cmd/eventgate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := &runner{s: settings{bin: bin}}
	st, _, pool := selfSignedPool(t)

	clients := map[string]*http.Transport{
		"h2 first": {TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
		"h1":       {TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	sink, url, err := r.sinkOver(t.Context(), st, "--count", "2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.stop)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("sink URL %s, want https://127.0.0.1:PORT", url)
	}
	for name, tr := range clients {
		t.Cleanup(tr.CloseIdleConnections)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/default/bench", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", name)
		req.Header.Set("Ce-Source", "/bench")
		req.Header.Set("Ce-Type", "dev.eventgate.bench")
		req.Header.Set("Ce-Time", time.Now().UTC().Format(time.RFC3339Nano))
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.ProtoMajor != 1 || resp.TLS == nil {
			t.Errorf("%s: %d %s (TLS %v), want 202 over HTTP/1.1 on TLS", name, resp.StatusCode, resp.Proto, resp.TLS != nil)
		}
	}
	if err := sink.wait(t.Context(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err := sinkOutput(sink)
	if err != nil || res.Events != 2 {
		t.Fatalf("sink counted %d events (%v), want 2", res.Events, err)
	}

	out, err := exec.CommandContext(t.Context(), r.bin("eventgate"), "bench", "sink", "--port", "0", "--tls-cert", st.cert).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-cert without --tls-key: %v\n%s\nwant exit code 2 naming both flags", err, out)
	}
}
