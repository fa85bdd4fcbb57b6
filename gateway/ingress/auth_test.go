package ingress

import (
	"context"

	"github.com/eventgate/eventgate/gateway/event"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/eventgate/eventgate/gateway/channel"
)

func writeTokens(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBearerTokensPerChannel(t *testing.T) {
	dir := writeTokens(t, map[string]string{
		"default.demo":  "demo-token\nrotated-token\n",
		"default.other": "other-token",
		"..data":        "ignored",
	})
	tokens, err := LoadTokens(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub := &recorder{}
	h, _ := newHandler(t, pub)
	h.SetTokens(tokens)
	tests := []struct {
		name string
		auth string
		code int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not bearer", "Basic ZGVtbzp4", http.StatusUnauthorized},
		{"unknown token", "Bearer nope", http.StatusUnauthorized},
		{"token of another channel", "Bearer other-token", http.StatusForbidden},
		{"right token", "Bearer demo-token", http.StatusAccepted},
		{"second token of the channel", "bearer rotated-token", http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range binary {
				hdr[k] = v
			}
			if tt.auth != "" {
				hdr["Authorization"] = tt.auth
			}
			w := do(h, http.MethodPost, "/default/demo", "", hdr, "x")
			if w.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", w.Code, tt.code, w.Body)
			}
			if tt.code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
	if len(pub.stored) != 2 {
		t.Fatalf("stored %d events, want 2 (only the authorised requests)", len(pub.stored))
	}
	h.SetTokens(nil)
	if w := do(h, http.MethodPost, "/default/demo", "", binary, "x"); w.Code != http.StatusAccepted {
		t.Fatalf("authentication off: %d", w.Code)
	}
}

func TestLoadTokensMissingDir(t *testing.T) {
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("no error for a missing token directory")
	}
}

// blockingPublisher holds every Publish until release is closed.
type blockingPublisher struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingPublisher) Publish(context.Context, channel.Ref, []*event.Event) error {
	b.entered <- struct{}{}
	<-b.release
	return nil
}

func TestConcurrentRequestCap(t *testing.T) {
	pub := &blockingPublisher{entered: make(chan struct{}, 2), release: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.MaxConcurrentRequests = 2
	h := New(cfg, Deps{})
	h.SetChannels(Table{{Namespace: "default", Name: "demo"}: pub})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(h, http.MethodPost, "/default/demo", "", binary, "x")
		}()
	}
	<-pub.entered
	<-pub.entered // both slots are taken and held
	w := do(h, http.MethodPost, "/default/demo", "", binary, "x")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("third request: %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	close(pub.release)
	wg.Wait()
	req := httptest.NewRequest(http.MethodPost, "/default/demo", strings.NewReader("x"))
	for k, v := range binary {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	pub.entered = make(chan struct{}, 1)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("after the slots freed: %d", rec.Code)
	}
}
