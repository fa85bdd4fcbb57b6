package app

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventgate/eventgate/gateway/console"
)

// Safe by default (issue 15): with an admin secret, every admin route that changes state or shows
// events needs the token; the read-only ones (probes, metrics, /status, the console's page and
// figures, redrive progress) stay open. One table: a new route belongs in it.
func TestAdminRoutesAndTheToken(t *testing.T) {
	a := readyApp(t)
	a.log = slog.New(slog.DiscardHandler)
	a.redrives = a.newRedrives()
	a.sampler = console.NewSampler(a.metrics.Registry, console.SamplerOptions{})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "admin"), 0o755)
	os.WriteFile(filepath.Join(dir, "admin", "token"), []byte("tok\n"), 0o600)
	tokens, err := loadAdminTokens(dir, "admin")
	if err != nil {
		t.Fatal(err)
	}
	a.adminTokens = tokens
	mux := a.adminMux()
	for _, c := range []struct {
		method, path string
		token        bool // needs the admin token
	}{
		{"GET", "/metrics", false},
		{"GET", "/livez", false},
		{"GET", "/readyz", false},
		{"GET", "/status", false},
		{"GET", "/", false},
		{"GET", "/console/static/console.js", false},
		{"GET", "/console/api/metrics", false},
		{"GET", "/console/api/series?channel=default/none", false},
		{"GET", "/redrives", false},
		{"GET", "/redrives/rd-none", false},
		{"GET", "/tail/default/none", true},
		{"POST", "/redrives", true},
		{"DELETE", "/redrives/rd-none", true},
	} {
		for _, tok := range []string{"", "wrong", "tok"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(c.method, c.path, nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			mux.ServeHTTP(rec, req)
			refused := rec.Code == http.StatusUnauthorized
			if want := c.token && tok != "tok"; refused != want {
				t.Errorf("%s %s with token %q: %d; want 401: %v", c.method, c.path, tok, rec.Code, want)
			}
			if rec.Code == http.StatusNotFound && (c.path == "/" || c.path == "/console/static/console.js") {
				t.Errorf("%s %s: 404", c.method, c.path)
			}
		}
	}
	// The console does not shadow unknown paths: they stay 404.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/nothing-here", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %d, want 404", rec.Code)
	}
}
