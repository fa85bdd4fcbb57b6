package dispatch

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// Own connections. A goroutine that makes one attempt at a time (see attemptScope) sends its
// subscriber deliveries over a connection of its own: it writes the request and reads the answer
// itself, where net/http's Transport hands each request to the connection's writing goroutine and
// the answer back from its reading one. Those two hand-offs per request were a third of the CPU of
// a POST to a subscriber in another process (57 against 82 µs per request with 3 goroutines posting
// in turn, 34 against 52 with 64; docs/performance.md, "Deliveries on connections of their own").
// The request is written as http.Request.Write would write it (see ownRequest) and the answer
// parsed by http.ReadResponse: the connection's life is ours.
//
// It applies to http:// and https:// subscribers that the client's *http.Transport would reach
// directly over HTTP/1 (no proxy for the URL, keep-alives on, no dial or header-timeout hooks of its
// own, and for https no TLS dial hooks and no HTTP/2; see ownTransport, ownURL and ownHTTPS) and to
// events of up to ownMaxBody; everything else goes through the transport as before. What the
// transport does for a connection, the scope does for its own:
//   - dial with the transport's DialContext (its timeouts and keep-alive), one connection at a time
//     per goroutine; for https, TLS over it with the transport's TLSClientConfig (the URL's host as
//     the server name unless the config names one) and its TLSHandshakeTimeout;
//   - the connection is closed when the goroutine's scope ends (an idle worker or
//     key runner exits, a claim ends), when the answer asks for it (Connection: close, HTTP/1.0, a
//     101), when a body is not read to its end, and once idle for IdleConnTimeout (a timer that
//     looks at it once per timeout: an ordered claim's scope lasts as long as the claim);
//   - the attempt's deadline is the connection's; the scope's context ending (Stop, a revoke)
//     fails the exchange at once;
//   - an answer's header is bounded by MaxResponseHeaderBytes (net/http's default 10 MB), 1xx
//     answers before the real one are skipped (at most 5), and an answer that came before the
//     request was all written (a subscriber refusing a large body early) is read all the same;
//   - a connection idle a while is checked for a close by the subscriber before it is used (a
//     subscriber's keep-alive timeout, Node's is 5 s), and a request that got not one byte of answer
//     on a reused connection is sent once more on a new one: the transport's reading goroutine
//     notices such closes while the connection idles, here the next request does. The request was
//     then most likely not read; if it was, at-least-once delivery allows the second copy.

// ownMaxBody is the largest event data sent on an own connection; larger goes through the
// transport. The request is written whole before the answer is read, so a subscriber that answers
// early and then neither reads nor closes would hold a write that does not fit the connection's
// buffers until the attempt's timeout; the transport writes and reads at once. 32 KiB fits the
// buffers of any TCP connection (loopback's start at 64 KiB to receive, 16 KiB to send).
const ownMaxBody = 32 << 10

// maxOwn1xx is how many informational answers may come before the real one.
const maxOwn1xx = 5

// ownPeekAfter is how long a connection idles before it is checked for a close by the peer.
const ownPeekAfter = 100 * time.Millisecond

// ownTransport is rt when attempts may use own connections with its settings, else nil.
func ownTransport(rt http.RoundTripper) *http.Transport {
	tr, ok := rt.(*http.Transport)
	if !ok || tr.DisableKeepAlives || tr.Dial != nil || tr.ResponseHeaderTimeout != 0 ||
		(tr.Protocols != nil && !tr.Protocols.HTTP1()) {
		return nil
	}
	return tr
}

// ownURL reports whether tr reaches the template request's URL directly over HTTP/1. Host names
// that are not ASCII are left to the transport, which dials their IDNA form.
func ownURL(tr *http.Transport, tmpl *http.Request) bool {
	u := tmpl.URL
	switch {
	case u.User != nil || !ascii(u.Hostname()):
		return false
	case u.Scheme == "https":
		if !ownHTTPS(tr) {
			return false
		}
	case u.Scheme != "http":
		return false
	}
	if tr.Proxy == nil {
		return true
	}
	p, err := tr.Proxy(tmpl)
	return err == nil && p == nil
}

// ownHTTPS reports whether tr sets TLS up itself and speaks HTTP/1 over it: no TLS dial hooks, and
// no HTTP/2, which net/http's Transport turns on when its Protocols or TLSNextProto say so, when
// ForceAttemptHTTP2 is set, or by itself when none of its dial and TLS settings is set.
func ownHTTPS(tr *http.Transport) bool {
	switch {
	case tr.DialTLS != nil || tr.DialTLSContext != nil:
		return false
	case tr.Protocols != nil:
		return !tr.Protocols.HTTP2()
	case tr.TLSNextProto != nil:
		return len(tr.TLSNextProto) == 0
	case tr.ForceAttemptHTTP2:
		return false
	}
	return tr.TLSClientConfig != nil || tr.DialContext != nil || tr.Dial != nil
}

