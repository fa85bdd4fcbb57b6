package pubsub

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/eventgate/eventgate/gateway/config/nametemplate"
)

// parseNameTemplate parses a topic or subscription template; its names are fitted to Pub/Sub's
// rules (fitName), so any name is legal once rendered.
func parseNameTemplate(key, text string) (*nametemplate.Template, error) {
	return nametemplate.Parse(key, text, func(name string) (string, error) { return fitName(name), nil })
}

// Pub/Sub's rules for a topic or subscription ID: 3 to 255 characters of [A-Za-z0-9-_.~+%], starting
// with a letter, and not starting with "goog".
const (
	minNameLen = 3
	maxNameLen = 255
	hashLen    = 16 // hex digits of the SHA-256 that keeps a shortened or rewritten name unique
)

// fitName maps any string to a legal Pub/Sub ID. A name that is already legal is returned unchanged.
// Otherwise every character outside the allowed set becomes '-', a name that does not start with a
// letter, or starts with "goog", gets the prefix "eg-", a name shorter than 3 characters is padded
// with '-', and a name longer than 255 characters is cut and ends in "-" and a hash of the whole
// original, so that two long names that differ only past the cut stay distinct. Rewritten names also
// end in the hash, so that two names that differ only in disallowed characters stay distinct.
func fitName(name string) string {
	if legalName(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashLen]
	var b strings.Builder
	if name == "" || !isLetter(name[0]) || strings.HasPrefix(strings.ToLower(name), "goog") {
		b.WriteString("eg-")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; allowedChar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('-')
		}
	}
	out := b.String()
	if len(out) > maxNameLen-len(suffix) {
		out = out[:maxNameLen-len(suffix)]
	}
	return out + suffix
}

// legalName reports whether name is a legal Pub/Sub topic or subscription ID.
func legalName(name string) bool {
	if len(name) < minNameLen || len(name) > maxNameLen || !isLetter(name[0]) ||
		strings.HasPrefix(strings.ToLower(name), "goog") {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !allowedChar(name[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func allowedChar(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || strings.IndexByte("-_.~+%", c) >= 0
}
