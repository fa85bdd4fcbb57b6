package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

const oneChannel = `
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: demo}
`

// TestSlowAndHostileClients checks the ingress's limits with the default configuration.
func TestSlowAndHostileClients(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "c.yaml", oneChannel)
	g := startGateway(t, "-f", dir)
	addr := strings.TrimPrefix(g.ingress, "http://")

	t.Run("a client that never finishes its headers is cut off within 10s", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /default/demo HTTP/1.1\r\nHost: x\r\nCe-Id: 1\r\n") // and then nothing
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err = io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after 15s")
		}
		if d := time.Since(start); d > 11*time.Second {
			t.Fatalf("cut off after %v, want within 10s", d)
		}
	})

	t.Run("oversized headers are refused", func(t *testing.T) {
		t.Parallel()
		h := binaryEvent("big-header")
		h["X-Padding"] = strings.Repeat("a", 200<<10)
		resp, _ := post(t, g.ingress+"/default/demo", h, "x")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("code %d, want 431", resp.StatusCode)
		}
	})

	t.Run("invalid UTF-8 and control characters in ce- headers are 400", func(t *testing.T) {
		t.Parallel()
		for name, value := range map[string]string{
			"percent-encoded invalid UTF-8":    "%C3%28",
			"percent-encoded control char":     "a%07b",
			"percent-encoded NUL":              "a%00b",
			"raw invalid UTF-8 after decoding": "\xff",
		} {
			h := binaryEvent("hostile")
			h["Ce-Myext"] = value
			resp, body := post(t, g.ingress+"/default/demo", h, "x")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: code %d, want 400 (%s)", name, resp.StatusCode, body)
			}
		}
	})

	t.Run("a request line without a body still gets an answer", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Content-Length promises more than is sent, then the client half-closes.
		fmt.Fprintf(conn, "POST /default/demo HTTP/1.1\r\nHost: x\r\nCe-Specversion: 1.0\r\nCe-Id: 1\r\nCe-Source: /s\r\nCe-Type: t\r\nContent-Length: 100\r\n\r\nshort")
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("code %d, want 400", resp.StatusCode)
		}
	})
}
