package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestHandshake checks a certificate made by New in a real TLS handshake on loopback, as a server's
// certificate its Pool verifies and as a client's the server verifies; and that a client trusting
// another certificate's pool refuses it.
func TestHandshake(t *testing.T) {
	now := time.Now()
	c, err := New("test", now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("other", now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil || pair.Leaf.Subject.CommonName != "test" {
		t.Fatalf("the PEM pair: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c.TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: c.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	for _, name := range []string{"127.0.0.1", "localhost"} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{ServerName: name, RootCAs: c.Pool, Certificates: []tls.Certificate{c.TLS}})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		// the server closes once its side of the handshake, the client's certificate verified, is
		// done: a clean end, where a refused certificate would be an alert
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s: the server's end: %v; want EOF", name, err)
		}
		conn.Close()
	}
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{ServerName: "127.0.0.1", RootCAs: other.Pool})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client trusting another certificate: %v; want an unknown authority", err)
	}
}
