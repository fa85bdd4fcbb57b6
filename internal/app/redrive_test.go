package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/redrive"
	"github.com/eventgate/eventgate/internal/selfsigned"
)

func adminDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The admin port's /redrives: what each bad request answers, a job's life through the endpoints,
// and the admin token on the endpoints that change state.
func TestRedriveEndpoints(t *testing.T) {
	a, srv, _ := tailApp(t)
	a.log = slog.New(slog.DiscardHandler)
	a.redrives = a.newRedrives()
	t.Cleanup(func() { a.redrives.Close(context.Background()) })
	for body, want := range map[string]int{
		`not json`:                                       http.StatusBadRequest,
		`{"from": "default/orders", "bogus": 1}`:         http.StatusBadRequest,
		`{"from": "orders"}`:                             http.StatusBadRequest,
		`{"from": "default/orders", "filter": "type ="}`: http.StatusBadRequest,
		`{"from": "default/nope"}`:                       http.StatusNotFound,
		`{"from": "default/orders", "to": "default/x"}`:  http.StatusNotFound,
	} {
		if code, msg := adminDo(t, http.MethodPost, srv.URL+"/redrives", "", body); code != want {
			t.Errorf("POST %s = %d %s, want %d", body, code, msg, want)
		}
	}
	code, body := adminDo(t, http.MethodPost, srv.URL+"/redrives", "", `{"from": "default/orders", "dryRun": true}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, body)
	}
	var st redrive.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.ID == "" {
		t.Fatalf("POST answered %q: %v", body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.State == redrive.Running && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling, with the deadline above
		_, body = adminDo(t, http.MethodGet, srv.URL+"/redrives/"+st.ID, "", "")
		json.Unmarshal([]byte(body), &st)
	}
	if st.State != redrive.Done {
		t.Fatalf("job = %+v", st)
	}
	if code, body := adminDo(t, http.MethodGet, srv.URL+"/redrives", "", ""); code != http.StatusOK || !strings.Contains(body, st.ID) {
		t.Errorf("GET /redrives = %d %s", code, body)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if code, _ := adminDo(t, m, srv.URL+"/redrives/rd-none", "", ""); code != http.StatusNotFound {
			t.Errorf("%s of an unknown job = %d, want 404", m, code)
		}
	}

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "admin"), 0o755)
	os.WriteFile(filepath.Join(dir, "admin", "token"), []byte("tok\n"), 0o600)
	tokens, err := loadAdminTokens(dir, "admin")
	if err != nil {
		t.Fatal(err)
	}
	a.adminTokens = tokens
	if code, _ := adminDo(t, http.MethodPost, srv.URL+"/redrives", "", `{"from": "default/orders"}`); code != http.StatusUnauthorized {
		t.Errorf("POST without the token = %d, want 401", code)
	}
	if code, _ := adminDo(t, http.MethodDelete, srv.URL+"/redrives/"+st.ID, "wrong", ""); code != http.StatusUnauthorized {
		t.Errorf("DELETE with a wrong token = %d, want 401", code)
	}
	if code, _ := adminDo(t, http.MethodDelete, srv.URL+"/redrives/"+st.ID, "tok", ""); code != http.StatusOK {
		t.Errorf("DELETE with the token = %d, want 200", code)
	}
	if code, _ := adminDo(t, http.MethodGet, srv.URL+"/redrives/"+st.ID, "", ""); code != http.StatusOK {
		t.Errorf("GET without the token = %d, want 200 (reading progress stays open)", code)
	}
}

// A dead letter redriven to its knativeerrordest, an https URL whose certificate only the
// subscription's CACerts vouch for, is sent trusting them; with no subscription naming that URL it
// is refused.
func TestRedriveToAURLWithCACerts(t *testing.T) {
	ca, err := selfsigned.New("redrive CA", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Ce-Id")
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLS}}
	srv.StartTLS()
	defer srv.Close()
	dest := srv.URL + "/in"
	a := &App{cfg: config.Default(), client: &http.Client{Transport: &http.Transport{}}, dispatchers: map[string]*running{}}
	ev := &event.Event{SpecVersion: "1.0", ID: "dl-1", Source: "/t", Type: "t"}
	var unknown x509.UnknownAuthorityError
	if err := a.sendRedrive(t.Context(), nil, dest, ev); !errors.As(err, &unknown) {
		t.Fatalf("no subscription gives a CA: %v, want x509.UnknownAuthorityError", err)
	}
	a.dispatchers["default/s"] = &running{sub: dispatch.Subscription{Subscriber: dispatch.Destination{URL: dest, CACerts: string(ca.CertPEM)}}}
	if err := a.sendRedrive(t.Context(), nil, dest, ev); err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if id := <-got; id != "dl-1" {
		t.Errorf("the subscriber got %q, want dl-1", id)
	}
}
