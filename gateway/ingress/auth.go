package ingress

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/eventgate/eventgate/gateway/channel"
)

// Tokens holds the bearer tokens that may post to each channel. It is immutable once built; the
// gateway builds a new one when the secret's files change.
//
// Layout: one Kubernetes Secret mounted at SECRETS_DIR/SECRET, with one key per channel named
// NAMESPACE.CHANNEL, whose value holds one or more tokens, one per line (several allow rotation).
type Tokens struct {
	byChannel map[channel.Ref][][32]byte // SHA-256 of each token: compared in constant time, never kept in clear
}

// LoadTokens reads the token files of dir (SECRETS_DIR/SECRET). A missing directory is an error:
// authentication was asked for and nothing could be read.
func LoadTokens(dir string) (*Tokens, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ingress tokens: %w", err)
	}
	t := &Tokens{byChannel: map[channel.Ref][][32]byte{}}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || e.IsDir() { // Kubernetes' ..data and timestamped dirs
			continue
		}
		ns, ch, ok := strings.Cut(name, ".")
		if !ok || ns == "" || ch == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("ingress tokens: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			tok := strings.TrimSpace(sc.Text())
			if tok == "" {
				continue
			}
			ref := channel.Ref{Namespace: ns, Name: ch}
			t.byChannel[ref] = append(t.byChannel[ref], sha256.Sum256([]byte(tok)))
		}
	}
	return t, nil
}

// Authentication failures, mapped to 401 and 403.
var (
	errNoToken    = errors.New("a bearer token is required")
	errBadToken   = errors.New("the bearer token is not valid")
	errOtherToken = errors.New("the bearer token is not allowed to post to this channel")
)

// check says whether the request's bearer token may post to ref: nil, errNoToken/errBadToken (401),
// or errOtherToken (403: a valid token for another channel). Comparison is in constant time per token.
func (t *Tokens) check(r *http.Request, ref channel.Ref) error {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errNoToken
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := func(list [][32]byte) bool {
		found := 0
		for i := range list {
			found |= subtle.ConstantTimeCompare(list[i][:], sum[:])
		}
		return found == 1
	}
	if match(t.byChannel[ref]) {
		return nil
	}
	for other, list := range t.byChannel {
		if other != ref && match(list) {
			return errOtherToken
		}
	}
	return errBadToken
}