func ascii(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ownConn is a scope's connection to one address. Only the scope's goroutine uses it; the scope's
// context ending and the idle timer reach it from other goroutines, through mu.
type ownConn struct {
	addr  string
	tls   bool     // conn is TLS over raw
	conn  net.Conn // what requests are written to
	raw   net.Conn // the TCP connection under it, looked at while idle
	in    headerLimit
	br    *bufio.Reader
	bw    *bufio.Writer
	used  bool        // it has carried an exchange
	busy  bool        // an answer's body is being read
	stop  func() bool // unregisters the cancel on the scope's context
	timer *time.Timer // closes it once idle for the transport's IdleConnTimeout; nil without one

	mu    sync.Mutex // guards state, idle and the connection's deadline
	state connState
	idle  time.Time // when its last exchange ended; written by the scope's goroutine only
}

// connState is where an own connection is in its life.
type connState uint8

const (
	connIdle     connState = iota // between exchanges
	connInUse                     // an exchange (its answer's body included) is in progress
	connCanceled                  // the scope's context ended
	connTimedOut                  // idle too long: closed by the timer
)

// headerLimit reads the connection, counting bytes, and refusing more than left while an answer's
// header is read.
type headerLimit struct {
	r     io.Reader
	left  int64 // < 0: no limit
	max   int64
	count int64
}

func (h *headerLimit) Read(p []byte) (int, error) {
	if h.left == 0 {
		return 0, fmt.Errorf("the answer's header is longer than %d bytes", h.max)
	}
	if h.left > 0 && int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.count += int64(n)
	if h.left > 0 {
		h.left -= int64(n)
	}
	return n, err
}

// errNoAnswer marks a failure on a reused connection before any byte of the answer arrived.
var errNoAnswer = errors.New("the connection was closed before an answer")

// roundTrip sends req on the scope's own connection, as tr would send it, written as w says (req
// gives the header and the context).
func (s *attemptScope) roundTrip(tr *http.Transport, req *http.Request, w ownRequest) (*http.Response, error) {
	if err := checkHeader(req.Header); err != nil {
		return nil, err // nothing sent; an answer would never come
	}
	addr, https := hostPort(req.URL), req.URL.Scheme == "https"
	if c := s.conn; c != nil && (c.addr != addr || c.tls != https || c.busy || !c.fresh()) {
		s.closeConn()
	}
	for {
		c := s.conn
		reused := c != nil
		if c == nil {
			var err error
			if c, err = s.dial(tr, req.Context(), addr, https, req.URL.Hostname()); err != nil {
				return nil, err
			}
		}
		resp, err := s.exchange(c, tr, req, w)
		if err == nil {
			return resp, nil
		}
		s.closeConn()
		if !reused || !errors.Is(err, errNoAnswer) {
			return nil, err
		}
		// written from w again on a new connection
	}
}

// hostPort is u's address with its scheme's default port when it has none.
func hostPort(u *url.URL) string {
	switch {
	case u.Port() != "":
		return u.Host
	case u.Scheme == "https":
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// fresh reports whether c may carry another request: after a while idle, it is looked at for a
// close by the peer (or by the idle timer).
func (c *ownConn) fresh() bool {
	return !c.used || time.Since(c.idle) < ownPeekAfter || !peerClosed(c.raw)
}

// dial opens the scope's connection to addr with tr's dialer, with TLS over it to host for https.
func (s *attemptScope) dial(tr *http.Transport, ctx context.Context, addr string, https bool, host string) (*ownConn, error) {
	dial := tr.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if https {
		if conn, err = ownTLS(ctx, tr, raw, host); err != nil {
			raw.Close()
			return nil, err
		}
	}
	c := &ownConn{addr: addr, tls: https, conn: conn, raw: raw, in: headerLimit{r: conn, left: -1}}
	c.br = bufio.NewReader(&c.in)
	c.bw = bufio.NewWriter(conn)
	c.stop = context.AfterFunc(s.Context, c.cancel)
	if d := tr.IdleConnTimeout; d > 0 {
		c.timer = time.AfterFunc(d, func() { c.idleCheck(d) })
	}
	s.conn = c
	return c, nil
}

// errTLSHandshakeTimeout is the error of a TLS handshake that took longer than the transport's
// TLSHandshakeTimeout.
var errTLSHandshakeTimeout = errors.New("TLS handshake timeout")

// ownTLS is a TLS client over raw as tr would make it: a copy of tr's TLSClientConfig, host as the
// server name unless the config names one, the handshake bounded by tr's TLSHandshakeTimeout
// besides ctx.
func ownTLS(ctx context.Context, tr *http.Transport, raw net.Conn, host string) (*tls.Conn, error) {
	cfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	conn := tls.Client(raw, cfg)
	if d := tr.TLSHandshakeTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, errTLSHandshakeTimeout)
		defer cancel()
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		if errors.Is(context.Cause(ctx), errTLSHandshakeTimeout) {
			return nil, errTLSHandshakeTimeout
		}
		return nil, err
	}
	return conn, nil
}

// cancel fails c's exchange in progress and any later one: the scope's context ended.
func (c *ownConn) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = connCanceled
	_ = c.conn.SetDeadline(time.Unix(1, 0))
}

