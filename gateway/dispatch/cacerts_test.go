package dispatch

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/selfsigned"
)

// tlsServer is an HTTPS server for 127.0.0.1 with a certificate of its own CA, answering status;
// its CA's PEM is returned beside it.
func tlsServer(t *testing.T, name string, status int) (*httptest.Server, string) {
	t.Helper()
	c, err := selfsigned.New(name, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, string(c.CertPEM)
}

func TestTrustingCAs(t *testing.T) {
	a, caA := tlsServer(t, "server a", http.StatusNoContent)
	b, caB := tlsServer(t, "server b", http.StatusNoContent)
	get := func(c *http.Client, url string) error {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var unknown x509.UnknownAuthorityError

	base := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	if c, err := TrustingCAs(base, "", ""); err != nil || c != base {
		t.Errorf("no CACerts: %v, %v; want the client itself", c, err)
	}
	c, err := TrustingCAs(base, caA)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(c, a.URL); err != nil {
		t.Errorf("a client trusting a's CA: %v", err)
	}
	if err := get(c, b.URL); !errors.As(err, &unknown) {
		t.Errorf("the same client to b (another CA): %v, want x509.UnknownAuthorityError", err)
	}
	if err := get(base, a.URL); !errors.As(err, &unknown) {
		t.Errorf("the client given (unchanged): %v, want x509.UnknownAuthorityError", err)
	}
	if base.Transport.(*http.Transport).TLSClientConfig != nil {
		t.Error("the given client's transport was changed")
	}
	c.CloseIdleConnections()

	// The transport's own roots stay trusted, the given CAs are added to them.
	withRoots := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	withRoots.Transport.(*http.Transport).TLSClientConfig.RootCAs.AppendCertsFromPEM([]byte(caB))
	c, err = TrustingCAs(withRoots, caA)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{a.URL, b.URL} {
		if err := get(c, u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if err := get(withRoots, a.URL); !errors.As(err, &unknown) {
		t.Errorf("the given client's roots were changed: %v", err)
	}
	c.CloseIdleConnections()

	if _, err := TrustingCAs(base, "not a certificate"); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad PEM: %v", err)
	}
	other := &http.Client{Transport: roundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("no") })}
	if _, err := TrustingCAs(other, caA); err == nil {
		t.Error("a RoundTripper that is not an *http.Transport: no error")
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A subscription's destinations with CACerts of their own are reached over https with a client of
// the gateway's kind (system roots only), the subscriber on own connections; a dead letter with
// another CA too.
func TestDeliveriesTrustTheDestinationsCAs(t *testing.T) {
	sub, subCA := tlsServer(t, "subscriber", http.StatusBadRequest)
	dls, dlsCA := tlsServer(t, "dead letters", http.StatusAccepted)
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	h := newHarness(t, 1, Subscription{
		Subscriber: Destination{URL: sub.URL + "/in", CACerts: subCA},
		DeadLetter: &Destination{URL: dls.URL + "/dead", CACerts: dlsCA},
	}, func(d *Dispatcher) {
		d.client, d.rt = client, client.Transport
		d.own = ownTransport(d.rt)
	})
	if h.d.urls[sub.URL+"/in"].head == nil {
		t.Error("the https subscriber is not sent to on own connections")
	}
	c := h.p.claim(t, 0)
	c.waitDone(t, c.push(t, testEvent("e-ca")))
	if h.attempts("4xx") != 1 || h.count("dead_lettered") != 1 {
		t.Errorf("attempts 4xx=%v, dead_lettered=%v; want 1 and 1 (%v)", h.attempts("4xx"), h.count("dead_lettered"), h.d.Status())
	}
	if client.Transport.(*http.Transport).TLSClientConfig != nil {
		t.Error("the client given to the dispatcher was changed")
	}
}

// Without the CACerts the same subscriber's certificate is refused: the attempts fail, nothing is
// delivered.
func TestDeliveriesWithoutTheDestinationsCA(t *testing.T) {
	sub, _ := tlsServer(t, "subscriber", http.StatusAccepted)
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	h := newHarness(t, 1, Subscription{Subscriber: Destination{URL: sub.URL + "/in"}}, func(d *Dispatcher) {
		d.client, d.rt = client, client.Transport
		d.own = ownTransport(d.rt)
	})
	c := h.p.claim(t, 0)
	c.waitDone(t, c.push(t, testEvent("e-no-ca")))
	if last := h.d.Status().LastError; h.count("delivered") != 0 || !strings.Contains(last, "certificate signed by unknown authority") ||
		!strings.Contains(last, "CACerts") {
		t.Errorf("delivered=%v, last error %q; want 0 and a certificate error with the hint", h.count("delivered"), last)
	}
}

func TestStartRefusesBadCACerts(t *testing.T) {
	d := New(Subscription{Namespace: "ns", Name: "s", Channel: testChannel, MaxInFlight: 1,
		Subscriber: Destination{URL: "https://127.0.0.1:1/in", CACerts: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"}},
		Deps{Channels: newFakeProvisioner(1)})
	if err := d.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "CACerts") {
		t.Errorf("Start: %v, want a CACerts error", err)
	}
}
