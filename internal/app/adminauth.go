package app

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// adminTokens are the admin bearer tokens (their SHA-256, compared in constant time); nil or empty
// when no admin secret is configured.
type adminTokens [][32]byte

// loadAdminTokens reads SECRETS_DIR/SECRET/token, one token per line. A secret that is configured
// but missing or empty is an error: protection was asked for and would silently be off.
func loadAdminTokens(secretsDir, secret string) (adminTokens, error) {
	file := filepath.Join(secretsDir, secret, "token")
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("admin.auth.secret: %w", err)
	}
	var out adminTokens
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if tok := strings.TrimSpace(sc.Text()); tok != "" {
			out = append(out, sha256.Sum256([]byte(tok)))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("admin.auth.secret: %s holds no token", file)
	}
	return out, nil
}

// allows reports whether r carries one of the tokens (always true when there are none).
func (t adminTokens) allows(r *http.Request) bool {
	if len(t) == 0 {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	found := 0
	for i := range t {
		found |= subtle.ConstantTimeCompare(t[i][:], sum[:])
	}
	return found == 1
}

// requireAdmin answers 401 to a request without an admin token, when tokens are configured.
func (a *App) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.adminTokens.allows(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eventgate admin"`)
			http.Error(w, "an admin bearer token is required (admin.auth.secret)", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}