// idleCheck closes c if it has been idle for timeout, else looks again when it would have been.
func (c *ownConn) idleCheck(timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == connInUse:
		c.timer.Reset(timeout)
	case c.state != connIdle:
	case time.Since(c.idle) >= timeout:
		c.state = connTimedOut
		_ = c.conn.Close()
	default:
		c.timer.Reset(timeout - time.Since(c.idle))
	}
}

// begin starts an exchange on c with deadline t; an error when c was canceled (context.Canceled) or
// closed idle (errNoAnswer: nothing was sent).
func (c *ownConn) begin(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case connCanceled:
		return context.Canceled
	case connTimedOut:
		return fmt.Errorf("%w: closed idle", errNoAnswer)
	}
	c.state = connInUse
	_ = c.conn.SetDeadline(t)
	return nil
}

// closeConn closes the scope's connection, if it has one.
func (s *attemptScope) closeConn() {
	if c := s.conn; c != nil {
		s.conn = nil
		c.stop()
		if c.timer != nil {
			c.timer.Stop()
		}
		_ = c.conn.Close()
	}
}

// exchange writes req on c and reads the answer's header. A failure on a reused connection before
// any byte of the answer wraps errNoAnswer (unless the attempt's context ended).
func (s *attemptScope) exchange(c *ownConn, tr *http.Transport, req *http.Request, w ownRequest) (*http.Response, error) {
	ctx := req.Context()
	if ctx.Err() != nil {
		return nil, s.ended(ctx)
	}
	deadline, _ := ctx.Deadline()
	if err := c.begin(deadline); err != nil {
		if errors.Is(err, errNoAnswer) {
			return nil, err
		}
		return nil, s.ended(ctx)
	}
	c.in.count = 0
	werr := w.write(c.bw, req.Header)
	if werr == nil {
		werr = c.bw.Flush()
	}
	// After a failed write the answer is read all the same: a subscriber may have answered and
	// closed before taking the whole request (the transport returns such an answer too).
	resp, err := c.readAnswer(tr, req)
	if err != nil || werr != nil {
		if err == nil {
			resp.Close = true // the request was not all sent: the connection ends with this answer
		} else {
			if werr != nil {
				err = werr
			}
			if ctx.Err() != nil || s.Context.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, s.ended(ctx)
			}
			if c.used && c.in.count == 0 {
				return nil, fmt.Errorf("%w: %w", errNoAnswer, err)
			}
			return nil, err
		}
	}
	c.used = true
	keep := !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		c.done(s, keep)
		return resp, nil
	}
	c.busy = true
	resp.Body = &ownBody{s: s, c: c, body: resp.Body, keep: keep}
	return resp, nil
}

// ended is the error of an exchange whose context ended (or whose scope's did).
func (s *attemptScope) ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.Context.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded // the connection's deadline came a moment before the context's timer
}

// readAnswer reads the answer to req on c, past informational ones, with the header bounded.
func (c *ownConn) readAnswer(tr *http.Transport, req *http.Request) (*http.Response, error) {
	c.in.max = tr.MaxResponseHeaderBytes
	if c.in.max <= 0 {
		c.in.max = 10 << 20
	}
	defer func() { c.in.left = -1 }()
	for n := 0; ; n++ {
		c.in.left = c.in.max
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n == maxOwn1xx {
			return nil, errors.New("too many informational (1xx) answers")
		}
	}
}

// done ends c's exchange: it may carry the next one when keep, else it is closed.
func (c *ownConn) done(s *attemptScope, keep bool) {
	c.busy = false
	if !keep {
		if s.conn == c {
			s.closeConn()
		}
		return
	}
	c.mu.Lock()
	if c.state == connInUse {
		c.state, c.idle = connIdle, time.Now()
	}
	c.mu.Unlock()
}

// ownBody is an answer's body on an own connection: its connection carries the next request once
// it was read to its end, and is closed when it was not.
type ownBody struct {
	s    *attemptScope
	c    *ownConn // nil once closed
	body io.ReadCloser
	keep bool
	eof  bool
}

func (b *ownBody) Read(p []byte) (int, error) {
	if b.c == nil {
		return 0, errors.New("read on a closed body")
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *ownBody) Close() error {
	if b.c != nil {
		b.c.done(b.s, b.keep && b.eof)
		b.c = nil
	}
	return nil
}
