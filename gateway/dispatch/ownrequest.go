package dispatch

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// ownRequest is a delivery's POST as it is written on an own connection: head (the request line
// and Host header, from ownHead), the header (the request's), and body.
//
// http.Request.Write was 15% of an unordered Kafka drain's CPU with own connections, most of it for
// what is the same in every request to a URL (the request line, the Host header's IDNA and
// validity checks) and for sorting the header (docs/performance.md, "Deliveries on connections of
// their own"). write makes the same bytes but for the header's order: the request line and Host
// that net/http made once per URL, User-Agent, Content-Length, the header less the keys net/http
// writes itself, each value trimmed, then the body. Names and values the transport would refuse
// (control characters, CR and LF among them) are refused with its words (checkHeader).
type ownRequest struct {
	head []byte
	body []byte
}

// ownHead is the start of every POST to tmpl's URL as http.Request.Write writes it: the request
// line and the Host header. Nil when net/http would not write it.
func ownHead(tmpl *http.Request) []byte {
	r := *tmpl // Write may not change the template
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		return nil
	}
	i := bytes.Index(b.Bytes(), []byte("\r\nUser-Agent: "))
	if i < 0 || !bytes.Contains(b.Bytes()[:i], []byte("\r\nHost: ")) {
		return nil
	}
	return bytes.Clone(b.Bytes()[:i+2])
}

// ownExcluded are the header keys net/http writes itself, not from the header.
var ownExcluded = map[string]bool{"Host": true, "User-Agent": true, "Content-Length": true,
	"Transfer-Encoding": true, "Trailer": true}

// checkHeader refuses a header the transport would refuse, in its words: before anything is sent.
func checkHeader(h http.Header) error {
	for k, vv := range h {
		if !validHeaderName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

// write writes the request with header h (checked by checkHeader) to w.
func (o ownRequest) write(w *bufio.Writer, h http.Header) error {
	_, _ = w.Write(o.head)
	ua := "Go-http-client/1.1"
	if vv, ok := h["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		_, _ = w.WriteString("User-Agent: ")
		writeHeaderValue(w, ua)
		_, _ = w.WriteString("\r\n")
	}
	_, _ = w.WriteString("Content-Length: ")
	var n [20]byte
	_, _ = w.Write(strconv.AppendInt(n[:0], int64(len(o.body)), 10))
	_, _ = w.WriteString("\r\n")
	for k, vv := range h {
		if ownExcluded[k] {
			continue
		}
		for _, v := range vv {
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			writeHeaderValue(w, v)
			_, _ = w.WriteString("\r\n")
		}
	}
	_, _ = w.WriteString("\r\n")
	_, err := w.Write(o.body)
	return err
}

// writeHeaderValue writes v (valid: no CR or LF) as net/http writes a header value: trimmed.
func writeHeaderValue(w *bufio.Writer, v string) {
	_, _ = w.WriteString(textproto.TrimString(v))
}

// validHeaderName reports whether k is an HTTP token (RFC 9110, 5.6.2), as the transport requires.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v has no control characters but tab, as the transport requires.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
